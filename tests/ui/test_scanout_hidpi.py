"""HiDPI: at a device pixel ratio of 2 a scanout window opens at the guest's size in device
pixels and shows one guest pixel per device pixel, exactly, on the screen.

The ratio must be set before Qt starts, so the app runs in its own process
(``QT_SCALE_FACTOR=2``) on an X server of its own; a small harness around the product's
entry point reports where the scanout's view lies on the screen, and the test compares
the screen's pixels there with the guest's pattern."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest
from support.procs import start_guest_cli, start_serving, stop_process, wait_for
from support.screen import Box, grab_root
from support.xvfb import Xvfb

from virgl_viewer.guest.patterns import expected_image

pytestmark = pytest.mark.timeout(120)

# The product's entry point, plus a timer that writes, once the scanout window shows a
# frame, the view's device-pixel rectangle on the screen and its pixel ratio.
HARNESS = """
import json, sys
from virgl_viewer.ui import controller as c

start = c.ViewerController.start

def started(self):
    start(self)
    from PySide6.QtCore import QPoint, QTimer
    timer = QTimer()

    def report():
        for win in self.windows.values():
            v = win.view
            if v.paints and v.isVisible():
                dpr = v.devicePixelRatioF()
                p = v.mapToGlobal(QPoint(0, 0))
                print("VIEW " + json.dumps({"dpr": dpr, "x": round(p.x() * dpr),
                      "y": round(p.y() * dpr), "w": round(v.width() * dpr),
                      "h": round(v.height() * dpr), "blits": v.blits}), flush=True)
    timer.timeout.connect(report)
    timer.start(250)
    self._hidpi_timer = timer

c.ViewerController.start = started
from virgl_viewer.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def test_device_pixel_ratio_2_shows_one_guest_pixel_per_device_pixel() -> None:
    w, h = 240, 160  # 120 x 80 logical: above the view's minimum size
    with tempfile.TemporaryDirectory(prefix="vv-hidpi-") as d, \
            Xvfb(log_path=Path(d, "xvfb.log")) as xvfb:
        sock, log_path = str(Path(d, "vtest.sock")), Path(d, "viewer.log")
        env = dict(os.environ, DISPLAY=xvfb.display, XDG_CONFIG_HOME=d,
                   QT_SCALE_FACTOR="2")
        env.pop("QT_SCREEN_SCALE_FACTORS", None)
        app, log = start_serving([sys.executable, "-c", HARNESS, "--socket", sock],
                                 log_path, env)
        guest = None
        try:
            guest = start_guest_cli(sock, "hidpi", ["--size", f"{w}x{h}", "--fps", "30",
                                                    "--pattern", "gradient"], env)

            def view() -> dict[str, float] | None:
                lines = [ln for ln in log().splitlines() if ln.startswith("VIEW ")]
                return json.loads(lines[-1][5:]) if lines else None

            # the window fits itself to the guest: w x h device pixels, drawn 1:1
            assert wait_for(lambda: (v := view()) is not None and (v["w"], v["h"]) == (w, h)
                            and v["blits"] > 0, 60), log()
            first = view()
            assert first is not None
            # a few more frames blitted since: the window's pixels are on the X screen
            assert wait_for(lambda: (v := view()) is not None
                            and v["blits"] >= first["blits"] + 3, 60), log()
            v = view()
            assert v is not None and v["dpr"] == 2.0, v
            shot = grab_root(xvfb.display)
            got = shot.crop(Box(int(v["x"]), int(v["y"]), w, h)).rgb
            expected = expected_image("gradient", w, h, 0, 0)  # RGBA rows, top first
            want = b"".join(expected[i:i + 3] for i in range(0, len(expected), 4))
            bad = [i // 3 for i in range(0, len(want), 3) if got[i:i + 3] != want[i:i + 3]]
            if bad:
                i = 3 * bad[0]
                pytest.fail(f"{len(bad)} of {w * h} pixels differ at {v}; first at "
                            f"({bad[0] % w}, {bad[0] // w}): got {tuple(got[i:i + 3])}, "
                            f"want {tuple(want[i:i + 3])}")
        finally:
            for p in (app, guest):
                stop_process(p, 20)
        for bad_text in ("Traceback", "Segmentation fault", "Fatal Python error"):
            assert bad_text not in log(), log()
