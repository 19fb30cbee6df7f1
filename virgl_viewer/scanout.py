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
(or, if every entry is busy, the present is skipped and counted).

A scanout belongs to a client; its number is the order in which the client
first presented it. A display target re-created by the guest (a resized
window) takes over the scanout of the one it replaced.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from virgl_viewer.server import ServerObserver
from virgl_viewer.virgl import (
    RESOURCE_FLAG_Y_0_TOP,
    GLPresenter,
    Renderer,
    ResourceInfo,
)
from virgl_viewer.vtest.protocol import TARGET_2D

if TYPE_CHECKING:
    import asyncio

    from virgl_viewer.objects import Resource
    from virgl_viewer.server import VtestServer
    from virgl_viewer.session import Session

log = logging.getLogger(__name__)

RING_SIZE = 4
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
    """A client's scanout; shared by the render thread and the UI."""

    id: int
    client_name: str
    client_pid: int
    number: int  # 1-based, per client
    resource_handle: int  # server handle of the display target now shown
    client_handle: int
    width: int = 0
    height: int = 0
    virgl_format: int = 0
    frames: int = 0  # frames copied for the screen
    presents: int = 0  # presents by the guest (>= frames: see ScanoutManager.presented)
    alive: bool = True  # False once the client has gone
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _textures: list[int] = field(default_factory=list, repr=False)
    _tex_key: tuple[int, int, int] = (0, 0, 0)
    _copy_fences: dict[int, int] = field(default_factory=dict, repr=False)
    _latest: Frame | None = None
    _shown: Frame | None = None
    _ui_fences: dict[int, list[int]] = field(default_factory=dict, repr=False)
    _leases: dict[int, int] = field(default_factory=dict, repr=False)
    dropped: int = 0  # presents skipped because every ring entry was busy
    _orphaned_at: float | None = None
    _last_copy: float = 0.0
    _last_present: float = 0.0
    _catch_up_pending: bool = False
    _last_report: float = 0.0  # the session's last report of a present
    # (time, presents) of each report: presents in the last second give the FPS
    _present_times: deque[tuple[float, int]] = field(
        default_factory=lambda: deque(maxlen=1024), repr=False)

    @property
    def key(self) -> str:
        """Stable name for settings: client name + scanout number."""
        return f"{self.client_name}/{self.number}"

    @property
    def title(self) -> str:
        return f"{self.client_name} — scanout {self.number} — {self.width}×{self.height}"

    def fps(self, now: float | None = None) -> float:
        """Presents in the last second."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return float(sum(n for t, n in self._present_times if now - t <= 1.0))

    # ------------------------------------------------------------ UI side
    def take_latest(self) -> Frame | None:
        """Lease the frame to draw now: the newest complete one (None before
        the first present). Every leased frame must be given back with
        ``drawn``. Never blocks on the render thread."""
        with self._lock:
            if self._latest is not None:
                self._shown, self._latest = self._latest, None
            f = self._shown
            if f is not None:
                self._leases[f.index] = self._leases.get(f.index, 0) + 1
            return f

    def drawn(self, frame: Frame, ui_fence: int = 0) -> None:
        """End the lease of ``frame``; ``ui_fence`` (a GLsync of the UI's
        context, 0 if nothing was drawn) fences the draw that sampled it."""
        with self._lock:
            n = self._leases.get(frame.index, 0) - 1
            if n > 0:
                self._leases[frame.index] = n
            else:
                self._leases.pop(frame.index, None)
            if ui_fence:
                self._ui_fences.setdefault(frame.index, []).append(ui_fence)

    # ------------------------------------------------------------ render side
    def _acquire(self) -> tuple[int, list[int]] | None:
        with self._lock:
            busy = {f.index for f in (self._latest, self._shown) if f is not None}
            busy.update(self._leases)
            for i in range(RING_SIZE):
                if i not in busy:
                    return i, self._ui_fences.pop(i, [])
            self.dropped += 1
            return None

    def _note_present(self, when: float, count: int = 1) -> None:
        """The guest presented ``count`` times (the last one now): FPS counts them."""
        with self._lock:
            self.presents += count
            self._last_present = when
            self._present_times.append((when, count))

    def _publish(self, frame: Frame) -> None:
        with self._lock:
            self._latest = frame
            self.frames = frame.seq


class TexturePreviewService:
    """Copies of any 2D texture for the inspector's preview (GUI-facing).

    Every call returns at once; the copies happen on the render thread
    through ``call`` (RenderThread.call) exactly like scanout frames, so the
    UI draws them from the share group with the same fences and leases.
    """

    def __init__(self, manager: ScanoutManager, server: VtestServer,
                 call: Callable[..., None]) -> None:
        self.manager = manager
        self.server = server
        self.call = call

    def open(self, server_handle: int) -> Scanout:
        src = Scanout(-server_handle, "preview", 0, 0, server_handle, 0)
        self.call(self.manager.copy_preview, src, self.server)
        return src

    def refresh(self, source: Scanout) -> None:
        self.call(self.manager.copy_preview, source, self.server)

    def close(self, source: Scanout) -> None:
        self.call(self.manager.free_preview, source)


class ScanoutManager(ServerObserver):
    """Render-thread side: turns presents into ring frames.

    ``on_change(event, scanout)`` is called on the render thread with
    ``"added"``, ``"frame"``, ``"changed"`` (size, format or resource),
    ``"client-gone"`` or ``"removed"``; the UI forwards it to its thread.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, presenter: GLPresenter,
                 renderer: Renderer, on_change: Callable[[str, Scanout], None]) -> None:
        self.loop = loop
        self.gl = presenter
        self.renderer = renderer
        self.on_change = on_change
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
        sc._note_present(now if when is None else when, count)
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
            elif n:
                sc._note_present(when, n)

    def _catch_up_before_losing(self, s: Session, r: Resource) -> None:
        """``r`` (a display target of ``s``) is about to go: copy its last
        present first if the rate limit held it back."""
        sc = self._by_resource.get(r.server_handle)
        if sc is not None and not s.closed:
            n, when, fresh = s.fast.take_skipped_presents(r.client_handle)
            if n:
                sc._note_present(when, n)
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
        changed = (info.width, info.height, info.virgl_format, r.server_handle) != (
            sc.width, sc.height, sc.virgl_format, sc.resource_handle)
        if not self._copy(sc, info):
            return
        sc.resource_handle, sc.client_handle = r.server_handle, r.client_handle
        self.on_change("changed" if changed else "frame", sc)

    def _copy(self, sc: Scanout, info: ResourceInfo) -> bool:
        """Copy the texture of ``info`` into a free ring entry of ``sc`` and
        publish it; False when every entry is busy (the frame is skipped)."""
        gl = self.gl
        gl.make_current()
        try:
            fmt = gl.internal_format(info.tex_id)
            key = (info.width, info.height, fmt)
            if sc._tex_key != key:
                self._free_gl(sc)
                sc._textures = [gl.create_texture(fmt, info.width, info.height)
                                for _ in range(RING_SIZE)]
                sc._tex_key = key
                with sc._lock:
                    sc._latest = sc._shown = None
                    sc._leases.clear()
            got = sc._acquire()
            if got is None:
                return False
            index, waits = got
            for w in waits:
                gl.wait(w)
            old = sc._copy_fences.pop(index, 0)
            if old:
                gl.delete_sync(old)
            fence = gl.copy(info.tex_id, sc._textures[index], info.width, info.height)
            sc._copy_fences[index] = fence
        finally:
            self.renderer.force_ctx_0()
        sc.width, sc.height, sc.virgl_format = info.width, info.height, info.virgl_format
        sc._last_copy = time.monotonic()
        sc._publish(Frame(index, sc._textures[index], fence, info.width, info.height,
                          info.virgl_format, bool(info.flags & RESOURCE_FLAG_Y_0_TOP),
                          sc.frames + 1, time.monotonic()))
        return True

    # ------------------------------------------------------------ texture previews
    def copy_preview(self, src: Scanout, server: VtestServer) -> None:
        """Render thread: copy level 0 of texture ``src.resource_handle`` into
        the preview's ring (2D, single-sample textures only)."""
        if not src.alive:
            return
        res = next((r for s in server.sessions for r in s.resources.values()
                    if r.server_handle == src.resource_handle), None)
        if res is None or res.target != TARGET_2D or res.nr_samples > 1 or res.blob:
            src.alive = False
            return
        self._copy(src, self.renderer.resource_info(res.server_handle))

    def free_preview(self, src: Scanout) -> None:
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
        sc._orphaned_at = time.monotonic()
        self.loop.call_later(ORPHAN_GRACE_S, self._reap_orphan, sc)

    def session_closed(self, s: Session) -> None:
        for sc in self._per_session.pop(id(s), []):
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
        gl = self.gl
        for f in sc._copy_fences.values():
            gl.delete_sync(f)
        sc._copy_fences.clear()
        with sc._lock:
            fences = [f for lst in sc._ui_fences.values() for f in lst]
            sc._ui_fences.clear()
        for f in fences:
            gl.delete_sync(f)
        for t in sc._textures:
            gl.delete_texture(t)
        sc._textures = []
        sc._tex_key = (0, 0, 0)

    def close(self) -> None:
        for sc in list(self.scanouts.values()):
            self._remove(sc)
