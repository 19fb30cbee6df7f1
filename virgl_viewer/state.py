"""The observable registry: clients, contexts, resources, fences and syncs as they change.

Why: the inspector and ``--stats-json`` need a live picture of the server, but the render
thread must not pay for it (glxgears alone creates and unrefs ~200 resources a second and
presents ~600 frames). How: ``StateRegistry`` is a ServerObserver whose hooks, on the
render thread, only append a small tuple to a deque: no formatting, no lookups, no Qt.
One consumer thread (the inspector's GUI timer, or the stats writer's thread) calls
``pull()``: it drains the queue into its own mirror and returns a ``Delta`` of immutable
records per table (added, changed, removed keys); ``snapshot()`` is the whole mirror.
A resource created and destroyed between two pulls never shows up at all.

Numbers that change without a hook (submits, bytes, fences, sync values) are read from the
sessions during ``pull()``: counters and the fence log kept in C by the session's fast path
(the log has its own lock), int attributes and C-level copies of dicts and lists, which
CPython's GIL makes atomic with respect to the render thread. If the consumer falls
so far behind that the bounded queue dropped events, the next pull reconciles the mirror
with the sessions (a resync). Histories are bounded: the last FENCE_HISTORY fences of a
client within HISTORY_S, one rate sample a second for HISTORY_S.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from virgl_viewer.formats import estimate_resource_bytes
from virgl_viewer.server import ServerObserver
from virgl_viewer.state_records import (
    LATENCY_EDGES_MS,
    ClientInfo,
    Delta,
    ResourceInfo,
    Sample,
    Snapshot,
    SyncPointInfo,
    TableDelta,
    bind_names,
    capset_name,
    latency_bucket,
    target_name,
)
from virgl_viewer.state_records import TableDeltaBuilder as _Builder

__all__ = [
    "LATENCY_EDGES_MS",
    "ClientInfo",
    "Delta",
    "ResourceInfo",
    "Sample",
    "Snapshot",
    "StateRegistry",
    "SyncPointInfo",
    "TableDelta",
    "bind_names",
    "capset_name",
    "latency_bucket",
    "target_name",
]

if TYPE_CHECKING:
    from virgl_viewer.objects import Resource
    from virgl_viewer.session import Session
    from virgl_viewer.virgl import NativeShm, SharedMemory

class ObservedServer(Protocol):
    """What ``attach`` needs of a server: VtestServer, or isolation.ProcessServer."""

    @property
    def sessions(self) -> Iterable[Any]: ...

    def add_observer(self, ob: ServerObserver, /) -> None: ...


QUEUE_MAX = 1 << 16  # events between two pulls before a resync (~30 s of glxgears)
FENCE_HISTORY = 1000  # fences kept per client
HISTORY_S = 60.0  # fences and rate samples older than this are dropped
CLOSED_KEEP_S = 30.0  # a disconnected client stays listed this long
RATE_WINDOW_S = 1.0

_OWN_PID = os.getpid()  # shared mode: every session is served here
_NAMED, _CLOSED, _RES_NEW, _RES_DEL, _PRESENT, _SYNC = range(6)


class _Client:
    """The consumer's mutable picture of one session."""

    __slots__ = ("closed_at", "done_fid", "fence_keys", "hist_counts", "key", "last_fid", "name",
                 "pending", "presents", "rates", "reason", "record", "res", "res_bytes",
                 "samples", "series", "series_t", "session", "sync_dirty", "sync_keys",
                 "timeline_keys")

    def __init__(self, key: int, s: Session, now: float) -> None:
        self.key = key
        self.session = s
        self.name = s.name
        self.closed_at: float | None = None
        self.reason = ""
        self.res: dict[int, tuple[Resource, int]] = {}  # id(resource) -> (it, record key)
        self.res_bytes = 0
        self.presents = 0
        self.fence_keys: deque[int] = deque()  # history, oldest first
        self.pending: deque[int] = deque()  # unretired fences, oldest first
        self.last_fid = 0
        self.done_fid = 0
        self.hist_counts = [0] * (len(LATENCY_EDGES_MS) + 1)
        self.sync_keys: dict[int, int] = {}  # sync id -> record key
        self.timeline_keys: dict[int, int] = {}  # venus ring -> record key
        self.sync_dirty = True
        self.samples: deque[tuple[float, int, int, int]] = deque(
            [(now, s.submits, s.bytes_submitted, 0)])
        self.rates = (0.0, 0.0, 0.0)  # fps, submits/s, bytes/s
        self.series: deque[Sample] = deque(maxlen=int(HISTORY_S) + 1)
        self.series_t = now
        self.record: ClientInfo | None = None


class StateRegistry(ServerObserver):
    """Records server events on the render thread; one consumer thread pulls them.

    Attach on the render thread, with ``attach(server)`` (also picks up sessions that
    exist already) or ``server.add_observer(registry)``. ``pull``, ``snapshot`` and
    the other readers must all be called from one (any) consumer thread.
    """

    def __init__(self, queue_max: int = QUEUE_MAX, fence_history: int = FENCE_HISTORY,
                 closed_keep_s: float = CLOSED_KEEP_S) -> None:
        self._q: deque[tuple[Any, ...]] = deque(maxlen=queue_max)
        self._put = self._q.append
        self._sessions: dict[int, Session] = {}  # render thread writes; consumer copies
        self._need_resync = False
        self.fence_history = fence_history
        self.closed_keep_s = closed_keep_s
        self.wall_offset = time.time() - time.monotonic()
        # consumer side
        self._clients: dict[int, _Client] = {}  # by id(session)
        self._next_key = 1
        self._client_recs: dict[int, ClientInfo] = {}
        self._res_recs: dict[int, ResourceInfo] = {}
        self._fence_recs: dict[int, SyncPointInfo] = {}
        self._now = time.monotonic()
        self.resyncs = 0

    # ------------------------------------------------------------ render thread
    def attach(self, server: ObservedServer) -> None:
        """Start observing ``server`` (render thread); existing sessions are picked up
        by the next pull."""
        for s in server.sessions:
            self._sessions[id(s)] = s
        self._need_resync = True
        server.add_observer(self)

    def session_named(self, s: Session) -> None:
        self._sessions[id(s)] = s
        self._put((_NAMED, s))

    def session_closed(self, s: Session) -> None:
        self._sessions.pop(id(s), None)
        self._put((_CLOSED, s, time.monotonic()))

    def resource_created(self, s: Session, r: Resource) -> None:
        self._put((_RES_NEW, s, r, r.shm))

    def resource_destroyed(self, s: Session, r: Resource) -> None:
        self._put((_RES_DEL, s, r))

    def presented(self, s: Session, r: Resource, count: int = 1) -> None:
        self._put((_PRESENT, s, r))  # counted in C (Session.presents): marks a scanout

    def sync_changed(self, s: Session) -> None:
        self._put((_SYNC, s))

    # ------------------------------------------------------------ consumer thread
    def pull(self, now: float | None = None) -> Delta:
        """Apply every event queued since the last pull; returns what changed."""
        now = time.monotonic() if now is None else now
        self._now = now
        dc: _Builder[ClientInfo] = _Builder()
        dr: _Builder[ResourceInfo] = _Builder()
        df: _Builder[SyncPointInfo] = _Builder()
        q = self._q
        overflow = len(q) >= (q.maxlen or 0)
        pop = q.popleft
        for _ in range(len(q)):
            ev = pop()
            code = ev[0]
            c = self._client(ev[1], now)
            if code == _PRESENT:
                self._presented(c, ev[2], dr)
            elif code == _RES_NEW:
                self._res_new(c, ev[2], ev[3], dr)
            elif code == _RES_DEL:
                self._res_del(c, ev[2], dr)
            elif code == _SYNC:
                c.sync_dirty = True
            elif code == _NAMED:
                c.name = c.session.name
            elif code == _CLOSED:
                self._close(c, ev[2], dr, df)
        resynced = overflow or self._need_resync
        if resynced:
            self._need_resync = False
            self._resync(now, dr, df)
        for c in list(self._clients.values()):
            self._refresh(c, now, dc, dr, df)
        return Delta(now, dc.build(), dr.build(), df.build(), resynced)

    def snapshot(self) -> Snapshot:
        """The mirror as of the last pull, ordered by key (creation order)."""
        cs = [c for c in self._clients.values() if c.record is not None]
        return Snapshot(
            self._now, self.wall_offset,
            tuple(self._client_recs[k] for k in sorted(self._client_recs)),
            tuple(self._res_recs[k] for k in sorted(self._res_recs)),
            tuple(self._fence_recs[k] for k in sorted(self._fence_recs)),
            {c.key: tuple(c.hist_counts) for c in cs},
            {c.key: tuple(c.series) for c in cs})

    def histogram(self, client_key: int | None = None) -> tuple[int, ...]:
        """Fence latency bucket counts (LATENCY_EDGES_MS) of one client, or all."""
        total = [0] * (len(LATENCY_EDGES_MS) + 1)
        for c in self._clients.values():
            if client_key is None or c.key == client_key:
                for i, n in enumerate(c.hist_counts):
                    total[i] += n
        return tuple(total)

    def series(self) -> dict[int, tuple[Sample, ...]]:
        """Per client key: one rate sample a second over the last minute."""
        return {c.key: tuple(c.series) for c in self._clients.values()}

    def client(self, key: int) -> ClientInfo | None:
        return self._client_recs.get(key)

    def resource(self, key: int) -> ResourceInfo | None:
        return self._res_recs.get(key)

    def fence(self, key: int) -> SyncPointInfo | None:
        return self._fence_recs.get(key)

    def resource_owner(self, rec: ResourceInfo) -> tuple[Session, Resource] | None:
        """The session and resource object behind record ``rec`` (None once it is
        gone): what names a resource whichever process renders it (server handles are
        unique only within one renderer process in process isolation)."""
        for c in self._clients.values():
            if c.key == rec.client_key and c.closed_at is None:
                return next(((c.session, r) for r, key in c.res.values() if key == rec.key),
                            None)
        return None

    # ------------------------------------------------------------ events
    def _client(self, s: Session, now: float) -> _Client:
        c = self._clients.get(id(s))
        if c is None:
            c = self._clients[id(s)] = _Client(self._next_key, s, now)
            self._next_key += 1
        return c

    def _res_new(self, c: _Client, r: Resource, shm: SharedMemory | NativeShm | None,
                 d: _Builder[ResourceInfo]) -> None:
        if id(r) in c.res or c.closed_at is not None:
            return  # already known through a resync, or arrived after the close
        try:
            est = estimate_resource_bytes(r.target, r.format, r.width, r.height, r.depth,
                                          r.array_size, r.last_level, r.nr_samples)
        except ValueError:  # a format virgl does not define
            est = shm.size if shm is not None else 0
        key = self._next_key
        self._next_key += 1
        rec = ResourceInfo(key, c.key, c.name, c.session.pid, r.client_handle,
                           r.server_handle, r.target, r.format, r.bind, r.width, r.height,
                           r.depth, r.array_size, r.last_level, r.nr_samples, r.blob,
                           shm.size if shm is not None else 0, est, False, r.created)
        c.res[id(r)] = (r, key)
        c.res_bytes += est
        self._res_recs[key] = rec
        d.add(rec)

    def _res_del(self, c: _Client, r: Resource, d: _Builder[ResourceInfo]) -> None:
        entry = c.res.pop(id(r), None)
        if entry is None:
            return
        rec = self._res_recs.pop(entry[1])
        c.res_bytes -= rec.est_bytes
        d.remove(rec.key)

    def _presented(self, c: _Client, r: Resource, d: _Builder[ResourceInfo]) -> None:
        entry = c.res.get(id(r))
        if entry is None:
            return
        rec = self._res_recs[entry[1]]
        if not rec.scanout:
            rec = self._res_recs[rec.key] = rec._replace(scanout=True)
            d.change(rec)

    def _read_fences(self, c: _Client, s: Session, d: _Builder[SyncPointInfo]) -> None:
        """New and newly retired fences from the session's C fence log."""
        from_id = c.last_fid + 1
        if c.pending:
            first = self._fence_recs.get(c.pending[0])
            if first is not None:
                from_id = min(from_id, first.id)
        elif from_id > s.fence_submitted:
            return
        for r in s.fast.fences(from_id):
            if (r.fence_id > c.last_fid and r.retired is not None and not c.pending
                    and r.fence_id > c.done_fid):
                # new and already retired (the usual case between two pulls): one record
                self._fence_new(c, r.fence_id, r.created, d, r.retired)
                continue
            if r.fence_id > c.last_fid:
                self._fence_new(c, r.fence_id, r.created, d)
            if r.retired is not None and r.fence_id > c.done_fid:
                self._fence_done(c, r.fence_id, r.retired, d)

    def _fence_new(self, c: _Client, fid: int, t: float, d: _Builder[SyncPointInfo],
                   retired: float | None = None) -> None:
        """A new fence; ``retired``: it has retired too (no older fence is pending)."""
        if fid <= c.last_fid:
            return
        c.last_fid = fid
        s = c.session
        key = self._next_key
        self._next_key += 1
        rec = SyncPointInfo(key, "fence", c.key, c.name, s.pid, s.ctx_id, fid, t, retired,
                        fid - c.done_fid)
        self._fence_recs[key] = rec
        c.fence_keys.append(key)
        if retired is None:
            c.pending.append(key)
        else:
            c.done_fid = fid
            c.hist_counts[latency_bucket((retired - t) * 1e3)] += 1
            c.sync_dirty = True  # may have signalled timeline syncs
        d.add(rec)
        if len(c.fence_keys) > self.fence_history:
            self._evict_fence(c, d)

    def _fence_done(self, c: _Client, fid: int, t: float, d: _Builder[SyncPointInfo]) -> None:
        # Retiring a fence retires every fence of the context before it.
        c.done_fid = max(c.done_fid, fid)
        recs = self._fence_recs
        pending = c.pending
        while pending:
            rec = recs.get(pending[0])
            if rec is None:  # evicted
                pending.popleft()
                continue
            if rec.id > fid:
                break
            pending.popleft()
            done = SyncPointInfo(rec.key, "fence", rec.client_key, rec.client_name,
                             rec.client_pid, rec.ctx_id, rec.id, rec.created, t, rec.pending)
            recs[rec.key] = done
            c.hist_counts[latency_bucket((t - rec.created) * 1e3)] += 1
            c.sync_dirty = True  # may have signalled timeline syncs
            d.change(done)

    def _evict_fence(self, c: _Client, d: _Builder[SyncPointInfo]) -> None:
        key = c.fence_keys.popleft()
        rec = self._fence_recs.pop(key, None)
        if rec is None:
            return
        if rec.signalled is None:
            if c.pending and c.pending[0] == key:
                c.pending.popleft()
        else:
            c.hist_counts[latency_bucket((rec.signalled - rec.created) * 1e3)] -= 1
        d.remove(key)

    def _close(self, c: _Client, t: float, dr: _Builder[ResourceInfo],
               df: _Builder[SyncPointInfo]) -> None:
        if c.closed_at is not None:
            return
        c.closed_at = t
        c.reason = str(getattr(c.session, "close_reason", "") or "")
        for _r, key in c.res.values():
            self._res_recs.pop(key, None)
            dr.remove(key)
        c.res.clear()
        c.res_bytes = 0
        for key in c.sync_keys.values():
            self._fence_recs.pop(key, None)
            df.remove(key)
        c.sync_keys.clear()
        for key in c.timeline_keys.values():
            self._fence_recs.pop(key, None)
            df.remove(key)
        c.timeline_keys.clear()

    def _resync(self, now: float, dr: _Builder[ResourceInfo],
                df: _Builder[SyncPointInfo]) -> None:
        """Reconcile the mirror with the sessions after events were lost."""
        self.resyncs += 1
        live = self._sessions.copy()
        for s in live.values():
            self._client(s, now)
        for c in list(self._clients.values()):
            s = c.session
            if c.closed_at is not None:
                continue
            if s.closed or id(s) not in live:
                self._close(c, now, dr, df)
                continue
            c.name = s.name
            current = {id(r): r for r in s.resources.copy().values()}
            for rid in [rid for rid in c.res if rid not in current]:
                self._res_del(c, c.res[rid][0], dr)
            for rid, r in current.items():
                if rid not in c.res:
                    self._res_new(c, r, r.shm, dr)
            c.sync_dirty = True  # fences come from the session's log in _refresh

    # ------------------------------------------------------------ per pull
    def _refresh(self, c: _Client, now: float, dc: _Builder[ClientInfo],
                 dr: _Builder[ResourceInfo], df: _Builder[SyncPointInfo]) -> None:
        horizon = now - HISTORY_S
        recs = self._fence_recs
        while c.fence_keys and (c.fence_keys[0] not in recs
                                or recs[c.fence_keys[0]].created < horizon):
            self._evict_fence(c, df)
        s = c.session
        c.presents = s.presents  # the C path counts them: most never reach Python
        if c.closed_at is not None:
            if now - c.closed_at > self.closed_keep_s:
                self._expire(c, dc, df)
                return
            c.rates = (0.0, 0.0, 0.0)
        else:
            self._read_fences(c, s, df)
            self._sample(c, s, now)
            if c.sync_dirty or c.sync_keys:
                self._scan_syncs(c, s, now, df)
            if s.venus_timelines or c.timeline_keys:
                self._scan_timelines(c, s, now, df)
        fps, sps, bps = c.rates
        state = "active"
        if c.closed_at is not None:
            state = "error" if c.reason.startswith("dropped") else "disconnected"
        rec = ClientInfo(c.key, c.name, s.pid, s.uid, s.ctx_id, s.protocol_version,
                         s.capset_id, s.connected_at, c.closed_at, state, c.reason,
                         s.submits, s.bytes_submitted, sps, bps, fps, c.presents, len(c.res),
                         c.res_bytes, s.fence_submitted, s.fence_completed, len(c.sync_keys),
                         getattr(s, "renderer_pid", _OWN_PID))
        if rec != c.record:
            if c.record is None:
                dc.add(rec)
            else:
                dc.change(rec)
            c.record = self._client_recs[c.key] = rec

    def _sample(self, c: _Client, s: Session, now: float) -> None:
        cur = (now, s.submits, s.bytes_submitted, c.presents)
        smp = c.samples
        smp.append(cur)
        while len(smp) > 2 and now - smp[1][0] >= RATE_WINDOW_S:
            smp.popleft()
        base = smp[0]
        dt = now - base[0]
        if dt >= 0.2 * RATE_WINDOW_S:
            c.rates = ((cur[3] - base[3]) / dt, (cur[1] - base[1]) / dt,
                       (cur[2] - base[2]) / dt)
        if now - c.series_t >= 1.0:
            c.series_t = now
            c.series.append(Sample(now, *c.rates))
        while c.series and c.series[0].t < now - HISTORY_S:
            c.series.popleft()

    def _scan_syncs(self, c: _Client, s: Session, now: float, d: _Builder[SyncPointInfo]) -> None:
        c.sync_dirty = False
        syncs = s.syncs.copy()
        waiting: dict[int, int] = {}
        for w in list(s.sync_waiters):
            for sid in list(w.need):
                waiting[sid] = waiting.get(sid, 0) + 1
        recs = self._fence_recs
        for sid in [sid for sid in c.sync_keys if sid not in syncs]:
            key = c.sync_keys.pop(sid)
            recs.pop(key, None)
            d.remove(key)
        for sid, sync in syncs.items():
            value, pend = sync.value, waiting.get(sid, 0)
            known = c.sync_keys.get(sid)
            if known is None:
                key = self._next_key
                self._next_key += 1
                c.sync_keys[sid] = key
                rec = recs[key] = SyncPointInfo(key, "sync", c.key, c.name, s.pid, s.ctx_id, sid,
                                            now, None, pend, value)
                d.add(rec)
                continue
            key = known
            old = recs[key]
            if old.value != value or old.pending != pend:
                rec = recs[key] = old._replace(
                    value=value, pending=pend,
                    signalled=now if old.value != value else old.signalled)
                d.change(rec)

    def _scan_timelines(self, c: _Client, s: Session, now: float,
                        d: _Builder[SyncPointInfo]) -> None:
        """A row per venus queue (ring): fences retired (value), in flight (pending)."""
        recs = self._fence_recs
        for ring, (given, done) in s.venus_timelines.items():
            key = c.timeline_keys.get(ring)
            if key is None:
                key = c.timeline_keys[ring] = self._next_key
                self._next_key += 1
                rec = recs[key] = SyncPointInfo(key, "timeline", c.key, c.name, s.pid, s.ctx_id,
                                                ring, now, None, given - done, done)
                d.add(rec)
                continue
            old = recs[key]
            if old.value != done or old.pending != given - done:
                rec = recs[key] = old._replace(
                    value=done, pending=given - done,
                    signalled=now if old.value != done else old.signalled)
                d.change(rec)

    def _expire(self, c: _Client, dc: _Builder[ClientInfo], df: _Builder[SyncPointInfo]) -> None:
        while c.fence_keys:
            self._evict_fence(c, df)
        del self._clients[id(c.session)]
        if c.record is not None:
            self._client_recs.pop(c.key, None)
            dc.remove(c.key)
