"""Texture previews for the inspector: a small GL view of a shared texture.

Why: a resource preview must show what the GPU holds without a CPU readback and without
touching a texture the render thread may be writing. How: exactly as scanout windows do
(virgl_viewer.ui.gl_view): lease the newest frame of a ``TextureSource``, glWaitSync on
its fence, draw it fitted, fence the draw, hand the lease back. A ``Scanout`` is a source
for display targets; ``TexturePreviews`` is the render-thread service the app may provide
to copy any other texture into a preview ring (the UI side is written against it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from OpenGL import GL
from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from virgl_viewer.state import ResourceInfo
from virgl_viewer.ui.gl_surface import GLSurfaceWidget
from virgl_viewer.ui.gl_view import ScaleMode, _Program, draw_frame, fit_rect
from virgl_viewer.vtest import protocol as P

if TYPE_CHECKING:
    from virgl_viewer.frames import Frame, Scanout

REPAINT_MS = 100  # previews follow their source at 10 Hz at most
NOT_PREVIEWABLE = "this texture cannot be previewed"


class TextureSource(Protocol):
    """Frames of a shared texture, leased for drawing (``Scanout`` is one); ``alive``
    False: no new frames will come."""

    alive: bool

    def take_latest(self) -> Frame | None: ...
    def drawn(self, frame: Frame, ui_fence: int = 0) -> None: ...


class TexturePreviews(Protocol):
    """Render-thread copies of any texture resource into a preview texture.

    ``open`` asks for a copy of level 0 / layer 0 of the texture of record ``rec`` and
    returns a source that yields it once made (None: not previewable; a source that
    turns not ``alive`` before its first frame: not previewable either); ``refresh``
    asks for a new copy; ``close`` frees the preview. All are called on the GUI thread
    and must not block on the render thread (nor know which process renders).
    """

    def open(self, rec: ResourceInfo) -> TextureSource | None: ...
    def refresh(self, source: TextureSource) -> None: ...
    def close(self, source: TextureSource) -> None: ...


class PreviewView(GLSurfaceWidget):
    """Draws a TextureSource fitted into the widget, or a line of text."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source: TextureSource | None = None
        self.message = ""
        self.painted_seq = 0
        self._prog: _Program | None = None
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.update)
        self.setMinimumSize(160, 120)

    def set_source(self, source: TextureSource | None, message: str = "") -> None:
        self.source, self.message, self.painted_seq = source, message, 0
        if source is None:
            self._timer.stop()
        elif not self._timer.isActive():
            self._timer.start(REPAINT_MS)
        self.update()

    def initializeGL(self) -> None:  # noqa: N802
        self._prog = _Program()

    def paintGL(self) -> None:  # noqa: N802
        dpr = self.devicePixelRatioF() or 1.0
        vw, vh = round(self.width() * dpr), round(self.height() * dpr)
        GL.glViewport(0, 0, vw, vh)
        GL.glClearColor(0.12, 0.12, 0.13, 1.0)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT)
        src = self.source
        frame = src.take_latest() if src is not None and self._prog is not None else None
        if src is None or frame is None:
            self._text(self.message if src is None else
                       "waiting for a frame…" if src.alive else NOT_PREVIEWABLE)
            return
        fence = 0
        try:
            rect = fit_rect(ScaleMode.FIT, frame.width, frame.height, vw, vh)
            fence = draw_frame(self._prog, frame, rect, vw, vh,  # type: ignore[arg-type]
                               nearest=(rect[2], rect[3]) == (frame.width, frame.height))
            self.painted_seq = frame.seq
        finally:
            src.drawn(frame, fence)

    def _text(self, text: str) -> None:
        p = QPainter(self.paint_device())
        p.setPen(QColor(170, 170, 175))
        p.drawText(QRectF(8, 0, self.width() - 16, self.height()),
                   Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, text)
        p.end()


class PreviewPane(QWidget):
    """The preview of one resource: its scanout's ring if it is a display target being
    shown, else a copy through ``TexturePreviews`` (if the app has one), else a line
    saying why there is none. ``label`` names what is shown."""

    def __init__(self, scanouts: Callable[[], Iterable[Scanout]] | None = None,
                 texture_previews: TexturePreviews | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scanouts = scanouts
        self.texture_previews = texture_previews
        self.view = PreviewView()
        self.label = QLabel()
        self.label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.label)
        self._copy: TextureSource | None = None
        self._copy_key = 0

    def show_resource(self, rec: ResourceInfo | None) -> None:
        source: TextureSource | None = None
        message = "select a texture resource to preview it"
        if rec is not None and rec.target == P.TARGET_BUFFER:
            message = f"resource {rec.client_handle} is a {rec.kind}: no preview"
        elif rec is not None:
            scanout = self._scanout_of(rec)
            if scanout is not None:
                source, message = scanout, f"scanout {scanout.number} of {rec.client_name}"
            elif self._copy is not None and self._copy_key == rec.key:
                source, message = self._copy, "texture copy"
            elif self.texture_previews is not None:
                self._close_copy()
                source = self._copy = self.texture_previews.open(rec)
                self._copy_key = rec.key
                message = "texture copy" if source else NOT_PREVIEWABLE
            else:
                message = "only scanouts can be previewed (no texture copy service)"
        if source is not self._copy:
            self._close_copy()
        if source is not self.view.source:
            self.view.set_source(source, message)
        self.label.setText(message)

    def refresh(self) -> None:
        """Ask for a new copy of the previewed texture (not needed for scanouts); say so
        if it cannot be copied (any more) and none was shown."""
        copy = self._copy
        if copy is None or self.texture_previews is None:
            return
        if copy.alive:
            self.texture_previews.refresh(copy)
        elif self.view.painted_seq == 0:
            self.label.setText(NOT_PREVIEWABLE)

    def _close_copy(self) -> None:
        if self._copy is not None and self.texture_previews is not None:
            self.texture_previews.close(self._copy)
        self._copy, self._copy_key = None, 0

    def _scanout_of(self, rec: ResourceInfo) -> Scanout | None:
        if self.scanouts is None or not rec.display_target:
            return None
        for sc in self.scanouts():
            if sc.alive and sc.resource_handle == rec.server_handle \
                    and sc.client_pid == rec.client_pid:
                return sc
        return None
