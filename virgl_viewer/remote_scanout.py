"""Scanouts of clients served by renderer processes (GUI, ``--isolation process``).

Why: the UI draws Scanout frames from rings in its own GL share group, whichever
process rendered them; it must not know which mode runs. How: ``RemoteScanouts`` is the
ScanoutManager of process mode, on the main process's loop with a GL context shared with
Qt's. Scanouts are made, numbered, adopted and retired exactly as in shared mode; the
frames come from the workers (worker_frames.py): on a worker's "want" it makes SLOTS
sealed memfds for the target's size and sends them; on "frame" it copies that slot
into the scanout's ring (the same C ring as shared mode: fenced copies, UI leases, no
tearing), waits for the copy, and gives the slot back ("drawn"), so a worker never
writes a slot being read. Transport: "memobj" when this Mesa imports our memfds as
texture storage (GL_EXT_memory_object_fd, checked by a self-test at start), else
"shm": the worker reads back into the slot and we upload it (logged once, and shown
in the inspector through ``transport``).
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from virgl_viewer.errors import RendererError
from virgl_viewer.formats import format_info
from virgl_viewer.scanout import ORPHAN_GRACE_S, Scanout, ScanoutManager, TexturePreview
from virgl_viewer.virgl import (
    GL_BGRA,
    GL_RGBA,
    frame_bytes,
    frame_data_offset,
    frame_memfd,
    gl_create_texture,
    gl_delete_texture,
    gl_fence,
    gl_finish,
    gl_has_extension,
    gl_memory_texture,
    gl_memory_texture_delete,
    gl_sync_poll,
    gl_upload,
)
from virgl_viewer.vtest.protocol import BIND_DISPLAY_TARGET, BIND_SCANOUT

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from virgl_viewer.objects import Resource
    from virgl_viewer.virgl import GLPresenter, Renderer

log = logging.getLogger(__name__)

SLOTS = 3  # per display target: one being written, one being copied, one spare
COPY_POLL_S = 0.001  # how often a copy out of a slot is looked at until it completed
MAX_TARGETS = 16  # display targets of one client shown at once (each holds SLOTS frames)
DISPLAY_BINDS = BIND_DISPLAY_TARGET | BIND_SCANOUT
MAX_SIDE = 16384  # virgl's largest 2D texture
GL_RGBA8 = 0x8058
TRANSPORTS = {"memobj": "GPU copies into shared memory objects (GL_EXT_memory_object_fd)",
              "shm": "CPU readback into shared memory"}


class _NoRenderer:
    """Process mode has no virglrenderer here: nothing to hand the context back to."""

    def force_ctx_0(self) -> None:
        pass


@dataclass
class _Slots:
    resource: Any
    width: int
    height: int
    internal_format: int
    transport: str
    textures: list[tuple[int, int]] = field(default_factory=list)  # (tex, memobj)
    views: list[mmap.mmap] = field(default_factory=list)
    staging: int = 0
    upload_format: int = 0
    theirs: set[int] = field(default_factory=set)  # slots the worker may fill now


class RemoteScanouts(ScanoutManager):
    def __init__(self, loop: asyncio.AbstractEventLoop, presenter: GLPresenter,
                 on_change: Callable[[str, Scanout], None], notify_fd: int = -1,
                 transport: str | None = None) -> None:
        super().__init__(loop, presenter, cast("Renderer", _NoRenderer()), on_change,
                         notify_fd)
        self._by_target: dict[tuple[int, int], Scanout] = {}  # (id(session), id(resource))
        self._slots: dict[tuple[int, int], _Slots] = {}  # (id(session), resource key)
        self._copies: list[tuple[Any, int, int, _Slots, int]] = []  # out of slots, in flight
        self._polling = False
        self.transport, why = (transport, "asked for") if transport else self._probe()
        if self.transport == "memobj":
            log.info("frames from renderer processes: %s", TRANSPORTS["memobj"])
        else:
            log.warning("frames from renderer processes: %s (%s)", TRANSPORTS["shm"], why)

    def _probe(self) -> tuple[str, str]:
        """Whether this driver imports our memfds as texture storage: a 16x16 texture on
        one, written by GL, must show its pixels in the memfd."""
        gl = self.gl
        gl.make_current()
        if not gl_has_extension("GL_EXT_memory_object_fd"):
            return "shm", "GL_EXT_memory_object_fd is missing"
        fd, total = frame_memfd(frame_bytes(16, 16), "vv-probe")
        try:
            try:
                tex, memobj = gl_memory_texture(fd, total, GL_RGBA8, 16, 16)
            except RendererError:
                return "shm", "the driver refused our memory (glTexStorageMem2DEXT)"
            pattern = bytes((i * 7 + 3) & 0xFF for i in range(16 * 16 * 4))
            gl_upload(tex, 16, 16, GL_RGBA, 64, pattern)
            gl_finish()
            with mmap.mmap(fd, total) as view:
                found = view.find(pattern[:256]) >= 0
            gl_memory_texture_delete(tex, memobj)
        finally:
            os.close(fd)
        if not found:
            return "shm", "texels written by GL did not reach the shared memory"
        return "memobj", ""

    # ------------------------------------------------------------ observer hooks
    def presented(self, s: Any, r: Resource, count: int = 1,
                  when: float | None = None) -> None:
        sc = self._by_target.get((id(s), id(r))) or self._scanout_for(s, r)
        now = time.monotonic()
        self._ring(sc).note_present(now if when is None else when, count)
        sc._last_report = now

    def _scanout_for(self, s: Any, r: Resource) -> Scanout:
        mine = self._per_session.setdefault(id(s), [])
        for sc in mine:
            if sc._orphaned_at is not None:  # a re-created target takes its place
                sc._orphaned_at = None
                self._by_target[(id(s), id(r))] = sc
                return sc
        sc = Scanout(self._next_id, s.name, s.pid, len(mine) + 1, r.server_handle,
                     r.client_handle, width=r.width, height=r.height)
        self._next_id += 1
        mine.append(sc)
        self.scanouts[sc.id] = sc
        self._by_target[(id(s), id(r))] = sc
        log.info("scanout %d: %s scanout %d (resource %d, %dx%d, renderer process %d)",
                 sc.id, s, sc.number, r.client_handle, r.width, r.height, s.renderer_pid)
        self.on_change("added", sc)
        return sc

    def remote_want(self, s: Any, r: Resource, key: int, width: int, height: int,
                    virgl_format: int, internal_format: int, y_0_top: bool) -> None:
        """A worker asks for slots for display target ``r`` (its numbers are checked
        here: they come from a worker)."""
        self._free_slots((id(s), key))
        if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE and internal_format
                and r.bind & DISPLAY_BINDS):
            log.warning("client %s: no frames for a %dx%d target", s, width, height)
            return
        if sum(1 for k in self._slots if k[0] == id(s)) >= MAX_TARGETS:
            log.warning("client %s: frames of at most %d display targets are shown", s,
                        MAX_TARGETS)
            return
        info = format_info(virgl_format)
        order = info.channel_order if info else None
        upload = GL_BGRA if order and order.startswith("B") else GL_RGBA
        if self.transport == "shm" and not (order and len(order) == 4 and info
                                            and order[0] in "BR"):
            log.warning("client %s: frames of format %d cannot be shown", s, virgl_format)
            return
        slots = _Slots(r, width, height, internal_format, self.transport, upload_format=upload,
                       theirs=set(range(SLOTS)))
        size = frame_bytes(width, height)
        fds: list[int] = []
        self.gl.make_current()
        try:
            for _ in range(SLOTS):
                fd, total = frame_memfd(size)
                fds.append(fd)
                if self.transport == "memobj":
                    slots.textures.append(gl_memory_texture(fd, total, internal_format,
                                                            width, height))
                else:
                    slots.views.append(mmap.mmap(fd, total))
            if self.transport == "shm":
                slots.staging = gl_create_texture(internal_format, width, height)
            self._slots[(id(s), key)] = slots
            s.control(["slots", key, self.transport, width, height, internal_format, total],
                      fds)
        except RendererError as exc:
            log.error("client %s: cannot make frame slots: %s", s, exc)
            self._free(slots)
        finally:
            for fd in fds:
                os.close(fd)

    def remote_frame(self, s: Any, r: Resource, key: int, slot: int, width: int,
                     height: int, virgl_format: int, y_0_top: bool) -> None:
        slots = self._slots.get((id(s), key))
        n = len(slots.textures or slots.views) if slots is not None else 0
        if slots is None or not 0 <= slot < n or (width, height) != (slots.width,
                                                                      slots.height):
            return  # slots re-made meanwhile (the worker's next frame uses the new ones)
        if slot not in slots.theirs:
            return  # not handed back yet: a worker that does not wait is not followed
        slots.theirs.discard(slot)
        sc = self._by_target.get((id(s), id(r))) or self._scanout_for(s, r)
        if (width, height, virgl_format, r.server_handle) != (
                sc.width, sc.height, sc.virgl_format, sc.resource_handle):
            sc.width, sc.height, sc.virgl_format = width, height, virgl_format
            sc.resource_handle, sc.client_handle = r.server_handle, r.client_handle
            self.on_change("changed", sc)
        gl = self.gl
        gl.make_current()
        ring = self._ring(sc)
        ring.configure(width, height, slots.internal_format, virgl_format, y_0_top)
        if slots.textures:
            src = slots.textures[slot][0]
        else:
            view = slots.views[slot]
            off = frame_data_offset(len(view))
            gl_upload(slots.staging, width, height, slots.upload_format, width * 4,
                      memoryview(view)[off:off + width * height * 4])
            src = slots.staging
        ring.copy(src)
        # the slot goes back once our copy out of it completed (not waited for here:
        # llvmpipe would finish the GUI's queued draws first)
        self._copies.append((s, key, slot, slots, gl_fence()))
        self._poll_copies()

    def _poll_copies(self) -> None:
        self._polling = False
        left = []
        for entry in self._copies:
            s, key, slot, slots, sync = entry
            if gl_sync_poll(sync) == 0:  # our context is current on this thread
                left.append(entry)
                continue
            if self._slots.get((id(s), key)) is slots:
                slots.theirs.add(slot)
                s.control(["drawn", key, slot], None)
        self._copies = left
        if left and not self._polling:
            self._polling = True
            self.loop.call_later(COPY_POLL_S, self._poll_copies)

    def resource_destroyed(self, s: Any, r: Resource) -> None:
        for k, slots in list(self._slots.items()):
            if k[0] == id(s) and slots.resource is r:
                self._free_slots(k)
        sc = self._by_target.pop((id(s), id(r)), None)
        if sc is None:
            return
        sc._orphaned_at = time.monotonic()
        self.loop.call_later(ORPHAN_GRACE_S, self._reap_orphan, sc)

    def session_closing(self, s: Any) -> None:
        """Nothing to catch up here: the worker exported its last frame."""

    def session_closed(self, s: Any) -> None:
        reason = str(getattr(s, "close_reason", ""))
        for sc in self._per_session.get(id(s), []):
            if reason.startswith("renderer crashed"):
                sc.gone_reason = "renderer crashed"
        for k in [k for k in self._slots if k[0] == id(s)]:
            self._free_slots(k)
        for k in [k for k in self._by_target if k[0] == id(s)]:
            del self._by_target[k]
        super().session_closed(s)

    def copy_preview(self, src: TexturePreview, server: Any) -> None:
        """Texture previews need the guest's textures in this process: not here."""
        src.alive = False

    # ------------------------------------------------------------ slots
    def _free_slots(self, k: tuple[int, int]) -> None:
        slots = self._slots.pop(k, None)
        if slots is not None:
            self.gl.make_current()
            self._free(slots)

    @staticmethod
    def _free(slots: _Slots) -> None:
        for tex, memobj in slots.textures:
            gl_memory_texture_delete(tex, memobj)
        slots.textures.clear()
        if slots.staging:
            gl_delete_texture(slots.staging)
            slots.staging = 0
        for view in slots.views:
            with contextlib.suppress(BufferError):
                view.close()
        slots.views.clear()

    def close(self) -> None:
        for k in list(self._slots):
            self._free_slots(k)
        super().close()
