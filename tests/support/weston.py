"""A private weston (headless backend, GL renderer): the Wayland compositor of the tests.

Weston runs in a private ``XDG_RUNTIME_DIR`` (a fresh 0700 directory) on a fixed socket
name there. Readiness is an event, twice over: weston's ``systemd-notify.so`` module
(loaded after the socket listens and the shell is up) sends ``READY=1`` to the datagram
socket named by ``NOTIFY_SOCKET``, which is ours; weston exiting instead wakes the same
wait through its pidfd. Then a ``wl_display.sync`` sent on the Wayland socket (the bytes
written here by hand: wl_display is object 1, ``sync`` its request 0, the reply a
``wl_callback.done`` event on the new object 2) shows that it serves clients.

The GL renderer is asked for as the release's weston spells it: ``--use-gl`` until
weston 11, ``--renderer=gl`` from weston 12 (Debian 12 has 10.0.1, Debian 13 14.0).
``--debug`` lets ``weston-screenshooter`` read the output back (:meth:`screenshot`).
Weston runs under the same launcher as Xvfb (SIGTERM when its parent dies).
"""

from __future__ import annotations

import atexit
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path
from types import TracebackType
from typing import Any

from support.procs import stop_process
from support.xvfb import _LAUNCH

START_TIMEOUT_S = 60.0
SCREENSHOT_TIMEOUT_S = 30.0
SIZE = (1280, 1024)  # as the suite's Xvfb screen
SOCKET_NAME = "wayland-vv"


class WestonError(RuntimeError):
    """weston could not be started, or did not do what was asked."""


def weston_version(exe: str) -> tuple[int, ...]:
    """``weston --version`` as numbers, e.g. (10, 0, 1)."""
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True,
                         timeout=30).stdout
    m = re.search(r"weston (\d+)\.(\d+)(?:\.(\d+))?", out)
    if m is None:
        raise WestonError(f"cannot read weston's version from {out!r}")
    return tuple(int(g or 0) for g in m.groups())


def gl_renderer_args(version: tuple[int, ...]) -> list[str]:
    """The headless backend's option for the GL renderer in that weston release."""
    return ["--renderer=gl"] if version >= (12,) else ["--use-gl"]


class Weston:
    """``weston --backend=headless --GL renderer --debug`` with a private
    ``XDG_RUNTIME_DIR``. Use as a context manager, or :meth:`start` / :meth:`stop`.
    :attr:`env` holds the variables a client needs to reach it."""

    def __init__(self, size: tuple[int, int] = SIZE, log_path: Path | None = None,
                 scale: int = 1) -> None:
        self.size = size  # the output's pixels (``scale`` of them a logical pixel)
        self.scale = scale
        self.log_path = log_path
        self.version: tuple[int, ...] = ()
        self.runtime_dir: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """``XDG_RUNTIME_DIR`` and ``WAYLAND_DISPLAY`` of this compositor."""
        if self.runtime_dir is None:
            raise WestonError("weston is not running")
        return {"XDG_RUNTIME_DIR": self.runtime_dir, "WAYLAND_DISPLAY": SOCKET_NAME}

    @property
    def socket_path(self) -> str:
        return os.path.join(self.env["XDG_RUNTIME_DIR"], SOCKET_NAME)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def start(self) -> Weston:
        exe = shutil.which("weston")
        if exe is None:
            raise WestonError("weston is not installed (apt-get install weston)")
        self.version = weston_version(exe)
        self.runtime_dir = tempfile.mkdtemp(prefix="vv-wayland-")  # mode 0700
        if self.log_path is None:
            self.log_path = Path(self.runtime_dir) / "weston.log"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            notify.bind(os.path.join(self.runtime_dir, "notify"))
            env = dict(os.environ, XDG_RUNTIME_DIR=self.runtime_dir,
                       NOTIFY_SOCKET=notify.getsockname())
            for var in ("DISPLAY", "WAYLAND_DISPLAY", "WAYLAND_SOCKET", "WATCHDOG_USEC"):
                env.pop(var, None)
            width, height = self.size
            with open(self.log_path, "wb") as log:
                self._proc = subprocess.Popen(
                    [sys.executable, "-c", _LAUNCH, exe, "--backend=headless-backend.so",
                     *gl_renderer_args(self.version), f"--width={width}",
                     f"--height={height}", f"--scale={self.scale}",
                     f"--socket={SOCKET_NAME}", "--no-config",
                     "--idle-time=0", "--debug", "--modules=systemd-notify.so"],
                    env=env, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True)
            self._wait_notified(notify)
            self._wait_serving()
        except BaseException:
            self.stop()
            raise
        finally:
            notify.close()
        log = self.log()
        if "gl-renderer" not in log:
            self.stop()
            raise WestonError(f"weston did not load its GL renderer:\n{log}")
        return self

    def _wait_notified(self, notify: socket.socket) -> None:
        """Wait for weston's ``READY=1`` (its systemd-notify module, loaded after the
        socket listens and the shell is up) or for weston to exit (its pidfd)."""
        assert self._proc is not None
        pidfd = os.pidfd_open(self._proc.pid)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WestonError(f"weston was not ready within {START_TIMEOUT_S} s:\n"
                                      f"{self.log()}")
                ready, _, _ = select.select([notify, pidfd], [], [], left)
                if notify in ready and b"READY=1" in notify.recv(4096).split(b"\n"):
                    return
                if pidfd in ready:
                    raise WestonError(f"weston exited (status {self._proc.wait()}):\n"
                                      f"{self.log()}")
        finally:
            os.close(pidfd)

    def _wait_serving(self) -> None:
        """Send ``wl_display.sync`` (new callback id 2) on the socket and wait for the
        callback's ``done`` event: weston serves clients."""
        deadline = time.monotonic() + START_TIMEOUT_S
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(self.socket_path)
            conn.sendall(struct.pack("=III", 1, (12 << 16) | 0, 2))
            data = b""
            while True:
                while len(data) >= 8:
                    obj, size_op = struct.unpack_from("=II", data)
                    if obj == 2 and size_op & 0xFFFF == 0:  # wl_callback.done
                        return
                    data = data[max(size_op >> 16, 8):]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WestonError(f"weston did not answer within {START_TIMEOUT_S} s:\n"
                                      f"{self.log()}")
                ready, _, _ = select.select([conn], [], [], left)
                if not ready:
                    continue
                chunk = conn.recv(4096)
                if not chunk:
                    raise WestonError(f"weston closed the connection:\n{self.log()}")
                data += chunk

    def screenshot(self) -> Any:
        """What weston's output shows now, as a QImage (``weston-screenshooter``, which
        writes a PNG into its working directory)."""
        from PySide6.QtGui import QImage

        exe = shutil.which("weston-screenshooter")
        if exe is None:
            raise WestonError("weston-screenshooter is missing (it comes with weston)")
        env = {k: v for k, v in os.environ.items()
               if k not in ("DISPLAY", "LD_PRELOAD", "GALLIUM_DRIVER")}
        with tempfile.TemporaryDirectory(prefix="vv-shot-") as d:
            env.update(self.env, HOME=d, XDG_PICTURES_DIR=d)
            done = subprocess.run([exe], cwd=d, env=env, capture_output=True,
                                  timeout=SCREENSHOT_TIMEOUT_S, check=False)
            shots = sorted(Path(d).rglob("*.png"))
            if done.returncode != 0 or len(shots) != 1:
                raise WestonError(f"weston-screenshooter failed (exit {done.returncode}, "
                                  f"{len(shots)} PNGs): {done.stderr.decode(errors='replace')}")
            img = QImage(str(shots[0]))
        if img.isNull():
            raise WestonError("weston-screenshooter wrote a PNG Qt cannot read")
        return img.convertToFormat(QImage.Format.Format_RGB888)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc, 10)
        if self.runtime_dir is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
            self.runtime_dir = None

    def __enter__(self) -> Weston:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def session_compositor(env: MutableMapping[str, str]) -> Weston:
    """Start a weston for the rest of this process (stopped at exit, or by the kernel when
    the process dies) and point ``env`` at it: ``WAYLAND_DISPLAY``, ``XDG_RUNTIME_DIR``,
    ``QT_QPA_PLATFORM=wayland``, no ``DISPLAY`` (nothing falls back to X11 unnoticed)."""
    weston = Weston().start()
    atexit.register(weston.stop)
    env.update(weston.env, QT_QPA_PLATFORM="wayland")
    env.pop("DISPLAY", None)
    env.pop("QT_XCB_GL_INTEGRATION", None)
    return weston
