"""Headless --snapshot-dir: PNGs of every scanout on SIGUSR1 and at exit,
pixel-equal to what the guest drew."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

from virgl_viewer.guest.patterns import expected_image


def read_png_rgba(path: Path) -> tuple[int, int, bytes]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) == (8, 6)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    rows = [raw[y * (4 * w + 1):(y + 1) * (4 * w + 1)] for y in range(h)]
    assert all(r[0] == 0 for r in rows)  # filter "none"
    return w, h, b"".join(r[1:] for r in rows)


def wait_for(cond, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_snapshot_dir_on_sigusr1_and_exit(tmp_path: Path) -> None:
    sock = str(tmp_path / "vtest.sock")
    snaps = tmp_path / "snaps"
    server = subprocess.Popen([sys.executable, "-m", "virgl_viewer", "--headless",
                               "--socket", sock, "--snapshot-dir", str(snaps)],
                              stderr=subprocess.DEVNULL)
    guest = None
    try:
        wait_for(lambda: os.path.exists(sock))
        guest = subprocess.Popen([sys.executable, "-m", "virgl_viewer.guest.cli", "--socket",
                                  sock, "--scanouts", "2", "--size", "64x48,40x30",
                                  "--pattern", "gradient", "--fps", "30", "--frames", "0",
                                  "--name", "snapguest"], stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # a few frames presented
        server.send_signal(signal.SIGUSR1)
        wait_for(lambda: len(list(snaps.glob("snapguest-*-scanout*.png"))) == 2)
        for n, (w, h) in enumerate([(64, 48), (40, 30)], 1):
            (png,) = snaps.glob(f"snapguest-{guest.pid}-scanout{n}.png")
            assert read_png_rgba(png) == (w, h, expected_image("gradient", w, h, 0, n - 1))
        for p in snaps.iterdir():
            p.unlink()
        server.send_signal(signal.SIGTERM)  # at exit, again
        assert server.wait(30) == 0
        assert len(list(snaps.glob("snapguest-*.png"))) == 2
    finally:
        if guest is not None:
            guest.kill()
            guest.wait()
        if server.poll() is None:
            server.kill()
            server.wait()
