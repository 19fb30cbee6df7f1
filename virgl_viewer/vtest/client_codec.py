"""Sans-IO client side of vtest: requests out, replies in.

Why: our own guest library (``virgl_viewer.guest``) and hostile-input tests
need to speak vtest exactly as Mesa does, without Mesa.

How: ``encode_request`` turns a request dataclass into bytes the way Mesa's
winsys writes them. Replies are not self-describing (TRANSFER_GET data is raw
bytes, an fd travels as one data byte with SCM_RIGHTS, and the GET_CAPS2 reply
reuses id 2 of RESOURCE_CREATE), so ``ClientConnection.send`` remembers each
request and ``next_event`` parses the replies it implies, in order, under the
protocol version negotiated by then.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Literal

from virgl_viewer.vtest import protocol as p
from virgl_viewer.vtest.codec import CLOSED, NEED_DATA, Sentinel, command_name
from virgl_viewer.vtest.errors import LocalProtocolError, RemoteProtocolError
from virgl_viewer.vtest.protocol import Cmd

CAPS2_REPLY_ID = 2  # upstream answers GET_CAPS2 with id 2, and Mesa checks it
_HDR = struct.Struct("<2I")
_LO = 0xFFFFFFFF


def _pack(*values: int) -> bytes:
    try:
        return struct.pack(f"<{len(values)}I", *values)
    except struct.error as exc:
        raise LocalProtocolError(f"field out of uint32 range: {values}") from exc


def _split64(value: int) -> tuple[int, int]:
    if not 0 <= value < 1 << 64:
        raise LocalProtocolError(f"value out of uint64 range: {value}")
    return value & _LO, value >> 32


ReplyEvent = p.Reply | Literal[Sentinel.NEED_DATA, Sentinel.CLOSED]


def _fields(request: p.Request) -> tuple[int, ...]:
    return tuple(getattr(request, f.name) for f in fields(request))


def encode_request(request: p.Request) -> bytes:
    """Bytes of one request, laid out as Mesa's vtest winsys sends it.

    CREATE_RENDERER's length is the byte length of ``name`` (sent as given,
    Mesa includes the NUL). TRANSFER_PUT is followed by exactly ``data_size``
    bytes; TRANSFER_PUT2 has length 10 + ceil(data_size/4) and no data, as
    Mesa sends it. SUBMIT_CMD2 sends ``payload`` verbatim (see
    ``make_submit_cmd2``).
    """
    match request:
        case p.CreateRenderer(name):
            return _pack(len(name), Cmd.CREATE_RENDERER) + bytes(name)
        case p.SubmitCmd(commands):
            if len(commands) % 4:
                raise LocalProtocolError("SUBMIT_CMD commands must be whole dwords")
            return _pack(len(commands) // 4, Cmd.SUBMIT_CMD) + bytes(commands)
        case p.SubmitCmd2(_, payload):
            if len(payload) % 4:
                raise LocalProtocolError("SUBMIT_CMD2 payload must be whole dwords")
            return _pack(len(payload) // 4, Cmd.SUBMIT_CMD2) + bytes(payload)
        case p.TransferPut():
            if len(request.data) != request.data_size:
                raise LocalProtocolError(
                    f"TRANSFER_PUT has {len(request.data)} bytes, data_size says "
                    f"{request.data_size}")
            head = _fields(request)[: p.TRANSFER_HDR_SIZE]
            length = p.TRANSFER_HDR_SIZE + (request.data_size + 3) // 4
            return _pack(length, Cmd.TRANSFER_PUT, *head) + bytes(request.data)
        case p.TransferPut2(data_size=data_size):
            length = p.TRANSFER2_HDR_SIZE + (data_size + 3) // 4
            return _pack(length, Cmd.TRANSFER_PUT2, *_fields(request))
        case p.ResourceCreateBlob(blob_type, flags, size, blob_id):
            return _pack(p.RES_CREATE_BLOB_SIZE, Cmd.RESOURCE_CREATE_BLOB, blob_type, flags,
                         *_split64(size), *_split64(blob_id))
        case p.SyncCreate(value):
            return _pack(p.SYNC_CREATE_SIZE, Cmd.SYNC_CREATE, *_split64(value))
        case p.SyncWrite(sync_id, value):
            return _pack(p.SYNC_WRITE_SIZE, Cmd.SYNC_WRITE, sync_id, *_split64(value))
        case p.SyncWait(flags, timeout, waits):
            entries = [v for sync_id, value in waits for v in (sync_id, *_split64(value))]
            return _pack(2 + len(entries), Cmd.SYNC_WAIT, flags, timeout, *entries)
    command = _REQUEST_IDS.get(type(request))
    if command is None:
        raise LocalProtocolError(f"not a request: {request!r}")
    values = _fields(request)
    return _pack(len(values), command, *values)


_REQUEST_IDS: dict[type, Cmd] = {
    getattr(p, "".join(w.capitalize() for w in c.name.split("_"))): c for c in Cmd
}


@dataclass(frozen=True, slots=True)
class BatchSpec:
    """One SUBMIT_CMD2 batch before layout: its commands and the syncs to
    signal, as (sync_id, value), when it completes on ring ``ring_idx``."""

    commands: bytes
    syncs: Sequence[tuple[int, int]] = ()
    ring_idx: int = 0
    flags: int = p.SUBMIT_CMD2_FLAG_RING_IDX


def make_submit_cmd2(batches: Iterable[BatchSpec]) -> p.SubmitCmd2:
    """Lay batches out like Venus: count, 8-dword batch headers, every
    batch's commands, then every batch's (id, lo, hi) sync entries."""
    specs = list(batches)
    cmd_off = 1 + p.SUBMIT_CMD2_BATCH_DWORDS * len(specs)
    sync_off = cmd_off + sum(len(b.commands) // 4 for b in specs)
    headers = [_pack(len(specs))]
    bodies: list[bytes] = []
    syncs: list[bytes] = []
    out: list[p.SubmitBatch] = []
    for b in specs:
        if len(b.commands) % 4:
            raise LocalProtocolError("batch commands must be whole dwords")
        size = len(b.commands) // 4
        headers.append(_pack(b.flags, cmd_off, size, sync_off, len(b.syncs), b.ring_idx, 0, 0))
        bodies.append(bytes(b.commands))
        syncs.extend(_pack(i, *_split64(v)) for i, v in b.syncs)
        out.append(p.SubmitBatch(b.flags, b.ring_idx, cmd_off, size, tuple(b.syncs)))
        cmd_off += size
        sync_off += 3 * len(b.syncs)
    payload = bytearray(b"".join(headers + bodies + syncs))
    return p.SubmitCmd2(tuple(out), payload)


class ClientConnection:
    """Parses a vtest server's replies to the requests sent through it.

    ``send(request)`` returns the bytes to write and queues the replies that
    request implies. Feed what the socket gives with ``receive_data(data,
    fds)`` (``b""`` for EOF; ``fds`` from SCM_RIGHTS, in arrival order) and
    collect replies with ``next_event()``: a reply dataclass, ``NEED_DATA``
    or ``CLOSED``. ``FdMessage`` replies hand their fd to the caller; fds
    never claimed are returned by ``take_unclaimed_fds`` for closing.
    """

    def __init__(self, max_reply_bytes: int = 64 << 20) -> None:
        self.max_reply_bytes = max_reply_bytes
        self.protocol_version = 0
        self._buf = bytearray()
        self._eof = False
        self._fds: deque[int] = deque()
        self._expect: deque[p.Request] = deque()
        self._fd_pending = 0  # FdMessage replies still owed, ahead of _expect

    @property
    def pending(self) -> int:
        """How many replies (fd messages included) are still owed, counting
        each answered request once."""
        self._skip_silent()
        return len(self._expect) + self._fd_pending

    def _skip_silent(self) -> None:
        # Requests queued before the version was known that turn out to get
        # no header reply (RESOURCE_CREATE(2) before protocol 3): drop them,
        # keeping the fd a RESOURCE_CREATE2 still gets.
        expect = self._expect
        while expect and _replies(expect[0], self.protocol_version) is None:
            self._fd_pending += _fd_follows(expect.popleft())

    def send(self, request: p.Request) -> bytes:
        data = encode_request(request)
        if _replies(request, 3) or _fd_follows(request):
            self._expect.append(request)
        return data

    def receive_data(self, data: bytes | bytearray | memoryview, fds: Iterable[int] = ()) -> None:
        self._fds.extend(fds)
        if data:
            self._buf += data
        else:
            self._eof = True

    def take_unclaimed_fds(self) -> list[int]:
        fds = list(self._fds)
        self._fds.clear()
        return fds

    def next_event(self) -> ReplyEvent:
        """The next reply, ``NEED_DATA`` or ``CLOSED`` (EOF with nothing owed)."""
        buf = self._buf
        while True:
            if self._fd_pending:
                if not buf:
                    return self._starved("an fd message")
                if not self._fds:
                    raise RemoteProtocolError("fd message arrived without a file descriptor")
                del buf[:1]
                self._fd_pending -= 1
                return p.FdMessage(self._fds.popleft())
            self._skip_silent()
            if self._fd_pending:
                continue
            if not self._expect:
                if buf:
                    raise RemoteProtocolError(f"{len(buf)} unexpected bytes from the server")
                return CLOSED if self._eof else NEED_DATA
            request = self._expect[0]
            break
        name = command_name(_REQUEST_IDS[type(request)])
        if isinstance(request, p.TransferGet):
            if len(buf) < request.data_size:
                return self._starved(name)
            reply: p.Reply = p.TransferGetData(bytes(buf[: request.data_size]))
            del buf[: request.data_size]
        else:
            if len(buf) < 8:
                return self._starved(name)
            length, cmd = _HDR.unpack_from(buf)
            if isinstance(request, p.PingProtocolVersion) and cmd == Cmd.RESOURCE_BUSY_WAIT:
                self._expect.popleft()  # an old server ignores PING (Mesa copes the same way)
                return self.next_event()
            size = self._payload_size(request, length, cmd)
            if len(buf) < 8 + size:
                return self._starved(name)
            reply = _decode_reply(request, length, cmd, bytes(buf[8 : 8 + size]))
            del buf[: 8 + size]
        self._expect.popleft()
        if isinstance(reply, p.ProtocolVersionReply):
            self.protocol_version = reply.version
        self._fd_pending += _fd_follows(request)
        return reply

    def _starved(self, what: str) -> ReplyEvent:
        if self._eof:
            raise RemoteProtocolError(f"connection closed while waiting for {what} reply")
        return NEED_DATA

    def _payload_size(self, request: p.Request, length: int, cmd: int) -> int:
        want = _replies(request, self.protocol_version)
        if want is None:
            raise RemoteProtocolError(f"no reply expected to {type(request).__name__}")
        want_cmd, want_len = want
        if cmd != want_cmd:
            raise RemoteProtocolError(
                f"expected a {command_name(want_cmd)} reply, got id {command_name(cmd)}")
        if want_len is not None and length != want_len:
            raise RemoteProtocolError(f"{command_name(cmd)} reply length {length} != {want_len}")
        size = length - 1 if isinstance(request, (p.GetCaps, p.GetCaps2)) else 4 * length
        if size < 0 or size > self.max_reply_bytes:
            raise RemoteProtocolError(f"{command_name(cmd)} reply length {length} is invalid")
        return size


def _replies(request: p.Request, version: int) -> tuple[int, int | None] | None:
    """(reply id, exact length or None) of the header reply to ``request``
    under ``version``, or None if it gets no header reply."""
    match request:
        case p.GetCaps():
            return Cmd.GET_CAPS, None
        case p.GetCaps2():
            return CAPS2_REPLY_ID, None
        case p.PingProtocolVersion():
            return Cmd.PING_PROTOCOL_VERSION, 0
        case p.ProtocolVersion():
            return Cmd.PROTOCOL_VERSION, 1
        case p.ResourceCreate() | p.ResourceCreate2() if version >= 3:
            return (Cmd.RESOURCE_CREATE if isinstance(request, p.ResourceCreate)
                    else Cmd.RESOURCE_CREATE2), 1
        case p.ResourceCreateBlob():
            return Cmd.RESOURCE_CREATE_BLOB, 1
        case p.TransferGet():
            return (0, None) if request.data_size else None
        case p.ResourceBusyWait():
            return Cmd.RESOURCE_BUSY_WAIT, 1
        case p.GetParam():
            return Cmd.GET_PARAM, 2
        case p.GetCapset():
            return Cmd.GET_CAPSET, None
        case p.SyncCreate():
            return Cmd.SYNC_CREATE, 1
        case p.SyncRead():
            return Cmd.SYNC_READ, 2
        case p.SyncWait():
            return Cmd.SYNC_WAIT, 0
    return None


def _fd_follows(request: p.Request) -> bool:
    return (isinstance(request, p.ResourceCreateBlob | p.SyncWait)
            or (isinstance(request, p.ResourceCreate2) and request.data_size > 0))


def _decode_reply(request: p.Request, length: int, cmd: int, body: bytes) -> p.Reply:
    def u32(i: int) -> int:
        return int.from_bytes(body[4 * i : 4 * i + 4], "little")

    match request:
        case p.GetCaps() | p.GetCaps2():
            return p.CapsReply(cmd, body)
        case p.PingProtocolVersion():
            return p.PingProtocolVersionReply()
        case p.ProtocolVersion():
            return p.ProtocolVersionReply(u32(0))
        case p.ResourceCreate() | p.ResourceCreate2() | p.ResourceCreateBlob():
            return p.ResourceIdReply(cmd, u32(0))
        case p.ResourceBusyWait():
            return p.BusyWaitReply(u32(0))
        case p.GetParam():
            return p.GetParamReply(u32(0), u32(1))
        case p.GetCapset():
            if length < 1:
                raise RemoteProtocolError("GET_CAPSET reply without the valid field")
            return p.GetCapsetReply(u32(0), body[4:])
        case p.SyncCreate():
            return p.SyncCreateReply(u32(0))
        case p.SyncRead():
            return p.SyncReadReply(u32(0) | u32(1) << 32)
        case p.SyncWait():
            return p.SyncWaitReply()
    raise AssertionError(f"no decoder for {request!r}")
