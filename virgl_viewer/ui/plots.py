"""Small QPainter plots for the inspector: a fence latency histogram and rate lines.

Why QPainter: a histogram with 15 bars and a few lines of 60 points need no plotting
library; these widgets only store what they are given (``set_*``) and draw it in
``paintEvent``, so updating them costs nothing until they are visible.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from virgl_viewer.state import LATENCY_EDGES_MS

PALETTE = tuple(QColor(c) for c in ("#4e9af1", "#f1a14e", "#5cc86b", "#e35d6a", "#a77de8",
                                    "#e8d45d", "#5dd6e8", "#c8c8c8"))
WINDOW_S = 60.0
_BG = QColor(30, 30, 34)
_AXIS = QColor(110, 110, 120)
_TEXT = QColor(210, 210, 215)


def _edge_label(ms: float) -> str:
    return f"{ms * 1000:.0f}µ" if ms < 1 else f"{ms:.0f}"


def nice_ceiling(v: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is >= v (1 for v <= 0)."""
    if v <= 0:
        return 1.0
    p = 1.0
    while p * 10 <= v:
        p *= 10
    while p > v:
        p /= 10
    for m in (1, 2, 5, 10):
        if m * p >= v:
            return m * p
    return 10 * p  # pragma: no cover


class _Plot(QWidget):
    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(QSize(180, 110))

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(260, 140)

    def _begin(self) -> tuple[QPainter, QRectF]:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), _BG)
        f = QFont()
        f.setPointSize(8)
        p.setFont(f)
        p.setPen(_TEXT)
        p.drawText(QRectF(6, 2, self.width() - 12, 14), Qt.AlignmentFlag.AlignLeft,
                   self.title)
        return p, QRectF(40, 20, max(1, self.width() - 48), max(1, self.height() - 38))


class LatencyHistogram(_Plot):
    """Bars of fence latency counts over LATENCY_EDGES_MS buckets (log scale in x)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Fence latency (ms)", parent)
        self.counts: tuple[int, ...] = (0,) * (len(LATENCY_EDGES_MS) + 1)

    def set_counts(self, counts: Sequence[int]) -> None:
        counts = tuple(counts)
        if counts != self.counts:
            self.counts = counts
            self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p, area = self._begin()
        n = len(self.counts)
        top = nice_ceiling(max(self.counts, default=0))
        bw = area.width() / n
        p.setPen(_AXIS)
        p.drawLine(area.bottomLeft(), area.bottomRight())
        p.drawText(QRectF(0, area.top() - 6, 36, 12), Qt.AlignmentFlag.AlignRight,
                   f"{top:.0f}")
        for i, c in enumerate(self.counts):
            h = area.height() * c / top
            bar = QRectF(area.left() + i * bw + 1, area.bottom() - h, max(1.0, bw - 2), h)
            p.fillRect(bar, PALETTE[0])
            if i % 2 == 0:
                label = (f"≤{_edge_label(LATENCY_EDGES_MS[i])}" if i < len(LATENCY_EDGES_MS)
                         else f">{_edge_label(LATENCY_EDGES_MS[-1])}")
                p.setPen(_TEXT)
                p.drawText(QRectF(area.left() + i * bw - 10, area.bottom() + 2, bw + 20, 14),
                           Qt.AlignmentFlag.AlignHCenter, label)
        total = sum(self.counts)
        p.setPen(_TEXT)
        p.drawText(QRectF(6, 2, self.width() - 12, 14), Qt.AlignmentFlag.AlignRight,
                   f"{total} fences")
        p.end()


class RatePlot(_Plot):
    """One line per client over the last minute; ``fmt`` labels the y axis."""

    def __init__(self, title: str, fmt: Callable[[float], str] = lambda v: f"{v:.0f}",
                 parent: QWidget | None = None) -> None:
        super().__init__(title, parent)
        self.fmt = fmt
        self.series: dict[str, tuple[tuple[float, float], ...]] = {}
        self.now = 0.0

    def set_series(self, series: Mapping[str, Sequence[tuple[float, float]]],
                   now: float) -> None:
        self.series = {k: tuple(v) for k, v in series.items()}
        self.now = now
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p, area = self._begin()
        t0 = self.now - WINDOW_S
        top = nice_ceiling(max((v for pts in self.series.values() for _, v in pts),
                               default=0.0))
        p.setPen(_AXIS)
        p.drawLine(area.bottomLeft(), area.bottomRight())
        p.drawLine(area.bottomLeft(), area.topLeft())
        p.drawText(QRectF(0, area.top() - 6, 36, 12), Qt.AlignmentFlag.AlignRight,
                   self.fmt(top))
        p.drawText(QRectF(area.left(), area.bottom() + 2, 60, 14),
                   Qt.AlignmentFlag.AlignLeft, "-60 s")
        p.drawText(QRectF(area.right() - 40, area.bottom() + 2, 40, 14),
                   Qt.AlignmentFlag.AlignRight, "now")
        for i, (label, pts) in enumerate(sorted(self.series.items())):
            color = PALETTE[i % len(PALETTE)]
            line = QPolygonF([QPointF(area.left() + area.width() * (t - t0) / WINDOW_S,
                                      area.bottom() - area.height() * v / top)
                              for t, v in pts if t >= t0])
            p.setPen(QPen(color, 1.5))
            if line.size() > 1:
                p.drawPolyline(line)
            elif line.size() == 1:
                p.drawEllipse(line.at(0), 2, 2)
            p.drawText(QRectF(area.left() + 6, area.top() + 2 + 12 * i, area.width() - 12,
                              12), Qt.AlignmentFlag.AlignLeft, label)
        p.end()
