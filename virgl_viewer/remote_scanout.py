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
in the inspector through ``transport``). The inspector's texture previews come the same
way: ``copy_preview`` asks the owning worker for one copy ("preview"); its "want" and
"frame" for the preview (``preview`` set) go to the preview's ring, through one slot.
Every number a worker sends is checked here (a worker is as untrusted as its guest).
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
from virgl_viewer.scanout import (
    ORPHAN_GRACE_S,
    Scanout,
    ScanoutManager,
    TexturePreview,
    previewable,
)
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
PREVIEW_SLOTS = 1  # per texture preview: copied on request, at most a few times a second
COPY_POLL_S = 0.001  # how often a copy out of a slot is looked at until it completed
MAX_TARGETS = 16  # display targets of one client shown at once (each holds SLOTS frames)
DISPLAY_BINDS = BIND_DISPLAY_TARGET | BIND_SCANOUT
MAX_SIDE = 16384  # virgl's largest 2D texture
GL_RGBA8 = 0x8058
# The sized internal formats (GL 4.5 core, table 8.12) a slot may hold: colour formats of
# at most 4 bytes a texel, as frame_bytes sizes a slot. A worker names the format of its
# texture; any other is refused (a larger texel would not fit the memory).
SLOT_FORMATS = frozenset({
    0x8229, 0x822B, 0x8051, 0x8058, 0x8C41, 0x8C43,  # R8 RG8 RGB8 RGBA8 SRGB8 SRGB8_ALPHA8
    0x8F94, 0x8F95, 0x8F96, 0x8F97,  # R8_SNORM RG8_SNORM RGB8_SNORM RGBA8_SNORM
    0x8059, 0x906F, 0x8D62, 0x8056, 0x8057,  # RGB10_A2 RGB10_A2UI RGB565 RGBA4 RGB5_A1
    0x822A, 0x822C, 0x822D, 0x822F, 0x822E,  # R16 RG16 R16F RG16F R32F
    0x8C3A, 0x8C3D, 0x93A1,  # R11F_G11F_B10F RGB9_E5 BGRA8_EXT (GLES)
    0x8232, 0x8231, 0x8238, 0x8237, 0x8D7C, 0x8D8E,  # R8UI R8I RG8UI RG8I RGBA8UI RGBA8I
    0x8234, 0x8233, 0x823A, 0x8239, 0x8236, 0x8235,  # R16UI R16I RG16UI RG16I R32UI R32I
})
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
    virgl_format: int = 0
    preview: bool = False  # a texture preview's slots, not a display target's


class RemoteScanouts(ScanoutManager):
    def __init__(self, loop: asyncio.AbstractEventLoop, presenter: GLPresenter,
                 on_change: Callable[[str, Scanout], None], notify_fd: int = -1,
                 transport: str | None = None) -> None:
        super().__init__(loop, presenter, cast("Renderer", _NoRenderer()), on_change,
                         notify_fd)
        self._by_target: dict[tuple[int, int], Scanout] = {}  # (id(session), id(resource))
        # (id(session), resource key, preview?)
        self._slots: dict[tuple[int, int, bool], _Slots] = {}
        self._previews: dict[tuple[int, int], TexturePreview] = {}  # (id(session), key)
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
                    virgl_format: int, internal_format: int, y_0_top: bool,
                    preview: bool) -> None:
        """A worker asks for slots for display target ``r``, or for the preview of
        texture ``r`` (its numbers are checked here: they come from a worker)."""
        self._free_slots((id(s), key, preview))
        src = self._previews.get((id(s), key)) if preview else None
        if preview and src is None:
            return  # a preview nobody asked for (or closed meanwhile)
        why = self._refuse(s, r, width, height, virgl_format, internal_format, preview)
        if why:
            if src is not None:
                self._end_preview(s, key, src)
            else:
                log.warning("client %s: no frames for a %dx%d target: %s", s, width, height,
                            why)
            return
        info = format_info(virgl_format)
        order = info.channel_order if info else None
        upload = GL_BGRA if order and order.startswith("B") else GL_RGBA
        n = PREVIEW_SLOTS if preview else SLOTS
        slots = _Slots(r, width, height, internal_format, self.transport, upload_format=upload,
                       theirs=set(range(n)), virgl_format=virgl_format, preview=preview)
        size = frame_bytes(width, height)
        fds: list[int] = []
        self.gl.make_current()
        try:
            for _ in range(n):
                fd, total = frame_memfd(size)
                fds.append(fd)
                if self.transport == "memobj":
                    slots.textures.append(gl_memory_texture(fd, total, internal_format,
                                                            width, height))
                else:
                    slots.views.append(mmap.mmap(fd, total))
            if self.transport == "shm":
                slots.staging = gl_create_texture(internal_format, width, height)
            self._slots[(id(s), key, preview)] = slots
            s.control(["slots", key, self.transport, width, height, internal_format, total,
                       preview], fds)
        except RendererError as exc:
            self._free(slots)
            if src is not None:
                self._end_preview(s, key, src)
            else:
                log.error("client %s: cannot make frame slots: %s", s, exc)
        finally:
            for fd in fds:
                os.close(fd)

    def _refuse(self, s: Any, r: Resource, width: int, height: int, virgl_format: int,
                internal_format: int, preview: bool) -> str:
        """Why slots of this shape are not made ("" if they are)."""
        if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
            return "size out of range"
        if internal_format not in SLOT_FORMATS:
            return f"internal format {internal_format:#x} does not fit a slot"
        info = format_info(virgl_format)
        if info is None or info.kind != "plain" or info.is_depth or info.is_stencil \
                or info.bytes_per_block > 4:
            return f"format {virgl_format} cannot be shown"
        order = info.channel_order
        if self.transport == "shm" and not (order and len(order) == 4 and order[0] in "BR"):
            return f"format {virgl_format} cannot be read back"
        if preview:
            if (width, height, virgl_format) != (r.width, r.height, r.format) \
                    or not previewable(r):
                return "not the texture asked for"
            return ""
        if not r.bind & DISPLAY_BINDS:
            return "not a display target"
        if sum(1 for k in self._slots if k[0] == id(s) and not k[2]) >= MAX_TARGETS:
            return f"frames of at most {MAX_TARGETS} display targets are shown"
        return ""

    def remote_frame(self, s: Any, r: Resource, key: int, slot: int, width: int,
                     height: int, virgl_format: int, y_0_top: bool, preview: bool) -> None:
        slots = self._slots.get((id(s), key, preview))
        n = len(slots.textures or slots.views) if slots is not None else 0
        if slots is None or not 0 <= slot < n or (width, height, virgl_format) != (
                slots.width, slots.height, slots.virgl_format):
            return  # slots re-made meanwhile (the worker's next frame uses the new ones)
        if slot not in slots.theirs:
            return  # not handed back yet: a worker that does not wait is not followed
        sc: Scanout | None
        if preview:
            sc = self._previews.get((id(s), key))
            if sc is None or not sc.alive:
                return
            sc.width, sc.height, sc.virgl_format = width, height, virgl_format
        else:
            sc = self._by_target.get((id(s), id(r))) or self._scanout_for(s, r)
            if (width, height, virgl_format, r.server_handle) != (
                    sc.width, sc.height, sc.virgl_format, sc.resource_handle):
                sc.width, sc.height, sc.virgl_format = width, height, virgl_format
                sc.resource_handle, sc.client_handle = r.server_handle, r.client_handle
                self.on_change("changed", sc)
        slots.theirs.discard(slot)
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

    def remote_unpreviewable(self, s: Any, r: Resource, key: int) -> None:
        src = self._previews.get((id(s), key))
        if src is not None:
            self._end_preview(s, key, src)

    def _poll_copies(self) -> None:
        self._polling = False
        left = []
        for entry in self._copies:
            s, key, slot, slots, sync = entry
            if gl_sync_poll(sync) == 0:  # our context is current on this thread
                left.append(entry)
                continue
            if self._slots.get((id(s), key, slots.preview)) is slots:
                slots.theirs.add(slot)
                s.control(["drawn", key, slot, slots.preview], None)
        self._copies = left
        if left and not self._polling:
            self._polling = True
            self.loop.call_later(COPY_POLL_S, self._poll_copies)

    def resource_destroyed(self, s: Any, r: Resource) -> None:
        for k, slots in list(self._slots.items()):
            if k[0] == id(s) and slots.resource is r:
                self._free_slots(k)
        for (sid, key), src in list(self._previews.items()):
            if sid == id(s) and src.owner is not None and src.owner[1] is r:
                self._end_preview(s, key, src)
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
        for (sid, key), src in list(self._previews.items()):
            if sid == id(s):
                self._end_preview(s, key, src)
        for k in [k for k in self._slots if k[0] == id(s)]:
            self._free_slots(k)
        for t in [t for t in self._by_target if t[0] == id(s)]:
            del self._by_target[t]
        super().session_closed(s)

    # ------------------------------------------------------------ texture previews
    def copy_preview(self, src: TexturePreview) -> None:
        """Ask the worker that owns ``src``'s texture for one copy of it; the copy
        comes as a preview "frame" into the preview's slot, then into its ring."""
        if not src.alive or src.owner is None:
            return
        s, r = src.owner
        key = s.key_of(r) if not s.closed else None
        if key is None or not previewable(r):
            src.alive = False
            return
        mine = self._previews.setdefault((id(s), key), src)
        if mine is not src:  # one preview of a texture at a time: the newest
            mine.alive = False
            self._previews[(id(s), key)] = src
        if not s.control(["preview", key], None):
            self._end_preview(s, key, src)

    def free_preview(self, src: TexturePreview) -> None:
        for (_sid, key), mine in list(self._previews.items()):
            if mine is src and src.owner is not None:
                self._end_preview(src.owner[0], key, src)
        super().free_preview(src)

    def _end_preview(self, s: Any, key: int, src: TexturePreview) -> None:
        """``src`` gets no more copies: its slots go, here and in the worker."""
        src.alive = False
        if self._previews.get((id(s), key)) is src:
            del self._previews[(id(s), key)]
            self._free_slots((id(s), key, True))
            if not s.closed:
                s.control(["preview_end", key], None)

    # ------------------------------------------------------------ slots
    def _free_slots(self, k: tuple[int, int, bool]) -> None:
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
        for src in self._previews.values():
            src.alive = False
        self._previews.clear()
        for k in list(self._slots):
            self._free_slots(k)
        super().close()
