"""Headless --snapshot-dir: PNGs of every scanout on SIGUSR1 and at exit,
pixel-equal to what the guest drew."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from support.png import read_png_rgba
from support.procs import stop_process, wait_for

from virgl_viewer.guest.patterns import expected_image


def test_snapshot_dir_on_sigusr1_and_exit(tmp_path: Path) -> None:
    sock = str(tmp_path / "vtest.sock")
    snaps = tmp_path / "snaps"
    server = subprocess.Popen([sys.executable, "-m", "virgl_viewer", "--headless",
                               "--socket", sock, "--snapshot-dir", str(snaps)],
                              stderr=subprocess.DEVNULL)
    guest = None
    try:
        assert wait_for(lambda: os.path.exists(sock), 30)
        guest = subprocess.Popen([sys.executable, "-m", "virgl_viewer.guest.cli", "--socket",
                                  sock, "--scanouts", "2", "--size", "64x48,40x30",
                                  "--pattern", "gradient", "--fps", "30", "--frames", "0",
                                  "--name", "snapguest"], stderr=subprocess.DEVNULL)
        # until the guest has presented both (its start-up is not timed: a loaded machine,
        # make test-asan): each signal writes the scanouts presented so far
        def both_written() -> bool:
            server.send_signal(signal.SIGUSR1)
            time.sleep(0.2)
            return len(list(snaps.glob("snapguest-*-scanout*.png"))) == 2

        assert wait_for(both_written, 30)
        for n, (w, h) in enumerate([(64, 48), (40, 30)], 1):
            (png,) = snaps.glob(f"snapguest-{guest.pid}-scanout{n}.png")
            assert read_png_rgba(png) == (w, h, expected_image("gradient", w, h, 0, n - 1))
        for p in snaps.iterdir():
            p.unlink(missing_ok=True)  # a later signal's file may be renamed meanwhile
        server.send_signal(signal.SIGTERM)  # at exit, again
        assert server.wait(30) == 0
        assert len(list(snaps.glob("snapguest-*.png"))) == 2
    finally:
        for p in (guest, server):
            stop_process(p, sig=signal.SIGKILL)
