"""Run Mesa virpipe clients (glxgears, glmark2, piglit binaries) against a private server.

Mesa reads ``$VTEST_SOCKET_NAME`` since 23.1 (virgl_vtest_socket.c); Mesa 22.3.6 always
connects to ``/tmp/.virgl_test``, so for Mesa < 23.1 ``build/vtest_redirect.so`` (built by
``make setup``) is ``LD_PRELOAD``-ed to send that one path to ``$VTEST_SOCKET_NAME``.
Clients run in their own session and are killed with their children on timeout.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from support import REPO_ROOT
from support.procs import stop_process, wait_for

VTEST_REDIRECT = REPO_ROOT / "build" / "vtest_redirect.so"
# The first Mesa whose vtest winsys connects to $VTEST_SOCKET_NAME.
MESA_READS_VTEST_SOCKET_NAME = (23, 1)

_GEARS_RE = re.compile(r"(\d+) frames in ([\d.]+) seconds")
_GLMARK_SCORE_RE = re.compile(r"glmark2 Score: (\d+)")
_GLMARK_SCENE_RE = re.compile(
    r"^\[(?P<scene>[\w-]+)\] (?P<opts>.*?): FPS: (?P<fps>\d+) FrameTime: (?P<ft>[\d.]+) ms",
    re.MULTILINE)


@functools.cache
def mesa_version() -> tuple[int, int]:
    """The installed Mesa's (major, minor): the version of Debian's package holding the
    gallium drivers (virpipe included)."""
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "libgl1-mesa-dri"],
                         check=True, capture_output=True, text=True).stdout
    m = re.match(r"(?:\d+:)?(\d+)\.(\d+)", out)
    if m is None:
        raise RuntimeError(f"cannot read Mesa's version from {out!r}")
    return int(m[1]), int(m[2])


def needs_vtest_redirect() -> bool:
    return mesa_version() < MESA_READS_VTEST_SOCKET_NAME


def mesa_env(socket: str | os.PathLike[str], display: str,
             base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a Mesa virpipe client talking to the server on ``socket``."""
    env = dict(os.environ if base is None else base)
    env.update({
        "GALLIUM_DRIVER": "virpipe",
        "LIBGL_ALWAYS_SOFTWARE": "1",
        "DISPLAY": display,
        "MESA_SHADER_CACHE_DISABLE": "true",
        "VTEST_SOCKET_NAME": os.fspath(socket),
    })
    if needs_vtest_redirect():
        if not VTEST_REDIRECT.exists():
            raise FileNotFoundError(f"{VTEST_REDIRECT} is missing: run `make setup`")
        # after what is there: a sanitizer runtime (make test-asan) must come first
        preload = env.get("LD_PRELOAD", "")
        env["LD_PRELOAD"] = f"{preload}:{VTEST_REDIRECT}" if preload else str(VTEST_REDIRECT)
    return env


@dataclass
class ClientResult:
    """What a finished client printed and how it ended."""

    argv: list[str]
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool

    def describe(self) -> str:
        status = "timed out" if self.timed_out else f"exit status {self.returncode}"
        return (f"$ {' '.join(self.argv)}\n[{status} after {self.seconds:.1f} s]\n"
                f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}")


def _kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def run_client(argv: list[str], env: dict[str, str], timeout: float,
               cwd: str | os.PathLike[str] | None = None) -> ClientResult:
    """Run a client to completion, killing it (and its children) after ``timeout`` s."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            _kill_group(proc)
            proc.wait()
    return ClientResult(argv, None if timed_out else proc.returncode,
                        out.decode(errors="replace"), err.decode(errors="replace"),
                        time.monotonic() - start, timed_out)


class BackgroundClient:
    """A client left running (glxgears) with its output in files we can poll."""

    def __init__(self, argv: list[str], env: dict[str, str], log_dir: Path,
                 name: str) -> None:
        self.argv = argv
        self.stdout_path = log_dir / f"{name}.stdout"
        self.stderr_path = log_dir / f"{name}.stderr"
        self.started = time.monotonic()
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, start_new_session=True)

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_for_output(self, pattern: re.Pattern[str], count: int, timeout: float) -> bool:
        """Poll stdout until ``pattern`` matched ``count`` times; False on timeout or exit."""
        wait_for(lambda: len(pattern.findall(self.stdout())) >= count or not self.running(),
                 timeout, step=0.1)
        return len(pattern.findall(self.stdout())) >= count

    def stop(self) -> int | None:
        """SIGTERM (SIGKILL after 5 s); the exit status (negative: killed by a signal)."""
        return stop_process(self.proc, 5, group=True)

    def describe(self) -> str:
        return (f"$ {' '.join(self.argv)}\n[status {self.proc.poll()}]\n--- stdout ---\n"
                f"{self.stdout()[-4000:]}\n--- stderr ---\n{self.stderr()[-4000:]}")

    def __enter__(self) -> BackgroundClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


GEARS_LINE_RE = _GEARS_RE


def glxgears_argv(x: int = 0, y: int = 0, size: int = 300) -> list[str]:
    """glxgears at a fixed place (Xvfb has no window manager to move it)."""
    return ["glxgears", "-geometry", f"{size}x{size}+{x}+{y}"]


def parse_glxgears(text: str) -> list[tuple[int, float]]:
    """``N frames in X seconds`` lines (glxgears prints one every 5 s)."""
    return [(int(n), float(s)) for n, s in _GEARS_RE.findall(text)]


def glxgears_fps(text: str) -> float:
    """Frames over seconds, summed over all report lines; 0 without a report."""
    lines = parse_glxgears(text)
    seconds = sum(s for _, s in lines)
    return sum(n for n, _ in lines) / seconds if seconds else 0.0


@dataclass
class Glmark2Scene:
    """One ``[scene] options: FPS: n FrameTime: t ms`` line."""

    scene: str
    options: str
    fps: int
    frame_time_ms: float


def parse_glmark2(text: str) -> tuple[int | None, list[Glmark2Scene]]:
    """The overall score (None if glmark2 did not print one) and every scene line."""
    scenes = [Glmark2Scene(m["scene"], m["opts"], int(m["fps"]), float(m["ft"]))
              for m in _GLMARK_SCENE_RE.finditer(text)]
    score = _GLMARK_SCORE_RE.search(text)
    return (int(score.group(1)) if score else None), scenes
