"""Waiting on conditions and stopping subprocesses, as the tests that start the app, a
guest or a server as processes of their own do it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def wait_for(pred: Callable[[], object], timeout: float, step: float = 0.05) -> bool:
    """Poll ``pred`` until it is true or ``timeout`` seconds pass; its last value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM ``proc`` if it still runs; SIGKILL it if it has not exited in ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_logged(argv: list[str], log_path: Path, env: dict[str, str]
                 ) -> tuple[subprocess.Popen[bytes], Callable[[], str]]:
    """Start ``argv`` with stdout and stderr into ``log_path``: the process and a
    function reading its log so far."""
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
    return proc, lambda: log_path.read_text(errors="replace")


def start_serving(argv: list[str], log_path: Path, env: dict[str, str],
                  timeout: float = 60.0) -> tuple[subprocess.Popen[bytes], Callable[[], str]]:
    """Start a viewer (``argv``, logging at info) and wait until it serves its socket;
    fails the test with the log if it died or never did."""
    proc, log = start_logged(argv, log_path, env)
    try:
        assert wait_for(lambda: "serving vtest on" in log() or proc.poll() is not None,
                        timeout), log()
        assert proc.poll() is None, log()
    except BaseException:
        stop_process(proc)
        raise
    return proc, log


def start_guest_cli(sock: str, name: str, args: list[str], env: dict[str, str]
                    ) -> subprocess.Popen[bytes]:
    """``virgl-guest --socket SOCK --name NAME ARGS...``, output discarded."""
    return subprocess.Popen([sys.executable, "-m", "virgl_viewer.guest.cli", "--socket", sock,
                             "--name", name, *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
