"""pytest plugin (entry point ``pytest11``): fixtures for testing virgl guests.

``virgl_server`` runs a headless virgl-viewer server in this process (its own
render thread, a surfaceless EGL display, a private socket) and
``virgl_guest`` connects our vtest client to it. Heavy imports happen inside
the fixtures, so loading the plugin costs nothing.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from virgl_viewer.guest import VtestClient
    from virgl_viewer.isolation import ProcessServer, ProcessThread
    from virgl_viewer.server import RenderThread, VtestServer


@dataclass
class RunningServer:
    """A server started by the ``virgl_server`` fixture. ``isolation`` "shared": every
    client served on ``thread`` (a RenderThread); "process": each by a renderer process
    of its own, ``thread`` (a ProcessThread) accepting and collecting their events."""

    path: str
    thread: RenderThread | ProcessThread
    isolation: str = "shared"

    @property
    def server(self) -> Any:
        """The VtestServer (shared) or ProcessServer (process)."""
        server: VtestServer | ProcessServer | None = self.thread.server
        assert server is not None
        return server

    def renderer_pids(self) -> list[int]:
        """The renderer process of each connected client (this process when shared)."""
        return sorted(int(getattr(s, "renderer_pid", os.getpid()))
                      for s in self.call(lambda: list(self.server.sessions)))

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the render thread and return its result."""
        import concurrent.futures

        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:
                fut.set_exception(exc)

        self.thread.call(run)
        return fut.result(timeout=30)

    def session_count(self) -> int:
        return int(self.call(lambda: len(self.server.sessions)))

    def settle(self, clients: int = 0, timeout: float = 30.0) -> bool:
        """Wait until ``clients`` clients are served and, in process isolation, the
        pool is at rest (its warm renderers ready, none starting or finishing): this
        process's fds are then comparable. Whether it settled within ``timeout``."""
        import time

        def at_rest() -> bool:
            if len(self.server.sessions) != clients:
                return False
            return self.isolation != "process" or bool(self.server.pool.at_rest())

        end = time.monotonic() + timeout
        while not self.call(at_rest):
            if time.monotonic() > end:
                return False
            time.sleep(0.01)
        return True

    def open_fds(self) -> int:
        """How many fds this process has open (the server's and in-process clients'),
        counted between two turns of the server's loop: a file the loop holds open for
        a moment (a /proc read, a socket being handed over) is never counted, so two
        counts at rest compare exactly."""
        return int(self.call(lambda: len(os.listdir("/proc/self/fd"))))


ISOLATION_MODES = ("shared", "process")  # start_server's isolation, as --isolation's


def start_server(path: str, isolation: str = "shared", venus: bool = False,
                 **kwargs: Any) -> RunningServer:
    """Start a headless server on ``path``: in this process (``isolation="shared"``)
    or with a renderer process per client (``"process"``; ``kwargs`` go to
    ProcessThread: pool_size, cfg); ``venus``: serving Vulkan guests too, as
    ``--venus``."""
    if isolation == "process":
        from virgl_viewer.isolation import ProcessThread
        from virgl_viewer.worker import WorkerConfig

        cfg = kwargs.pop("cfg", None) or WorkerConfig(venus=venus)
        pt = ProcessThread(path, cfg, budgets=cfg.budgets, **kwargs)
        pt.start()
        return RunningServer(path, pt, "process")
    from virgl_viewer.egl import SurfacelessProvider
    from virgl_viewer.server import RenderThread

    def factory() -> Any:
        p = SurfacelessProvider()
        return p, p.close

    rt = RenderThread(path, factory, venus=venus)
    rt.start()
    return RunningServer(path, rt)


@contextlib.contextmanager
def private_server(isolation: str = "shared", venus: bool = False) -> Iterator[RunningServer]:
    """start_server on a socket in a private directory; stopped and removed after."""
    with tempfile.TemporaryDirectory(prefix="vv-") as d:
        running = start_server(os.path.join(d, "vtest.sock"), isolation, venus)
        try:
            yield running
        finally:
            running.thread.stop()


@pytest.fixture
def virgl_server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """A headless virgl-viewer server on a private socket, stopped afterwards; in this
    process, or with a renderer process per client when parametrized indirectly with
    "process"."""
    with private_server(str(getattr(request, "param", "shared"))) as running:
        yield running


@pytest.fixture
def virgl_guest(virgl_server: RunningServer) -> Iterator[VtestClient]:
    """Our vtest client, connected to ``virgl_server`` with protocol 2 (as
    Mesa 22's virpipe)."""
    from virgl_viewer.guest import VtestClient

    client = VtestClient.connect(virgl_server.path, "pytest-guest", 2)
    try:
        yield client
    finally:
        client.close()


# ---------------------------------------------------------------- the GUI viewer
def pytest_configure(config: pytest.Config) -> None:
    """Pick the GL platform the viewer needs before anything imports Qt, as the
    app does: Qt on X11 must use EGL (xcb_egl) so virglrenderer's contexts can
    share with Qt's; PyOpenGL must resolve through EGL too. Without a display
    only the ``virgl_viewer`` fixture fails (it says why)."""
    from virgl_viewer.ui.app import choose_platform

    choose_platform(os.environ)


class ViewerHandle:
    """The running viewer of the ``virgl_viewer`` fixture, with helpers to wait
    for scanouts and frames and to grab what they show."""

    def __init__(self, controller: Any, qtbot: Any, path: str) -> None:
        self.controller = controller
        self.qtbot = qtbot
        self.path = path

    @property
    def windows(self) -> list[Any]:
        """Open scanout windows, in scanout order."""
        return [w for _, w in sorted(self.controller.windows.items())]

    def wait_scanouts(self, n: int, timeout: float = 20.0) -> list[Any]:
        """Wait until ``n`` scanout windows are open and have shown a frame."""
        def ready() -> None:
            ws = self.windows
            assert len(ws) >= n, f"{len(ws)} scanout windows"
            for w in ws[:n]:
                assert w.view.painted_seq > 0, f"{w.windowTitle()} has no frame yet"

        self.qtbot.waitUntil(ready, timeout=int(timeout * 1000))
        return self.windows[:n]

    def wait_frame(self, window: Any, after: int | None = None, timeout: float = 10.0) -> int:
        """Wait until ``window`` has painted a frame newer than ``after``
        (default: the one it shows now); returns that frame's number."""
        start = window.view.painted_seq if after is None else after

        def newer() -> None:
            window.view.update()
            assert window.view.painted_seq > start

        self.qtbot.waitUntil(newer, timeout=int(timeout * 1000))
        return int(window.view.painted_seq)

    def grab(self, window: Any) -> Any:
        """The scanout's newest frame as a QImage (RGB32) at the guest's own
        resolution, drawn by the viewer's GL path (swizzle, orientation,
        alpha) into an offscreen framebuffer."""
        from virgl_viewer.ui.windows import render_scanout_image

        img = render_scanout_image(window.view)
        assert img is not None, "the scanout has no frame"
        return img

    def grab_window(self, window: Any) -> Any:
        """What the window's view shows, as the user sees it."""
        return window.view.grabFramebuffer()


@pytest.fixture
def virgl_viewer(request: pytest.FixtureRequest) -> Iterator[ViewerHandle]:
    """The virgl-viewer GUI running in this process (needs an X display with
    EGL, e.g. Xvfb): a server on a private socket, scanout windows opening as
    guests present. Parametrize it indirectly with "process" for a renderer process
    per client (``--isolation process``; "process-shm": its frames through the CPU
    readback fallback); "shared" is the default."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        pytest.fail("the virgl_viewer fixture needs a display: run the tests under "
                    "`xvfb-run -a pytest ...` (or in a desktop session)", pytrace=False)
    qtbot = request.getfixturevalue("qtbot")
    from PySide6.QtGui import QOpenGLContext

    if QOpenGLContext.globalShareContext() is None:
        raise RuntimeError(
            "the QApplication was created without Qt.AA_ShareOpenGLContexts; "
            "virgl_viewer.testing sets it when loaded as a pytest plugin")
    import gc

    from virgl_viewer.ui.controller import ViewerController

    # Qt objects must die on the GUI thread: with the collector running, a
    # cycle holding widgets could be collected on the render thread instead.
    was_enabled = gc.isenabled()
    gc.disable()
    with tempfile.TemporaryDirectory(prefix="vv-") as d:
        path = os.path.join(d, "vtest.sock")
        isolation, _, transport = str(getattr(request, "param", "shared")).partition("-")
        controller = ViewerController(path, isolation=isolation, warm_renderers=2,
                                      frame_transport={"shm": "shm"}.get(transport))
        controller.start()
        controller.main_window.show()
        try:
            yield ViewerHandle(controller, qtbot, path)
        finally:
            controller.stop()
            controller.main_window.close()
            controller.main_window.deleteLater()
            qtbot.wait(1)  # run the deferred deletes
            gc.collect()
            if was_enabled:
                gc.enable()


def _qt_preconfigure() -> None:
    try:
        from PySide6.QtCore import QCoreApplication, Qt
        from PySide6.QtGui import QSurfaceFormat
    except ImportError:  # pragma: no cover - PySide6 is a dependency
        return
    if QCoreApplication.instance() is None:
        QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)
        from virgl_viewer.ui.app import default_format

        QSurfaceFormat.setDefaultFormat(default_format())


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Before pytest-qt creates the QApplication: share GL contexts."""
    _qt_preconfigure()
