"""The overview (main window): every scanout drawn as a tile of a multi-monitor layout, with
an FPS label; dragging a tile moves it and the position is remembered per client name and
scanout number (QSettings, redirected to a temporary file by ``isolated_settings``)."""

from __future__ import annotations

import re

import pytest
from PySide6.QtCore import QPoint, QPointF, QRectF, QSettings, Qt
from PySide6.QtGui import QFont, QFontMetrics, QPainter
from PySide6.QtTest import QTest

from virgl_viewer.guest.patterns import BAR_COLORS
from virgl_viewer.ui import overview as overview_module
from virgl_viewer.ui.overview import GAP, OverviewWidget, tile_label

pytestmark = pytest.mark.usefixtures("isolated_settings")

LABELS: list[str] = []


class RecordingPainter(QPainter):
    """QPainter that remembers the texts it draws (the overview's labels)."""

    def drawText(self, *args) -> None:  # type: ignore[no-untyped-def]  # noqa: N802
        LABELS.extend(a for a in args if isinstance(a, str))
        super().drawText(*args)


def label_rect(tile: QRectF) -> QRectF:
    """Where the overview draws a tile's label (a translucent box above the tile, at least
    120 px wide: it can lie over a neighbouring tile)."""
    return QRectF(tile.x(), tile.y() - 18, max(tile.width(), 120), 16)


def assert_bars_in(pix, data: bytes, width: int,  # type: ignore[no-untyped-def]
                   rect: QRectF, others: list[QRectF], what: str) -> None:
    """The middle of each of the 8 bars inside ``rect`` (a scaled ``bars`` frame) has
    the bar's colour (linear filtering: a little tolerance), on a row that no other
    tile's label covers."""
    covered = [label_rect(o) for o in others]
    for frac in (0.5, 0.8, 0.2):
        y = round(rect.y() + frac * rect.height())
        xs = [round(rect.x() + (i + 0.5) * rect.width() / 8) for i in range(8)]
        if not any(c.contains(QPointF(x, y)) for c in covered for x in xs):
            break
    else:
        pytest.fail(f"{what}: every sample row is under another tile's label")
    for x, colour in zip(xs, BAR_COLORS, strict=True):
        got = pix.pixel(data, width, x, y)[:3]
        assert all(abs(g - c) <= 8 for g, c in zip(got, colour, strict=True)), \
            f"{what}: bar at ({x}, {y}) is {got}, expected {colour}"


def test_overview_tiles_labels_and_dragging(virgl_viewer, guests, pix, monkeypatch,
                                            isolated_settings) -> None:
    assert QSettings().fileName().startswith(str(isolated_settings))  # not the user's
    monkeypatch.setattr(overview_module, "QPainter", RecordingPainter)
    LABELS.clear()
    guests.start(virgl_viewer.path, "--size", "320x240", "--fps", "30", "--pattern", "bars",
                 name="left")
    virgl_viewer.wait_scanouts(1)  # "left" gets placed first
    guests.start(virgl_viewer.path, "--size", "200x150", "--fps", "30", "--pattern", "bars",
                 name="right")
    wins = virgl_viewer.wait_scanouts(2)
    left, right = (w.scanout for w in wins)
    ov = virgl_viewer.controller.main_window.overview
    assert ov.isVisible() and ov.devicePixelRatioF() == 1.0
    assert set(ov.scanouts) == {left.id, right.id}

    # auto layout: side by side, GAP guest pixels apart, tops aligned
    assert ov.positions[left.id] == QPoint(0, 0)
    assert ov.positions[right.id] == QPoint(320 + GAP, 0)
    lr, rr = ov.tile_rect(left.id), ov.tile_rect(right.id)
    assert lr.right() < rr.left() and lr.top() == rr.top()
    assert rr.width() / lr.width() == pytest.approx(200 / 320)

    img = ov.grabFramebuffer()
    data, width = pix.rgba(img), img.width()
    assert_bars_in(pix, data, width, lr, [rr], "left tile")
    assert_bars_in(pix, data, width, rr, [lr], "right tile")
    gap = pix.pixel(data, width, round((lr.right() + rr.left()) / 2), round(lr.center().y()))
    assert max(gap[:3]) < 40, f"the gap between tiles is not background: {gap}"

    # each tile has a label with client, number, size and a live FPS figure; a
    # label never spills past its tile, so a narrow one drops the size (see
    # test_tile_label_keeps_number_and_rate)
    def labelled() -> None:
        ov.update()
        for name, size in (("left", "320×240"), ("right", "200×150")):
            fps = [int(m.group(2)) for t in LABELS
                   if (m := re.fullmatch(r"(.*?)(\d+) fps", t))
                   and m.group(1) in (f"{name} #1  {size}  ", f"{name} #1  ")]
            assert fps and max(fps) > 0, f"no FPS label for {name}: {LABELS[-4:]}"

    virgl_viewer.qtbot.waitUntil(labelled, timeout=5000)
    label_area = pix.crop(data, width, round(lr.x()) + 4, round(lr.y()) - 16, 100, 12)
    assert any(min(label_area[i:i + 3]) > 180 for i in range(0, len(label_area), 4)), \
        "no label text above the left tile"

    # drag the right tile down and right, by the mouse: the point grabbed stays under the
    # cursor all the way (the layout is not re-fitted under the moving tile)
    start = rr.center().toPoint()
    grabbed = rr.topLeft() - QPointF(start)
    s = rr.width() / 200  # widget pixels per guest pixel when the drag starts
    QTest.mousePress(ov, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for step in ((20, 60), (-300, 250), (100, -100), (40, 120)):
        at = start + QPoint(*step)
        QTest.mouseMove(ov, at)
        drift = ov.tile_rect(right.id).topLeft() - QPointF(at) - grabbed
        assert abs(drift.x()) <= s and abs(drift.y()) <= s, \
            f"moved by {step}: the tile slid {drift} away from the cursor"
    end = start + QPoint(40, 120)
    QTest.mouseRelease(ov, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    moved = ov.positions[right.id]
    assert moved == QPoint(320 + GAP + round(40 / s), round(120 / s)), moved
    assert ov.positions[left.id] == QPoint(0, 0)
    # persisted under layout/<client>/<n>
    assert QSettings().value("layout/right/1") == moved
    assert QSettings().value("layout/left/1") is None  # not dragged: not stored

    # drawn where it now is (the layout is re-fitted to the widget)
    img = ov.grabFramebuffer()
    data = pix.rgba(img)
    lr2, rr2 = ov.tile_rect(left.id), ov.tile_rect(right.id)
    assert rr2.top() > lr2.top()
    assert_bars_in(pix, data, width, lr2, [rr2], "left tile after the drag")
    assert_bars_in(pix, data, width, rr2, [lr2], "right tile after the drag")

    # a scanout of the same client name and number is placed there again
    fresh = OverviewWidget()
    try:
        fresh.add(right)
        assert fresh.positions[right.id] == moved
    finally:
        fresh.deleteLater()


def test_pressing_outside_tiles_drags_nothing(virgl_viewer, guests) -> None:
    guests.start(virgl_viewer.path, "--size", "160x120", "--fps", "30", "--pattern", "bars",
                 name="lonely")
    (win,) = virgl_viewer.wait_scanouts(1)
    ov = virgl_viewer.controller.main_window.overview
    before = QPoint(ov.positions[win.scanout.id])
    r = ov.tile_rect(win.scanout.id)
    outside = QPointF(r.left() - 10, r.top() - 30).toPoint()
    QTest.mousePress(ov, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, outside)
    QTest.mouseMove(ov, outside + QPoint(50, 50))
    QTest.mouseRelease(ov, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       outside + QPoint(50, 50))
    assert ov.positions[win.scanout.id] == before
    assert QSettings().value("layout/lonely/1") is None


def test_tile_label_keeps_number_and_rate(qapp) -> None:
    """A narrow tile's label gives up the size, then the client's name; the
    scanout number and the frame rate (or that it is gone) always show."""
    f = QFont()
    f.setPointSize(9)
    fm = QFontMetrics(f)
    full = "glmark2-es2 #2  1920×1080  57 fps"
    assert tile_label(fm, fm.horizontalAdvance(full), "glmark2-es2", 2, "1920×1080", 57.2,
                      True) == full
    no_size = "glmark2-es2 #2  57 fps"
    assert tile_label(fm, fm.horizontalAdvance(full) - 1, "glmark2-es2", 2, "1920×1080",
                      57.2, True) == no_size
    narrow = tile_label(fm, fm.horizontalAdvance(no_size) - 1, "glmark2-es2", 2,
                        "1920×1080", 57.2, True)
    assert narrow.endswith("… #2  57 fps") and narrow.startswith("glmark"), narrow
    assert fm.horizontalAdvance(narrow) <= fm.horizontalAdvance(no_size) - 1
    tiny = tile_label(fm, 10, "glmark2-es2", 2, "1920×1080", 57.2, True)
    assert tiny == "… #2  57 fps", tiny
    gone = tile_label(fm, 400, "guest", 3, "200×150", 0.0, False)
    assert gone == "guest #3  200×150  disconnected"
