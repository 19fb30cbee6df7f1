"""What a session owns: resources, sync objects and sync waiters.

Plain data, read by the session code on the render thread and (as
snapshots) by the inspector.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from virgl_viewer.virgl import NativeShm, SharedMemory
from virgl_viewer.vtest import protocol as P


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

    def level_extent(self, level: int) -> tuple[int, int, int]:
        """(width, height, depth-or-layers) of a mip level, as transfers see it."""
        t = self.target
        w = max(1, self.width >> level)
        if t in (P.TARGET_BUFFER, P.TARGET_1D, P.TARGET_1D_ARRAY):
            h = max(1, self.height)
        else:
            h = max(1, self.height >> level)
        if t == P.TARGET_3D:
            d = max(1, self.depth >> level)
        elif t == P.TARGET_1D_ARRAY:
            h, d = max(1, self.array_size), 1  # gallium keeps 1D layers in y
        elif t in (P.TARGET_CUBE, P.TARGET_2D_ARRAY, P.TARGET_CUBE_ARRAY):
            d = max(6 if t == P.TARGET_CUBE else 1, self.array_size)
        else:
            d = max(1, self.depth)
        return w, h, d


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
