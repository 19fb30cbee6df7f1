"""``python tests/support/wayland_shot.py OUT.png``: the screenshot of the viewer on Wayland
in the README (docs/viewer-wayland.png), taken as a user would see it.

A private weston (headless, GL renderer, 1280x800), the ``virgl-viewer`` app on it as a
user starts it (only ``WAYLAND_DISPLAY`` set: the app picks Qt's wayland platform), two
guests through its socket: our ``virgl-guest`` with two scanouts and Mesa's glxgears
(virpipe; glxgears itself draws its X window on a private Xvfb, its scanout appears in the
viewer on Wayland). Weston's shell places the windows. The picture is taken once the app
has shown the first frame of all three scanouts and weston's output shows the counter
guest's background colour.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.mesa import mesa_env
from support.procs import start_guest_cli, start_logged, start_serving, stop_process, wait_for
from support.screen import image_of
from support.weston import Weston
from support.xvfb import Xvfb

VIEWER = Path(sys.executable).with_name("virgl-viewer")
COUNTER_BG = (0x30, 0x60)  # green and blue of scanout 0's "counter" background


def main(out: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="vv-shot-") as d, \
            Weston(size=(1280, 800)) as weston, Xvfb() as xvfb:
        sock = os.path.join(d, "vtest.sock")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("QT_", "PYOPENGL_")) and k != "DISPLAY"}
        env.update(weston.env)
        viewer, log = start_serving([str(VIEWER), "--socket", sock, "--log-level", "info"],
                                    Path(d) / "viewer.log", env)
        guest = start_guest_cli(sock, "virgl-guest", [
            "--scanouts", "2", "--size", "320x240,240x180", "--pattern", "counter",
            "--fps", "30", "--frames", "0"], env)
        gears = None
        if shutil.which("glxgears"):
            gears, _ = start_logged(["glxgears"], Path(d) / "glxgears.log",
                                    mesa_env(sock, xvfb.display))
        want = 3 if gears else 2
        try:
            if not wait_for(lambda: log().count("first frame for the screen") >= want, 60):
                print(log(), file=sys.stderr)
                return 1

            def counter_shown() -> bool:
                shot = image_of(weston.screenshot())
                rgb = shot.rgb
                hits = sum(1 for i in range(0, len(rgb), 3 * 97)
                           if (rgb[i + 1], rgb[i + 2]) == COUNTER_BG)
                if hits > 50:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    weston.screenshot().save(str(out))
                    return True
                return False

            if not wait_for(counter_shown, 60, step=0.2):
                print("weston's output never showed the guest", file=sys.stderr)
                return 1
        finally:
            for proc in (gears, guest, viewer):
                stop_process(proc)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
