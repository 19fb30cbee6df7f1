"""Waiting on conditions and stopping subprocesses, as the tests that start the app, a
guest or a server as processes of their own do it."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable


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
