"""The test guest's patterns: what it draws, and the exact pixels that must come out.

Why: viewer tests grab a scanout window and compare it with what the guest presented, pixel
for pixel. So every pattern is defined here once, as a *plan* (a clear colour, flat-coloured
axis-aligned rectangles with integer edges, optionally a full-frame texture), which the
guest renders with virgl commands (`scene.py`) and which `expected_image` rasterises in pure
Python. Integer edges and pixel centres at .5 leave half a pixel of margin for the GPU's
float maths, and every colour is an 8-bit value, so the two agree exactly.

Patterns (frame = 0-based frame index, scanout = 0-based scanout index):
- ``bars``: 8 full-height vertical bars, white, yellow, cyan, green, magenta, red, blue,
  black; bar i covers x in [i*W//8, (i+1)*W//8). The same on every scanout and frame.
- ``gradient``: pixel (x, y) = (x*255 // (W-1), y*255 // (H-1), 85*scanout % 256) (a zero
  divisor gives 0); static over frames. Drawn as a W x H texture sampled 1:1 (NEAREST).
- ``counter``: background (frame % 256, 0x30, (0x60 + 0x20*scanout) % 256), and the text
  ``f"{scanout}:{frame}"`` in a 3x5 block font at the top left, ``scanout:`` in yellow and
  the frame number in white. Block size b = max(1, min(H // 7, W // (4n + 1))) for n
  characters; character k's cell (cx, cy) covers [b + 4bk + cx*b, +b) x [b + cy*b, +b);
  blocks are clipped to the frame.
- ``solid:RRGGBB``: the whole frame is that colour (a clear), on every scanout.
Alpha is always 255 (the guest writes alpha 1.0; X8 formats read back with 255).
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = [
    "BAR_COLORS",
    "Plan",
    "Rect",
    "bar_edges",
    "counter_text",
    "expected_image",
    "gradient_texels",
    "parse_pattern",
    "plan",
]

Rgb = tuple[int, int, int]

BAR_COLORS: tuple[Rgb, ...] = (
    (255, 255, 255), (255, 255, 0), (0, 255, 255), (0, 255, 0),
    (255, 0, 255), (255, 0, 0), (0, 0, 255), (0, 0, 0),
)
_WHITE: Rgb = (255, 255, 255)
_YELLOW: Rgb = (255, 255, 0)
_SOLID = re.compile(r"solid:([0-9a-fA-F]{6})")

# 3x5 glyphs, rows top first, "#" = a lit block.
_FONT: dict[str, tuple[str, ...]] = {
    "0": ("###", "#.#", "#.#", "#.#", "###"),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"),
    "3": ("###", "..#", "###", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"),
    "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"),
    "7": ("###", "..#", "..#", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"),
    "9": ("###", "#.#", "###", "..#", "###"),
    ":": ("...", ".#.", "...", ".#.", "..."),
}


class Rect(NamedTuple):
    """A flat-coloured rectangle covering pixels [x0, x1) x [y0, y1), rows top-first."""

    x0: int
    y0: int
    x1: int
    y1: int
    color: Rgb


class Plan(NamedTuple):
    """What one frame of one scanout consists of, in drawing order: clear to
    ``background``, then (if ``gradient``) the full-frame gradient texture, then ``rects``."""

    background: Rgb
    gradient: bool
    rects: tuple[Rect, ...]


def parse_pattern(pattern: str) -> str:
    """Validate a pattern name (``bars``, ``gradient``, ``counter``, ``solid:RRGGBB``);
    returns it normalised (hex lower case). ValueError otherwise."""
    if pattern in {"bars", "gradient", "counter"}:
        return pattern
    m = _SOLID.fullmatch(pattern)
    if m is None:
        raise ValueError(f"unknown pattern {pattern!r} "
                         "(bars, gradient, counter or solid:RRGGBB)")
    return f"solid:{m.group(1).lower()}"


def bar_edges(width: int) -> list[int]:
    """The 9 x positions bounding the 8 bars: bar i is [edges[i], edges[i+1])."""
    return [i * width // 8 for i in range(9)]


def counter_text(frame: int, scanout: int) -> str:
    """The text the counter pattern shows."""
    return f"{scanout}:{frame}"


def _counter_rects(width: int, height: int, frame: int, scanout: int) -> list[Rect]:
    text = counter_text(frame, scanout)
    b = max(1, min(height // 7, width // (4 * len(text) + 1)))
    rects = []
    split = text.index(":") + 1
    for k, ch in enumerate(text):
        color = _YELLOW if k < split else _WHITE
        for cy, row in enumerate(_FONT[ch]):
            for cx, cell in enumerate(row):
                if cell == "#":
                    x0, y0 = b + 4 * b * k + cx * b, b + cy * b
                    rects.append(Rect(x0, y0, x0 + b, y0 + b, color))
    return rects


def _clip(rects: list[Rect], width: int, height: int) -> tuple[Rect, ...]:
    out = []
    for r in rects:
        x0, y0, x1, y1 = max(r.x0, 0), max(r.y0, 0), min(r.x1, width), min(r.y1, height)
        if x0 < x1 and y0 < y1:
            out.append(Rect(x0, y0, x1, y1, r.color))
    return tuple(out)


def plan(pattern: str, width: int, height: int, frame: int, scanout: int) -> Plan:
    """The plan of ``pattern`` for a ``width`` x ``height`` frame (see the module doc)."""
    pattern = parse_pattern(pattern)
    if width <= 0 or height <= 0:
        raise ValueError(f"bad size {width}x{height}")
    if pattern == "bars":
        e = bar_edges(width)
        rects = [Rect(e[i], 0, e[i + 1], height, c) for i, c in enumerate(BAR_COLORS)]
        return Plan((0, 0, 0), False, _clip(rects, width, height))
    if pattern == "gradient":
        return Plan((0, 0, 0), True, ())
    if pattern == "counter":
        bg = (frame % 256, 0x30, (0x60 + 0x20 * scanout) % 256)
        return Plan(bg, False, _clip(_counter_rects(width, height, frame, scanout),
                                     width, height))
    value = int(pattern.removeprefix("solid:"), 16)
    return Plan((value >> 16, (value >> 8) & 0xFF, value & 0xFF), False, ())


def gradient_texels(width: int, height: int, scanout: int) -> bytes:
    """The gradient image, RGBA8 rows top-first (also the texture the guest samples)."""
    blue = 85 * scanout % 256
    row = bytearray(4 * width)
    row[0::4] = bytes(x * 255 // (width - 1) if width > 1 else 0 for x in range(width))
    row[2::4] = bytes([blue]) * width
    row[3::4] = b"\xff" * width
    out = bytearray()
    for y in range(height):
        row[1::4] = bytes([y * 255 // (height - 1) if height > 1 else 0]) * width
        out += row
    return bytes(out)


def expected_image(pattern: str, width: int, height: int, frame: int, scanout: int) -> bytes:
    """The exact RGBA8 pixels (rows top-first, alpha 255) the guest presents for frame
    ``frame`` of scanout ``scanout`` at ``width`` x ``height`` with ``pattern``."""
    p = plan(pattern, width, height, frame, scanout)
    if p.gradient:
        img = bytearray(gradient_texels(width, height, scanout))
    else:
        img = bytearray(bytes((*p.background, 255)) * (width * height))
    stride = 4 * width
    for r in p.rects:
        span = bytes((*r.color, 255)) * (r.x1 - r.x0)
        for y in range(r.y0, r.y1):
            start = y * stride + 4 * r.x0
            img[start:start + len(span)] = span
    return bytes(img)
