"""``python -m virgl_viewer`` (the GUI) as users run it: scanout windows opened by a guest,
then SIGTERM or SIGINT, with the guest still presenting or gone. The app must exit with
status 0, remove its socket and print no crash: its GL windows are embedded native
windows whose teardown at exit once segfaulted after every test here had passed."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path

import pytest
from support.procs import start_guest_cli, start_serving, stop_process, wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(("sig", "guest_left"), [(signal.SIGTERM, False),
                                                  (signal.SIGTERM, True),
                                                  (signal.SIGINT, False)])
def test_gui_exits_cleanly_after_showing_scanouts(sig: int, guest_left: bool) -> None:
    assert os.environ.get("DISPLAY"), "no display (tests/conftest.py starts an Xvfb)"
    with tempfile.TemporaryDirectory(prefix="vv-app-") as d:
        sock, log_path = str(Path(d, "vtest.sock")), Path(d, "viewer.log")
        env = dict(os.environ, XDG_CONFIG_HOME=d)  # the layout settings stay private
        app, log = start_serving([sys.executable, "-m", "virgl_viewer", "--socket", sock,
                                  "--log-level", "info"], log_path, env)
        guest = None
        try:
            frames = ["--frames", "20"] if guest_left else []
            guest = start_guest_cli(sock, "exit-guest", [
                "--scanouts", "2", "--size", "320x240,200x150", "--fps", "30",
                "--pattern", "bars", *frames], env)
            # both scanouts reached the GUI (a window and an overview tile each)
            assert wait_for(lambda: log().count(": exit-guest") >= 1
                            and log().count("scanout 2 (resource") >= 1, 60), log()
            # frames of both reached the screen's side
            assert wait_for(lambda: log().count(": first frame for the screen") >= 2, 60), log()
            if guest_left:
                assert guest.wait(60) == 0
                # the GUI took in that the client is gone (its windows say so)
                assert wait_for(lambda: log().count(": client gone") >= 2, 60), log()
            else:
                assert guest.poll() is None  # still presenting while the app exits
            app.send_signal(sig)
            assert app.wait(30) == 0, f"exit status {app.returncode}\n{log()}"
        finally:
            for p in (app, guest):
                stop_process(p, sig=signal.SIGKILL)
        text = log()
        for bad in ("Traceback", "Segmentation fault", "Fatal Python error", "Aborted"):
            assert bad not in text, text
        assert not os.path.lexists(sock)
