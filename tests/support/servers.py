"""Start and stop a vtest server on a private socket: ours or upstream's.

Ours: ``python -m virgl_viewer --headless --socket PATH``; ready when PATH accepts a
connection, and on SIGTERM it must exit 0 after removing PATH.
Upstream: ``virgl_test_server --use-egl-surfaceless --socket-path=PATH`` (``=``: the spaced
form is broken in 0.10.4). Mode ``fork`` (the default) forks a renderer per client, the
only way it serves Mesa 22.3.6's protocol-2 clients side by side; mode ``multi`` adds
``--multi-clients --no-fork`` (one process, protocol 3 clients only). It runs in its own
session so stopping it also ends its forked children.

Both get the same environment: ours minus client-side variables (a server that inherits
``GALLIUM_DRIVER=virpipe`` would try to render through itself) plus
``MESA_SHADER_CACHE_DISABLE=true``. ``LD_PRELOAD`` keeps what the run itself was started
with (``make test-asan``: the sanitizer runtime, which the sanitized binding needs) minus
the clients' ``vtest_redirect.so``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Literal

from support import REPO_ROOT
from support.procs import stop_process, wait_for

ServerKind = Literal["ours", "upstream"]
UpstreamMode = Literal["fork", "multi"]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
CLIENT_ONLY_ENV = ("GALLIUM_DRIVER", "VTEST_SOCKET_NAME", "DISPLAY",
                   "LIBGL_ALWAYS_SOFTWARE", "PIGLIT_PLATFORM", "WAYLAND_DISPLAY",
                   # a venus guest's: the servers' render server must see the host's ICDs
                   "VN_DEBUG", "VK_DRIVER_FILES", "VK_ICD_FILENAMES")
CLIENT_ONLY_PRELOAD = "vtest_redirect.so"


_PROBLEM_RE = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b|Fatal Python error")


class ServerError(RuntimeError):
    """The server did not start, died, or did not stop cleanly."""


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment both servers run in."""
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_ONLY_ENV}
    preload = [p for p in env.pop("LD_PRELOAD", "").split(":")
               if p and Path(p).name != CLIENT_ONLY_PRELOAD]
    if preload:
        env["LD_PRELOAD"] = ":".join(preload)
    env["MESA_SHADER_CACHE_DISABLE"] = "true"
    env.setdefault("PYTHONUNBUFFERED", "1")
    if extra:
        env.update(extra)
    return env


def accepts_connections(path: Path) -> bool:
    """True when a vtest server listens on ``path`` (connect, then close at once)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


class Server:
    """One vtest server process with its log in a file.

    ``socket_path`` must be private (a tmp dir): never ``/tmp/.virgl_test``.
    """

    def __init__(self, kind: ServerKind, socket_path: Path, log_path: Path, *,
                 upstream_mode: UpstreamMode = "fork", log_level: str = "info",
                 python: str | None = None, env: dict[str, str] | None = None,
                 venus: bool = False, args: tuple[str, ...] = ()) -> None:
        if kind not in ("ours", "upstream"):
            raise ValueError(f"unknown server kind {kind!r}")
        if str(socket_path) == "/tmp/.virgl_test":
            raise ValueError("tests must not use /tmp/.virgl_test")
        self.kind: ServerKind = kind
        self.socket_path = Path(socket_path)
        self.log_path = Path(log_path)
        self.upstream_mode = upstream_mode
        self.log_level = log_level
        self.python = python or sys.executable
        self.extra_env = env
        self.venus = venus  # both: --venus (Vulkan guests through virgl_render_server)
        self.extra_args = args  # ours: more command-line options (--isolation shared)
        self.returncode: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def argv(self) -> list[str]:
        if self.kind == "ours":
            return [self.python, "-m", "virgl_viewer", "--headless",
                    "--socket", str(self.socket_path), "--log-level", self.log_level,
                    *(["--venus"] if self.venus else []), *self.extra_args]
        argv = ["virgl_test_server", "--use-egl-surfaceless",
                f"--socket-path={self.socket_path}", *(["--venus"] if self.venus else [])]
        if self.upstream_mode == "multi":
            argv += ["--multi-clients", "--no-fork"]
        return argv

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> Server:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self.argv, cwd=REPO_ROOT, env=server_env(self.extra_env),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self._terminate()
            raise
        return self

    def _wait_ready(self) -> None:
        proc = self._proc
        assert proc is not None
        if wait_for(lambda: proc.poll() is not None or accepts_connections(self.socket_path),
                    START_TIMEOUT_S):
            if proc.poll() is None:
                return
            raise ServerError(f"{self.kind} server exited with status "
                              f"{proc.returncode} before listening:\n{self.log()}")
        raise ServerError(f"{self.kind} server did not listen on {self.socket_path} within "
                          f"{START_TIMEOUT_S} s:\n{self.log()}")

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        """Everything the server wrote to stdout/stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_problems(self) -> list[str]:
        """Log lines that mean something went wrong in our server (a traceback, an error).

        Empty for upstream: it logs every client disconnect as "client failed".
        """
        if self.kind != "ours":
            return []
        return [line for line in self.log().splitlines() if _PROBLEM_RE.search(line)]

    def _terminate(self) -> int | None:
        proc = self._proc
        if proc is None:
            return self.returncode
        # upstream's forked children serve clients on their own: its whole group
        stop_process(proc, STOP_TIMEOUT_S, group=self.kind == "upstream")
        with contextlib.suppress(ProcessLookupError):  # stragglers of our own group
            os.killpg(proc.pid, signal.SIGKILL)
        self.returncode = proc.returncode
        self._proc = None
        return self.returncode

    def stop(self, check: bool = True) -> int | None:
        """SIGTERM and wait. With ``check``, ours must exit 0 and remove its socket."""
        was_alive = self.alive()
        rc = self._terminate()
        if check and self.kind == "ours":
            if not was_alive:
                raise ServerError(f"our server died before it was stopped (status {rc}):\n"
                                  f"{self.log()}")
            if rc != 0:
                raise ServerError(f"our server exited with status {rc} on SIGTERM:\n"
                                  f"{self.log()}")
            if self.socket_path.exists():
                raise ServerError(f"our server left its socket {self.socket_path} behind")
        if self.kind == "upstream":  # upstream never removes it
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
        return rc

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop(check=exc_type is None)
