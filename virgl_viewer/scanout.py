"""Scanouts: what guests present, handed to the UI without tearing.

Why: a guest renders its next frame into the same display target right after
presenting it, so the UI must never sample that texture directly. How: on
every present (TRANSFER_GET/GET2 of a display target) the render thread copies
the target into a free texture of the scanout's ring (GPU to GPU, in the share
group, see native/vv_present.c) and fences the copy. The UI takes the newest
entry when it paints (a lease), waits on its fence in its own context
(glWaitSync), draws, and hands back a fence of its draw; the render thread
waits on that (again on the GPU) before it reuses the texture, and never
reuses a leased one. Four textures: shown, newest, leased, being written; the
guest is never throttled, an unshown frame is simply replaced by a newer one
(or, if every entry is busy, the present is skipped and counted). The ring is
C (native/vv_ring.c): after a display target's first present has come through
here, the C fast path copies its presents itself.

A scanout belongs to a client; its number is the order in which the client
first presented it. A display target re-created by the guest (a resized
window) takes over the scanout of the one it replaced.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from virgl_viewer.errors import RendererError
from virgl_viewer.server import ServerObserver
from virgl_viewer.virgl import (
    RESOURCE_FLAG_Y_0_TOP,
    FastConn,
    FrameRing,
    GLPresenter,
    Renderer,
    RendererResourceInfo,
)
from virgl_viewer.vtest.protocol import TARGET_2D

if TYPE_CHECKING:
    import asyncio

    from virgl_viewer.objects import Resource
    from virgl_viewer.session import Session

log = logging.getLogger(__name__)

ORPHAN_GRACE_S = 1.0
CLIENT_GONE_FREE_S = 10.0


@dataclass(frozen=True, slots=True)
class Frame:
    """One ring entry as the UI sees it."""

    index: int
    texture: int  # GL texture name in the share group
    fence: int  # GLsync address: glWaitSync on it before sampling
    width: int
    height: int
    virgl_format: int
    y_0_top: bool
    seq: int
    presented_at: float


@dataclass(eq=False)
class Scanout:
    """A client's scanout; shared by the render thread and the UI. Its frames live in
    a FrameRing (native/vv_ring.c) made on the render thread at the first present."""

    id: int
    client_name: str
    client_pid: int
    number: int  # 1-based, per client
    resource_handle: int  # server handle of the display target now shown
    client_handle: int
    width: int = 0
    height: int = 0
    virgl_format: int = 0
    alive: bool = True  # False once the client has gone
    gone_reason: str = ""  # why, when not simply disconnected ("renderer crashed")
    _ring: FrameRing | None = field(default=None, repr=False)
    # the session's C path and the display target whose presents it copies into _ring
    _attached: tuple[FastConn, int] | None = field(default=None, repr=False)
    _orphaned_at: float | None = None
    _catch_up_pending: bool = False
    _last_report: float = 0.0  # the session's last report of a present to Python

    @property
    def key(self) -> str:
        """Stable name for settings: client name + scanout number."""
        return f"{self.client_name}/{self.number}"

    @property
    def title(self) -> str:
        return f"{self.client_name} — scanout {self.number} — {self.width}×{self.height}"

    def _stats(self) -> tuple[int, int, int, float, float]:
        ring = self._ring
        return ring.stats() if ring is not None else (0, 0, 0, 0.0, 0.0)

    @property
    def presents(self) -> int:
        """Presents by the guest (>= frames: see ScanoutManager.presented)."""
        return self._stats()[0]

    @property
    def frames(self) -> int:
        """Frames copied for the screen."""
        return self._stats()[1]

    @property
    def dropped(self) -> int:
        """Presents skipped because every ring entry was busy."""
        return self._stats()[2]

    @property
    def _last_present(self) -> float:
        return self._stats()[3]

    @property
    def _last_copy(self) -> float:
        return self._stats()[4]

    def fps(self, now: float | None = None) -> float:
        """Presents in the last second."""
        ring = self._ring
        if ring is None:
            return 0.0
        return ring.fps(time.monotonic() if now is None else now)

    # ------------------------------------------------------------ UI side
    def take_latest(self) -> Frame | None:
        """Lease the frame to draw now: the newest complete one (None before
        the first present). Every leased frame must be given back with
        ``drawn``. Never blocks on the render thread."""
        ring = self._ring
        got = ring.take_latest() if ring is not None else None
        return Frame(*got) if got is not None else None

    def drawn(self, frame: Frame, ui_fence: int = 0) -> None:
        """End the lease of ``frame``; ``ui_fence`` (a GLsync of the UI's
        context, 0 if nothing was drawn) fences the draw that sampled it."""
        ring = self._ring
        if ring is not None:
            ring.drawn(frame.index, ui_fence)


def previewable(r: Resource) -> bool:
    """Whether the inspector can show a copy of ``r``: level 0 of a single-sample 2D
    texture (not a buffer, not a blob, not an array, cube or 3D texture)."""
    return r.target == TARGET_2D and r.nr_samples <= 1 and not r.blob


@dataclass(eq=False)
class TexturePreview(Scanout):
    """A copy of any 2D texture for the inspector's preview: frames in a ring like a
    scanout's, but no guest presents it: it is copied on request and repainted on a
    timer, so new frames do not notify the UI. Not one of the scanouts (its ``id`` is 0,
    never a scanout's). ``owner`` is the session and resource it copies: a resource
    is named by the object, not by its handle (in process isolation server handles are
    only unique within one renderer process). ``alive`` turns False when it cannot be
    copied (any more): not previewable, or its resource or client is gone."""

    owner: tuple[Any, Resource] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, s: Any, r: Resource) -> TexturePreview:
        return cls(0, "preview", s.pid, 0, r.server_handle, r.client_handle,
                   width=r.width, height=r.height, owner=(s, r))


class TexturePreviewService:
    """Copies of any 2D texture for the inspector's preview (GUI-facing).

    Every call returns at once; the copies happen on the render thread
    through ``call`` (RenderThread.call or ProcessThread.call) exactly like scanout
    frames, so the UI draws them from the share group with the same fences and leases.
    """

    def __init__(self, manager: ScanoutManager, call: Callable[..., None]) -> None:
        self.manager = manager
        self.call = call

    def open(self, s: Any, r: Resource) -> TexturePreview:
        src = TexturePreview.of(s, r)
        self.call(self.manager.copy_preview, src)
        return src

    def refresh(self, source: TexturePreview) -> None:
        self.call(self.manager.copy_preview, source)

    def close(self, source: TexturePreview) -> None:
        self.call(self.manager.free_preview, source)


class ScanoutManager(ServerObserver):
    """Render-thread side: turns presents into ring frames.

    ``on_change(event, scanout)`` is called on the render thread with
    ``"added"``, ``"changed"`` (size, format or resource), ``"client-gone"`` or
    ``"removed"``; the UI forwards it to its thread. New frames are not events: each
    one written into a scanout's ring (by the C fast path, or here) adds 1 to the
    eventfd ``notify_fd`` (if >= 0), which the UI watches; ``Scanout.frames`` tells
    which scanouts have one.

    After the first present of a display target has gone through here (the scanout
    made or adopted, its ring made for the target's size and format), the target is
    attached to the ring (FastConn.attach_ring): the C path copies its presents from
    then on, and holds back and catches up the ones in between screen refreshes itself.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, presenter: GLPresenter,
                 renderer: Renderer, on_change: Callable[[str, Scanout], None],
                 notify_fd: int = -1) -> None:
        self.loop = loop
        self.gl = presenter
        self.renderer = renderer
        self.on_change = on_change
        self.notify_fd = notify_fd
        self.scanouts: dict[int, Scanout] = {}
        self._by_resource: dict[int, Scanout] = {}
        self._per_session: dict[int, list[Scanout]] = {}
        self._next_id = 1

    # ------------------------------------------------------------ observer hooks
    def presented(self, s: Session, r: Resource, count: int = 1,
                  when: float | None = None) -> None:
        sc = self._by_resource.get(r.server_handle)
        if sc is None:
            sc = self._adopt_or_create(s, r)
        now = time.monotonic()
        self._ring(sc).note_present(now if when is None else when, count)
        sc._last_report = now
        self._present(sc, s, r)
        # Presents are copied for the screen at most once per refresh of the fastest
        # screen: the session reports them no more often (the C path counts the ones
        # in between, see VtestServer.set_present_interval). Look one interval after
        # this report whether the last one held back still waits to be shown.
        if not sc._catch_up_pending:
            sc._catch_up_pending = True
            self.loop.call_later(s.present_interval, self._catch_up, sc, s, r)

    def _catch_up(self, sc: Scanout, s: Session, r: Resource) -> None:
        """Copy the last present the rate limit held back, if the guest has
        submitted nothing since (else the texture holds a newer, maybe
        half-drawn frame, and the guest's next present brings it)."""
        live = (sc.alive and not s.closed and sc.id in self.scanouts
                and sc.resource_handle == r.server_handle)
        left = sc._last_report + s.present_interval - time.monotonic() if live else 0.0
        if left > 0:  # reported again meanwhile: its hold-back time runs later
            self.loop.call_later(left, self._catch_up, sc, s, r)
            return
        sc._catch_up_pending = False
        if live:
            n, when, fresh = s.fast.take_skipped_presents(r.client_handle)
            if n and fresh:
                self.presented(s, r, n, when)
            elif n and sc._ring is not None:
                sc._ring.note_present(when, n)

    def _catch_up_before_losing(self, s: Session, r: Resource) -> None:
        """``r`` (a display target of ``s``) is about to go: copy its last
        present first if the rate limit held it back."""
        sc = self._by_resource.get(r.server_handle)
        if sc is not None and not s.closed:
            n, when, fresh = s.fast.take_skipped_presents(r.client_handle)
            if n and sc._ring is not None:
                sc._ring.note_present(when, n)
            if fresh:
                self._present(sc, s, r)

    def session_closing(self, s: Session) -> None:
        for sc in self._per_session.get(id(s), []):
            res = next((r for r in s.resources.values()
                        if r.server_handle == sc.resource_handle), None)
            if res is not None:
                self._catch_up_before_losing(s, res)

    def _present(self, sc: Scanout, s: Session, r: Resource) -> None:
        info = self.renderer.resource_info(r.server_handle)
        if (info.width, info.height, info.virgl_format, r.server_handle) != (
                sc.width, sc.height, sc.virgl_format, sc.resource_handle):
            # before the copy: the UI learns of the new size (and sizes the window)
            # before the frame's eventfd note can make it paint one
            sc.width, sc.height, sc.virgl_format = info.width, info.height, info.virgl_format
            sc.resource_handle, sc.client_handle = r.server_handle, r.client_handle
            self.on_change("changed", sc)
        if self._copy(sc, info):
            self._attach(sc, s.fast, r.client_handle)

    def _ring(self, sc: Scanout) -> FrameRing:
        """``sc``'s ring, made at its first use (render thread). A texture preview's
        does not notify the UI: previews repaint on a timer."""
        if sc._ring is None:
            notify = -1 if isinstance(sc, TexturePreview) else self.notify_fd
            sc._ring = FrameRing(self.gl, notify)
        return sc._ring

    @staticmethod
    def _attach(sc: Scanout, fast: FastConn, client: int) -> None:
        """From now on the C path copies the presents of ``client`` into ``sc``'s ring."""
        if sc._attached == (fast, client):
            return
        ScanoutManager._detach(sc)
        if fast.attach_ring(client, sc._ring):
            sc._attached = (fast, client)

    @staticmethod
    def _detach(sc: Scanout) -> None:
        if sc._attached is not None:
            fast, client = sc._attached
            sc._attached = None
            fast.attach_ring(client, None)

    def _copy(self, sc: Scanout, info: RendererResourceInfo) -> bool:
        """Copy the texture of ``info`` into a free ring entry of ``sc`` and
        publish it; False when every entry is busy (the frame is skipped)."""
        gl = self.gl
        gl.make_current()
        try:
            ring = self._ring(sc)
            ring.configure(info.width, info.height, gl.internal_format(info.tex_id),
                           info.virgl_format, bool(info.flags & RESOURCE_FLAG_Y_0_TOP))
            if not ring.copy(info.tex_id):
                return False
        finally:
            self.renderer.force_ctx_0()
        sc.width, sc.height, sc.virgl_format = info.width, info.height, info.virgl_format
        return True

    # ------------------------------------------------------------ texture previews
    def copy_preview(self, src: TexturePreview) -> None:
        """Render thread: copy level 0 of ``src``'s texture into the preview's ring."""
        if not src.alive or src.owner is None:
            return
        s, r = src.owner
        if not s.closed:
            s.sync_resources()  # the C path may have destroyed it meanwhile
        if s.closed or s.resources.get(r.client_handle) is not r or not previewable(r):
            src.alive = False
            return
        try:
            info = self.renderer.resource_info(r.server_handle)
        except RendererError:
            src.alive = False
            return
        self._copy(src, info)

    def free_preview(self, src: TexturePreview) -> None:
        src.alive = False
        self.gl.make_current()
        try:
            self._free_gl(src)
        finally:
            self.renderer.force_ctx_0()

    def resource_destroyed(self, s: Session, r: Resource) -> None:
        self._catch_up_before_losing(s, r)
        sc = self._by_resource.pop(r.server_handle, None)
        if sc is None:
            return
        if sc._attached == (s.fast, r.client_handle):
            self._detach(sc)
        sc._orphaned_at = time.monotonic()
        self.loop.call_later(ORPHAN_GRACE_S, self._reap_orphan, sc)

    def session_closed(self, s: Session) -> None:
        for sc in self._per_session.pop(id(s), []):
            sc._attached = None  # the session's C path is gone, and its resources
            sc.alive = False
            self._by_resource.pop(sc.resource_handle, None)
            self.on_change("client-gone", sc)
            self.loop.call_later(CLIENT_GONE_FREE_S, self._remove, sc)

    # ------------------------------------------------------------ internals
    def _adopt_or_create(self, s: Session, r: Resource) -> Scanout:
        mine = self._per_session.setdefault(id(s), [])
        for sc in mine:
            if sc._orphaned_at is not None:
                sc._orphaned_at = None
                self._by_resource[r.server_handle] = sc
                return sc
        # the size is known now: "added" opens and titles the window, so it must not
        # say 0x0 (the first present still reports "changed": the format is unset)
        sc = Scanout(self._next_id, s.name, s.pid, len(mine) + 1, r.server_handle,
                     r.client_handle, width=r.width, height=r.height)
        self._next_id += 1
        mine.append(sc)
        self.scanouts[sc.id] = sc
        self._by_resource[r.server_handle] = sc
        log.info("scanout %d: %s scanout %d (resource %d, %dx%d)", sc.id, s, sc.number,
                 r.client_handle, r.width, r.height)
        self.on_change("added", sc)
        return sc

    def _reap_orphan(self, sc: Scanout) -> None:
        if sc._orphaned_at is None or sc.id not in self.scanouts or not sc.alive:
            return
        for lst in self._per_session.values():
            if sc in lst:
                lst.remove(sc)
        self._remove(sc)

    def _remove(self, sc: Scanout) -> None:
        if self.scanouts.pop(sc.id, None) is None:
            return
        self.on_change("removed", sc)
        self.gl.make_current()
        try:
            self._free_gl(sc)
        finally:
            self.renderer.force_ctx_0()

    def _free_gl(self, sc: Scanout) -> None:
        """Render thread, presenter current: the ring's textures and syncs go (its
        memory goes with the last reference to it, the UI may still hold one)."""
        self._detach(sc)
        if sc._ring is not None:
            sc._ring.release_gl()

    def close(self) -> None:
        for sc in list(self.scanouts.values()):
            self._remove(sc)
