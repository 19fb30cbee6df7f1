"""What a session owns: resources, sync objects and sync waiters.

Plain data, read by the session code on the render thread and (as
snapshots) by the inspector.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from virgl_viewer.virgl import NativeShm, SharedMemory


@dataclass(slots=True, eq=False)
class Resource:
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
    shm: SharedMemory | NativeShm | None = None
    blob: bool = False
    created: float = field(default_factory=time.monotonic)
    native: bool = False  # created by the C path, which owns its id and shm


@dataclass(slots=True, eq=False)
class Sync:
    sync_id: int
    value: int


@dataclass(slots=True, eq=False)
class SyncWaiter:
    """A SYNC_WAIT not yet met: ``need`` maps each sync id it still waits on to the
    value that sync must reach (the largest asked for ALL, the smallest for ANY)."""

    fd: int
    any: bool
    need: dict[int, int]
    timer: Any = None
