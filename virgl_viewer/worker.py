"""Renderer workers: one process per client, forked from a zygote.

Why: libvirglrenderer keeps one renderer per process and llvmpipe rasterizes every
context of a process in one queue; a crash in it ends every guest of that process.
How: the main process starts one zygote (``python -m virgl_viewer.zygote``) that has
imported everything and loaded Mesa's driver but initialised nothing (so forking it is
safe: one thread, no GL). For each worker the main process sends the zygote one end of
a new socketpair; the zygote forks, and the child initialises its own EGL display and
libvirglrenderer and runs the same RenderHost / VtestServer / Session code as the
shared mode on its own loop, with ``Reporter`` as the observer that turns what happens
into the event stream (worker_events). It then waits for its one client's socket, serves
it, and exits when the client is gone. The zygote reaps its children and reports each
exit status to the main process, which names the signal when a worker crashed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import resource
import signal
import socket
from typing import TYPE_CHECKING, Any

from virgl_viewer.budgets import Budgets
from virgl_viewer.server import ServerObserver, VtestServer
from virgl_viewer.worker_events import MAX_DATAGRAM, decode_control, encode

if TYPE_CHECKING:
    from virgl_viewer.objects import Resource
    from virgl_viewer.session import Session

log = logging.getLogger(__name__)

STATS_INTERVAL_S = 0.1  # counters, fences and syncs reach the main process this often
BATCH_BYTES = 1 << 16  # events per datagram, at most (well under MAX_DATAGRAM)


@dataclasses.dataclass(frozen=True)
class WorkerConfig:
    budgets: Budgets = dataclasses.field(default_factory=Budgets)
    venus: bool = False
    snapshot_dir: str | None = None
    present_interval: float = 0.0
    frames: bool = False  # export scanout frames to the main process (GUI)
    # limits (setrlimit) of each worker: see worker_limits()
    address_space: int | None = None
    files: int | None = None
    log_level: str = "info"

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        d = json.loads(text)
        d["budgets"] = Budgets(**d["budgets"])
        return cls(**d)


def worker_limits(budgets: Budgets) -> tuple[int, int]:
    """(RLIMIT_AS, RLIMIT_NOFILE) of a worker.

    Address space: what one client may make the worker hold by the budgets (its shm,
    mapped once, plus the renderer's storage of its resources: llvmpipe keeps textures
    in ordinary memory) plus 4 GiB for the interpreter, Mesa, LLVM and llvmpipe's
    thread stacks (a worker serving glxgears uses ~1.2 GiB of address space here).
    Past it an allocation fails in that worker only, instead of the machine's OOM
    killer picking a process. Files: the client socket, the channel, the driver's and
    virglrenderer's fds, the eventfds of its SYNC_WAITs (sync_waits) and the memfds
    being handed over: 1024 is four times what a client can legitimately hold."""
    address = budgets.shm_bytes + budgets.resource_bytes + (4 << 30)
    files = max(1024, 4 * budgets.sync_waits)
    return address, files


def under_sanitizer() -> bool:
    """Whether this process runs with AddressSanitizer's runtime (mapped in)."""
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as f:
            return any("libasan" in line or "libclang_rt.asan" in line for line in f)
    except OSError:
        return False


# ---------------------------------------------------------------- the worker
class Reporter(ServerObserver):
    """The worker's observer: events to the main process, batched per loop turn."""

    def __init__(self, server: VtestServer, chan: socket.socket) -> None:
        self.server = server
        self.loop = server.loop
        self.chan = chan
        self.session: Session | None = None
        self._keys: dict[int, int] = {}  # id(resource) -> key
        self._next_key = 1
        self._out: list[Any] = []
        self._flush_pending = False
        self._backlog: list[bytes] = []
        self._writing = False
        self._last_fid = 0
        self._pending_fids: set[int] = set()
        self._syncs_dirty = True
        self._timelines: dict[int, tuple[int, int]] = {}  # as last sent
        self._last_stats: tuple[int, ...] = ()
        self._last_usage: tuple[int, int] = (0, 0)
        self._timer: asyncio.TimerHandle | None = None
        self.done = False
        # The main process observes (a registry, scanout windows): resources, presents,
        # fences and syncs go to it. If not, only what it always needs (names, counters,
        # the usage for the server-wide budgets, the close reason): no Python per
        # resource or present.
        self.observed = True

    @property
    def wants_resources(self) -> bool:  # type: ignore[override]
        return self.observed

    def observe(self, s: Session) -> None:
        """The main process observes from now on: it learns of every resource now."""
        self.observed = True
        s.sync_resources()
        for r in list(s.resources.values()):
            if id(r) not in self._keys:
                self.resource_created(s, r)

    def put(self, *event: Any) -> None:
        self._out.append(list(event))
        if not self._flush_pending:
            self._flush_pending = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_pending = False
        batch: list[bytes] = []
        size = 0
        for ev in self._out:
            data = encode(ev)
            if batch and size + len(data) > BATCH_BYTES:
                self._backlog.append(b"[" + b",".join(batch) + b"]")
                batch, size = [], 0
            batch.append(data)
            size += len(data) + 1
        if batch:
            self._backlog.append(b"[" + b",".join(batch) + b"]")
        self._out.clear()
        self._drain()

    def _drain(self) -> None:
        while self._backlog:
            try:
                self.chan.send(self._backlog[0])
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # the main process is gone
                self._backlog.clear()
                self.loop.stop()
                return
            self._backlog.pop(0)
        if self._backlog and not self._writing:
            self._writing = True
            self.loop.add_writer(self.chan.fileno(), self._drain)
        elif not self._backlog and self._writing:
            self._writing = False
            self.loop.remove_writer(self.chan.fileno())

    def flush_blocking(self) -> None:
        """Everything queued, before the worker exits."""
        self.flush()
        self.chan.setblocking(True)
        self.chan.settimeout(5.0)
        with contextlib.suppress(OSError):
            for data in self._backlog:
                self.chan.send(data)
        self._backlog.clear()

    # ------------------------------------------------------------ observer
    def session_named(self, s: Session) -> None:
        self.put("named", s.name, s.connected_at)
        if self._timer is None:
            self._timer = self.loop.call_later(STATS_INTERVAL_S, self._tick)

    def resource_created(self, s: Session, r: Resource) -> None:
        if not self.observed:
            return
        key = self._keys[id(r)] = self._next_key
        self._next_key += 1
        self.put("res+", key, r.client_handle, r.server_handle, r.target, r.format, r.bind,
                 r.width, r.height, r.depth, r.array_size, r.last_level, r.nr_samples,
                 bool(r.blob), r.shm.size if r.shm is not None else 0, r.created)

    def resource_destroyed(self, s: Session, r: Resource) -> None:
        key = self._keys.pop(id(r), None)
        if key is not None:
            self.put("res-", key)

    def key_of(self, r: Resource) -> int | None:
        return self._keys.get(id(r))

    def resource_of(self, key: int) -> tuple[Session, Resource] | None:
        """The live resource the main process knows as ``key`` (C-made ones synced)."""
        s = self.session
        if s is None or s.closed:
            return None
        s.sync_resources()
        return next(((s, r) for r in s.resources.values() if self._keys.get(id(r)) == key),
                    None)

    def presented(self, s: Session, r: Resource, count: int = 1) -> None:
        key = self._keys.get(id(r))
        if key is not None:
            self.put("present", key, count)

    def sync_changed(self, s: Session) -> None:
        self._syncs_dirty = True

    def session_closing(self, s: Session) -> None:
        self._stats(s)

    def session_closed(self, s: Session) -> None:
        self.put("closed", s.close_reason)
        self.done = True
        if self._timer is not None:
            self._timer.cancel()
        self.loop.call_soon(self.loop.stop)

    # ------------------------------------------------------------ counters
    def _tick(self) -> None:
        s = self.session
        if s is None or s.closed:
            return
        self._stats(s)
        self._timer = self.loop.call_later(STATS_INTERVAL_S, self._tick)

    def _stats(self, s: Session) -> None:
        fences: list[list[Any]] = []
        if self.observed and (s.fence_submitted > self._last_fid or self._pending_fids):
            start = min([self._last_fid + 1, *self._pending_fids])
            for rec in s.fast.fences(start):
                new = rec.fence_id > self._last_fid
                done = rec.retired is not None and rec.fence_id in self._pending_fids
                if new or done:
                    fences.append([rec.fence_id, rec.created, rec.retired])
                if new:
                    self._last_fid = rec.fence_id
                if rec.retired is None:
                    self._pending_fids.add(rec.fence_id)
                else:
                    self._pending_fids.discard(rec.fence_id)
            if self._pending_fids and min(self._pending_fids) < start:
                self._pending_fids = {f for f in self._pending_fids if f >= start}
        syncs = None
        if self._syncs_dirty and self.observed:
            self._syncs_dirty = False
            waiting: dict[int, int] = {}
            for w in s.sync_waiters:
                for sid in w.need:
                    waiting[sid] = waiting.get(sid, 0) + 1
            syncs = [[sid, sync.value, waiting.get(sid, 0)] for sid, sync in s.syncs.items()]
        _n, mappings, _shm, resource_bytes, grew_at = s.fast.usage()
        if (mappings, resource_bytes) != self._last_usage:
            self._last_usage = (mappings, resource_bytes)
            self.put("usage", mappings, resource_bytes, grew_at)
        timelines = None
        current = s.timelines()  # replaced whole on each change: compared, never copied
        if self.observed and current != self._timelines:
            self._timelines = current
            timelines = [[ring, given, done] for ring, (given, done) in current.items()]
        counters = (s.ctx_id, s.protocol_version, s.capset_id, s.submits, s.bytes_submitted,
                    s.presents, s.fence_submitted, s.fence_completed)
        if (counters == self._last_stats and not fences and syncs is None
                and timelines is None):
            return
        self._last_stats = counters
        self.put("stats", *counters, fences, syncs, timelines)


class Worker:
    """One renderer process's loop: its server, reporter and control channel."""

    def __init__(self, chan: socket.socket, cfg: WorkerConfig) -> None:
        from virgl_viewer.egl import SurfacelessProvider
        from virgl_viewer.renderer import RenderHost
        from virgl_viewer.virgl import FastSelector

        self.chan = chan
        self.cfg = cfg
        self.provider = SurfacelessProvider()
        self.host = RenderHost(self.provider, venus=cfg.venus)
        selector = FastSelector()
        selector.poll_fd = self.host.renderer.poll_fd
        self.loop = asyncio.SelectorEventLoop(selector)
        asyncio.set_event_loop(self.loop)
        self.server = VtestServer(self.loop, self.host, None, (), cfg.budgets)
        self._warm_up()
        if cfg.present_interval > 0:
            self.server.set_present_interval(cfg.present_interval)
        self.reporter = Reporter(self.server, chan)
        self.server.add_observer(self.reporter)
        self.snapshots = None
        if cfg.snapshot_dir:
            from virgl_viewer.snapshots import SnapshotWriter

            self.snapshots = SnapshotWriter(cfg.snapshot_dir)
            self.server.add_observer(self.snapshots)
        self.exporter: Any = None
        if cfg.frames:
            from virgl_viewer.worker_frames import FrameExporter

            self.exporter = FrameExporter(self.server, self.reporter)
            self.server.add_observer(self.exporter)
        chan.setblocking(False)
        self.loop.add_reader(chan.fileno(), self._on_control)

    def _warm_up(self) -> None:
        """Serve one handshake to ourselves before saying "ready" (no observer sees it,
        nothing is logged): after the fork every page the interpreter writes is
        copied on first touch, and the code a client's first messages run through is
        cold; measured here that put ~3 ms between a client's connect and its caps."""
        from virgl_viewer.vtest import protocol as P
        from virgl_viewer.vtest.client_codec import encode_request

        host = self.host
        want = 8 + 12 + (8 + len(host.caps_v2)) + (8 + len(host.caps_v1))
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        theirs.setblocking(False)
        quiet = logging.getLogger("virgl_viewer.session")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            s = self.server.adopt(ours, os.getpid(), os.getuid())
            theirs.sendall(b"".join(encode_request(r) for r in (
                P.CreateRenderer(b"warm-up\0"), P.PingProtocolVersion(), P.ProtocolVersion(2),
                P.GetCaps2(), P.GetCaps())))

            async def replies() -> None:
                got = 0
                while got < want:
                    data = await self.loop.sock_recv(theirs, 1 << 16)
                    if not data:
                        return
                    got += len(data)

            self.loop.run_until_complete(asyncio.wait_for(replies(), 10))
            s.close("warm-up done", quiet=True)
        finally:
            quiet.setLevel(level)
            theirs.close()

    def _on_control(self) -> None:
        while True:
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.chan, MAX_DATAGRAM, 4)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, fds = b"", []
            if not data:
                for fd in fds:
                    os.close(fd)
                self.loop.stop()  # the main process is gone
                return
            self._control(decode_control(data), fds)

    def _control(self, msg: list[Any], fds: list[int]) -> None:
        kind = msg[0]
        if kind == "client" and len(fds) == 1 and self.reporter.session is None:
            sock = socket.socket(fileno=fds[0])
            sock.setblocking(False)
            client = self.server.adopt(sock, int(msg[1]), int(msg[2]))
            self.reporter.session = client
            self.reporter.observed = bool(msg[3]) if len(msg) > 3 else True
            if not (self.reporter.observed or self.snapshots or self.exporter):
                client.fast.notify_present = 0  # nobody looks at its presents
            return
        if kind == "slots" and self.exporter is not None:
            self.exporter.slots(int(msg[1]), str(msg[2]), int(msg[3]), int(msg[4]),
                                int(msg[5]), int(msg[6]), fds, bool(msg[7]))
            return
        for fd in fds:
            os.close(fd)
        s = self.reporter.session
        if kind == "snapshot" and self.snapshots is not None:
            self.snapshots.snapshot_all()
        elif kind == "stop":
            if self.snapshots is not None:
                self.snapshots.snapshot_all()
            if s is not None and not s.closed:
                s.close("server shutting down")
            self.loop.stop()
        elif kind == "drop" and s is not None and not s.closed:
            s.drop(str(msg[1]), str(msg[2]))
        elif kind == "close" and s is not None and not s.closed:
            s.close(str(msg[1]))
        elif kind == "observe" and s is not None and not s.closed:
            self.reporter.observe(s)
            s.fast.notify_present = 1
        elif kind == "present_interval":
            self.server.set_present_interval(float(msg[1]))
        elif kind == "drawn" and self.exporter is not None:
            self.exporter.drawn(int(msg[1]), int(msg[2]), bool(msg[3]))
        elif kind == "preview" and self.exporter is not None:
            self.exporter.preview(int(msg[1]))
        elif kind == "preview_end" and self.exporter is not None:
            self.exporter.preview_end(int(msg[1]))

    def run(self) -> None:
        self.reporter.put("ready", os.getpid())
        try:
            self.loop.run_forever()
        finally:
            if self.exporter is not None:
                self.exporter.close()
            self.server.close()
            self.reporter.flush_blocking()
            self.host.close(self.provider.close)
            self.loop.close()


class LogRelay(logging.Handler):
    """The worker's log records go to the main process, which logs them as its own
    (one log, and a test's caplog sees them); stderr if the channel is full."""

    def __init__(self, chan: socket.socket) -> None:
        super().__init__()
        self.chan = chan
        self.fallback = logging.StreamHandler()
        self.fallback.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            self.chan.send(encode([["log", record.levelno, record.name, text[:1 << 14]]]),
                           socket.MSG_DONTWAIT)
        except OSError:
            self.fallback.emit(record)


def run_worker_child(chan: socket.socket, cfg: WorkerConfig) -> int:
    """In the forked child: become a worker; its exit status."""
    for sig in (signal.SIGINT, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)  # the main process decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    address, files = worker_limits(cfg.budgets)
    address = cfg.address_space or address
    files = cfg.files or files
    limits = [(resource.RLIMIT_NOFILE, files),
              # no core file: a guest that crashes its renderer must not fill the disk
              (resource.RLIMIT_CORE, 0)]
    # AddressSanitizer (make test-asan) reserves terabytes of address space for its
    # shadow memory: under it no address-space limit can hold, so there is none
    if not under_sanitizer():
        limits.append((resource.RLIMIT_AS, address))
    for lim, want in limits:
        _soft, hard = resource.getrlimit(lim)
        resource.setrlimit(lim, (want if hard == resource.RLIM_INFINITY else min(want, hard),
                                 hard))
    with contextlib.suppress(OSError):
        chan.send(encode([["hello", os.getpid()]]))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(LogRelay(chan))
    try:
        Worker(chan, cfg).run()
    except Exception:
        log.exception("renderer worker %d failed", os.getpid())
        return 1
    return 0
