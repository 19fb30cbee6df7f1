"""Waiting on conditions and stopping subprocesses: the one place for both, used by the
tests that start the app, a guest, a server, Xvfb or a Mesa client as processes of their
own (and by ``bench/``). Qt tests wait with ``qtbot.waitUntil`` instead, which keeps
processing Qt events. And the environment of a program that is not ours (``tool_env``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

SANITIZER_RUNTIMES = ("libasan.", "libubsan.", "libclang_rt.")


def sanitized() -> bool:
    """Whether this run preloads a sanitizer runtime (``make test-asan``): our code then
    runs sanitized, two to three times slower."""
    return any(map(_is_sanitizer, os.environ.get("LD_PRELOAD", "").split(":")))


def _is_sanitizer(path: str) -> bool:
    return bool(path) and Path(path).name.startswith(SANITIZER_RUNTIMES)


def tool_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: ours) for a program that loads nothing of ours and is not
    under test itself (man, appstreamcli): without a sanitizer runtime in ``LD_PRELOAD``
    (``make test-asan`` preloads one for our processes). Such tools are not built for it:
    under GCC 12's libasan groff's troff aborts on its own alloc-dealloc mismatch and
    appstreamcli deadlocks in bindtextdomain."""
    env = dict(os.environ if base is None else base)
    keep = [p for p in env.pop("LD_PRELOAD", "").split(":") if p and not _is_sanitizer(p)]
    if keep:
        env["LD_PRELOAD"] = ":".join(keep)
    return env


def wait_for(pred: Callable[[], object], timeout: float = 10.0, step: float = 0.02) -> bool:
    """Poll ``pred`` until it is true or ``timeout`` seconds pass (a generous deadline:
    it only bounds a failure); whether it became true."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0, *,
                 sig: int = signal.SIGTERM, group: bool = False) -> int | None:
    """Send ``sig`` to ``proc`` (with ``group``: to its process group, which it leads)
    if it still runs; SIGKILL it (the group) if it has not exited in ``timeout``. Its
    exit status (negative: ended by that signal); None without a process."""
    if proc is None:
        return None
    if proc.poll() is None:
        _signal(proc, sig, group)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL, group)
            proc.wait()
    return proc.returncode


def _signal(proc: subprocess.Popen[bytes], sig: int, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)


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


def process_table() -> list[tuple[int, str, int]]:
    """(pid, state letter, parent pid) of every process, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out.append((int(entry), fields[0], int(fields[1])))
    return out


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, theirs, ...), from /proc."""
    kids: dict[int, list[int]] = {}
    for child, state, parent in process_table():
        if state != "Z":
            kids.setdefault(parent, []).append(child)
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def renderer_workers(server_pid: int) -> list[int]:
    """The renderer worker processes of a viewer running ``--isolation process``: the
    children of its zygote (the child of the server running virgl_viewer.zygote)."""
    workers = []
    for pid in descendants(server_pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2:].split()[1])
        if b"virgl_viewer.zygote" in argv and parent != server_pid:
            workers.append(pid)
    return workers
