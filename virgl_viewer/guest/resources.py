"""Objects a ``VtestClient`` hands out: resources and SYNC_WAIT fds.

Why: a vtest resource may come with a file descriptor (the shm memfd of a
RESOURCE_CREATE2, a blob's fd) and a mapping of it; a SYNC_WAIT answers with
an eventfd. Each object owns what it received and releases it in ``close()``;
the client closes whatever is left when it closes.
"""

from __future__ import annotations

import mmap
import os
import select
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from types import TracebackType


class Owner(Protocol):
    """What these objects ask of the client that made them (``VtestClient``)."""

    @property
    def closed(self) -> bool: ...

    def resource_unref(self, handle: int, /) -> None: ...

    def _forget_resource(self, res: GuestResource, /) -> None: ...

    def _forget_fd(self, fd: int, /) -> None: ...


class GuestResource:
    """A resource created through a ``VtestClient``: the guest's side of it (the
    server's record of a client's resource is ``objects.Resource``).

    ``handle`` is the id used on the wire (client-chosen before protocol 3,
    server-chosen since). ``shm`` is the shared memory TRANSFER_GET2/PUT2 go
    through (RESOURCE_CREATE2 with ``data_size`` > 0), mapped read/write, or
    None. ``fd`` is a blob's fd (kept open: it may be shared), else None.
    ``close()`` unrefs the resource on the server and releases both.
    """

    def __init__(
        self,
        client: Owner,
        handle: int,
        *,
        size: int = 0,
        fd: int | None = None,
        shm: mmap.mmap | None = None,
    ) -> None:
        self.handle = handle
        self.size = size
        self.fd = fd
        self.shm = shm
        self._client: Owner | None = client

    def __repr__(self) -> str:
        state = "closed" if self._client is None else f"size={self.size}"
        return f"<GuestResource {self.handle} {state}>"

    @property
    def closed(self) -> bool:
        return self._client is None

    def map(self) -> mmap.mmap:
        """Map ``fd`` (a blob) read/write, once; returns ``shm``."""
        if self.shm is None:
            if self.fd is None:
                raise ValueError(f"resource {self.handle} has no fd to map")
            self.shm = mmap.mmap(self.fd, self.size)
        return self.shm

    def release(self) -> None:
        """Drop the local mapping and fd without telling the server."""
        client, self._client = self._client, None
        if client is not None:
            client._forget_resource(self)
        fd, self.fd = self.fd, None
        if fd is not None:
            if client is not None:
                client._forget_fd(fd)
            os.close(fd)
        shm, self.shm = self.shm, None
        if shm is not None:
            shm.close()  # BufferError while a view of it lives; GC unmaps it later

    def close(self) -> None:
        """RESOURCE_UNREF on the server (if the client is open), then release."""
        client = self._client
        if client is None:
            return
        if not client.closed:
            client.resource_unref(self.handle)
        self.release()

    def __enter__(self) -> GuestResource:
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SyncWaitFd:
    """The eventfd a SYNC_WAIT is answered with: readable once the wait is
    satisfied (upstream never signals it if the timeout passes first)."""

    def __init__(self, client: Owner, fd: int) -> None:
        self.fd: int | None = fd
        self._client: Owner | None = client

    def fileno(self) -> int:
        if self.fd is None:
            raise ValueError("SyncWaitFd is closed")
        return self.fd

    def wait(self, timeout: float | None = 0.0) -> bool:
        """True if the fd is readable within ``timeout`` seconds (None: forever)."""
        poller = select.poll()
        poller.register(self.fileno(), select.POLLIN)
        ms = None if timeout is None else max(0, round(timeout * 1000))
        return bool(poller.poll(ms))

    def close(self) -> None:
        fd, self.fd = self.fd, None
        client, self._client = self._client, None
        if fd is not None:
            if client is not None:
                client._forget_fd(fd)
            os.close(fd)

    def __enter__(self) -> SyncWaitFd:
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
