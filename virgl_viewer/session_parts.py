"""What the parts of a session see of each other and of the server.

Why: ``Session`` (session.py) is assembled from command parts (session_resources,
session_sync); each part's methods take ``self`` as ``SessionCore``, the
attributes and methods of the session they use, and the session tells the
server of its events through ``SessionServer``. Written down here, neither the
parts nor the session import session.py or server.py: no import cycles, and
mypy checks that ``Session`` and ``VtestServer`` provide what is promised.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sized
from typing import Any, Protocol

from virgl_viewer.budgets import Budgets
from virgl_viewer.objects import Resource, Sync, SyncWaiter
from virgl_viewer.renderer import RenderHost
from virgl_viewer.virgl import FastConn, HandleMap
from virgl_viewer.vtest import codec
from virgl_viewer.vtest import protocol as P


class SessionServer(Protocol):
    """The server a session runs in (VtestServer). ``s`` is the session itself."""

    host: RenderHost
    loop: asyncio.AbstractEventLoop
    present_interval: float
    budgets: Budgets

    @property
    def observers(self) -> Sized: ...

    def session_named(self, s: Any, /) -> None: ...
    def session_closing(self, s: Any, /) -> None: ...
    def session_closed(self, s: Any, /) -> None: ...
    def resource_created(self, s: Any, r: Resource, /) -> None: ...
    def resource_destroyed(self, s: Any, r: Resource, /) -> None: ...
    def presented(self, s: Any, r: Resource, count: int, /) -> None: ...
    def sync_changed(self, s: Any, /) -> None: ...
    def fences_polled(self) -> None: ...


class SessionCore(Protocol):
    """The session as its command parts use it."""

    server: SessionServer
    host: RenderHost
    loop: asyncio.AbstractEventLoop
    conn: codec.ServerConnection
    fast: FastConn
    map: HandleMap
    ctx_id: int
    protocol_version: int
    closed: bool
    budgets: Budgets
    resources: dict[int, Resource]
    syncs: dict[int, Sync]
    sync_waiters: list[SyncWaiter]
    _waiting: dict[int, set[SyncWaiter]]
    _timeline: deque[tuple[int, list[tuple[Sync, int]]]]
    _next_sync: int
    _command: str
    capset_id: int
    venus_rings: dict[int, deque[tuple[int, list[tuple[Sync, int]]]]]
    venus_timelines: dict[int, tuple[int, int]]
    _venus_poll_fd: int

    @property
    def fence_submitted(self) -> int: ...
    @property
    def fence_completed(self) -> int: ...

    # session.py
    def _send(self, data: bytes) -> None: ...
    def _send_fd(self, fd: int) -> None: ...
    def _ensure_context(self) -> int: ...
    def _destroy_resource(self, res: Resource) -> None: ...
    def sync_resources(self) -> None: ...

    # session_resources.py
    def _resource(self, command: str, handle: int) -> Resource: ...
    def _mirror(self, res: Resource) -> None: ...
    def _transfer_target(self, cmd: str,
                         ev: P.TransferGet | P.TransferPut | P.TransferGet2 | P.TransferPut2,
                         shm_offset: int,
                         ) -> tuple[Resource, int, tuple[int, int, int, int, int, int]]: ...
    def _presented(self, res: Resource) -> None: ...

    # session_sync.py
    def _rewrite(self, cmd: str, buf: bytearray, start_dw: int, ndw: int) -> None: ...
    def _new_fence(self, syncs: list[tuple[Sync, int]] | None = None,
                   switch: bool = False) -> None: ...
    def _sync(self, cmd: str, sync_id: int) -> Sync: ...
    def _signal_sync(self, sync: Sync, value: int) -> None: ...
    def _end_waiter(self, w: SyncWaiter, signal: bool) -> None: ...
    def _expire_waiter(self, w: SyncWaiter) -> None: ...

    # session_venus.py
    def _venus_started(self) -> None: ...
    def _venus_poll(self) -> None: ...
    def _venus_submit(self, batch: P.SubmitBatch, payload: bytearray,
                      signals: list[tuple[Sync, int]]) -> None: ...
    def _venus_fences(self) -> bool: ...
    def _venus_stop(self) -> None: ...
