"""ViewerController: wires the render thread's scanouts to Qt windows.

The render thread reports scanout events through ``ScanoutBridge`` (a Qt
signal emitted on the render thread, delivered queued on the GUI thread), and new
frames through an eventfd (most are written by the C fast path, which never reaches
Python; see ScanoutManager).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QObject, QSocketNotifier, Qt, Signal
from PySide6.QtGui import QGuiApplication, QOffscreenSurface, QOpenGLContext
from PySide6.QtWidgets import QLabel, QMainWindow

from virgl_viewer.budgets import DEFAULT as DEFAULT_BUDGETS
from virgl_viewer.budgets import Budgets
from virgl_viewer.frames import RenderSide, Scanout, TexturePreview, current_egl_handles
from virgl_viewer.state import ResourceInfo, StateRegistry
from virgl_viewer.ui.inspector import InspectorDock
from virgl_viewer.ui.overview import OverviewWidget
from virgl_viewer.ui.windows import ScanoutWindow

log = logging.getLogger(__name__)


class ScanoutBridge(QObject):
    # not ``event``: that would hide QObject.event, through which Qt delivers events
    scanout_event = Signal(str, object)


class MainWindow(QMainWindow):
    def __init__(self, controller: ViewerController) -> None:
        super().__init__()
        self.controller = controller
        self.overview = OverviewWidget(self)
        self.setCentralWidget(self.overview)
        self.setWindowTitle(f"virgl-viewer — {controller.path}")
        self.status = QLabel()
        self.statusBar().addPermanentWidget(self.status)
        self.inspector_dock = InspectorDock(
            controller.registry, self, disconnect=controller.disconnect_client,
            scanouts=lambda: list(controller.scanouts.values()),
            texture_previews=controller.previews)
        self.inspector = self.inspector_dock.inspector
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.inspector_dock)
        self.menuBar().addMenu("&View").addAction(self.inspector_dock.toggleViewAction())
        self.resize(1000, 620)

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        self.controller.closed.set()
        super().closeEvent(event)


class _Previews:
    """The inspector's texture copies, made by the render side once it exists."""

    def __init__(self) -> None:
        self.side: RenderSide | None = None

    def open(self, rec: ResourceInfo) -> TexturePreview | None:
        return self.side.open_preview(rec) if self.side is not None else None

    def refresh(self, source: TexturePreview) -> None:
        if self.side is not None:
            self.side.refresh_preview(source)

    def close(self, source: TexturePreview) -> None:
        if self.side is not None:
            self.side.close_preview(source)


def qt_egl_handles() -> tuple[int, int]:
    """(EGLDisplay, EGLContext) of Qt's global share context, as integers."""
    share = QOpenGLContext.globalShareContext()
    if share is None:
        raise RuntimeError("Qt has no global share context (AA_ShareOpenGLContexts unset?)")
    surface = QOffscreenSurface()
    surface.setFormat(share.format())
    surface.create()
    if not share.makeCurrent(surface):
        raise RuntimeError("cannot make Qt's share context current")
    try:
        return current_egl_handles()
    finally:
        share.doneCurrent()


def present_interval() -> float:
    """One refresh of the fastest screen (30-240 Hz): no window shows guest frames more
    often, so scanouts are copied for the screen no more often either."""
    rates = [s.refreshRate() for s in QGuiApplication.screens() if s.refreshRate() > 0]
    return 1.0 / min(240.0, max(30.0, max(rates, default=60.0)))


class ViewerController(QObject):
    def __init__(self, path: str, allowed_uids: Iterable[int] = (),
                 budgets: Budgets = DEFAULT_BUDGETS, isolation: str = "shared",
                 warm_renderers: int = 4, frame_transport: str | None = None,
                 venus: bool = False) -> None:
        super().__init__()
        self.path = path
        self.isolation = isolation  # passed through to the render side, nothing more
        self.warm_renderers = warm_renderers
        self.frame_transport = frame_transport
        self.allowed_uids = tuple(allowed_uids)
        self.budgets = budgets
        self.venus = venus
        self.bridge = ScanoutBridge()
        self.bridge.scanout_event.connect(self._on_event)
        self.windows: dict[int, ScanoutWindow] = {}
        self.scanouts: dict[int, Scanout] = {}
        self.closed = asyncio.Event()
        self.registry = StateRegistry()  # filled on the render thread, pulled by the inspector
        self.previews = _Previews()
        self.render: RenderSide | None = None
        self.main_window = MainWindow(self)
        self.open_windows = True  # a window per new scanout
        self._shelf: list[int] | None = None  # next free x, row top, row height
        # New frames (written into rings by the render thread, mostly from C) add to
        # this eventfd; the GUI thread wakes on it and looks which scanouts have one.
        self._frames_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._frames_seen: dict[int, int] = {}
        self._frames_notifier = QSocketNotifier(self._frames_fd, QSocketNotifier.Type.Read,
                                                self)
        self._frames_notifier.activated.connect(self._on_frames)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        dpy, share = qt_egl_handles()
        side = RenderSide(self.path, dpy, share, on_change=self.bridge.scanout_event.emit,
                          frames_fd=self._frames_fd, registry=self.registry,
                          present_interval=present_interval(),
                          allowed_uids=self.allowed_uids, budgets=self.budgets,
                          isolation=self.isolation, warm_renderers=self.warm_renderers,
                          frame_transport=self.frame_transport, venus=self.venus)
        side.start()
        self.render = side
        self.previews.side = side
        self.main_window.status.setText(f"serving {self.path}")
        self.main_window.inspector.set_frame_path(side.frame_path)

    def disconnect_client(self, pid: int) -> None:
        """The inspector's "Disconnect client": close every session of ``pid``."""
        if self.render is not None:
            self.render.disconnect(pid)

    def stop(self) -> None:
        for w in list(self.windows.values()):
            w.close()
        if self.render is not None:
            self.render.stop()
            self.render = None
        if self._frames_fd >= 0:
            self._frames_notifier.setEnabled(False)
            os.close(self._frames_fd)
            self._frames_fd = -1

    def _on_frames(self) -> None:
        """GUI thread: the render thread wrote new frames; tell the views of each
        scanout that got one since the last look."""
        with contextlib.suppress(OSError):  # BlockingIOError: another look took it
            os.eventfd_read(self._frames_fd)
        seen = self._frames_seen
        ov = self.main_window.overview
        for sid, sc in self.scanouts.items():
            n = sc.frames
            if seen.get(sid) != n:
                if sid not in seen:
                    log.info("scanout %d: first frame for the screen", sid)
                seen[sid] = n
                ov.frame_ready()
                win = self.windows.get(sid)
                if win is not None and win.sized_to_guest:  # else on_changed paints
                    win.on_frame()

    # ------------------------------------------------------------ scanout events (GUI thread)
    def _on_event(self, kind: str, sc: Scanout) -> None:
        ov = self.main_window.overview
        if kind == "added":
            self.scanouts[sc.id] = sc
            ov.add(sc)
            if self.open_windows:
                w = ScanoutWindow(sc)
                w.closed_by_user.connect(self._window_closed)
                w.show_resource_requested.connect(self.main_window.inspector.show_resource)
                self.windows[sc.id] = w
                self._place(w)
                w.show()
            return
        win = self.windows.get(sc.id)
        if kind == "changed":
            ov.frame_ready()
            if win is not None:
                win.on_changed()
        elif kind == "client-gone":
            log.info("scanout %d: client gone", sc.id)
            ov.update()
            if win is not None:
                win.on_client_gone()
        elif kind == "removed":
            self.scanouts.pop(sc.id, None)
            self._frames_seen.pop(sc.id, None)
            ov.remove(sc)
            if win is not None:
                win.close()

    def _place(self, w: ScanoutWindow) -> None:
        """Put a new scanout window beside the main window on a "shelf"
        (left to right, then a new row), so scanouts do not pile up where no
        window manager places them (a window manager may still move them)."""
        screen = self.main_window.screen()
        if screen is None:
            return
        area = screen.availableGeometry()
        main = self.main_window.frameGeometry()
        gap = 12
        left = main.right() + gap if main.right() + gap + 200 < area.right() else area.left()
        size = w.sizeHint()
        if self._shelf is None or self._shelf[0] + size.width() > area.right():
            top = area.top() if self._shelf is None else self._shelf[1] + self._shelf[2] + gap
            if top + 100 > area.bottom():
                top = area.top()
            self._shelf = [left, top, 0]
        x, y, h = self._shelf
        w.move(x, y)
        self._shelf = [x + size.width() + gap, y, max(h, size.height())]

    def _window_closed(self, sid: int) -> None:
        self.windows.pop(sid, None)
