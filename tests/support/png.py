"""Reading the PNGs the viewer and the test guest write (``virgl_viewer/png.py``: 8-bit
RGBA, filter 0 on every row), as a test checks them: any other kind fails the test."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from support.screen import Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_png_rgba(path: Path) -> tuple[int, int, bytes]:
    """Width, height and RGBA8 rows (top first) of the PNG at ``path``."""
    data = path.read_bytes()
    assert data[:8] == SIGNATURE, f"{path} is not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) == (8, 6), f"{path}: not 8-bit RGBA"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 4 * width
    rows = [raw[y * (stride + 1):(y + 1) * (stride + 1)] for y in range(height)]
    assert all(r[0] == 0 for r in rows), f"{path}: a row filter other than none"
    return width, height, b"".join(r[1:] for r in rows)


def png_image(path: Path) -> Image:
    """The PNG at ``path`` as a screenshot-like RGB ``Image`` (alpha dropped)."""
    w, h, rgba = read_png_rgba(path)
    return Image(w, h, b"".join(rgba[i:i + 3] for i in range(0, len(rgba), 4)))
