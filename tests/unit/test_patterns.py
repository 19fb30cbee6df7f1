"""expected_image: the test guest's patterns, checked against their written definition.

Expected pixels are spelled out from the pattern descriptions (patterns.py module doc),
not computed with the module's own plan, so a drift in either shows up here.
"""

from __future__ import annotations

import pytest

from virgl_viewer.guest.patterns import (
    BAR_COLORS,
    bar_edges,
    counter_text,
    expected_image,
    gradient_texels,
    parse_pattern,
    plan,
)
from virgl_viewer.guest.scene import to_rgba


def px(img: bytes, width: int, x: int, y: int) -> tuple[int, int, int, int]:
    i = 4 * (y * width + x)
    r, g, b, a = img[i:i + 4]
    return r, g, b, a


@pytest.mark.parametrize("pattern", ["bars", "gradient", "counter", "solid:00ff80"])
@pytest.mark.parametrize("size", [(1, 1), (3, 2), (64, 48), (101, 7)])
def test_size_and_opaque(pattern: str, size: tuple[int, int]) -> None:
    w, h = size
    img = expected_image(pattern, w, h, 12, 1)
    assert len(img) == w * h * 4
    assert set(img[3::4]) == {255}


def test_bars_exact_edges_when_width_is_not_a_multiple_of_8() -> None:
    w, h = 100, 5
    img = expected_image("bars", w, h, 0, 0)
    names = ["white", "yellow", "cyan", "green", "magenta", "red", "blue", "black"]
    colors = dict(zip(names, BAR_COLORS, strict=True))
    assert colors["yellow"] == (255, 255, 0) and colors["magenta"] == (255, 0, 255)
    assert bar_edges(w) == [0, 12, 25, 37, 50, 62, 75, 87, 100]
    for i, name in enumerate(names):
        x0, x1 = i * w // 8, (i + 1) * w // 8
        for y in (0, h - 1):
            assert px(img, w, x0, y) == (*colors[name], 255)
            assert px(img, w, x1 - 1, y) == (*colors[name], 255)
    # every row is the same; frame and scanout change nothing
    row = img[:4 * w]
    assert img == row * h
    assert expected_image("bars", w, h, 7, 3) == img


def test_gradient_values() -> None:
    w, h = 64, 48
    img = expected_image("gradient", w, h, 0, 2)
    assert px(img, w, 0, 0) == (0, 0, 170, 255)
    assert px(img, w, w - 1, 0) == (255, 0, 170, 255)
    assert px(img, w, 0, h - 1) == (0, 255, 170, 255)
    assert px(img, w, 10, 20) == (10 * 255 // 63, 20 * 255 // 47, 170, 255)
    # top row darkest in green: the image is not symmetric vertically
    assert px(img, w, 5, 0)[1] < px(img, w, 5, h - 1)[1]
    assert expected_image("gradient", w, h, 99, 2) == img  # static over frames
    assert expected_image("gradient", w, h, 0, 1) != img  # scanout-specific blue
    assert gradient_texels(w, h, 2) == img
    assert gradient_texels(1, 1, 0) == bytes([0, 0, 0, 255])


def test_counter_layout() -> None:
    w, h = 80, 60
    assert counter_text(5, 1) == "1:5"
    img = expected_image("counter", w, h, 5, 1)
    bg = (5, 0x30, 0x80, 255)
    b = min(h // 7, w // (4 * 3 + 1))  # 6
    assert b == 6
    assert px(img, w, 0, 0) == bg and px(img, w, w - 1, h - 1) == bg
    # '1' (.#. / ##. / .#. / .#. / ###) in yellow at (b, b)
    yellow, white = (255, 255, 0, 255), (255, 255, 255, 255)
    assert px(img, w, b, b) == bg
    assert px(img, w, b + b, b) == yellow and px(img, w, 2 * b + b - 1, b + b - 1) == yellow
    assert px(img, w, b, b + b) == yellow  # row 1: ##.
    assert px(img, w, b + 2 * b, b + 4 * b) == yellow  # row 4: ###
    # ':' cells (1, 1) and (1, 3) of glyph 1
    assert px(img, w, b + 4 * b + b, b + b) == yellow
    assert px(img, w, b + 4 * b + b, b + 2 * b) == bg
    # '5' (### / #.. / ### / ..# / ###) in white, glyph 2
    x5 = b + 8 * b
    assert px(img, w, x5, b) == white and px(img, w, x5 + 2 * b, b + b) == bg
    assert px(img, w, x5 + 2 * b, b + 3 * b) == white and px(img, w, x5, b + 3 * b) == bg
    # below the text (from row 6b) only background
    assert set(img[4 * w * 6 * b:]) <= set(bg)
    assert img[4 * w * 6 * b:] == bytes(bg) * (w * (h - 6 * b))


def test_counter_changes_with_frame_and_scanout() -> None:
    a = expected_image("counter", 64, 48, 3, 0)
    assert a != expected_image("counter", 64, 48, 4, 0)
    assert a != expected_image("counter", 64, 48, 3, 1)
    assert px(expected_image("counter", 64, 48, 300, 0), 64, 0, 0)[0] == 300 % 256


def test_counter_clipped_on_tiny_frames() -> None:
    img = expected_image("counter", 5, 3, 1234, 0)  # block size 1, text clipped
    assert len(img) == 5 * 3 * 4
    for r in plan("counter", 5, 3, 1234, 0).rects:
        assert 0 <= r.x0 < r.x1 <= 5 and 0 <= r.y0 < r.y1 <= 3


def test_solid() -> None:
    assert expected_image("solid:FF8000", 3, 2, 0, 0) == bytes([255, 128, 0, 255]) * 6
    assert parse_pattern("solid:FF8000") == "solid:ff8000"


@pytest.mark.parametrize("bad", ["", "bar", "solid:", "solid:12345", "solid:gg0000",
                                 "solid:1234567"])
def test_bad_patterns(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_pattern(bad)


def test_bad_size() -> None:
    with pytest.raises(ValueError):
        expected_image("bars", 0, 10, 0, 0)


def test_to_rgba_byte_orders() -> None:
    pixel = {"BGRX": bytes([3, 2, 1, 9]), "BGRA": bytes([3, 2, 1, 4]),
             "RGBA": bytes([1, 2, 3, 4]), "RGBX": bytes([1, 2, 3, 9])}
    assert to_rgba(pixel["BGRX"] * 2, "BGRX") == bytes([1, 2, 3, 255]) * 2
    assert to_rgba(pixel["BGRA"], "BGRA") == bytes([1, 2, 3, 4])
    assert to_rgba(pixel["RGBA"], "RGBA") == bytes([1, 2, 3, 4])
    assert to_rgba(pixel["RGBX"], "RGBX") == bytes([1, 2, 3, 255])
