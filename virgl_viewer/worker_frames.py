"""A renderer worker's scanout frames, handed to the main process (GUI, process isolation).

Why: the guest renders in the worker, its windows are drawn in the main process. How:
on a display target's present (reported at most once per screen refresh, as in shared
mode) the exporter asks the main process for slots for its size and format ("want");
the main process makes SLOTS sealed memfds and sends them ("slots"). With transport
"memobj" both processes import each as a texture's storage (GL_EXT_memory_object_fd) and
a frame is a GPU-side copy of the target into a free slot, waited for on the CPU before
the "frame" event goes out; with "shm" (the fallback) the frame is read back through
virglrenderer into the slot's memory. A slot is written only while the main process
does not hold it: it is busy from "frame" until the main process says "drawn" (after
its own copy out of it completed). Presents met with every slot busy are caught up once
a slot comes back, so the newest frame is always shown.

Texture previews (the inspector's) take the same road with ``preview`` set: on the main
process's "preview" the exporter copies any 2D texture the same way, once, into slots of
the preview's own (main makes one); a texture that cannot be copied is answered
"unpreviewable"; "preview_end", the resource's end or the client's frees them.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from virgl_viewer.errors import RendererError
from virgl_viewer.scanout import previewable
from virgl_viewer.server import ServerObserver
from virgl_viewer.virgl import (
    RESOURCE_FLAG_Y_0_TOP,
    GLPresenter,
    RendererResourceInfo,
    frame_data_offset,
    gl_copy_fenced,
    gl_memory_texture,
    gl_memory_texture_delete,
    gl_sync_poll,
)

if TYPE_CHECKING:
    from virgl_viewer.objects import Resource
    from virgl_viewer.server import VtestServer
    from virgl_viewer.session import Session


class EventSink(Protocol):
    """What the exporter needs of the worker's Reporter."""

    def put(self, *event: Any) -> None: ...
    def key_of(self, r: Resource) -> int | None: ...
    def resource_of(self, key: int) -> tuple[Session, Resource] | None: ...

log = logging.getLogger(__name__)

COPY_POLL_S = 0.001  # how often a frame's copy is looked at until it completed


@dataclass
class _Slot:
    tex: int = 0
    memobj: int = 0
    view: mmap.mmap | None = None
    busy: bool = False


@dataclass
class _Target:
    shape: tuple[int, int, int]  # width, height, virgl format
    y_0_top: bool
    transport: str = ""
    slots: list[_Slot] = field(default_factory=list)
    last: tuple[Any, Any] | None = None  # (session, resource) of the newest present
    behind: bool = False  # a present found every slot busy
    catch_up: bool = False
    preview: bool = False  # a texture preview's, not a display target's


class FrameExporter(ServerObserver):
    def __init__(self, server: VtestServer, reporter: EventSink) -> None:
        self.server = server
        self.reporter = reporter
        self.renderer = server.host.renderer
        provider = server.host.provider
        self._ctx = provider.create_context(4, 5, True)
        self.gl = GLPresenter(provider.egl_display, self._ctx)
        self._keys: dict[int, int] = {}  # id(resource) -> its event-stream key
        self.targets: dict[int, _Target] = {}
        self.previews: dict[int, _Target] = {}  # by key: textures being previewed
        self.exported = self.skipped = 0
        # copies into slots not complete yet: (key, slot, GLsync, frame event)
        self._copies: list[tuple[int, int, int, tuple[Any, ...]]] = []
        self._polling = False

    # ------------------------------------------------------------ observer
    def presented(self, s: Session, r: Resource, count: int = 1) -> None:
        key = self._keys.get(id(r))
        if key is None:
            key = self.reporter.key_of(r)
            if key is None:
                return
            self._keys[id(r)] = key
        t = self._target(key, self.renderer.resource_info(r.server_handle), preview=False)
        t.last = (s, r)
        self._export(key, t)
        if not t.catch_up:
            t.catch_up = True
            self.server.loop.call_later(s.present_interval, self._catch_up, key)

    def _target(self, key: int, info: RendererResourceInfo, *, preview: bool) -> _Target:
        """The export target of ``key`` for a texture now ``info``; a new one (asking
        the main process for slots: "want") if there was none or its shape changed."""
        table = self.previews if preview else self.targets
        shape = (info.width, info.height, info.virgl_format)
        t = table.get(key)
        if t is None or t.shape != shape:
            if t is not None:
                self._free(t)
            self.gl.make_current()
            try:
                ifmt = self.gl.internal_format(info.tex_id)
            finally:
                self.renderer.force_ctx_0()
            t = table[key] = _Target(shape, bool(info.flags & RESOURCE_FLAG_Y_0_TOP),
                                     preview=preview)
            self.reporter.put("want", key, *shape, ifmt, t.y_0_top, preview)
        return t

    def _catch_up(self, key: int) -> None:
        """The last present the rate limit held back is exported if the guest has not
        drawn since (as ScanoutManager does in shared mode)."""
        t = self.targets.get(key)
        if t is None:
            return
        t.catch_up = False
        if t.last is None:
            return
        s, r = t.last
        if s.closed:
            return
        n, _when, fresh = s.fast.take_skipped_presents(r.client_handle)
        if n and fresh:
            self.presented(s, r, n)

    def resource_destroyed(self, s: Session, r: Resource) -> None:
        key = self._keys.pop(id(r), None)
        t = self.targets.pop(key, None) if key is not None else None
        if t is not None:
            self._free(t)
        for key, t in list(self.previews.items()):
            if t.last is not None and t.last[1] is r:
                del self.previews[key]
                self._free(t)

    def session_closed(self, s: Session) -> None:
        for table in (self.targets, self.previews):
            for key, t in list(table.items()):
                if t.last is not None and t.last[0] is s:
                    del table[key]
                    self._free(t)

    # ------------------------------------------------------------ previews
    def preview(self, key: int) -> None:
        """Copy texture ``key`` once into its preview slots (asked for them first)."""
        found = self.reporter.resource_of(key)
        info = None
        if found is not None and previewable(found[1]):
            try:
                info = self.renderer.resource_info(found[1].server_handle)
            except RendererError:
                info = None
        if found is None or info is None:
            self.preview_end(key)
            self.reporter.put("unpreviewable", key)
            return
        t = self._target(key, info, preview=True)
        t.last = found
        self._export(key, t)

    def preview_end(self, key: int) -> None:
        t = self.previews.pop(key, None)
        if t is not None:
            self._free(t)

    # ------------------------------------------------------------ control
    def slots(self, key: int, transport: str, width: int, height: int, ifmt: int,
              size: int, fds: list[int], preview: bool = False) -> None:
        """The main process's slots for ``key`` (it keeps its own copies of the fds)."""
        t = (self.previews if preview else self.targets).get(key)
        try:
            if t is None or t.shape[:2] != (width, height) or t.slots:
                return  # gone or re-made meanwhile: a new "want" is on its way
            t.transport = transport
            if transport == "memobj":
                self.gl.make_current()
                try:
                    for fd in fds:
                        tex, memobj = gl_memory_texture(fd, size, ifmt, width, height)
                        t.slots.append(_Slot(tex, memobj))
                finally:
                    self.renderer.force_ctx_0()
            else:
                t.slots = [_Slot(view=mmap.mmap(fd, size)) for fd in fds]
        finally:
            for fd in fds:
                os.close(fd)
        if t.behind or t.last is not None:
            self._export(key, t)

    def drawn(self, key: int, slot: int, preview: bool = False) -> None:
        t = (self.previews if preview else self.targets).get(key)
        if t is None or not 0 <= slot < len(t.slots):
            return
        t.slots[slot].busy = False
        if t.behind:
            self._export(key, t)

    # ------------------------------------------------------------ frames
    def _export(self, key: int, t: _Target) -> None:
        if not t.slots or t.last is None:
            return
        free = next((i for i, sl in enumerate(t.slots) if not sl.busy), None)
        if free is None:
            t.behind = True
            self.skipped += 1
            return
        t.behind = False
        s, r = t.last
        if s.closed:
            return
        w, h, fmt = t.shape
        slot = t.slots[free]
        event = ("frame", key, free, w, h, fmt, t.y_0_top, t.preview)
        if slot.view is None:
            # GPU-side copy, fenced; the event goes out once the fence signalled. Not
            # waited for here: llvmpipe would finish the guest's queued scene first,
            # and the guest's next commands would wait meanwhile.
            info = self.renderer.resource_info(r.server_handle)
            self.gl.make_current()
            try:
                sync = gl_copy_fenced(info.tex_id, slot.tex, w, h)
            finally:
                self.renderer.force_ctx_0()
            if not sync:
                log.warning("client %s: a frame copy failed", s)
                return
            slot.busy = True
            self._copies.append((key, free, sync, event))
            self._poll_copies()
            return
        else:
            data = bytearray(w * h * 4)
            self.renderer.transfer_read(r.server_handle, s.ctx_id, 0, w * 4, w * h * 4,
                                        (0, 0, 0, w, h, 1), 0, data)
            off = frame_data_offset(len(slot.view))
            slot.view[off:off + len(data)] = data
        slot.busy = True
        self.exported += 1
        self.reporter.put(*event)

    def _poll_copies(self) -> None:
        """Send the frame events of the copies that completed; look again soon."""
        self._polling = False
        left = []
        for key, slot, sync, event in self._copies:
            done = gl_sync_poll(sync)  # a context of the share group is current
            if done == 0:
                left.append((key, slot, sync, event))
                continue
            t = (self.previews if event[-1] else self.targets).get(key)
            if done < 0 or t is None or slot >= len(t.slots):
                if t is not None and slot < len(t.slots):
                    t.slots[slot].busy = False
                continue
            self.exported += 1
            self.reporter.put(*event)
        self._copies = left
        if left and not self._polling:
            self._polling = True
            self.server.loop.call_later(COPY_POLL_S, self._poll_copies)

    def _free(self, t: _Target) -> None:
        if any(sl.tex for sl in t.slots):
            self.gl.make_current()
            try:
                for sl in t.slots:
                    if sl.tex:
                        gl_memory_texture_delete(sl.tex, sl.memobj)
            finally:
                self.renderer.force_ctx_0()
        for sl in t.slots:
            if sl.view is not None:
                with contextlib.suppress(BufferError):
                    sl.view.close()
        t.slots.clear()

    def close(self) -> None:
        for t in (*self.targets.values(), *self.previews.values()):
            self._free(t)
        self.targets.clear()
        self.previews.clear()
        self.server.host.provider.destroy_context(self._ctx)
