"""How much CPU other people's processes used while a benchmark ran.

Why: the benchmarks run on a shared 2-core machine, where a test suite or another bench
started by someone else can take a core for a while and move one side of an A/B pair by
tens of percent. A number measured like that should say so. How: around a measurement,
the machine's busy CPU time (/proc/stat) minus our own (this process and the children it
waited for, os.times(), plus the X server we draw on, which works for our clients) is the
CPU others used; divided by the wall time it is in cores (0.0 = nobody else, 1.0 = a
whole core busy elsewhere on average). Processes that come and go in between are counted
too, since /proc/stat is machine-wide. One exception to os.times(): virgl_test_server
forks a renderer per client and never waits for it, so that CPU reaches nobody's
children times; ``track_pgid`` polls the members of the server's process group instead
(a renderer's last ~0.2 s can be missed). ``wait_quiet`` waits, before a measurement,
until the others are (nearly) idle.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from support.procs import descendants  # tests/ is on sys.path (run_bench puts it there)

TICKS = os.sysconf("SC_CLK_TCK")


def _busy_s() -> float:
    """Busy CPU seconds of the whole machine since boot (all but idle and iowait)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / TICKS


def _x_server_pids(display: str) -> list[int]:
    """Pids of the X server(s) serving ``display`` (e.g. ":99")."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"Xvfb") and display.encode() in argv[1:]:
            pids.append(int(entry.name))
    return pids


def _stat(path: str | Path) -> tuple[str, list[str]] | None:
    """A /proc stat file: (the name in parentheses, the fields after it), None if gone."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    name, rest = text.split("(", 1)[1].rsplit(")", 1)
    return name, rest.split()


def _cpu_s(fields: list[str]) -> float:
    """utime + stime of a stat's fields (after the name), in seconds."""
    return (int(fields[11]) + int(fields[12])) / TICKS


def _pid_cpu_s(pids: list[int]) -> float:
    return sum(_cpu_s(st[1]) for pid in pids if (st := _stat(f"/proc/{pid}/stat")))


def _pgid_cpu_s(pgid: int, skip: int) -> dict[int, float]:
    """CPU seconds of every process in group ``pgid`` but ``skip``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == skip:
            continue
        st = _stat(entry / "stat")
        if st is not None and int(st[1][2]) == pgid:
            found[int(entry.name)] = _cpu_s(st[1])
    return found


class ForeignLoad:
    """``with ForeignLoad(display) as load: ...``; then ``load.cores``. Every child we
    start inside (or list in ``started``) must have been waited for by the end."""

    def __init__(self, display: str | None = None, track_pgid: int | None = None,
                 started: tuple[int, ...] = ()) -> None:
        self.x_pids = _x_server_pids(display) if display else []
        self.track_pgid = track_pgid
        self.started = started  # our children already running: their CPU so far is not news
        self.cores = 0.0
        self._tracked: dict[int, tuple[float, float]] = {}  # pid: (first seen, last seen)
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def _poll(self, pgid: int) -> None:
        while True:
            for pid, cpu in _pgid_cpu_s(pgid, skip=pgid).items():
                first = self._tracked.get(pid, (cpu, cpu))[0]
                self._tracked[pid] = (first, cpu)
            if self._stop.wait(0.2):
                return

    def _ours(self) -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system + _pid_cpu_s(
            self.x_pids)

    def __enter__(self) -> ForeignLoad:
        if self.track_pgid is not None:
            self._poller = threading.Thread(target=self._poll, args=(self.track_pgid,),
                                            daemon=True)
            self._poller.start()
        self._t0, self._busy0 = time.monotonic(), _busy_s()
        self._ours0 = self._ours() + _pid_cpu_s(list(self.started))
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self._t0
        busy = _busy_s() - self._busy0
        ours = self._ours() - self._ours0
        if self._poller is not None:
            self._stop.set()
            self._poller.join()
            ours += sum(last - first for first, last in self._tracked.values())
        self.cores = max(0.0, (busy - ours) / wall) if wall > 0 else 0.0


def wait_quiet(display: str | None, threshold: float = 0.2, max_wait: float = 60.0) -> float:
    """Wait until others used < ``threshold`` cores over a second (at most ``max_wait``
    s); returns the seconds waited."""
    start = time.monotonic()
    while True:
        with ForeignLoad(display) as load:
            time.sleep(1.0)
        waited = time.monotonic() - start
        if load.cores < threshold or waited >= max_wait:
            return waited


def _thread_cpu_s(pid: int) -> dict[tuple[int, int, str], float]:
    """CPU seconds of each thread of ``pid``: {(pid, tid, name): seconds}."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return {}
    return {(pid, int(tid), st[0]): _cpu_s(st[1]) for tid in tids
            if (st := _stat(f"/proc/{pid}/task/{tid}/stat"))}


# the viewer's threads by what they do (thread names: Qt's, llvmpipe's, ours)
CPU_GROUPS = ("gui_thread", "gui_raster", "gui_render", "gui_other", "renderers", "x_server")


class CpuSplit:
    """``with CpuSplit(viewer_pid, display) as split: ...``; then ``split.cores``: the cores
    (CPU seconds per wall second) the viewer used, split by CPU_GROUPS: its GUI thread,
    its llvmpipe rasterizer threads (in process isolation they draw only the GUI; in
    shared mode the guests' frames too), its render thread (shared mode: virgl-render
    and virglrenderer's fence thread), its other threads, its renderer processes (process
    isolation: the workers and the zygote) and the X server it draws on. Why: FPS ratios
    move by 10 % between rounds on a shared machine, CPU per component much less, and it
    says where the GUI's cost goes. Threads and processes are polled every 0.2 s (a
    renderer exits with its client: its last 0.2 s can be missed)."""

    def __init__(self, viewer_pid: int, display: str | None) -> None:
        self.viewer_pid = viewer_pid
        self.x_pids = _x_server_pids(display) if display else []
        self.cores: dict[str, float] = {}
        self._seen: dict[tuple[int, int, str], tuple[float, float]] = {}
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, daemon=True)

    def _snapshot(self) -> None:
        found: dict[tuple[int, int, str], float] = {}
        for pid in (self.viewer_pid, *descendants(self.viewer_pid), *self.x_pids):
            found.update(_thread_cpu_s(pid))
        for key, cpu in found.items():
            first = self._seen.get(key, (cpu, cpu))[0]
            self._seen[key] = (first, cpu)

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            self._snapshot()

    def _group(self, pid: int, tid: int, name: str) -> str:
        if pid in self.x_pids:
            return "x_server"
        if pid != self.viewer_pid:
            return "renderers"
        if tid == pid:
            return "gui_thread"
        if name.startswith("llvmpipe"):
            return "gui_raster"
        if name in ("virgl-render", "vrend-sync"):
            return "gui_render"
        return "gui_other"

    def __enter__(self) -> CpuSplit:
        self._t0 = time.monotonic()
        self._snapshot()
        # a thread first seen later started after us: all its CPU is news
        self._known = set(self._seen)
        self._poller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._poller.join()
        self._snapshot()
        wall = time.monotonic() - self._t0
        used = dict.fromkeys(CPU_GROUPS, 0.0)
        for key, (first, last) in self._seen.items():
            used[self._group(*key)] += last - (first if key in self._known else 0.0)
        self.cores = {g: s / wall for g, s in used.items()} if wall > 0 else {}
