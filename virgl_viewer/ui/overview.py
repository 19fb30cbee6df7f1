"""Overview: every scanout composed as a multi-monitor layout.

Scanouts sit on a virtual desktop in guest pixels; the whole layout is scaled
to fit the widget. Drag a scanout to move it; positions are remembered per
client name and scanout number (QSettings "layout/<client>/<n>"). Each tile
shows its title and its presents per second.
"""

from __future__ import annotations

import time

from OpenGL import GL
from PySide6.QtCore import QPoint, QPointF, QRectF, QSettings, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QFontMetrics, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QWidget

from virgl_viewer.frames import Scanout
from virgl_viewer.ui.gl_surface import GLSurfaceWidget
from virgl_viewer.ui.gl_view import _Program, draw_frame, repaint_delay_ms

GAP = 32  # guest pixels between auto-placed scanouts
OVERVIEW_MAX_FPS = 15.0


def tile_label(metrics: QFontMetrics, width: int, name: str, number: int, size: str,
               fps: float, alive: bool) -> str:
    """A tile's label, ``name #N  WxH  F fps``, fitted to ``width`` pixels: a
    narrow tile drops the size first, then shortens the client's name; which
    scanout it is (``#N``) and its frame rate stay."""
    tail = f"{fps:.0f} fps" if alive else "disconnected"
    full = f"{name} #{number}  {size}  {tail}"
    if metrics.horizontalAdvance(full) <= width:
        return full
    rest = f" #{number}  {tail}"
    room = width - metrics.horizontalAdvance(rest)
    short = metrics.elidedText(name, Qt.TextElideMode.ElideRight, max(room, 0))
    return (short or "…") + rest


class OverviewWidget(GLSurfaceWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scanouts: dict[int, Scanout] = {}
        self.positions: dict[int, QPoint] = {}
        self._prog: _Program | None = None
        self._drag: tuple[int, QPointF, QPoint] | None = None
        # the layout transform is frozen while dragging: re-fitting the layout to the
        # moving tile would slide the tile away from the cursor
        self._frozen: tuple[float, float, float] | None = None
        self._dirty = False
        self._last_paint = 0.0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.update)
        self._fps_timer = QTimer(self)  # FPS labels move even with no new frame
        self._fps_timer.timeout.connect(self.update)
        self._fps_timer.start(500)
        self.setMouseTracking(False)
        self.setMinimumSize(QSize(320, 200))

    # ------------------------------------------------------------ model
    def add(self, sc: Scanout) -> None:
        self.scanouts[sc.id] = sc
        saved = QSettings().value(f"layout/{sc.key}")
        if isinstance(saved, QPoint):
            self.positions[sc.id] = saved
        else:
            right = max((p.x() + self.scanouts[i].width for i, p in self.positions.items()
                         if i in self.scanouts), default=-GAP)
            self.positions[sc.id] = QPoint(right + GAP, 0)
        self.frame_ready()

    def remove(self, sc: Scanout) -> None:
        self.scanouts.pop(sc.id, None)
        self.positions.pop(sc.id, None)
        self.update()

    def frame_ready(self) -> None:
        # The overview is for arrangement and health, the scanout windows for
        # watching: it repaints at most OVERVIEW_MAX_FPS, as every paint of
        # it shares the host's rasterizer with the guests.
        if not self._timer.isActive():
            self._timer.start(repaint_delay_ms(self, self._last_paint, OVERVIEW_MAX_FPS))

    # ------------------------------------------------------------ geometry
    def _layout_bounds(self) -> QRectF:
        r = QRectF()
        for i, sc in self.scanouts.items():
            p = self.positions[i]
            r = r.united(QRectF(p.x(), p.y(), max(1, sc.width), max(1, sc.height)))
        return r.adjusted(-GAP, -GAP, GAP, GAP) if not r.isNull() else QRectF(0, 0, 1, 1)

    def _transform(self) -> tuple[float, float, float]:
        if self._frozen is not None:
            return self._frozen
        b = self._layout_bounds()
        s = min(self.width() / b.width(), self.height() / b.height())
        ox = (self.width() - b.width() * s) / 2 - b.x() * s
        oy = (self.height() - b.height() * s) / 2 - b.y() * s
        return s, ox, oy

    def tile_rect(self, sid: int) -> QRectF:
        """Where scanout ``sid`` is drawn, in widget (logical) pixels."""
        s, ox, oy = self._transform()
        sc = self.scanouts[sid]
        p = self.positions[sid]
        return QRectF(ox + p.x() * s, oy + p.y() * s, sc.width * s, sc.height * s)

    # ------------------------------------------------------------ drawing
    def initializeGL(self) -> None:  # noqa: N802
        self._prog = _Program()

    def paintGL(self) -> None:  # noqa: N802
        self._last_paint = time.monotonic()
        dpr = self.devicePixelRatioF() or 1.0
        vw, vh = round(self.width() * dpr), round(self.height() * dpr)
        GL.glViewport(0, 0, vw, vh)
        GL.glClearColor(0.09, 0.09, 0.1, 1.0)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT)
        if self._prog is None:
            return
        for sid, sc in list(self.scanouts.items()):
            frame = sc.take_latest()
            if frame is None:
                continue
            fence = 0
            try:
                r = self.tile_rect(sid)
                rect = (round(r.x() * dpr), round(r.y() * dpr), round(r.width() * dpr),
                        round(r.height() * dpr))
                fence = draw_frame(self._prog, frame, rect, vw, vh, nearest=False,
                                   dim=1.0 if sc.alive else 0.45)
            finally:
                sc.drawn(frame, fence)
        p = QPainter(self.paint_device())
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        f = QFont()
        f.setPointSize(9)
        p.setFont(f)
        for sid, sc in self.scanouts.items():
            r = self.tile_rect(sid)
            p.setPen(QPen(QColor(90, 160, 255) if sc.alive else QColor(120, 120, 120), 1.5))
            p.drawRect(r)
            # as wide as the tile, but at least 120 px: a label above a narrow tile
            # may lie over its right-hand neighbour's (tile_label keeps it short)
            tr = QRectF(r.x(), r.y() - 18, max(r.width(), 120.0), 16)
            label = tile_label(p.fontMetrics(), int(tr.width()) - 8, sc.client_name,
                               sc.number, f"{sc.width}×{sc.height}", sc.fps(), sc.alive)
            p.fillRect(tr, QColor(0, 0, 0, 160))
            p.setPen(QColor(230, 230, 230))
            p.drawText(tr.adjusted(4, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, label)
        if not self.scanouts:
            p.setPen(QColor(160, 160, 160))
            p.drawText(QRectF(0, 0, self.width(), self.height()),
                       Qt.AlignmentFlag.AlignCenter,
                       "No guest is presenting yet.\n"
                       "Run a virpipe client, e.g. GALLIUM_DRIVER=virpipe glxgears")
        p.end()

    # ------------------------------------------------------------ dragging
    def mousePressEvent(self, ev: QMouseEvent) -> None:  # noqa: N802
        for sid in reversed(list(self.scanouts)):
            if self.tile_rect(sid).contains(ev.position()):
                self._frozen = self._transform()
                self._drag = (sid, ev.position(), QPoint(self.positions[sid]))
                return

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:  # noqa: N802
        if self._drag is None:
            return
        sid, start, origin = self._drag
        s, _, _ = self._transform()
        d = (ev.position() - start) / s
        self.positions[sid] = QPoint(origin.x() + round(d.x()), origin.y() + round(d.y()))
        self.update()

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:  # noqa: N802
        if self._drag is None:
            return
        sid = self._drag[0]
        self._drag = None
        self._frozen = None
        self.update()  # re-fit the layout
        sc = self.scanouts.get(sid)
        if sc is not None:
            QSettings().setValue(f"layout/{sc.key}", self.positions[sid])
