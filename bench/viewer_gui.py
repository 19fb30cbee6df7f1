"""The viewer GUI as the benchmarks run it: the product's entry point plus bench-only hooks.

    python bench/viewer_gui.py [--inspector default|visible|hidden|hidden-fixed] \
        [--frames shown|unpainted|none] [--stats-out F] \
        -- --socket PATH [--log-level info]

Why: viewer_bench.py must measure the GUI a user runs (``python -m virgl_viewer --socket
PATH``), with every scanout window fully on screen and with the inspector dock shown or
hidden on demand. The product puts a new scanout window on a shelf beside the main window,
which on a 1280x1024 Xvfb leaves most of an 800x600 window off screen, and it has no
switch for the dock. How: nothing in virgl_viewer is edited; before the GUI starts this
module wraps a few methods:

- ``ViewerController._place`` and ``ScanoutWindow.fit_window_to_guest``: afterwards the
  window is moved (and, if larger than the screen, shrunk) to lie inside the screen;
- ``ViewerController.start``: once the event loop runs, the inspector dock is shown or
  hidden through its ``toggleViewAction`` (what View > Inspector does), optionally with
  the overview's size kept (INSPECTOR_STATES);
- ``ScanoutView.paintGL``: counts per scanout the paints and those that drew a new frame,
  and whether the window was on screen each time;
- with ``--frames unpainted`` or ``none`` (FRAME_MODES; viewer_bench's breakdown, what
  showing frames costs the guests): ``unpainted``: every frame still reaches its
  scanout's ring (the render thread's or the worker's copy, and in process isolation the
  main process's copy out of the slot) but no view repaints for it
  (``ViewerController._on_frames`` only drains its eventfd); ``none``: no frame is copied
  for the screen at all (shared: ``ScanoutManager._copy`` copies nothing, so the C path
  is never attached; process: ``RemoteScanouts.remote_want`` makes no slots, so the
  worker never copies). The windows and the overview stay open and on screen.

``main`` then calls ``virgl_viewer.__main__.main`` (so run_gui, qasync and SIGTERM handling
are the product's) and, once it returns, writes the paint counts as JSON to
``--stats-out``. viewer_probes.py runs the same hooked GUI in its own process through
``start_viewer``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

# hidden-fixed: the dock hidden, the overview kept at the size it had with the dock shown
# (hiding the dock otherwise grows the overview, whose 60 Hz repaints cost more than the
# inspector itself on llvmpipe: "hidden" alone measures both changes at once)
INSPECTOR_STATES = ("default", "visible", "hidden", "hidden-fixed")
FRAME_MODES = ("shown", "unpainted", "none")

# what the hooks saw; written by main() at exit, read by the probes directly
STATS: dict[str, Any] = {"inspector_visible": None, "overview_size": None, "scanouts": {},
                         "windows": 0, "ring_frames": 0}
_installed: list[str] = []


def keep_on_screen(window: Any) -> None:
    """Move ``window`` (a top-level QWidget) inside its screen; shrink it if too big."""
    screen = window.screen()
    if screen is None:
        return
    area = screen.availableGeometry()
    w, h = min(window.width(), area.width()), min(window.height(), area.height())
    if (w, h) != (window.width(), window.height()):
        window.resize(w, h)
    x = max(area.left(), min(window.x(), area.right() + 1 - w))
    y = max(area.top(), min(window.y(), area.bottom() + 1 - h))
    if (x, y) != (window.x(), window.y()):
        window.move(x, y)


def _on_screen(window: Any) -> bool:
    screen = window.screen()
    return bool(screen is not None and screen.geometry().contains(window.geometry()))


def _note_paint(view: Any, new_frame: bool) -> None:
    sc = view.scanout
    now = time.monotonic()
    entry = STATS["scanouts"].setdefault(str(sc.id), {
        "name": f"{sc.client_name}/{sc.number}", "paints": 0, "new_frames": 0,
        "off_screen_paints": 0, "first_new": now, "last_new": now})
    entry["paints"] += 1
    if new_frame:
        entry["new_frames"] += 1
        entry["last_new"] = now
    entry["frames"], entry["dropped"] = sc.frames, sc.dropped  # frames: copied for the screen
    entry["presents"] = getattr(sc, "presents", sc.frames)
    entry["size"] = [sc.width, sc.height]
    if not _on_screen(view.window()):
        entry["off_screen_paints"] += 1


def _set_inspector(controller: Any, state: str) -> None:
    from PySide6.QtCore import QTimer

    window = controller.main_window
    dock, overview = window.inspector_dock, window.overview
    if state == "hidden-fixed":
        overview.setFixedSize(overview.size())
    if state != "default" and dock.isVisible() != (state == "visible"):
        dock.toggleViewAction().trigger()
    STATS["inspector_visible"] = bool(dock.isVisible())

    def note_size() -> None:
        STATS["overview_size"] = [overview.width(), overview.height()]

    QTimer.singleShot(500, note_size)


def _withhold_frames(frames: str) -> None:
    """``--frames unpainted`` or ``none``: see the module's docstring."""
    import contextlib

    from virgl_viewer.remote_scanout import RemoteScanouts
    from virgl_viewer.scanout import ScanoutManager
    from virgl_viewer.ui.controller import ViewerController

    if frames == "unpainted":
        def drained(self: Any) -> None:
            with contextlib.suppress(OSError):
                os.eventfd_read(self._frames_fd)
            # what reached the rings (the bench checks the frames still flowed)
            STATS["ring_frames"] = max((sc.frames for sc in self.scanouts.values()),
                                       default=0)

        ViewerController._on_frames = drained  # type: ignore[method-assign]
    elif frames == "none":
        ScanoutManager._copy = lambda self, sc, info: False  # type: ignore[method-assign]
        RemoteScanouts.remote_want = lambda self, *a: None  # type: ignore[method-assign]


def install(inspector: str = "default", frames: str = "shown") -> None:
    """Wrap the GUI methods (once per process); call before the GUI is built."""
    if inspector not in INSPECTOR_STATES:
        raise ValueError(f"inspector must be one of {INSPECTOR_STATES}")
    if frames not in FRAME_MODES:
        raise ValueError(f"frames must be one of {FRAME_MODES}")
    if _installed:
        return
    _installed.append(inspector)
    from virgl_viewer.ui.app import choose_platform

    # PYOPENGL_PLATFORM must be set before gl_view imports PyOpenGL
    err = choose_platform(os.environ)
    if err:
        raise SystemExit(err)
    from PySide6.QtCore import QTimer

    from virgl_viewer.ui.controller import ViewerController
    from virgl_viewer.ui.gl_view import ScanoutView
    from virgl_viewer.ui.windows import ScanoutWindow

    place, fit, start, paint = (ViewerController._place, ScanoutWindow.fit_window_to_guest,
                                ViewerController.start, ScanoutView.paintGL)

    def placed(self: Any, w: Any) -> None:
        place(self, w)
        keep_on_screen(w)
        STATS["windows"] += 1

    def fitted(self: Any) -> None:
        fit(self)
        keep_on_screen(self)

    def started(self: Any) -> None:
        start(self)
        QTimer.singleShot(0, lambda: _set_inspector(self, inspector))

    def painted(self: Any) -> None:
        paints, seq = self.paints, self.painted_seq
        paint(self)
        if self.paints != paints:
            _note_paint(self, self.painted_seq != seq)

    ViewerController._place = placed  # type: ignore[method-assign]
    ScanoutWindow.fit_window_to_guest = fitted  # type: ignore[method-assign]
    ViewerController.start = started  # type: ignore[method-assign]
    ScanoutView.paintGL = painted  # type: ignore[method-assign]
    if frames != "shown":
        _withhold_frames(frames)


def start_viewer(path: str, inspector: str = "default") -> tuple[Any, Any]:
    """The GUI in this process, as run_gui builds it but without qasync (the probes
    drive the Qt loop themselves): (QApplication, started ViewerController)."""
    install(inspector)
    from PySide6.QtCore import QCoreApplication, Qt, QTimer
    from PySide6.QtGui import QSurfaceFormat
    from PySide6.QtWidgets import QApplication

    from virgl_viewer.ui.app import default_format
    from virgl_viewer.ui.controller import ViewerController

    QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)
    QSurfaceFormat.setDefaultFormat(default_format())
    app = QApplication.instance() or QApplication(sys.argv[:1])
    controller = ViewerController(path)
    controller.start()
    controller.main_window.show()
    from virgl_viewer.__main__ import build_parser
    from virgl_viewer.ui.app import lower_gui_priority

    lower_gui_priority(build_parser().get_default("gui_nice"))
    gc.disable()  # as run_gui: Qt objects are collected on the GUI thread, on a timer
    collector = QTimer(app)
    collector.timeout.connect(gc.collect)
    collector.start(2000)
    return app, controller


def pump(seconds: float, until: Any = None) -> None:
    """Run the Qt event loop for ``seconds`` or until ``until()`` is true."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    deadline = time.monotonic() + seconds

    def check() -> None:
        if time.monotonic() >= deadline or (until is not None and until()):
            loop.quit()

    timer = QTimer()
    timer.timeout.connect(check)
    timer.start(50)
    loop.exec()
    timer.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inspector", choices=INSPECTOR_STATES, default="default")
    ap.add_argument("--frames", choices=FRAME_MODES, default="shown",
                    help="shown (the product), or withheld for the breakdown (see above)")
    ap.add_argument("--stats-out", type=Path, help="write paint counts here at exit")
    ap.add_argument("viewer_args", nargs=argparse.REMAINDER,
                    help="arguments of python -m virgl_viewer (after --)")
    args = ap.parse_args(argv)
    rest = args.viewer_args[1:] if args.viewer_args[:1] == ["--"] else args.viewer_args
    if "--headless" in rest:
        ap.error("this launcher runs the GUI")
    install(args.inspector, args.frames)
    from virgl_viewer.__main__ import main as viewer_main

    try:
        return viewer_main(rest)
    finally:
        if args.stats_out is not None:
            tmp = args.stats_out.with_suffix(".tmp")
            tmp.write_text(json.dumps(STATS, indent=1))
            tmp.replace(args.stats_out)


if __name__ == "__main__":
    sys.exit(main())
