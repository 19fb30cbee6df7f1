"""``--isolation process``: the main process's side of renderer workers.

Why: one guest's crash or load must not reach the others (see worker.py for the
worker's side). How: ``ProcessServer`` is a ClientListener like VtestServer: it accepts,
checks the peer, and hands the socket (SCM_RIGHTS) to a warm worker of ``WorkerPool``,
which then serves the client itself; the per-frame stream never passes through here.
Each worker's event stream (worker_events, checked there) is replayed as the same
ServerObserver calls the shared mode makes, with a ``RemoteSession`` standing in for
the worker's Session, so the state registry, --stats-json, the inspector and the
scanout windows see every worker's clients without knowing where they run.
A worker that dies gives one log line naming the client, its pid and the signal.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, cast

from virgl_viewer.budgets import DEFAULT as DEFAULT_BUDGETS
from virgl_viewer.budgets import Budgets
from virgl_viewer.errors import VirglViewerError
from virgl_viewer.objects import Resource, Sync, SyncWaiter
from virgl_viewer.server import ClientListener, LoopThread, ServerObserver
from virgl_viewer.session import client_name
from virgl_viewer.virgl import FenceRecord
from virgl_viewer.worker import WorkerConfig
from virgl_viewer.worker_pool import POOL_SIZE, WorkerLink, WorkerPool, describe_status

log = logging.getLogger(__name__)

FENCE_LOG = 1024  # fences kept per remote session, as the C log keeps
START_TIMEOUT_S = 30.0


class _Shm:
    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


class RemoteFast:
    """The fence log of a remote session, as ``FastConn.fences`` gives it."""

    def __init__(self) -> None:
        self._recs: dict[int, FenceRecord] = {}
        self._order: deque[int] = deque()
        self.lock = threading.Lock()  # pulled from the consumer thread

    def apply(self, rows: list[tuple[int, float, float | None]]) -> None:
        with self.lock:
            for fid, created, retired in rows:
                if fid not in self._recs:
                    self._order.append(fid)
                    if len(self._order) > FENCE_LOG:
                        self._recs.pop(self._order.popleft(), None)
                self._recs[fid] = FenceRecord(fid, created, retired)

    def fences(self, from_id: int, limit: int = FENCE_LOG) -> list[FenceRecord]:
        with self.lock:
            out = [self._recs[f] for f in self._order if f >= from_id and f in self._recs]
        out.sort(key=lambda r: r.fence_id)
        return out[:limit]


def _no_control(msg: list[Any], fds: list[int] | None = None) -> bool:
    return False


class RemoteSession:
    """A client served by a worker, as the observers see a Session; ``control`` sends
    its worker a control message (worker_events)."""

    def __init__(self, pid: int, uid: int, renderer_pid: int,
                 control: Callable[[list[Any], list[int] | None], bool] | None = None
                 ) -> None:
        self.control = control or _no_control
        self.pid = pid
        self.uid = uid
        self.renderer_pid = renderer_pid
        self.name = "?"
        self.connected_at = time.monotonic()
        self.closed = False
        self.close_reason = ""
        self.ctx_id = self.protocol_version = self.capset_id = 0
        self.submits = self.bytes_submitted = self.presents = 0
        self.fence_submitted = self.fence_completed = 0
        self.resources: dict[int, Resource] = {}  # by client handle
        self.by_key: dict[int, Resource] = {}  # by the worker's key
        # what its live resources hold against the server-wide budgets (the worker's
        # "usage" reports: its C engine's figures) and when that last grew
        self.resource_bytes = 0
        self.mappings = 0
        self.grew_at = 0.0
        self.dropping = False  # told to drop it (a server-wide budget)
        # a venus client's rings: ring -> (fences given, retired), as Session's (replaced
        # whole on each report, so the consumer thread reads it safely)
        self.venus_timelines: dict[int, tuple[int, int]] = {}
        self.syncs: dict[int, Sync] = {}
        self.sync_waiters: list[SyncWaiter] = []
        self.fast = RemoteFast()

    def __str__(self) -> str:
        return f"{self.name} (pid {self.pid})"

    def key_of(self, r: Resource) -> int | None:
        """The worker's key of live resource ``r``."""
        return next((key for key, mine in self.by_key.items() if mine is r), None)

    def sync_resources(self) -> None:
        """Nothing to do: the worker reports its resources as they go."""


class ProcessServer(ClientListener):
    """Serves vtest clients from worker processes; lives on the main process's loop.
    Offers what observers and the UI use of VtestServer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: WorkerPool, path: str,
                 allowed_uids: Iterable[int] = (), budgets: Budgets = DEFAULT_BUDGETS) -> None:
        self.pool = pool
        self.sessions: set[RemoteSession] = set()
        self.observers: list[ServerObserver] = []
        self.present_interval = pool.cfg.present_interval or 0.0
        self.resource_bytes = 0  # all workers' clients together (server_resource_bytes)
        self.mappings = 0  # their shm mappings together (server_mappings)
        pool.on_event = self._on_event
        pool.on_finished = self._on_finished
        super().__init__(loop, path, allowed_uids, budgets)
        log.info("serving vtest on %s (a renderer process per client, %d kept warm)", path,
                 pool.size)

    def adopt(self, sock: socket.socket, pid: int, uid: int) -> None:
        try:
            link = self.pool.take()
        except VirglViewerError as exc:
            log.error("client pid %d not served: %s", pid, exc)
            sock.close()
            return
        ok = link.send(["client", pid, uid, bool(self.observers)], [sock.fileno()])
        sock.close()  # the worker has its own copy now
        if not ok:
            log.error("client pid %d: cannot hand its socket to renderer worker %d", pid,
                      link.pid)
            return
        s = RemoteSession(pid, uid, link.pid, link.send)
        link.session = s
        self.sessions.add(s)
        self.pool.top_up_soon()

    # ------------------------------------------------------------ worker events
    def _notify(self, name: str, *args: Any) -> None:
        for ob in self.observers:
            # want/frame/unpreviewable: only scanout managers have them
            hook = getattr(ob, name, None)
            if hook is not None:
                hook(*args)

    def _on_event(self, link: WorkerLink, ev: tuple[Any, ...]) -> None:
        s = _served(link)
        if s is None or s.closed:
            return
        kind = ev[0]
        if kind == "stats":
            (s.ctx_id, s.protocol_version, s.capset_id, s.submits, s.bytes_submitted,
             s.presents, s.fence_submitted, s.fence_completed) = ev[1:9]
            if ev[9]:
                s.fast.apply(ev[9])
            if ev[10] is not None:
                self._syncs(s, ev[10])
            if ev[11] is not None:
                s.venus_timelines = {ring: (given, done) for ring, given, done in ev[11]}
        elif kind == "usage":
            self._usage(s, ev[1], ev[2], ev[3])
        elif kind == "res+":
            self._res_new(link, s, ev)
        elif kind == "res-":
            r = s.by_key.pop(ev[1], None)
            if r is not None:
                if s.resources.get(r.client_handle) is r:
                    del s.resources[r.client_handle]
                self._notify("resource_destroyed", s, r)
        elif kind == "present":
            r = s.by_key.get(ev[1])
            if r is not None:
                self._notify("presented", s, r, ev[2])
        elif kind == "named":
            s.name = client_name(ev[1].encode())
            s.connected_at = ev[2]
            self._notify("session_named", s)
        elif kind == "closed":
            self._close(s, ev[1] or "disconnected")
        elif kind in ("want", "frame", "unpreviewable"):
            r = s.by_key.get(ev[1])
            if r is not None:
                self._notify("remote_" + kind, s, r, *ev[1:])

    def _res_new(self, link: WorkerLink, s: RemoteSession, ev: tuple[Any, ...]) -> None:
        (key, ch, sh, target, fmt, bind, w, h, d, arr, ll, ns, blob, shm, created) = ev[1:]
        r = Resource(ch, sh, target, fmt, bind, w, h, d, arr, ll, ns,
                     shm=cast(Any, _Shm(shm)) if shm else None, blob=blob, created=created)
        s.by_key[key] = r
        s.resources[ch] = r
        self._notify("resource_created", s, r)

    def _usage(self, s: RemoteSession, mappings: int, resource_bytes: int,
               grew_at: float = 0.0) -> None:
        grew = mappings > s.mappings or resource_bytes > s.resource_bytes
        self.mappings += mappings - s.mappings
        self.resource_bytes += resource_bytes - s.resource_bytes
        s.mappings, s.resource_bytes = mappings, resource_bytes
        if grew:
            s.grew_at = grew_at
            self._hold_server_budgets()

    def _hold_server_budgets(self) -> None:
        """The server-wide budgets over all workers together. Each worker holds its
        client to the per-client budgets before anything is made (and to the
        server-wide ones, over its one client); the sums over all workers are held
        here from their usage reports (each worker's at most every worker.STATS_INTERVAL_S,
        in any order): past a budget, the client that made a resource last (by the
        workers' clock: CLOCK_MONOTONIC is one clock for every process) is dropped,
        just after the creates that passed it rather than before them as in shared
        mode: at most what that client made within one report's interval, itself
        within the per-client budgets, over."""
        b = self.budgets
        if self.mappings > b.mappings():
            reason = b.over_mappings()
        elif self.resource_bytes > b.all_resource_bytes():
            reason = b.over_all_resource_bytes()
        else:
            return
        newest: tuple[float, WorkerLink, RemoteSession] | None = None
        for link in self.pool.links:
            s = _served(link)
            if s is None or s.closed or not (s.mappings or s.resource_bytes):
                continue
            if newest is None or s.grew_at > newest[0]:
                newest = (s.grew_at, link, s)
        if newest is not None and not newest[2].dropping:
            newest[2].dropping = True
            newest[1].send(["drop", "RESOURCE_CREATE", reason])

    def _syncs(self, s: RemoteSession, rows: list[tuple[int, int, int]]) -> None:
        syncs: dict[int, Sync] = {}
        waiters: list[SyncWaiter] = []
        for sid, value, waiting in rows:
            syncs[sid] = Sync(sid, value)
            waiters.extend(SyncWaiter(-1, False, {sid: 0}) for _ in range(min(waiting, 64)))
        s.syncs = syncs
        s.sync_waiters = waiters
        self._notify("sync_changed", s)

    def _close(self, s: RemoteSession, reason: str) -> None:
        if s.closed:
            return
        self._notify("session_closing", s)
        s.closed = True
        s.close_reason = reason
        self._usage(s, 0, 0)
        s.by_key.clear()
        s.resources.clear()
        self.sessions.discard(s)
        self._resume_accept()
        self._notify("session_closed", s)

    def _on_finished(self, link: WorkerLink) -> None:
        """A worker is gone and reaped; if its client was still being served, it crashed."""
        s = _served(link)
        if s is None or s.closed:
            return
        status = link.status if link.status is not None else 0
        why = describe_status(status)
        if self.pool.closed:
            self._close(s, "server shutting down")
            return
        log.error("client %s: its renderer process %d %s", s, link.pid, why)
        self._close(s, f"renderer crashed ({why})")

    # ------------------------------------------------------------ as VtestServer
    def add_observer(self, ob: ServerObserver) -> None:
        """Observe every worker's clients (serving workers are told: they now report
        presents, fences and syncs too)."""
        if not self.observers:
            for link in self.pool.links:
                if link.session is not None:
                    link.send(["observe"])
        self.observers.append(ob)

    def set_present_interval(self, seconds: float) -> None:
        self.present_interval = seconds
        for link in self.pool.links:
            link.send(["present_interval", seconds])

    def sync_resources(self) -> None:
        """Nothing to do: workers report their resources as they go."""

    def snapshot_all(self) -> None:
        """Every worker writes its scanouts' snapshots (--snapshot-dir)."""
        for link in self.pool.links:
            if link.session is not None and not link.eof:
                link.send(["snapshot"])

    def disconnect(self, pid: int) -> int:
        links = [w for w in self.pool.links
                 if (c := _served(w)) is not None and c.pid == pid and not c.closed]
        for link in links:
            link.send(["close", "disconnected by the server"])
        return len(links)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._close_listener()
        self.pool.close()
        for s in list(self.sessions):
            self._close(s, "server shutting down")


def _served(link: WorkerLink) -> RemoteSession | None:
    """The client ``link``'s worker serves: always a RemoteSession (ProcessServer.adopt)."""
    return cast("RemoteSession | None", link.session)


class ProcessThread(LoopThread[ProcessServer]):
    """``--isolation process``'s counterpart of RenderThread: the main process's loop
    (accepting, worker events) on a thread of its own, with the same interface."""

    thread_name = "virgl-procs"
    start_error = "the renderer workers did not start"

    def __init__(self, path: str, cfg: WorkerConfig, allowed_uids: Iterable[int] = (),
                 budgets: Budgets = DEFAULT_BUDGETS, pool_size: int = POOL_SIZE) -> None:
        self.path = path
        self.cfg = cfg
        self._allowed = tuple(allowed_uids)
        self._budgets = budgets
        self._pool_size = pool_size
        self._pool: WorkerPool | None = None
        super().__init__(asyncio.new_event_loop())

    def start(self, timeout: float = START_TIMEOUT_S) -> ProcessServer:
        return super().start(timeout)

    def _setup(self) -> ProcessServer:
        pool = self._pool = WorkerPool(self.loop, self.cfg, self._pool_size)
        self.loop.run_until_complete(asyncio.wait_for(pool.wait_ready(), START_TIMEOUT_S))
        return ProcessServer(self.loop, pool, self.path, self._allowed, self._budgets)

    def _abandon(self, exc: BaseException) -> BaseException:
        if self.server is not None:
            self.server.close()
        elif self._pool is not None:
            self._pool.close()
        if isinstance(exc, TimeoutError):
            return VirglViewerError("no renderer worker became ready")
        return exc

    def _teardown(self) -> None:
        assert self.server is not None
        self.server.close()
