"""The PNG writer: 8-bit RGBA, filter 0 on every row, one zlib IDAT chunk.

Why our own: headless snapshots (``snapshots.py``) and the test guest's dumps
(``guest/cli.py``) need PNG files without Qt or an imaging library; this is all of the
format they use (PNG specification, 2nd edition: signature, IHDR, IDAT, IEND).
"""

from __future__ import annotations

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def encode_png(width: int, height: int, rgba: bytes, level: int = 6) -> bytes:
    """An 8-bit RGBA PNG of ``rgba`` (rows top first, no padding), zlib ``level``."""
    stride = width * 4
    raw = b"".join(b"\0" + rgba[y * stride:(y + 1) * stride] for y in range(height))
    return (SIGNATURE
            + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(raw, level)) + _chunk(b"IEND", b""))
