"""GLSurfaceWidget: a widget whose pixels GL draws straight into their own native window.

Why: a QOpenGLWidget makes Qt compose its whole top-level window through GL: every
repaint of any widget in it (a table cell, a label) re-renders and swaps the entire
window, and each of the GL widget's own frames costs a render into an FBO plus that
composition. On llvmpipe under X every one of those passes is CPU time taken from the
guests. Here the GL content lives in a QOpenGLWindow (rendering directly into its window
surface: one pass, one swap of just that area) embedded with createWindowContainer, so
the top-level window stays a raster window whose widgets repaint only what changed.

How: subclasses implement ``initializeGL`` and ``paintGL`` as for a QOpenGLWidget and draw
text with ``QPainter(self.paint_device())``. The embedded window is transparent for input,
so mouse events arrive at this widget like at any other; ``update`` schedules a paint of
the surface. ``grabFramebuffer`` renders ``paintGL`` once more into an FBO and reads it
back (a test/screenshot helper, as QOpenGLWidget's).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import (
    QImage,
    QOffscreenSurface,
    QOpenGLContext,
    QPaintDevice,
    QSurfaceFormat,
    QWindow,
)
from PySide6.QtOpenGL import (
    QOpenGLFramebufferObject,
    QOpenGLFramebufferObjectFormat,
    QOpenGLPaintDevice,
    QOpenGLWindow,
)
from PySide6.QtWidgets import QVBoxLayout, QWidget


class _Surface(QOpenGLWindow):
    """The native GL window; every call goes to its owner widget."""

    def __init__(self, owner: GLSurfaceWidget, parent: QWindow) -> None:
        share = QOpenGLContext.globalShareContext()
        super().__init__(share, QOpenGLWindow.UpdateBehavior.NoPartialUpdate, parent)
        self.owner = owner
        # input goes to the widget underneath (the owner): no focus, shortcuts and
        # mouse handling stay in the widget world
        self.setFlag(Qt.WindowType.WindowTransparentForInput, True)
        self.setFlag(Qt.WindowType.WindowDoesNotAcceptFocus, True)

    def initializeGL(self) -> None:  # noqa: N802
        self.owner.initializeGL()

    def paintGL(self) -> None:  # noqa: N802
        self.owner.paintGL()


class GLSurfaceWidget(QWidget):
    frameSwapped = Signal()  # noqa: N815 (Qt naming, as QOpenGLWidget's)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # The container owns the window (it deletes it), which PySide cannot know: made
        # without a parent, the window would be Python's, deleted under the container
        # when Python collects it (a crash once the top-level widget goes). Made as the
        # child of a never-shown anchor it is C++'s; the container then reparents it.
        self._anchor = QWindow()
        self.surface = _Surface(self, self._anchor)
        self.surface.frameSwapped.connect(self.frameSwapped)
        self._container = QWidget.createWindowContainer(self.surface, self)
        self._container.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self._container.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._container)
        self._target: QPaintDevice | None = None
        # the context of a widget drawn before its window was ever exposed (grabbed
        # while off screen): its own, in the same share group, until the surface's exists
        self._offscreen: tuple[QOpenGLContext, QOffscreenSurface] | None = None
        self._current: QOpenGLContext | None = None

    # --------------------------------------------------------------- for subclasses
    def initializeGL(self) -> None:  # noqa: N802
        pass

    def paintGL(self) -> None:  # noqa: N802
        pass

    def paint_device(self) -> QPaintDevice:
        """What a QPainter in paintGL paints on: the surface, or the grab's FBO."""
        return self._target if self._target is not None else self.surface

    # --------------------------------------------------------------- QOpenGLWidget-like
    def update(self, *args: Any) -> None:
        """Schedule a paint of the GL surface (at most one per frame)."""
        self.surface.update()

    def makeCurrent(self) -> None:  # noqa: N802
        """Make the widget's context current: the surface's once it was exposed,
        before that one of its own (initializeGL runs for it first)."""
        surf = self.surface
        if surf.isValid():
            surf.makeCurrent()
            self._current = surf.context()
            return
        if self._offscreen is None:
            ctx = QOpenGLContext()
            ctx.setShareContext(QOpenGLContext.globalShareContext())
            ctx.setFormat(QSurfaceFormat.defaultFormat())
            off = QOffscreenSurface()
            off.setFormat(QSurfaceFormat.defaultFormat())
            off.create()
            if not ctx.create() or not ctx.makeCurrent(off):
                raise RuntimeError("cannot make a GL context for an unexposed view")
            self._offscreen = (ctx, off)
            self._current = ctx
            self.initializeGL()
            return
        ctx, off = self._offscreen
        ctx.makeCurrent(off)
        self._current = ctx

    def doneCurrent(self) -> None:  # noqa: N802
        if self._current is not None:
            self._current.doneCurrent()
            self._current = None

    def isValid(self) -> bool:  # noqa: N802
        return True  # makeCurrent always gives a context

    def context(self) -> QOpenGLContext | None:
        return self.surface.context() or (self._offscreen[0] if self._offscreen else None)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(640, 480)

    def grabFramebuffer(self) -> QImage:  # noqa: N802
        """What paintGL draws now, as an image of the widget's device pixels."""
        self.makeCurrent()
        try:
            dpr = self.devicePixelRatioF() or 1.0
            w, h = max(1, round(self.width() * dpr)), max(1, round(self.height() * dpr))
            fmt = QOpenGLFramebufferObjectFormat()
            fmt.setAttachment(QOpenGLFramebufferObject.Attachment.CombinedDepthStencil)
            fbo = QOpenGLFramebufferObject(w, h, fmt)
            fbo.bind()
            device = QOpenGLPaintDevice(w, h)
            device.setDevicePixelRatio(dpr)
            self._target = device
            try:
                self.paintGL()
            finally:
                self._target = None
            fbo.release()
            img = fbo.toImage()
            if self.surface.format().alphaBufferSize() <= 0:
                # the window has no alpha channel: it shows the colour bytes as written,
                # not as the premultiplied image toImage assumes them to be
                img.reinterpretAsFormat(QImage.Format.Format_RGB32)
                img = img.convertToFormat(QImage.Format.Format_ARGB32)
            img.setDevicePixelRatio(dpr)
            return img
        finally:
            self.doneCurrent()
