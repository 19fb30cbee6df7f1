"""Private Xvfb servers: the one way the tests (and ``bench/``) get an X display.

Xvfb's ``-displayfd`` picks a free display number itself and writes it to a pipe once the
server accepts connections, so there is no guessing of free numbers and no polling. It is
started through a tiny launcher that asks the kernel to SIGTERM it when its parent dies
(PR_SET_PDEATHSIG, then exec: no preexec_fn in a threaded process), so a killed test run
leaves no Xvfb behind. ``session_display`` gives a whole test run (or a benchmark) one.
"""

from __future__ import annotations

import atexit
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import MutableMapping
from pathlib import Path
from types import TracebackType

from support.procs import stop_process

SCREEN = "1280x1024x24"  # the size conformance/README.md's reference runs used
START_TIMEOUT_S = 20.0
_LAUNCH = ("import ctypes, os, signal, sys; ctypes.CDLL(None).prctl(1, signal.SIGTERM); "
           "os.execv(sys.argv[1], sys.argv[1:])")  # 1: PR_SET_PDEATHSIG


class XvfbError(RuntimeError):
    """Xvfb could not be started."""


class Xvfb:
    """``Xvfb :N -screen 0 1280x1024x24 -nolisten tcp`` on a free display number.

    Use as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    def __init__(self, screen: str = SCREEN, log_path: Path | None = None) -> None:
        self.screen = screen
        self.log_path = log_path
        self.number: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def display(self) -> str:
        """The ``DISPLAY`` value, e.g. ``:3``."""
        if self.number is None:
            raise XvfbError("Xvfb is not running")
        return f":{self.number}"

    def start(self) -> Xvfb:
        exe = shutil.which("Xvfb")
        if exe is None:
            raise XvfbError("Xvfb is not installed (apt-get install xvfb)")
        read_fd, write_fd = os.pipe()
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _LAUNCH, exe, "-displayfd", str(write_fd),
                 "-screen", "0", self.screen,
                 "-nolisten", "tcp", "-noreset"],
                pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)
        finally:
            os.close(write_fd)
            if log is not subprocess.DEVNULL:
                log.close()  # type: ignore[union-attr]
        try:
            self.number = self._read_display(read_fd)
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(read_fd)
        return self

    def _read_display(self, fd: int) -> int:
        deadline = time.monotonic() + START_TIMEOUT_S
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise XvfbError(f"Xvfb did not report a display within {START_TIMEOUT_S} s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 64)
            if not chunk:
                code = self._proc.poll() if self._proc else None
                raise XvfbError(f"Xvfb exited before it was ready (exit status {code})")
            data += chunk
        return int(data.strip())

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc, 10)

    def __enter__(self) -> Xvfb:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def session_display(env: MutableMapping[str, str]) -> Xvfb | None:
    """Start an Xvfb for the rest of this process and point ``env["DISPLAY"]`` at it
    (stopped at exit, or by the kernel when the process dies). Without Xvfb installed,
    ``env`` keeps the display it has (a desktop session's) and None is returned."""
    if shutil.which("Xvfb") is None:
        return None
    xvfb = Xvfb().start()
    atexit.register(xvfb.stop)
    env["DISPLAY"] = xvfb.display
    env.pop("WAYLAND_DISPLAY", None)
    return xvfb
