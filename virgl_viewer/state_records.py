"""Records of the state registry: immutable rows of clients, resources, fences, syncs.

Why a module of its own: these are what the registry hands to its consumers (the
inspector's table models, the stats JSON writer, tests) across threads, so they are
immutable NamedTuples (a fence record is built ~600 times a second under glxgears: a tuple
is several times cheaper to make than a frozen dataclass) with plain fields, plus the
names a user reads (target, format, bind flags, capset). Pure: no Qt, no binding.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, Literal, NamedTuple, TypeVar

from virgl_viewer.formats import format_name
from virgl_viewer.vtest import protocol as P

LATENCY_EDGES_MS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200,
                                       500, 1000)
"""Upper bounds of the latency histogram's buckets; one more bucket holds the rest."""

_DISPLAY_BINDS = P.BIND_DISPLAY_TARGET | P.BIND_SCANOUT


# ---------------------------------------------------------------- names
def target_name(target: int) -> str:
    return P.TARGET_NAMES.get(target, f"target {target}")


def bind_names(bind: int) -> tuple[str, ...]:
    """Names of the VIRGL_BIND_* bits set in ``bind``; unknown bits as hex."""
    names = [name for bit, name in P.BIND_NAMES.items() if bind & bit]
    rest = bind & ~sum(P.BIND_NAMES)
    if rest:
        names.append(f"0x{rest:x}")
    return tuple(names)


def capset_name(capset_id: int) -> str:
    """A protocol-2 client never sends CONTEXT_INIT: its context is the default (virgl)."""
    if capset_id == 0:
        return "default (virgl)"
    return P.CAPSET_NAMES.get(capset_id, f"capset {capset_id}")


def latency_bucket(latency_ms: float) -> int:
    return bisect.bisect_left(LATENCY_EDGES_MS, latency_ms)


# ---------------------------------------------------------------- records
class ClientInfo(NamedTuple):
    """One client (a session) and its context."""

    key: int
    name: str
    pid: int
    uid: int
    ctx_id: int
    protocol_version: int
    capset_id: int
    connected_at: float  # time.monotonic()
    closed_at: float | None
    state: str  # "active", "error" (dropped for a protocol error) or "disconnected"
    close_reason: str
    submits: int
    bytes_submitted: int
    submits_per_s: float
    bytes_per_s: float
    fps: float
    presents: int
    resources: int
    resource_bytes: int
    fences_submitted: int
    fences_completed: int
    syncs: int
    renderer_pid: int = 0  # the process whose virglrenderer serves it

    @property
    def client_key(self) -> int:
        return self.key

    @property
    def kind(self) -> str:
        return self.state

    @property
    def capset(self) -> str:
        return capset_name(self.capset_id)

    @property
    def fences_pending(self) -> int:
        return self.fences_submitted - self.fences_completed


class ResourceInfo(NamedTuple):
    key: int
    client_key: int
    client_name: str
    client_pid: int
    client_handle: int
    server_handle: int
    target: int
    format: int
    bind: int
    width: int
    height: int
    depth: int
    array_size: int
    last_level: int
    nr_samples: int
    blob: bool
    shm_size: int
    est_bytes: int
    scanout: bool  # presented at least once
    created: float

    @property
    def display_target(self) -> bool:
        return bool(self.bind & _DISPLAY_BINDS)

    @property
    def backing(self) -> str:
        """blob; shm (a memfd the guest maps, attached as the iov); or none (protocol 0/1:
        data travels inline with TRANSFER_GET/PUT)."""
        if self.blob:
            return "blob"
        return "shm" if self.shm_size else "none"

    @property
    def kind(self) -> str:
        if self.blob:
            return "blob"
        if self.display_target:
            return "display target"
        return "buffer" if self.target == P.TARGET_BUFFER else "texture"

    @property
    def target_name(self) -> str:
        return target_name(self.target)

    @property
    def format_name(self) -> str:
        return format_name(self.format)

    @property
    def bind_names(self) -> tuple[str, ...]:
        return bind_names(self.bind)


SyncPointKind = Literal["fence", "sync", "timeline"]


class SyncPointInfo(NamedTuple):
    """Something a guest waits on, one row of the inspector's fences table: a context
    fence (kind "fence") or a protocol-3 sync object (kind "sync").

    Fence: ``created``/``signalled`` are when it was created and retired; ``pending`` is
    how many fences of its context were in flight once it was created. Sync: ``created``
    is when it was first seen, ``signalled`` when its value last changed, ``value`` its
    timeline value and ``pending`` the SYNC_WAITs waiting on it. Timeline (a venus
    queue: ``id`` its ring): ``value`` its fences retired, ``pending`` those in flight,
    ``signalled`` when one last retired.
    """

    key: int
    kind: SyncPointKind
    client_key: int
    client_name: str
    client_pid: int
    ctx_id: int
    id: int
    created: float
    signalled: float | None
    pending: int
    value: int | None = None

    @property
    def latency_ms(self) -> float | None:
        if self.kind != "fence" or self.signalled is None:
            return None
        return (self.signalled - self.created) * 1e3


R = TypeVar("R", ClientInfo, ResourceInfo, SyncPointInfo)


@dataclass(frozen=True, slots=True)
class TableDelta(Generic[R]):
    """What changed in one table since the previous pull; apply removed, changed, added."""

    added: tuple[R, ...] = ()
    changed: tuple[R, ...] = ()
    removed: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


@dataclass(frozen=True, slots=True)
class Delta:
    time: float
    clients: TableDelta[ClientInfo]
    resources: TableDelta[ResourceInfo]
    fences: TableDelta[SyncPointInfo]
    resynced: bool = False

    def __bool__(self) -> bool:
        return bool(self.clients or self.resources or self.fences)


class Sample(NamedTuple):
    """One rate sample of a client (plots: one a second)."""

    t: float
    fps: float
    submits_per_s: float
    bytes_per_s: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    time: float  # monotonic
    wall_offset: float  # add to a monotonic time to get Unix time
    clients: tuple[ClientInfo, ...]
    resources: tuple[ResourceInfo, ...]
    fences: tuple[SyncPointInfo, ...]
    histograms: Mapping[int, tuple[int, ...]]  # client key -> fence latency buckets
    series: Mapping[int, tuple[Sample, ...]]  # client key -> last minute, 1 Hz


class TableDeltaBuilder(Generic[R]):
    """Collects one pull's changes to a table: a record added then removed in the same
    pull leaves no trace; a change to a record added in it stays an addition."""

    __slots__ = ("added", "changed", "removed")

    def __init__(self) -> None:
        self.added: dict[int, R] = {}
        self.changed: dict[int, R] = {}
        self.removed: set[int] = set()

    def add(self, rec: R) -> None:
        self.added[rec.key] = rec

    def change(self, rec: R) -> None:
        if rec.key in self.added:
            self.added[rec.key] = rec
        else:
            self.changed[rec.key] = rec

    def remove(self, key: int) -> None:
        if self.added.pop(key, None) is None:
            self.changed.pop(key, None)
            self.removed.add(key)

    def build(self) -> TableDelta[R]:
        return TableDelta(tuple(self.added.values()), tuple(self.changed.values()),
                          tuple(sorted(self.removed)))
