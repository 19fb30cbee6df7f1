"""The display never throttles the guest: presents complete whether the viewer paints
slowly or not at all; the window just shows the newest frame when it gets to paint."""

from __future__ import annotations

import signal
import time

import pytest
from support.procs import wait_for

from virgl_viewer.guest.patterns import expected_image
from virgl_viewer.ui.gl_view import ScanoutView

pytestmark = pytest.mark.usefixtures("isolated_settings")

BURST = 300

# Presents frame 0, then per SIGUSR1 a burst of BURST frames as fast as it can (counter
# pattern, 160x120): argv = socket bursts.
BURSTER = f"""
import signal, sys
from virgl_viewer.guest import VtestClient
from virgl_viewer.guest.scene import GuestScene

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGUSR1}})
with VtestClient.connect(sys.argv[1], "burster", 2) as c:
    scene = GuestScene(c, "counter", [(160, 120)])
    scene.present_frame(0)
    frame = 1
    for _ in range(int(sys.argv[2])):
        signal.sigwait({{signal.SIGUSR1}})
        for _ in range({BURST}):
            scene.present_frame(frame)
            frame += 1
    scene.close()
"""


def presents(sc) -> int:  # type: ignore[no-untyped-def]
    """Presents the viewer received (copied for the screen or not)."""
    return int(sc.presents)


def test_guest_is_never_throttled_by_the_display(virgl_viewer, guests, monkeypatch) -> None:
    g = guests.script(BURSTER, virgl_viewer.path, "2")
    (win,) = virgl_viewer.wait_scanouts(1)
    view, sc = win.view, win.scanout
    assert win.isVisible() and presents(sc) == 1

    # 1. The GUI thread is blocked (no events, no paints) for the whole burst: the guest
    #    still presents all its frames.
    paints = view.paints
    g.proc.send_signal(signal.SIGUSR1)
    # deliberately not processing Qt events: not qtbot.waitUntil
    wait_for(lambda: presents(sc) >= 1 + BURST or not g.running(), 60, step=0.01)
    assert presents(sc) == 1 + BURST, f"stalled at {presents(sc)} presents\n{g.log()}"
    assert view.paints == paints

    # 2. A slow display (every paint takes 50 ms, a 20 Hz screen): the guest finishes its
    #    burst long before the window could have painted every frame.
    original = ScanoutView.paintGL

    def slow_paint(self: ScanoutView) -> None:
        original(self)
        time.sleep(0.05)

    monkeypatch.setattr(ScanoutView, "paintGL", slow_paint)
    virgl_viewer.wait_frame(win)  # the newest frame of burst 1, painted slowly
    paints = view.paints
    g.proc.send_signal(signal.SIGUSR1)
    assert g.wait_exit(virgl_viewer.qtbot, timeout=60) == 0, g.log()
    assert presents(sc) == 1 + 2 * BURST
    painted = view.paints - paints
    assert painted < BURST / 3, f"{painted} paints for {BURST} presents: throttled?"
    # the screen got copies of the burst (at most ~120 a second of them)
    assert 1 <= sc.frames - 1 <= BURST


def test_last_present_reaches_the_screen_after_a_fast_burst(virgl_viewer, guests, pix) -> None:
    """Presents faster than the screen are copied at most ~120 times a second;
    the newest one still reaches the window once the guest stops drawing."""
    g = guests.script(BURSTER, virgl_viewer.path, "2")
    (win,) = virgl_viewer.wait_scanouts(1)
    sc = win.scanout
    g.proc.send_signal(signal.SIGUSR1)
    virgl_viewer.qtbot.waitUntil(lambda: sc.presents == 1 + BURST, timeout=60_000)
    assert sc.frames < sc.presents  # the rate limit skipped copies
    # the window shows the burst's last frame (the counter pattern draws its number)
    last = expected_image("counter", 160, 120, BURST, 0)
    virgl_viewer.qtbot.waitUntil(lambda: pix.rgba(virgl_viewer.grab(win)) == last,
                                 timeout=10000)
    g.proc.send_signal(signal.SIGUSR1)
    assert g.wait_exit(virgl_viewer.qtbot, timeout=60) == 0, g.log()
