"""Presents a window shows without Python: once a display target's first present has gone
through Python (its scanout made, its ring sized, ScanoutManager), the C fast path copies
every later present into the ring itself and wakes the GUI through an eventfd. What a
user sees must not change: every present counted, every one copied while the guest is
slower than the screen, and the window showing the last frame's exact pixels, including
one the rate limit held back and only the C path's catch-up can show."""

from __future__ import annotations

import signal
import time

import pytest

from virgl_viewer.guest.patterns import expected_image
from virgl_viewer.scanout import ScanoutManager
from virgl_viewer.ui.controller import present_interval

pytestmark = pytest.mark.usefixtures("isolated_settings")

W, H = 160, 120
FRAMES = 40

# Presents FRAMES counter frames, each after a SIGUSR1 (the test sends it once the window
# has the previous one: a guest slower than the screen), then two more back to back (the
# second within one refresh of the first: the rate limit holds it back), then waits for
# SIGTERM with the connection open: argv = socket.
PRESENTER = f"""
import signal, sys
from virgl_viewer.guest import VtestClient
from virgl_viewer.guest.scene import GuestScene

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])  # kept pending until sigwait
with VtestClient.connect(sys.argv[1], "c-path", 2) as c:
    scene = GuestScene(c, "counter", [({W}, {H})])
    for frame in range({FRAMES}):
        if frame:
            signal.sigwait([signal.SIGUSR1])
        scene.present_frame(frame)
    signal.sigwait([signal.SIGUSR1])
    scene.present_frame({FRAMES})
    scene.present_frame({FRAMES} + 1)
    print("done", file=sys.stderr, flush=True)
    signal.pause()
"""


def test_presents_after_the_first_are_shown_without_python(virgl_viewer, guests, pix,
                                                          monkeypatch) -> None:
    reports: list[int] = []
    presented = ScanoutManager.presented

    def counted(self, s, r, count=1, when=None):  # type: ignore[no-untyped-def]
        reports.append(count)
        presented(self, s, r, count, when)

    monkeypatch.setattr(ScanoutManager, "presented", counted)
    g = guests.script(PRESENTER, virgl_viewer.path)
    (win,) = virgl_viewer.wait_scanouts(1)
    sc = win.scanout
    interval = present_interval()  # one refresh: the C path's rate limit
    # a guest slower than the screen: every present is copied and painted (a present
    # held back is caught up one refresh later) before the guest sends the next one
    for frame in range(FRAMES):
        virgl_viewer.qtbot.waitUntil(
            lambda n=frame + 1: sc.frames == n and win.view.painted_seq == sc.frames,
            timeout=30_000)
        if frame == FRAMES - 1:
            # the first of the pair must not be held back too (the guest can answer
            # a paint within one refresh): then one catch-up copies both presents as
            # one frame, and frames + dropped stays one short of presents. Under load
            # that happened 2 times in 12; waiting for one refresh since the copy,
            # 0 in 14.
            virgl_viewer.qtbot.waitUntil(
                lambda: time.monotonic() - sc._last_copy > interval, timeout=30_000)
        g.proc.send_signal(signal.SIGUSR1)
    virgl_viewer.qtbot.waitUntil(lambda: "done" in g.log(), timeout=60_000)
    # every present counted; the pair back to back: the first copied, the second held
    # back and copied one refresh later by the C path
    virgl_viewer.qtbot.waitUntil(lambda: sc.presents == FRAMES + 2, timeout=30_000)
    virgl_viewer.qtbot.waitUntil(lambda: sc.frames + sc.dropped == FRAMES + 2
                                 and win.view.painted_seq == sc.frames, timeout=30_000)
    assert reports == [1], f"presents that reached Python: {reports}"
    pix.assert_equal(pix.rgba(virgl_viewer.grab(win)),
                     expected_image("counter", W, H, FRAMES + 1, 0), W, H, "last frame")
    g.proc.send_signal(signal.SIGTERM)

