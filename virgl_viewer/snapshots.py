"""Headless screenshots: ``--snapshot-dir DIR`` writes every scanout's newest
frame as PNG on SIGUSR1 and at exit.

Why without Qt: CI runs the server headless. How: the observer remembers, per
client, the display targets it presented (in first-present order, a
re-created target taking over its predecessor's number); a snapshot reads
each one back through virglrenderer on the render thread (the one place a
readback is fine: on request, for a file) and encodes a PNG (png.py).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from virgl_viewer.formats import format_info, format_name
from virgl_viewer.png import encode_png
from virgl_viewer.server import ServerObserver

if TYPE_CHECKING:
    from virgl_viewer.objects import Resource
    from virgl_viewer.session import Session

log = logging.getLogger(__name__)


def to_rgba(data: bytes, virgl_format: int) -> bytes | None:
    """Convert 8-bit 4-channel pixels to RGBA (X channels become 255);
    None for formats this does not handle."""
    info = format_info(virgl_format)
    order = info.channel_order if info else None
    if order is None or len(order) != 4:
        return None
    n = len(data) // 4
    out = bytearray(n * 4)
    for dst, ch in enumerate("RGBA"):
        if ch in order:
            out[dst::4] = data[order.index(ch)::4]
        else:
            out[dst::4] = b"\xff" * n
    if "X" in order:
        out[3::4] = b"\xff" * n
    return bytes(out)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:64] or "client"


class SnapshotWriter(ServerObserver):
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self._scanouts: dict[int, list[Resource | None]] = {}  # id(session) -> slots
        self._sessions: dict[int, Session] = {}

    def presented(self, s: Session, r: Resource, count: int = 1) -> None:
        slots = self._scanouts.setdefault(id(s), [])
        if r in slots:
            return
        self._sessions[id(s)] = s
        for i, old in enumerate(slots):
            if old is None:  # a destroyed target: the new one takes its place
                slots[i] = r
                return
        slots.append(r)

    def resource_destroyed(self, s: Session, r: Resource) -> None:
        slots = self._scanouts.get(id(s))
        if slots and r in slots:
            slots[slots.index(r)] = None

    def session_closed(self, s: Session) -> None:
        self._scanouts.pop(id(s), None)
        self._sessions.pop(id(s), None)

    def snapshot_all(self) -> list[Path]:
        """Write every live scanout's newest frame (render thread)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        written = []
        for key, slots in self._scanouts.items():
            s = self._sessions[key]
            for number, r in enumerate(slots, 1):
                if r is None:
                    continue
                path = self.dir / f"{_safe(s.name)}-{s.pid}-scanout{number}.png"
                try:
                    if self._write(s, r, path):
                        written.append(path)
                except Exception as exc:
                    log.error("snapshot of %s scanout %d failed: %s", s, number, exc)
        log.info("wrote %d scanout snapshot(s) to %s", len(written), self.dir)
        return written

    def _write(self, s: Session, r: Resource, path: Path) -> bool:
        w, h = r.width, r.height
        data = bytearray(w * h * 4)
        s.host.renderer.transfer_read(r.server_handle, s.ctx_id, 0, w * 4, w * h * 4,
                                      (0, 0, 0, w, h, 1), 0, data)
        rgba = to_rgba(bytes(data), r.format)
        if rgba is None:
            log.warning("cannot snapshot format %s", format_name(r.format))
            return False
        tmp = path.with_suffix(".png.tmp")
        tmp.write_bytes(encode_png(w, h, rgba))
        os.replace(tmp, path)
        return True
