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

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from virgl_viewer import virgl
from virgl_viewer.budgets import DEFAULT as DEFAULT_BUDGETS
from virgl_viewer.budgets import Budgets
from virgl_viewer.egl import SharedProvider
from virgl_viewer.scanout import (
    Frame,
    Scanout,
    ScanoutManager,
    TexturePreview,
    TexturePreviewService,
)
from virgl_viewer.server import RenderThread
from virgl_viewer.virgl import gl_blit_frame, gl_draw_frame

if TYPE_CHECKING:
    from virgl_viewer.server import VtestServer
    from virgl_viewer.state import StateRegistry

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
    """

    def __init__(self, path: str, egl_display: int, share_context: int, *,
                 on_change: Callable[[str, Scanout], None], frames_fd: int,
                 registry: StateRegistry, present_interval: float,
                 allowed_uids: Iterable[int] = (),
                 budgets: Budgets = DEFAULT_BUDGETS, venus: bool = False) -> None:
        def provider() -> tuple[SharedProvider, Callable[[], None]]:
            p = SharedProvider(egl_display, share_context)
            return p, p.close

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
    def server(self) -> VtestServer | None:
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
        self._previews = TexturePreviewService(self.manager, server, self.thread.call)

    def _stopping(self) -> None:  # render thread
        if self.manager is not None:
            self.manager.close()

    # ------------------------------------------------------------ texture previews (UI)
    def open_preview(self, server_handle: int) -> TexturePreview | None:
        """A preview of texture ``server_handle``: frames that are copies of it
        (``refresh_preview`` copies again)."""
        return self._previews.open(server_handle) if self._previews is not None else None

    def refresh_preview(self, source: TexturePreview) -> None:
        if self._previews is not None:
            self._previews.refresh(source)

    def close_preview(self, source: TexturePreview) -> None:
        if self._previews is not None:
            self._previews.close(source)
