"""Top-level windows: one ScanoutWindow per guest scanout.

A scanout window is titled "<client> — scanout N — WxH", draws from the
shared texture (ScanoutView), offers 1:1 / fit / integer scaling and "Save
PNG" (Ctrl+S). When the guest re-creates its display target at a new size the
same window follows it. When the client leaves, the window keeps its last
frame, dimmed with "client disconnected", and closes CLOSE_AFTER_GONE_MS
later (unless the user pinned it with "Keep open").
"""

from __future__ import annotations

import logging
from pathlib import Path

from OpenGL import GL
from PySide6.QtCore import QStandardPaths, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QImage, QKeySequence
from PySide6.QtOpenGL import QOpenGLFramebufferObject, QOpenGLFramebufferObjectFormat
from PySide6.QtWidgets import QFileDialog, QMainWindow

from virgl_viewer.frames import Scanout
from virgl_viewer.ui.gl_view import ScaleMode, ScanoutView, draw_frame

log = logging.getLogger(__name__)

CLOSE_AFTER_GONE_MS = 3000


def render_scanout_image(view: ScanoutView) -> QImage | None:
    """The scanout's newest frame at its own resolution (GPU draw into an
    FBO, then one readback for the file)."""
    sc = view.scanout
    view.makeCurrent()
    try:
        frame = sc.take_latest()
        if frame is None or view._prog is None:
            return None
        fence = 0
        try:
            fmt = QOpenGLFramebufferObjectFormat()
            fbo = QOpenGLFramebufferObject(frame.width, frame.height, fmt)
            fbo.bind()
            GL.glViewport(0, 0, frame.width, frame.height)
            # opaque: toImage() takes the FBO as premultiplied, and the conversion to
            # RGB32 would divide the colours by the guest's alpha; the window shows
            # them as stored
            fence = draw_frame(view._prog, frame, (0, 0, frame.width, frame.height),
                               frame.width, frame.height, nearest=True, opaque=True)
            fbo.release()
            img = fbo.toImage()
        finally:
            sc.drawn(frame, fence)
        return img.convertToFormat(QImage.Format.Format_RGB32)
    finally:
        view.doneCurrent()


class ScanoutWindow(QMainWindow):
    closed_by_user = Signal(int)
    show_resource_requested = Signal(int, int)  # client pid, client handle

    def __init__(self, scanout: Scanout) -> None:
        super().__init__()
        # a closed window is gone for good (the controller forgets it): free it and its GL
        # resources instead of keeping it hidden forever
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.scanout = scanout
        self.view = ScanoutView(scanout, self)
        self.setCentralWidget(self.view)
        self._keep_open = False
        self._sized_to_guest = False
        self._close_timer: QTimer | None = None
        self._build_menus()
        self.refresh_title()
        self.resize(self.view.sizeHint())

    def _build_menus(self) -> None:
        m = self.menuBar().addMenu("&Scanout")
        save = QAction("&Save PNG…", self)
        save.setShortcut(QKeySequence.StandardKey.Save)
        save.triggered.connect(self.save_png_dialog)
        m.addAction(save)
        self.keep_open_action = QAction("&Keep open when the client leaves", self)
        self.keep_open_action.setCheckable(True)
        self.keep_open_action.toggled.connect(self._set_keep_open)
        m.addAction(self.keep_open_action)
        inspect = QAction("Show resource in the &inspector", self)
        inspect.setShortcut(QKeySequence("Ctrl+I"))
        inspect.triggered.connect(lambda: self.show_resource_requested.emit(
            self.scanout.client_pid, self.scanout.client_handle))
        m.addAction(inspect)
        m.addSeparator()
        close = QAction("&Close", self)
        close.setShortcut(QKeySequence.StandardKey.Close)
        close.triggered.connect(self.close)
        m.addAction(close)
        v = self.menuBar().addMenu("&View")
        group = QActionGroup(self)
        for mode, label, key in ((ScaleMode.ONE_TO_ONE, "&1:1", "Ctrl+1"),
                                 (ScaleMode.FIT, "&Fit (keep aspect)", "Ctrl+2"),
                                 (ScaleMode.INTEGER, "&Integer scale", "Ctrl+3")):
            a = QAction(label, self)
            a.setCheckable(True)
            a.setShortcut(QKeySequence(key))
            a.setChecked(mode is self.view.mode)
            a.triggered.connect(lambda _=False, m=mode: self.view.set_mode(m))
            group.addAction(a)
            v.addAction(a)
        v.addSeparator()
        actual = QAction("Resize window to &guest size", self)
        actual.setShortcut(QKeySequence("Ctrl+0"))
        actual.triggered.connect(self.fit_window_to_guest)
        v.addAction(actual)

    def refresh_title(self) -> None:
        sc = self.scanout
        suffix = "" if sc.alive else f" ({sc.gone_reason or 'disconnected'})"
        self.setWindowTitle(sc.title + suffix)

    @property
    def sized_to_guest(self) -> bool:
        """The window took the guest's size (its first "changed" event): frames may
        paint now without showing a first one at the wrong size."""
        return self._sized_to_guest

    def fit_window_to_guest(self) -> None:
        self.resize(self.size() - self.view.size() + self.view.sizeHint())

    # ------------------------------------------------------------ events from the bridge
    def on_frame(self) -> None:
        self.view.frame_ready()

    def on_changed(self) -> None:
        self.refresh_title()
        if not self._sized_to_guest and self.scanout.width:
            self._sized_to_guest = True
            self.fit_window_to_guest()
        self.view.frame_ready()

    def on_client_gone(self) -> None:
        self.refresh_title()
        self.view.update()
        if not self._keep_open:
            self._close_timer = QTimer(self)
            self._close_timer.setSingleShot(True)
            self._close_timer.timeout.connect(self.close)
            self._close_timer.start(CLOSE_AFTER_GONE_MS)

    def _set_keep_open(self, on: bool) -> None:
        self._keep_open = on
        if on and self._close_timer is not None:
            self._close_timer.stop()

    # ------------------------------------------------------------ screenshots
    def save_png(self, path: str | Path) -> bool:
        img = render_scanout_image(self.view)
        if img is None:
            return False
        # PySide6 6.11 wants a str format; its stubs say bytes
        ok = img.save(str(path), "PNG")  # type: ignore[call-overload]
        log.info("saved %s scanout %d to %s", self.scanout.client_name, self.scanout.number,
                 path)
        return bool(ok)

    def save_png_dialog(self) -> None:
        pictures = QStandardPaths.writableLocation(
            QStandardPaths.StandardLocation.PicturesLocation) or str(Path.home())
        name = f"{self.scanout.client_name}-scanout{self.scanout.number}.png"
        path, _ = QFileDialog.getSaveFileName(self, "Save scanout", str(Path(pictures, name)),
                                              "PNG images (*.png)")
        if path:
            self.save_png(path)

    def closeEvent(self, event: object) -> None:  # noqa: N802
        self.closed_by_user.emit(self.scanout.id)
        super().closeEvent(event)  # type: ignore[arg-type]

