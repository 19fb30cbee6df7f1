"""``--stats-json PATH``: the inspector's state as a JSON file, for CI scripts.

Why: a headless server has no inspector, but a CI job still wants to know which clients
are connected, what they hold and how their fences are doing. How: ``StatsJsonWriter``
owns a thread that pulls a ``StateRegistry`` every PULL_INTERVAL_S and, when something
changed, rewrites the file at most every WRITE_INTERVAL_S: the JSON goes to a temporary
file in the same directory, then ``os.replace`` swaps it in, so a reader never sees a half
written file. The first write happens at ``start()`` (the file exists once the server is
up) and the last at ``stop()``. ``snapshot_dict`` is also the inspector's JSON export.
Times are Unix seconds; ``*_per_s`` rates cover the last second.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from virgl_viewer.state import (
    LATENCY_EDGES_MS,
    ClientInfo,
    ResourceInfo,
    Snapshot,
    StateRegistry,
    SyncPointInfo,
)

log = logging.getLogger(__name__)

FORMAT = "virgl-viewer-stats"
VERSION = 1
PULL_INTERVAL_S = 0.1
WRITE_INTERVAL_S = 0.25
FENCES_PER_CLIENT = 100  # newest fences listed per client (the summary covers them all)


def _wall(snap: Snapshot, t: float | None) -> float | None:
    return None if t is None else round(t + snap.wall_offset, 6)


def latency_summary(fences: list[SyncPointInfo]) -> dict[str, Any]:
    """count, mean, p50, p95 and max (ms) of the retired fences given."""
    lat = sorted(f.latency_ms for f in fences if f.latency_ms is not None)
    if not lat:
        return {"count": 0, "mean_ms": None, "p50_ms": None, "p95_ms": None, "max_ms": None}
    n = len(lat)
    return {"count": n, "mean_ms": round(sum(lat) / n, 4), "p50_ms": round(lat[n // 2], 4),
            "p95_ms": round(lat[min(n - 1, (n * 95) // 100)], 4), "max_ms": round(lat[-1], 4)}


def client_dict(snap: Snapshot, c: ClientInfo) -> dict[str, Any]:
    return {
        "key": c.key, "ctx_id": c.ctx_id, "name": c.name, "pid": c.pid, "uid": c.uid,
        "renderer_pid": c.renderer_pid,
        "protocol_version": c.protocol_version, "capset_id": c.capset_id,
        "capset": c.capset, "state": c.state, "close_reason": c.close_reason,
        "connected_at": _wall(snap, c.connected_at), "closed_at": _wall(snap, c.closed_at),
        "age_s": round((c.closed_at or snap.time) - c.connected_at, 3),
        "submits": c.submits, "bytes_submitted": c.bytes_submitted,
        "submits_per_s": round(c.submits_per_s, 2), "bytes_per_s": round(c.bytes_per_s, 1),
        "fps": round(c.fps, 2), "presents": c.presents,
        "resources": c.resources, "resource_bytes": c.resource_bytes,
        "fences_submitted": c.fences_submitted, "fences_completed": c.fences_completed,
        "fences_pending": c.fences_pending, "syncs": c.syncs,
    }


def resource_dict(snap: Snapshot, r: ResourceInfo) -> dict[str, Any]:
    return {
        "key": r.key, "client_key": r.client_key, "client_name": r.client_name,
        "client_pid": r.client_pid, "client_handle": r.client_handle,
        "server_handle": r.server_handle, "target": r.target, "target_name": r.target_name,
        "format": r.format, "format_name": r.format_name, "bind": r.bind,
        "bind_names": list(r.bind_names), "width": r.width, "height": r.height,
        "depth": r.depth, "array_size": r.array_size, "last_level": r.last_level,
        "nr_samples": r.nr_samples, "estimated_bytes": r.est_bytes, "backing": r.backing,
        "shm_size": r.shm_size, "kind": r.kind, "display_target": r.display_target,
        "scanout": r.scanout, "created_at": _wall(snap, r.created),
    }


def fence_dict(snap: Snapshot, f: SyncPointInfo) -> dict[str, Any]:
    lat = f.latency_ms
    return {
        "key": f.key, "kind": f.kind, "id": f.id, "client_key": f.client_key,
        "client_name": f.client_name, "client_pid": f.client_pid, "ctx_id": f.ctx_id,
        "created_at": _wall(snap, f.created), "signalled_at": _wall(snap, f.signalled),
        "latency_ms": None if lat is None else round(lat, 4), "pending": f.pending,
        "value": f.value,
    }


def snapshot_dict(snap: Snapshot, fences_per_client: int | None = FENCES_PER_CLIENT,
                  meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document of a snapshot (``fences_per_client=None``: every fence kept)."""
    fences: dict[int, list[SyncPointInfo]] = {}
    syncs = []
    timelines = []
    for f in snap.fences:
        if f.kind == "sync":
            syncs.append(f)
        elif f.kind == "timeline":
            timelines.append(f)
        else:
            fences.setdefault(f.client_key, []).append(f)
    clients = []
    for c in snap.clients:
        d = client_dict(snap, c)
        d["latency"] = latency_summary(fences.get(c.key, []))
        d["latency_histogram"] = list(snap.histograms.get(c.key, ()))
        clients.append(d)
    listed = [f for fs in fences.values()
              for f in (fs if fences_per_client is None else fs[-fences_per_client:])]
    listed.sort(key=lambda f: f.key)
    total_hist = [0] * (len(LATENCY_EDGES_MS) + 1)
    for counts in snap.histograms.values():
        for i, n in enumerate(counts):
            total_hist[i] += n
    active = [c for c in snap.clients if c.state == "active"]
    return {
        "format": FORMAT, "version": VERSION,
        "generated_at": _wall(snap, snap.time), **(dict(meta) if meta else {}),
        "totals": {
            "clients": len(active), "clients_listed": len(snap.clients),
            "resources": len(snap.resources),
            "resource_bytes": sum(r.est_bytes for r in snap.resources),
            "submits": sum(c.submits for c in snap.clients),
            "fences_pending": sum(c.fences_pending for c in active),
            "syncs": len(syncs),
            "timelines": len(timelines),
        },
        "clients": clients,
        "resources": [resource_dict(snap, r) for r in snap.resources],
        "syncs": [fence_dict(snap, f) for f in syncs],
        "timelines": [fence_dict(snap, f) for f in timelines],
        "fences": [fence_dict(snap, f) for f in listed],
        "latency_histogram": {"edges_ms": list(LATENCY_EDGES_MS), "counts": total_hist},
    }


def write_atomic(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (write a temporary file, rename)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class StatsJsonWriter:
    """Keeps ``path`` up to date with the registry's state (see the module docstring).

    The writer is the registry's only consumer: don't pull the same registry elsewhere.
    """

    def __init__(self, path: str, registry: StateRegistry, *,
                 meta: Mapping[str, Any] | None = None,
                 fences_per_client: int | None = FENCES_PER_CLIENT,
                 pull_interval: float = PULL_INTERVAL_S,
                 write_interval: float = WRITE_INTERVAL_S) -> None:
        self.path = os.path.abspath(path)
        self.registry = registry
        self.meta = {"pid": os.getpid(), **(dict(meta) if meta else {})}
        self.fences_per_client = fences_per_client
        self.pull_interval = pull_interval
        self.write_interval = write_interval
        self.writes = 0
        self._dirty = True
        self._last_write = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self, now: float | None = None) -> bool:
        """Pull once; write if something changed and the last write is old enough.
        Returns whether it wrote."""
        now = time.monotonic() if now is None else now
        if self.registry.pull(now):
            self._dirty = True
        if self._dirty and now - self._last_write >= self.write_interval:
            self.write()
            self._last_write = now
            return True
        return False

    def write(self) -> None:
        doc = snapshot_dict(self.registry.snapshot(), self.fences_per_client, self.meta)
        write_atomic(self.path, json.dumps(doc, separators=(",", ":")))
        self._dirty = False
        self.writes += 1

    def start(self) -> None:
        """First write now, then keep the file current from a thread."""
        self.registry.pull()
        self.write()
        self._last_write = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="stats-json", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.pull_interval):
            try:
                self.poll()
            except OSError as exc:  # a full disk or a removed directory: keep serving
                log.warning("cannot write %s: %s", self.path, exc)

    def stop(self) -> None:
        """Stop the thread and write the final state."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            self.registry.pull()
            self.write()
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc)
