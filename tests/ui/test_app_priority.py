"""The GUI yields the CPU to its guests: ``python -m virgl_viewer`` lowers its GUI thread
(and only it) by ``--gui-nice`` levels once the render thread and llvmpipe's rasterizer
threads exist, so a guest's frame never waits for a core the GUI holds (README, "How it
is built"). Read from /proc while a guest is being shown, as ``top -H`` would show it."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
from support.procs import start_guest_cli, start_serving, stop_process, wait_for

pytestmark = pytest.mark.timeout(120)


def thread_nices(pid: int) -> dict[int, tuple[str, int]]:
    """tid -> (name, nice) of every thread of ``pid``."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(tid)] = (name, int(fields[16]))
    return out


@pytest.mark.parametrize("levels", [None, 3, 0])
def test_only_the_gui_thread_runs_at_a_lower_priority(levels: int | None) -> None:
    assert os.environ.get("DISPLAY"), "no display (tests/conftest.py starts an Xvfb)"
    base = os.getpriority(os.PRIO_PROCESS, 0)
    with tempfile.TemporaryDirectory(prefix="vv-nice-") as d:
        sock, log_path = str(Path(d, "vtest.sock")), Path(d, "viewer.log")
        env = dict(os.environ, XDG_CONFIG_HOME=d)
        opt = [] if levels is None else ["--gui-nice", str(levels)]
        app, log = start_serving([sys.executable, "-m", "virgl_viewer", "--socket", sock,
                                  "--log-level", "info", *opt], log_path, env)
        guest = None
        try:
            guest = start_guest_cli(sock, "nice-guest", ["--size", "320x240", "--fps", "30",
                                                         "--pattern", "bars"], env)
            assert wait_for(lambda: "scanout 1 (resource" in log(), 60), log()
            want = min(19, base + (10 if levels is None else levels))
            # the GUI lowers itself after showing its main window: wait for that
            assert wait_for(lambda: thread_nices(app.pid)[app.pid][1] == want, 30), (
                thread_nices(app.pid), log())
            threads = thread_nices(app.pid)
            names = [n for n, _ in threads.values()]
            assert "virgl-render" in names, threads
            assert sum(n.startswith("llvmpipe-") for n in names) >= 1, threads
            for tid, (name, nice) in threads.items():
                if tid == app.pid:
                    assert nice == want, (name, threads)
                elif name == "virgl-render" or name.startswith(("llvmpipe-", "vrend")):
                    # the guests' work keeps the priority the app was started with
                    assert nice == base, (name, threads)
        finally:
            for p in (guest, app):
                if p is not None:
                    stop_process(p)
        assert "Traceback" not in log(), log()
