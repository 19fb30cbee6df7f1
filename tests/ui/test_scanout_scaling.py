"""Scaling: where the image lands in a scanout window in 1:1, fit and integer mode
(``fit_rect`` on its own, then the pixels of real windows resized to known sizes)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PySide6.QtGui import QAction

from virgl_viewer.guest.patterns import expected_image
from virgl_viewer.ui.gl_view import ScaleMode, fit_rect

ONE, FIT, INT = ScaleMode.ONE_TO_ONE, ScaleMode.FIT, ScaleMode.INTEGER


# ------------------------------------------------------------------ fit_rect
@pytest.mark.parametrize(("mode", "img", "view", "rect"), [
    (ONE, (320, 240), (400, 300), (40, 30, 320, 240)),     # centred
    (ONE, (320, 240), (200, 100), (-60, -70, 320, 240)),   # larger than the view: cropped
    (ONE, (320, 240), (321, 241), (0, 0, 320, 240)),       # odd margin: floor
    (FIT, (320, 240), (400, 400), (0, 50, 400, 300)),      # letterbox top/bottom
    (FIT, (320, 240), (640, 240), (160, 0, 320, 240)),     # pillarbox left/right
    (FIT, (320, 240), (160, 160), (0, 20, 160, 120)),      # shrinks too
    (FIT, (1920, 1080), (1000, 1000), (0, 219, 1000, 562)),  # 562.5 rounds to even
    (FIT, (1, 1000), (10, 10), (4, 0, 1, 10)),             # never below one pixel
    (INT, (320, 240), (700, 500), (30, 10, 640, 480)),     # x2
    (INT, (320, 240), (960, 720), (0, 0, 960, 720)),       # exactly x3
    (INT, (320, 240), (959, 720), (159, 120, 640, 480)),   # one short of x3 wide: x2
    (INT, (320, 240), (300, 200), (-10, -20, 320, 240)),   # too small: x1, cropped
    (ONE, (0, 240), (400, 300), (0, 0, 0, 0)),             # nothing to draw
    (FIT, (320, 240), (0, 300), (0, 0, 0, 0)),
])
def test_fit_rect(mode: ScaleMode, img: tuple[int, int], view: tuple[int, int],
                  rect: tuple[int, int, int, int]) -> None:
    assert fit_rect(mode, *img, *view) == rect


sizes = st.integers(1, 5000)


@given(iw=sizes, ih=sizes, vw=sizes, vh=sizes)
def test_fit_keeps_aspect_and_fills_one_side(iw: int, ih: int, vw: int, vh: int) -> None:
    x, y, w, h = fit_rect(FIT, iw, ih, vw, vh)
    assert 1 <= w <= vw and 1 <= h <= vh
    assert w == vw or h == vh  # touches two opposite edges
    assert (x, y) == ((vw - w) // 2, (vh - h) // 2)
    # aspect kept up to the rounding of the shorter side
    assert abs(w * ih - h * iw) <= max(iw, ih)


@given(iw=sizes, ih=sizes, vw=sizes, vh=sizes)
def test_integer_is_the_largest_whole_factor(iw: int, ih: int, vw: int, vh: int) -> None:
    x, y, w, h = fit_rect(INT, iw, ih, vw, vh)
    k = w // iw
    assert (w, h) == (k * iw, k * ih) and k >= 1
    assert k == 1 or (w <= vw and h <= vh)
    assert (k + 1) * iw > vw or (k + 1) * ih > vh  # k + 1 would not fit
    assert (x, y) == ((vw - w) // 2, (vh - h) // 2)


# ------------------------------------------------------------------ real windows
def set_view_size(qtbot, win, w: int, h: int) -> None:  # type: ignore[no-untyped-def]
    view = win.view
    win.resize(win.width() - view.width() + w, win.height() - view.height() + h)

    def sized() -> None:
        assert (view.width(), view.height()) == (w, h)

    qtbot.waitUntil(sized, timeout=5000)


def choose(win, label: str) -> None:  # type: ignore[no-untyped-def]
    """Trigger the View menu entry whose text starts with ``label`` (as a user would)."""
    for action in win.findChildren(QAction):
        if action.text().replace("&", "").startswith(label):
            action.trigger()
            return
    raise AssertionError(f"no menu entry {label!r}")


def upscale(rgba: bytes, w: int, h: int, k: int) -> bytes:
    """Nearest-neighbour k-times enlargement of RGBA8 rows."""
    out = bytearray()
    for y in range(h):
        row = rgba[4 * w * y:4 * w * (y + 1)]
        wide = b"".join(row[4 * x:4 * x + 4] * k for x in range(w))
        out += wide * k
    return bytes(out)


def test_scale_modes_place_the_image(virgl_viewer, guests, pix) -> None:
    w, h = 160, 120
    guests.start(virgl_viewer.path, "--size", f"{w}x{h}", "--fps", "30", "--pattern",
                 "gradient", name="scaled")
    (win,) = virgl_viewer.wait_scanouts(1)
    assert win.view.devicePixelRatioF() == 1.0  # geometry below is in device pixels
    expected = expected_image("gradient", w, h, 0, 0)

    def shown(vw: int, vh: int) -> tuple[bytes, tuple[int, int, int, int]]:
        set_view_size(virgl_viewer.qtbot, win, vw, vh)
        img = virgl_viewer.grab_window(win)
        assert (img.width(), img.height()) == (vw, vh)
        data = pix.rgba(img)
        bg = pix.pixel(data, vw, 0, 0)  # every layout below leaves the corner empty
        return data, pix.bounding_box(data, vw, vh, lambda p: p != bg)

    # the window fits itself to the guest's size: fit mode shows it unscaled, exact
    virgl_viewer.qtbot.waitUntil(lambda: (win.view.width(), win.view.height()) == (w, h),
                                 timeout=5000)
    data, box = shown(w, h)
    assert box == (0, 0, w, h)
    pix.assert_equal(data, expected, w, h, "window opened at the guest's size")

    choose(win, "1:1")
    data, box = shown(300, 200)
    assert box == (70, 40, w, h)
    pix.assert_equal(pix.crop(data, 300, 70, 40, w, h), expected, w, h, "1:1")
    # guest's top row (green 0) at the top of the window
    assert pix.pixel(data, 300, 70 + w // 2, 40)[1] == 0
    assert pix.pixel(data, 300, 70 + w // 2, 40 + h - 1)[1] == 255

    choose(win, "Fit")
    data, box = shown(400, 400)
    assert box == (0, 50, 400, 300)  # aspect 4:3 kept, letterboxed
    data, box = shown(500, 150)
    assert box == (150, 0, 200, 150)  # pillarboxed

    choose(win, "Integer")
    data, box = shown(400, 300)  # 2.5 x 2.5 fits: factor 2
    assert box == (40, 30, 2 * w, 2 * h)
    pix.assert_equal(pix.crop(data, 400, 40, 30, 2 * w, 2 * h), upscale(expected, w, h, 2),
                     2 * w, 2 * h, "integer x2, nearest")
    data, box = shown(500, 250)  # 3.1 wide but 2.08 high: factor 2
    assert box == (90, 5, 2 * w, 2 * h)
