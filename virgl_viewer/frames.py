"""The UI's one door to native code: the frames guests present, the calls that
draw them, and the render side that makes them.

Why: the UI (virgl_viewer.ui, GUI thread) never calls virglrenderer, EGL or the
cffi module (an import-linter contract checks it); what it needs of them is
here, in plain Python values: GL texture names, GLsync and EGL addresses as
ints. How: ``RenderSide`` starts the render thread with GL contexts sharing
with Qt's, turns presents into Scanout frames (ScanoutManager) and reports
scanout events through ``on_change`` (render thread); the UI leases a frame
(``Scanout.take_latest``), draws it with ``gl_draw_frame``/``gl_blit_frame`` and
hands it back (``Scanout.drawn``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from virgl_viewer import virgl
from virgl_viewer.budgets import DEFAULT as DEFAULT_BUDGETS
from virgl_viewer.budgets import Budgets
from virgl_viewer.egl import SharedProvider
from virgl_viewer.isolation import ProcessServer, ProcessThread
from virgl_viewer.scanout import (
    Frame,
    Scanout,
    ScanoutManager,
    TexturePreview,
    TexturePreviewService,
)
from virgl_viewer.server import RenderThread
from virgl_viewer.virgl import gl_blit_frame, gl_draw_frame
from virgl_viewer.worker import WorkerConfig

if TYPE_CHECKING:
    from virgl_viewer.server import VtestServer
    from virgl_viewer.state import ResourceInfo, StateRegistry

__all__ = ["Frame", "RenderSide", "Scanout", "TexturePreview", "current_egl_handles",
           "gl_blit_frame", "gl_draw_frame"]


def current_egl_handles() -> tuple[int, int]:
    """(EGLDisplay, EGLContext) of the context current on this thread (make Qt's
    share context current first); raises if it is not an EGL one."""
    dpy, ctx = virgl.egl_current()
    if not dpy or not ctx:
        raise RuntimeError("Qt is not using EGL (set QT_XCB_GL_INTEGRATION=xcb_egl)")
    return dpy, ctx


class RenderSide:
    """The render thread serving ``path`` with GL contexts that share with the
    UI's (``egl_display``, ``share_context``: Qt's, from current_egl_handles).

    ``on_change(event, scanout)`` (render thread) gets ScanoutManager's events;
    every new frame adds 1 to the eventfd ``frames_fd``. ``registry`` is
    attached to the server once it runs. Texture previews (``open_preview``
    ...) do nothing before the render thread is up.

    ``isolation="process"``: each client is served by a renderer process of its own
    (virgl_viewer.isolation); this side's thread then only accepts clients, replays
    the workers' events and copies their frames into the same rings (RemoteScanouts).
    ``frame_path`` says how frames reach the screen, for the inspector. Texture
    previews work alike in both modes (in process mode the owning worker exports the
    texture through the same slots as its frames, see worker_frames.py).
    """

    def __init__(self, path: str, egl_display: int, share_context: int, *,
                 on_change: Callable[[str, Scanout], None], frames_fd: int,
                 registry: StateRegistry, present_interval: float,
                 allowed_uids: Iterable[int] = (),
                 budgets: Budgets = DEFAULT_BUDGETS, isolation: str = "shared",
                 warm_renderers: int = 4, frame_transport: str | None = None,
                 venus: bool = False) -> None:
        def provider() -> tuple[SharedProvider, Callable[[], None]]:
            p = SharedProvider(egl_display, share_context)
            return p, p.close

        self.isolation = isolation
        self._transport = frame_transport  # process: "memobj" or "shm"; None: probe
        self.frame_path = "GPU copies within one GL share group"
        self._egl = (egl_display, share_context)
        self._provider: SharedProvider | None = None
        self.thread: RenderThread | ProcessThread
        if isolation == "process":
            cfg = WorkerConfig(budgets=budgets, venus=venus, frames=True,
                               present_interval=present_interval,
                               log_level=logging.getLevelName(
                                   logging.getLogger().getEffectiveLevel()).lower())
            self.thread = ProcessThread(path, cfg, allowed_uids=allowed_uids, budgets=budgets,
                                        pool_size=warm_renderers)
            self.thread.on_ready = self._ready_process
        else:
            self.thread = RenderThread(path, provider, allowed_uids=allowed_uids, venus=venus,
                                       budgets=budgets)
            self.thread.on_ready = self._ready
        self.thread.on_stop = self._stopping
        self._on_change = on_change
        self._frames_fd = frames_fd
        self._registry = registry
        self._present_interval = present_interval
        self.manager: ScanoutManager | None = None
        self._previews: TexturePreviewService | None = None

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.thread.stop()

    @property
    def server(self) -> VtestServer | ProcessServer | None:
        return self.thread.server

    def call(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` on the render thread."""
        self.thread.call(fn, *args)

    def disconnect(self, pid: int) -> None:
        """Close every session of client ``pid``."""
        server = self.thread.server
        if server is not None:
            self.thread.call(server.disconnect, pid)

    def _ready(self, server: VtestServer) -> None:  # render thread
        server.set_present_interval(self._present_interval)
        host = server.host
        ctx = host.provider.create_context(4, 5, True)
        self.manager = ScanoutManager(
            server.loop, virgl.GLPresenter(host.provider.egl_display, ctx), host.renderer,
            self._on_change, self._frames_fd)
        server.add_observer(self.manager)
        self._registry.attach(server)
        self._previews = TexturePreviewService(self.manager, self.thread.call)

    def _ready_process(self, server: ProcessServer) -> None:  # the accepting thread
        from virgl_viewer.remote_scanout import TRANSPORTS, RemoteScanouts

        self._provider = provider = SharedProvider(*self._egl)
        ctx = provider.create_context(4, 5, True)
        manager = RemoteScanouts(server.loop, virgl.GLPresenter(provider.egl_display, ctx),
                                 self._on_change, self._frames_fd, self._transport)
        self.manager = manager
        self.frame_path = TRANSPORTS[manager.transport]
        server.add_observer(manager)
        self._registry.attach(server)
        self._previews = TexturePreviewService(manager, self.thread.call)

    def _stopping(self) -> None:  # render thread
        server = self.thread.server
        if self.manager is not None:
            if server is not None and self.manager in server.observers:
                server.observers.remove(self.manager)
            self.manager.close()
        if self._provider is not None:
            self._provider.close()

    # ------------------------------------------------------------ texture previews (UI)
    def open_preview(self, rec: ResourceInfo) -> TexturePreview | None:
        """A preview of the texture of resource record ``rec`` (of this side's
        registry): frames that are copies of it (``refresh_preview`` copies again).
        None: the resource is gone, or nothing runs yet."""
        owner = self._registry.resource_owner(rec) if self._previews is not None else None
        if owner is None or self._previews is None:
            return None
        return self._previews.open(*owner)

    def refresh_preview(self, source: TexturePreview) -> None:
        if self._previews is not None:
            self._previews.refresh(source)

    def close_preview(self, source: TexturePreview) -> None:
        if self._previews is not None:
            self._previews.close(source)
