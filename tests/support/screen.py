"""Screenshots of an X display (or grabs of Qt windows) and the colours in them: the one
place that says which pixels are red, green or blue.

``import -window root`` (ImageMagick) writes the root window as binary PPM; where
ImageMagick is missing, a PySide6 subprocess grabs it instead (PySide6 is a project
dependency). Xvfb has no window manager and no compositing, so the root window holds
exactly what clients put into their windows, at the positions they asked for.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from support.procs import wait_for

_QT_GRAB = """
import sys
from PySide6.QtGui import QGuiApplication, QImage
app = QGuiApplication(["grab"])
img = app.primaryScreen().grabWindow(0).toImage().convertToFormat(QImage.Format_RGB888)
w, h, bpl = img.width(), img.height(), img.bytesPerLine()
raw = bytes(img.constBits())
out = sys.stdout.buffer
out.write(b"P6\\n%d %d\\n255\\n" % (w, h))
for y in range(h):
    out.write(raw[y * bpl : y * bpl + 3 * w])
"""


@dataclass(frozen=True)
class Box:
    """A rectangle in screen pixels."""

    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class Image:
    """Packed 8-bit RGB pixels, rows top to bottom."""

    width: int
    height: int
    rgb: bytes

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        i = 3 * (y * self.width + x)
        return self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]

    def crop(self, box: Box) -> Image:
        x0, y0 = max(box.x, 0), max(box.y, 0)
        x1, y1 = min(box.x + box.w, self.width), min(box.y + box.h, self.height)
        rows = [self.rgb[3 * (y * self.width + x0): 3 * (y * self.width + x1)]
                for y in range(y0, y1)]
        return Image(max(x1 - x0, 0), max(y1 - y0, 0), b"".join(rows))


def image_of(qimage: Any) -> Image:
    """A Qt ``QImage`` (a grab of a window or widget) as an ``Image``."""
    from PySide6.QtGui import QImage

    img = qimage.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    raw = bytes(img.constBits())
    return Image(w, h, b"".join(raw[y * bpl:y * bpl + 3 * w] for y in range(h)))


def parse_ppm(data: bytes) -> Image:
    """A binary (P6) 8-bit PPM, as ``import``/``convert`` write it."""
    fields: list[bytes] = []
    pos = 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while end < len(data) and not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    magic, w, h, maxval = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    if magic != b"P6" or maxval != 255:
        raise ValueError(f"not an 8-bit binary PPM: {magic!r} maxval {maxval}")
    pixels = data[pos + 1: pos + 1 + 3 * w * h]
    if len(pixels) != 3 * w * h:
        raise ValueError("PPM is cut short")
    return Image(w, h, pixels)


def grab_root(display: str, timeout: float = 30.0) -> Image:
    """The whole root window of ``display``."""
    env = dict(os.environ, DISPLAY=display)
    for var in ("GALLIUM_DRIVER", "LD_PRELOAD", "VTEST_SOCKET_NAME"):
        env.pop(var, None)
    if shutil.which("import"):
        argv = ["import", "-silent", "-display", display, "-window", "root",
                "-depth", "8", "ppm:-"]
    else:
        env["QT_QPA_PLATFORM"] = "xcb"
        argv = [sys.executable, "-c", _QT_GRAB]
    done = subprocess.run(argv, env=env, capture_output=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"screenshot failed ({' '.join(argv[:2])}): "
                           f"{done.stderr.decode(errors='replace')}")
    return parse_ppm(done.stdout)


def wait_for_screen(display: str, shows: Callable[[Image], bool], timeout: float) -> Image:
    """Screenshots of ``display`` until one ``shows`` what is wanted (a generous
    ``timeout`` in seconds); that one, else the last taken."""
    shots: list[Image] = []

    def grabbed() -> bool:
        shots.append(grab_root(display))
        del shots[:-1]
        return shows(shots[-1])

    wait_for(grabbed, timeout, step=0.2)
    return shots[-1]


def classify(r: int, g: int, b: int) -> str:
    """``red``/``green``/``blue`` for a clearly saturated pixel, ``black``, else ``other``.

    glxgears' gears are (0.8, 0.1, 0), (0, 0.8, 0.2) and (0.2, 0.2, 1.0) lit by one light,
    so a lit gear pixel has one dominant channel and the other two well below it; the
    app icon's scanouts (resources/icons) are #e0403a, #3fb34f and #3d7be0 (green at 0.55
    of blue).
    """
    top = max(r, g, b)
    if top < 24:
        return "black"
    if top >= 90:
        for name, main, others in (("red", r, (g, b)), ("green", g, (r, b)),
                                   ("blue", b, (r, g))):
            if main == top and all(o <= 0.6 * top for o in others):
                return name
    return "other"


def colour_counts(image: Image, box: Box | None = None) -> Counter[str]:
    """How many pixels of ``image`` (or of ``box`` in it) fall in each class."""
    img = image.crop(box) if box else image
    raw = img.rgb
    counts: Counter[bytes] = Counter(raw[i:i + 3] for i in range(0, len(raw), 3))
    result: Counter[str] = Counter()
    for px, n in counts.items():
        result[classify(px[0], px[1], px[2])] += n
    return result


def rgb_of_rgba(width: int, height: int, rgba: bytes) -> Image:
    """RGBA8 rows (``expected_image``, ``pix.rgba``) as an ``Image`` (alpha dropped)."""
    rgb = bytearray(3 * width * height)
    rgb[0::3], rgb[1::3], rgb[2::3] = rgba[0::4], rgba[1::4], rgba[2::4]
    return Image(width, height, bytes(rgb))


def find_image(haystack: Image, needle: Image) -> Box | None:
    """Where ``needle`` appears pixel for pixel in ``haystack`` (the topmost, then
    leftmost place), or None: a window's content found in a screenshot of a desktop
    whose window manager placed it."""
    stride, nstride = 3 * haystack.width, 3 * needle.width
    if needle.width == 0 or needle.height == 0 or nstride > stride:
        return None
    first = needle.rgb[:nstride]
    for y in range(haystack.height - needle.height + 1):
        row = haystack.rgb[y * stride:(y + 1) * stride]
        at = row.find(first)
        while at != -1:
            if at % 3 == 0 and all(
                    haystack.rgb[(y + r) * stride + at:(y + r) * stride + at + nstride]
                    == needle.rgb[r * nstride:(r + 1) * nstride]
                    for r in range(1, needle.height)):
                return Box(at // 3, y, needle.width, needle.height)
            at = row.find(first, at + 1)
    return None
