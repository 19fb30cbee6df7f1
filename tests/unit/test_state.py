"""StateRegistry without a server: hooks called as the render thread would, pulls checked.

The sessions are stand-ins with the attributes the registry reads; resources are the
server's own ``Resource`` objects.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from virgl_viewer.objects import Resource, Sync, SyncWaiter
from virgl_viewer.server import ServerObserver
from virgl_viewer.state import (
    LATENCY_EDGES_MS,
    StateRegistry,
    bind_names,
    capset_name,
    latency_bucket,
)
from virgl_viewer.virgl import FenceRecord
from virgl_viewer.vtest import protocol as P


@dataclass(eq=False)
class FakeShm:
    size: int


class FakeFenceLog:
    """Stands in for the C fence log of a session (FastConn.fences)."""

    def __init__(self) -> None:
        self.recs: dict[int, FenceRecord] = {}

    def fences(self, from_id: int) -> list[FenceRecord]:
        newest = max(self.recs, default=0)
        return [self.recs[i] for i in range(max(from_id, newest - 1023), newest + 1)
                if i in self.recs]


@dataclass(eq=False)
class FakeSession:
    name: str = "guest"
    pid: int = 4242
    uid: int = 1000
    ctx_id: int = 1
    protocol_version: int = 2
    capset_id: int = 0
    connected_at: float = field(default_factory=time.monotonic)
    submits: int = 0
    presents: int = 0  # counted by the C path, as Session.presents
    bytes_submitted: int = 0
    fence_submitted: int = 0
    fence_completed: int = 0
    closed: bool = False
    close_reason: str = ""
    resources: dict[int, Resource] = field(default_factory=dict)
    syncs: dict[int, Sync] = field(default_factory=dict)
    sync_waiters: list[SyncWaiter] = field(default_factory=list)
    fast: FakeFenceLog = field(default_factory=FakeFenceLog)
    # venus rings: ring -> (fences given, fences retired), as Session.venus_timelines
    venus_timelines: dict[int, tuple[int, int]] = field(default_factory=dict)


def fence_created(s: FakeSession, fid: int, at: float | None = None) -> None:
    """The C fence log records fence ``fid`` (created ``at``, default now)."""
    s.fast.recs[fid] = FenceRecord(fid, time.monotonic() if at is None else at, None)
    s.fence_submitted = fid


def fence_retired(s: FakeSession, fid: int, at: float | None = None) -> None:
    """Fences up to ``fid`` retire (``at``, default now), as the C fence log marks them."""
    t = time.monotonic() if at is None else at
    for i, r in s.fast.recs.items():
        if i <= fid and r.retired is None:
            s.fast.recs[i] = FenceRecord(i, r.created, t)
    s.fence_completed = fid


def texture(handle: int, w: int = 300, h: int = 300, bind: int = 0x8A,
            shm: int = 0) -> Resource:
    r = Resource(handle, handle + 100, P.TARGET_2D, 2, bind, w, h, 1, 1, 0, 0)
    r.shm = FakeShm(shm) if shm else None  # type: ignore[assignment]
    return r


def create(reg: StateRegistry, s: FakeSession, r: Resource) -> None:
    s.resources[r.client_handle] = r
    reg.resource_created(s, r)  # type: ignore[arg-type]


def destroy(reg: StateRegistry, s: FakeSession, r: Resource) -> None:
    del s.resources[r.client_handle]
    reg.resource_destroyed(s, r)  # type: ignore[arg-type]


@pytest.fixture
def reg() -> StateRegistry:
    return StateRegistry()


@pytest.fixture
def sess(reg: StateRegistry) -> FakeSession:
    s = FakeSession()
    reg.session_named(s)  # type: ignore[arg-type]
    return s


def test_implements_every_observer_hook() -> None:
    # session_closing only matters to the scanout hand-off (a last copy)
    hooks = [n for n, v in vars(ServerObserver).items()
             if callable(v) and not n.startswith("_") and n != "session_closing"]
    assert len(hooks) == 6
    for name in hooks:
        assert getattr(StateRegistry, name) is not getattr(ServerObserver, name), name


def test_names() -> None:
    assert bind_names(0x8A) == ("RENDER_TARGET", "SAMPLER_VIEW", "DISPLAY_TARGET")
    assert bind_names(1 << 30) == ("0x40000000",)
    assert capset_name(4) == "venus" and capset_name(0) == "default (virgl)"
    assert latency_bucket(0.01) == 0 and latency_bucket(5000) == len(LATENCY_EDGES_MS)


def test_client_and_resources_appear_with_their_columns(reg: StateRegistry,
                                                        sess: FakeSession) -> None:
    r = texture(1, shm=300 * 300 * 4)
    create(reg, sess, r)
    d = reg.pull()
    (c,) = d.clients.added
    assert (c.name, c.pid, c.state, c.resources, c.capset) == ("guest", 4242, "active", 1,
                                                               "default (virgl)")
    assert c.resource_bytes == 300 * 300 * 4
    (res,) = d.resources.added
    assert (res.client_key, res.client_handle, res.server_handle) == (c.key, 1, 101)
    assert (res.target_name, res.format_name, res.backing, res.kind) == (
        "2D", "B8G8R8X8_UNORM", "shm", "display target")
    assert res.est_bytes == 300 * 300 * 4 and not res.scanout
    assert not reg.pull()  # nothing new


def test_churn_between_pulls_leaves_no_trace(reg: StateRegistry, sess: FakeSession) -> None:
    reg.pull()
    for i in range(2, 200):
        r = texture(i, 8, 1, bind=P.BIND_CUSTOM)
        create(reg, sess, r)
        destroy(reg, sess, r)
    d = reg.pull()
    assert not d.resources
    assert reg.snapshot().resources == ()


def test_destroy_presented_and_removed(reg: StateRegistry, sess: FakeSession) -> None:
    a, b = texture(1), texture(2)
    create(reg, sess, a)
    create(reg, sess, b)
    keys = {r.client_handle: r.key for r in reg.pull().resources.added}
    sess.presents += 1  # the C path counts every present; Python hears of the first
    reg.presented(sess, a)  # type: ignore[arg-type]
    destroy(reg, sess, b)
    d = reg.pull()
    assert [r.scanout for r in d.resources.changed] == [True]
    assert d.resources.removed == (keys[2],)
    (c,) = d.clients.changed
    assert (c.resources, c.presents) == (1, 1)


def test_fences_latency_history_and_histogram(reg: StateRegistry) -> None:
    reg = StateRegistry(fence_history=5)
    s = FakeSession()
    reg.session_named(s)  # type: ignore[arg-type]
    t0 = time.monotonic()
    for fid in range(1, 8):
        fence_created(s, fid, at=t0 + fid / 1000)  # fence n created at n ms
    d = reg.pull()
    assert [f.id for f in d.fences.added] == [3, 4, 5, 6, 7]  # the newest five
    assert [f.pending for f in d.fences.added] == [3, 4, 5, 6, 7]
    fence_retired(s, 5, at=t0 + 0.020)  # retires 3, 4 and 5 at 20 ms
    d = reg.pull()
    assert sorted((f.id, round(f.latency_ms or 0)) for f in d.fences.changed) == [
        (3, 17), (4, 16), (5, 15)]
    assert reg.histogram()[latency_bucket(16)] == 3
    assert sum(reg.histogram()) == 3
    fence_created(s, 8)  # evicts fence 3 (retired)
    d = reg.pull()
    assert len(d.fences.removed) == 1 and sum(reg.histogram()) == 2
    fence_retired(s, 8)
    reg.pull()
    assert sum(reg.histogram()) == 5
    assert [f.signalled is not None for f in reg.snapshot().fences] == [True] * 5


def test_fence_history_drops_after_a_minute(reg: StateRegistry, sess: FakeSession) -> None:
    fence_created(sess, 1)
    fence_retired(sess, 1)
    now = time.monotonic()
    reg.pull(now)
    assert len(reg.snapshot().fences) == 1
    d = reg.pull(now + 61)
    assert len(d.fences.removed) == 1 and sum(reg.histogram()) == 0


def test_close_drops_resources_then_the_client(reg: StateRegistry,
                                               sess: FakeSession) -> None:
    create(reg, sess, texture(1))
    reg.pull()
    sess.closed, sess.close_reason = True, "dropped (SUBMIT_CMD: bad handle)"
    reg.session_closed(sess)  # type: ignore[arg-type]  # the server frees them silently
    d = reg.pull()
    assert len(d.resources.removed) == 1
    (c,) = d.clients.changed
    assert (c.state, c.resources) == ("error", 0) and c.closed_at is not None
    d = reg.pull(time.monotonic() + reg.closed_keep_s + 1)
    assert d.clients.removed == (c.key,)
    assert reg.snapshot().clients == ()


def test_rates_from_session_counters(reg: StateRegistry, sess: FakeSession) -> None:
    t0 = time.monotonic()
    reg.pull(t0)
    sess.submits, sess.bytes_submitted = 100, 4000
    sess.presents = 50  # the C path's count: only the first reaches Python
    reg.presented(sess, texture(1))  # type: ignore[arg-type]
    (c,) = reg.pull(t0 + 1.0).clients.changed
    assert (c.submits_per_s, c.bytes_per_s, c.fps) == pytest.approx((100, 4000, 50))
    (series,) = reg.series().values()
    assert [round(x.fps) for x in series] == [50]
    (c,) = reg.pull(t0 + 2.5).clients.changed
    assert c.submits_per_s == 0 and c.fps == 0


def test_syncs_added_signalled_waited_and_removed(reg: StateRegistry) -> None:
    s = FakeSession(protocol_version=3, capset_id=4)
    s.syncs[1] = Sync(1, 0)
    reg.sync_changed(s)  # type: ignore[arg-type]
    (f,) = reg.pull().fences.added
    assert (f.kind, f.id, f.value, f.signalled, f.pending) == ("sync", 1, 0, None, 0)
    s.sync_waiters.append(SyncWaiter(-1, False, {1: 5}))
    s.syncs[1].value = 3  # signalled by a retired fence: no hook
    (f,) = reg.pull().fences.changed
    assert (f.value, f.pending) == (3, 1) and f.signalled is not None
    del s.syncs[1]
    reg.sync_changed(s)  # type: ignore[arg-type]
    assert reg.pull().fences.removed == (f.key,)


def test_venus_timelines_added_retired_and_removed_with_the_client(reg: StateRegistry
                                                                    ) -> None:
    s = FakeSession(protocol_version=3, capset_id=4)
    reg.session_named(s)  # type: ignore[arg-type]
    s.venus_timelines = {0: (1, 0), 3: (2, 0)}
    added = {f.id: f for f in reg.pull().fences.added if f.kind == "timeline"}
    assert {r: (f.value, f.pending, f.signalled) for r, f in added.items()} == {
        0: (0, 1, None), 3: (0, 2, None)}
    s.venus_timelines = {0: (1, 1), 3: (2, 0)}
    (f,) = reg.pull().fences.changed
    assert (f.id, f.value, f.pending) == (0, 1, 0) and f.signalled is not None
    s.closed = True
    reg.session_closed(s)  # type: ignore[arg-type]
    assert set(reg.pull().fences.removed) >= {f.key, added[3].key}


def test_overflow_resyncs_from_the_sessions() -> None:
    reg = StateRegistry(queue_max=16)
    s = FakeSession()
    reg.session_named(s)  # type: ignore[arg-type]
    rs = [texture(i) for i in range(1, 41)]
    for r in rs:
        create(reg, s, r)
    for r in rs[:10]:
        destroy(reg, s, r)
    s.fence_submitted = 3
    d = reg.pull()
    assert d.resynced and reg.resyncs == 1
    assert sorted(r.client_handle for r in d.resources.added) == list(range(11, 41))
    (c,) = d.clients.added
    assert c.resources == 30
    # a queued event for a resource the resync already found is not counted twice
    r = texture(50)
    create(reg, s, r)
    reg._need_resync = True
    reg.resource_created(s, r)  # type: ignore[arg-type]
    assert [x.client_handle for x in reg.pull().resources.added] == [50]


def test_attach_picks_up_existing_sessions(reg: StateRegistry) -> None:
    s = FakeSession()
    create(reg, s, texture(1))
    reg._q.clear()  # as if it had happened before attaching

    class Server:
        def __init__(self) -> None:
            self.sessions = {s}
            self.observers: list[Any] = []

        def add_observer(self, ob: Any) -> None:
            self.observers.append(ob)

    srv = Server()
    reg.attach(srv)  # type: ignore[arg-type]
    assert srv.observers == [reg]
    d = reg.pull()
    assert [r.client_handle for r in d.resources.added] == [1]
    assert [c.name for c in d.clients.added] == ["guest"]
