"""A blocking vtest client, speaking protocol 0-3 like Mesa's winsys does.

Why: to drive a vtest server (ours or upstream's ``virgl_test_server``)
without Mesa: integration tests, hostile-input tests, Venus-style protocol 3
paths Debian has no client for, and scripted guests.

How: a thin blocking shell around the sans-IO ``ClientConnection``: each
method encodes one request, writes it and, if the request is answered, reads
with ``recvmsg`` (collecting SCM_RIGHTS fds) until the reply is parsed.
Every fd received is tracked and closed by ``close()`` unless a
``GuestResource``/``SyncWaitFd`` released it first.
"""

from __future__ import annotations

import array
import logging
import mmap
import os
import socket
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

from virgl_viewer.errors import RemoteProtocolError
from virgl_viewer.guest.resources import GuestResource, SyncWaitFd
from virgl_viewer.vtest import protocol as p
from virgl_viewer.vtest.client_codec import BatchSpec, ClientConnection, make_submit_cmd2
from virgl_viewer.vtest.codec import CLOSED, NEED_DATA

if TYPE_CHECKING:
    from types import TracebackType

log = logging.getLogger(__name__)

_R = TypeVar("_R", bound=p.Reply)
_MAX_FDS = 16  # per recvmsg; the server sends one fd per message
_RECV_SIZE = 1 << 16


def _default_name() -> bytes:
    return b"virgl-viewer-guest\0"


class VtestClient:
    """A connected vtest client. Use ``VtestClient.connect(...)``.

    The client is a context manager; ``close()`` closes the socket, every
    resource's mapping and every fd received from the server (it does not
    unref resources: the server frees them when the client goes away).
    Methods raise ``RemoteProtocolError`` if the server answers something
    unexpected or hangs up, and ``TimeoutError`` after ``timeout`` seconds
    without an answer.
    """

    def __init__(self, sock: socket.socket) -> None:
        """Wrap a connected socket; no message is sent (see ``handshake``)."""
        self.sock = sock
        self.conn = ClientConnection()
        self.caps = b""  #: GET_CAPS2 answer (virgl_caps_v2) after the handshake
        self.caps_v1 = b""  #: GET_CAPS answer (virgl_caps_v1)
        self._next_handle = 1
        self._fds: set[int] = set()
        self._resources: dict[int, GuestResource] = {}
        self._closed = False

    @classmethod
    def connect(
        cls,
        path: str = p.VTEST_DEFAULT_SOCKET_NAME,
        name: str | bytes | None = None,
        protocol_version: int = p.VTEST_PROTOCOL_VERSION,
        *,
        handshake: bool = True,
        timeout: float | None = 30.0,
    ) -> VtestClient:
        """Connect to the vtest socket at ``path`` and (unless ``handshake``
        is False) introduce ourselves as ``name`` and ask for
        ``protocol_version`` (Mesa 22's virpipe asks for 2, Venus for 3)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except BaseException:
            sock.close()
            raise
        client = cls(sock)
        if handshake:
            try:
                client.handshake(name, protocol_version)
            except BaseException:
                client.close()
                raise
        return client

    # ------------------------------------------------------------- plumbing
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def protocol_version(self) -> int:
        """The version the server agreed to (0 until PROTOCOL_VERSION)."""
        return self.conn.protocol_version

    def send(self, *requests: p.Request) -> None:
        """Write requests without waiting; collect replies with ``read_reply``."""
        self.sock.sendall(b"".join(self.conn.send(r) for r in requests))

    def read_reply(self) -> p.Reply:
        """Block for the next reply owed by a request already sent."""
        if not self.conn.pending:
            raise RuntimeError("no reply is pending")
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA:
                self._receive()
            elif event is CLOSED:
                raise RemoteProtocolError("the server closed the connection")
            else:
                if isinstance(event, p.FdMessage):
                    self._fds.add(event.fd)
                return event

    def request(self, request: p.Request) -> list[p.Reply]:
        """Send one request and return every reply it gets (fds included:
        they stay tracked, so ``close`` closes them)."""
        if self.conn.pending:
            raise RuntimeError("replies to earlier requests are still pending")
        self.send(request)
        replies: list[p.Reply] = []
        while self.conn.pending:
            replies.append(self.read_reply())
        return replies

    def _call(self, request: p.Request, kind: type[_R]) -> _R:
        # Send and read the header reply only; an fd that follows stays owed.
        if self.conn.pending:
            raise RuntimeError("replies to earlier requests are still pending")
        self.send(request)
        reply = self.read_reply()
        if not isinstance(reply, kind):
            raise RemoteProtocolError(f"expected {kind.__name__}, got {reply!r}")
        return reply

    def _receive(self) -> None:
        data, ancdata, flags, _ = self.sock.recvmsg(
            _RECV_SIZE, socket.CMSG_SPACE(_MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC)
        fds = array.array("i")
        for level, kind, cdata in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(cdata[: len(cdata) - len(cdata) % fds.itemsize])
        self._fds.update(fds)
        if flags & socket.MSG_CTRUNC:
            raise RemoteProtocolError("too many fds in one message (truncated)")
        self.conn.receive_data(data, fds)

    def _fd_reply(self) -> int:
        reply = self.read_reply()
        if not isinstance(reply, p.FdMessage):
            raise RemoteProtocolError(f"expected an fd, got {reply!r}")
        return reply.fd

    def _forget_fd(self, fd: int) -> None:
        self._fds.discard(fd)

    def _forget_resource(self, resource: GuestResource) -> None:
        if self._resources.get(resource.handle) is resource:
            del self._resources[resource.handle]

    # ------------------------------------------------------------ handshake
    def handshake(self, name: str | bytes | None = None,
                  protocol_version: int = p.VTEST_PROTOCOL_VERSION) -> None:
        """What Mesa does on connect: CREATE_RENDERER(name), PING_PROTOCOL_VERSION
        with a BUSY_WAIT(0, 0) behind it, PROTOCOL_VERSION, GET_CAPS2 + GET_CAPS."""
        if name is None:
            name = _default_name()
        elif isinstance(name, str):
            name = name.encode() + b"\0"
        self.send(p.CreateRenderer(name), p.PingProtocolVersion(), p.ResourceBusyWait(0, 0))
        while self.conn.pending:
            self.read_reply()
        self.request(p.ProtocolVersion(protocol_version))
        self.send(p.GetCaps2(), p.GetCaps())
        caps2, caps1 = self.read_reply(), self.read_reply()
        if not (isinstance(caps2, p.CapsReply) and isinstance(caps1, p.CapsReply)):
            raise RemoteProtocolError(f"expected caps, got {caps2!r}, {caps1!r}")
        self.caps, self.caps_v1 = caps2.caps, caps1.caps
        log.debug("vtest protocol %d, %d caps bytes", self.protocol_version, len(self.caps))

    # ------------------------------------------------------------ resources
    def resource_create(
        self, target: int, format: int, bind: int, width: int, height: int = 1, *,
        depth: int = 1, array_size: int = 1, last_level: int = 0, nr_samples: int = 0,
        data_size: int = 0, handle: int | None = None,
    ) -> GuestResource:
        """Create a resource the way Mesa does at the negotiated version.

        Protocol 0/1: RESOURCE_CREATE with a client-chosen handle, no shm.
        Protocol 2: RESOURCE_CREATE2 with a client-chosen handle; the server
        sends a memfd of ``data_size`` bytes if it is > 0, mapped as ``shm``.
        Protocol 3: as 2 but the handle must be 0 and the server picks it.
        ``handle`` overrides the choice (tests of colliding/invalid handles).
        """
        version = self.protocol_version
        if handle is None:
            if version >= 3:
                handle = 0
            else:
                handle, self._next_handle = self._next_handle, self._next_handle + 1
        args = (handle, target, format, bind, width, height, depth, array_size,
                last_level, nr_samples)
        if version < 2:
            if data_size:
                raise ValueError("protocol < 2 resources have no shm (data_size must be 0)")
            request: p.Request = p.ResourceCreate(*args)
        else:
            request = p.ResourceCreate2(*args, data_size=data_size)
        self.send(request)
        if version >= 3:
            reply = self.read_reply()
            if not isinstance(reply, p.ResourceIdReply):
                raise RemoteProtocolError(f"expected a resource id, got {reply!r}")
            handle = reply.res_id
        shm = None
        if version >= 2 and data_size:
            fd = self._fd_reply()
            try:
                shm = mmap.mmap(fd, data_size)
            finally:
                self._fds.discard(fd)
                os.close(fd)
        return self._track(GuestResource(self, handle, size=data_size, shm=shm))

    def create_blob(self, blob_type: int, flags: int, size: int, blob_id: int = 0) -> GuestResource:
        """RESOURCE_CREATE_BLOB (protocol 3): the resource keeps the fd the
        server sends (``GuestResource.fd``; ``GuestResource.map()`` maps it)."""
        res_id = self._call(p.ResourceCreateBlob(blob_type, flags, size, blob_id),
                            p.ResourceIdReply).res_id
        return self._track(GuestResource(self, res_id, size=size, fd=self._fd_reply()))

    def _track(self, resource: GuestResource) -> GuestResource:
        self._resources[resource.handle] = resource
        return resource

    def resource_unref(self, resource: GuestResource | int) -> None:
        """RESOURCE_UNREF. A ``GuestResource`` is also released locally."""
        if isinstance(resource, GuestResource):
            resource.close()
            return
        self.send(p.ResourceUnref(resource))

    def transfer_get(self, resource: GuestResource | int, *, width: int, height: int = 1,
                     data_size: int, x: int = 0, y: int = 0, z: int = 0, depth: int = 1,
                     level: int = 0, stride: int = 0, layer_stride: int = 0) -> bytes:
        """TRANSFER_GET (protocol 0/1 style): the box comes back inline,
        ``data_size`` raw bytes."""
        request = p.TransferGet(_handle(resource), level, stride, layer_stride, x, y, z,
                                width, height, depth, data_size)
        if not data_size:
            self.send(request)
            return b""
        return self._call(request, p.TransferGetData).data

    def transfer_put(self, resource: GuestResource | int, data: bytes, *, width: int,
                     height: int = 1, x: int = 0, y: int = 0, z: int = 0, depth: int = 1,
                     level: int = 0, stride: int = 0, layer_stride: int = 0) -> None:
        """TRANSFER_PUT (protocol 0/1 style): ``data`` travels inline."""
        self.send(p.TransferPut(_handle(resource), level, stride, layer_stride, x, y, z,
                                width, height, depth, len(data), bytes(data)))

    def transfer_get2(self, resource: GuestResource | int, *, width: int, height: int = 1,
                      data_size: int = 0, offset: int = 0, x: int = 0, y: int = 0,
                      z: int = 0, depth: int = 1, level: int = 0) -> None:
        """TRANSFER_GET2: the server copies the box into the shm at ``offset``.
        No reply: follow with ``busy_wait(resource, wait=True)`` as Mesa does."""
        self.send(p.TransferGet2(_handle(resource), level, x, y, z, width, height, depth,
                                 data_size, offset))

    def transfer_put2(self, resource: GuestResource | int, *, width: int, height: int = 1,
                      data_size: int = 0, offset: int = 0, x: int = 0, y: int = 0,
                      z: int = 0, depth: int = 1, level: int = 0) -> None:
        """TRANSFER_PUT2: the server copies the box from the shm at ``offset``."""
        self.send(p.TransferPut2(_handle(resource), level, x, y, z, width, height, depth,
                                 data_size, offset))

    def busy_wait(self, resource: GuestResource | int = 0, wait: bool = False) -> bool:
        """RESOURCE_BUSY_WAIT: True if the resource (upstream: any GPU work)
        is still busy; with ``wait`` the server answers once it is idle."""
        flags = p.BUSY_WAIT_FLAG_WAIT if wait else 0
        return bool(self._call(p.ResourceBusyWait(_handle(resource), flags),
                               p.BusyWaitReply).busy)

    def submit(self, commands: bytes | bytearray) -> None:
        """SUBMIT_CMD: a buffer of virgl command dwords."""
        self.send(p.SubmitCmd(bytearray(commands)))

    # ---------------------------------------------------------- protocol 3
    def get_param(self, param: int) -> int | None:
        """GET_PARAM: the value, or None if the server does not know it."""
        reply = self._call(p.GetParam(param), p.GetParamReply)
        return reply.value if reply.valid else None

    def get_capset(self, capset_id: int, version: int = 0) -> bytes | None:
        """GET_CAPSET: the capset bytes, or None if unsupported."""
        reply = self._call(p.GetCapset(capset_id, version), p.GetCapsetReply)
        return reply.caps if reply.valid else None

    def context_init(self, capset_id: int) -> None:
        """CONTEXT_INIT: create the context for ``capset_id`` (e.g. Venus 4)."""
        self.send(p.ContextInit(capset_id))

    def sync_create(self, value: int = 0) -> int:
        return self._call(p.SyncCreate(value), p.SyncCreateReply).sync_id

    def sync_unref(self, sync_id: int) -> None:
        self.send(p.SyncUnref(sync_id))

    def sync_read(self, sync_id: int) -> int:
        return self._call(p.SyncRead(sync_id), p.SyncReadReply).value

    def sync_write(self, sync_id: int, value: int) -> None:
        self.send(p.SyncWrite(sync_id, value))

    def sync_wait(self, waits: Sequence[tuple[int, int]], timeout_ms: int,
                  wait_any: bool = False) -> SyncWaitFd:
        """SYNC_WAIT for each (sync_id, value): returns the eventfd the server
        signals when all (or, with ``wait_any``, one) are reached."""
        flags = p.SYNC_WAIT_FLAG_ANY if wait_any else 0
        self._call(p.SyncWait(flags, timeout_ms, tuple(waits)), p.SyncWaitReply)
        return SyncWaitFd(self, self._fd_reply())

    def submit_cmd2(self, batches: Iterable[BatchSpec]) -> None:
        """SUBMIT_CMD2: batches laid out with the 8-dword header stride."""
        self.send(make_submit_cmd2(batches))

    # --------------------------------------------------------- raw access
    def send_raw(self, data: bytes) -> None:
        """Write arbitrary bytes (for hostile-input tests); the codec's idea
        of pending replies is not updated."""
        self.sock.sendall(data)

    def recv_raw(self, max_bytes: int = _RECV_SIZE, timeout: float | None = None) -> bytes:
        """Read whatever the server sent, bypassing the codec (b"" on EOF)."""
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(max_bytes)
        finally:
            self.sock.settimeout(old)

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """True if the server hangs up within ``timeout`` (data is discarded)."""
        try:
            while self.recv_raw(timeout=timeout):
                pass
        except TimeoutError:
            return False
        except ConnectionResetError:
            pass
        return True

    # ------------------------------------------------------------ closing
    def close(self) -> None:
        """Close the socket and release every mapping and fd received."""
        if self._closed:
            return
        self._closed = True
        try:
            for resource in list(self._resources.values()):
                resource.release()  # BufferError if a view of its shm is still alive
        finally:
            for fd in self._fds | set(self.conn.take_unclaimed_fds()):
                os.close(fd)
            self._fds.clear()
            self.sock.close()

    def __enter__(self) -> VtestClient:
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _handle(resource: GuestResource | int) -> int:
    return resource.handle if isinstance(resource, GuestResource) else resource
