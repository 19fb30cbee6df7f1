"""The GUI application: Qt on the GUI thread (qasync), the server on its
render thread, virglrenderer's GL contexts shared with Qt's.

Order matters: the GL platform is chosen (xcb_egl on X11, EGL on Wayland)
before Qt starts, Qt::AA_ShareOpenGLContexts is set before the application
object exists, and Qt's EGL display and global share context are read on the
GUI thread before the render thread creates any context sharing with it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import MutableMapping
from typing import Any

log = logging.getLogger(__name__)


def choose_platform(env: MutableMapping[str, str]) -> str | None:
    """Set the Qt/PyOpenGL platform variables (the one place that does: the app,
    the pytest plugin and the benchmarks call it before Qt starts); returns an
    error message when there is no display to show windows on."""
    if env.get("QT_QPA_PLATFORM", "").startswith("offscreen"):
        return "the offscreen Qt platform has no EGL; use --headless instead"
    if env.get("WAYLAND_DISPLAY") and not env.get("QT_QPA_PLATFORM"):
        env["QT_QPA_PLATFORM"] = "wayland"
    elif env.get("DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "xcb")
        env["QT_XCB_GL_INTEGRATION"] = "xcb_egl"
    elif not env.get("WAYLAND_DISPLAY"):
        return ("no display: neither DISPLAY nor WAYLAND_DISPLAY is set. "
                "Run inside a desktop session, or serve clients without a GUI "
                "with --headless")
    env["PYOPENGL_PLATFORM"] = "egl"
    return None


def default_format() -> Any:
    from PySide6.QtGui import QSurfaceFormat

    fmt = QSurfaceFormat()
    fmt.setRenderableType(QSurfaceFormat.RenderableType.OpenGL)
    fmt.setVersion(3, 3)
    fmt.setProfile(QSurfaceFormat.OpenGLContextProfile.CoreProfile)
    fmt.setSwapInterval(1)
    return fmt


def tune_interpreter() -> None:
    """The GUI thread's Python (Qt, PyOpenGL) and the render thread share one
    GIL: hand it over sooner than the default 5 ms so a paint never holds the
    render thread (and every guest) back, and skip PyOpenGL's glGetError
    after every call (the views check what matters themselves)."""
    sys.setswitchinterval(float(os.environ.get("VV_SWITCH_INTERVAL", "0.0005")))
    import OpenGL

    OpenGL.ERROR_CHECKING = os.environ.get("VV_GL_ERROR_CHECKING", "0") == "1"


def lower_gui_priority(levels: int) -> None:
    """Run the calling (GUI) thread ``levels`` nice levels lower.

    Why: with llvmpipe every guest's frames and every paint of ours share the host's
    CPUs. A guest's frame is a chain of hand-offs (client, render thread, rasterizer
    threads, back to the client), and each hand-off waits for a free CPU: when the GUI
    thread holds one, the guest's chain waits, and the guest slows although the cores
    are not saturated. At a lower priority the scheduler hands the CPU to the chain's
    threads as they wake; the GUI still gets the time left over, which on two cores
    running glmark2 is plenty for 60 paints a second (see the README's "How it is
    built"). Only this thread: call it after the render thread and llvmpipe's threads
    exist (a thread created later by this one inherits the lower priority, which suits
    the GUI's helpers). Linux nice values are per thread; elsewhere nothing happens."""
    if levels <= 0 or not hasattr(os, "setpriority"):
        return
    import threading

    tid = threading.get_native_id()
    try:
        now = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, now + levels))
    except OSError as exc:
        log.warning("cannot lower the GUI thread's priority: %s", exc)
        return
    log.info("GUI thread at nice %d (render thread %d)", min(19, now + levels), now)


def run_gui(args: argparse.Namespace) -> int:
    err = choose_platform(os.environ)
    if err:
        log.error("%s", err)
        return 2
    tune_interpreter()
    from PySide6.QtCore import QCoreApplication, Qt
    from PySide6.QtGui import QSurfaceFormat
    from PySide6.QtWidgets import QApplication

    QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)
    QSurfaceFormat.setDefaultFormat(default_format())
    QCoreApplication.setOrganizationName("virgl-viewer")
    QCoreApplication.setApplicationName("virgl-viewer")
    app = QApplication.instance() or QApplication(sys.argv[:1])

    import qasync

    from virgl_viewer.ui.about import add_help_menu, apply_identity

    apply_identity()

    from virgl_viewer.ui.controller import ViewerController

    controller = ViewerController(args.socket, allowed_uids=args.allow_uid,
                                  budgets=args.budgets, venus=args.venus,
                                  isolation=args.isolation,
                                  warm_renderers=args.warm_renderers)
    try:
        controller.start()
    except Exception as exc:
        log.error("cannot start: %s", exc)
        return 1
    # Qt objects must be finalised on the GUI thread: automatic collection
    # could run on the render thread (whichever thread allocates), so collect
    # here, on a timer, instead. What exists now (modules, classes, the
    # windows) lives as long as the app: frozen, a collection skips it (about
    # 2 ms instead of 18 with glxgears attached; the GIL is held throughout,
    # and a present reaching Python meanwhile holds up its guest).
    import gc

    from PySide6.QtCore import QTimer

    gc.disable()
    gc.collect()
    gc.freeze()
    collector = QTimer()
    collector.timeout.connect(gc.collect)
    collector.start(2000)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, app.quit)
    add_help_menu(controller.main_window)
    controller.main_window.show()
    lower_gui_priority(args.gui_nice)
    try:
        with loop:
            loop.run_until_complete(controller.closed.wait())
    finally:
        controller.stop()
    return 0
