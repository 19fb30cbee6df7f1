"""Sans-IO vtest codec: bytes in, events out; replies in, bytes out.

Why: the server must survive hostile or buggy guests, so every length is
checked before anything is buffered, and the parser never desyncs: the first
bad message raises ``RemoteProtocolError`` and the connection stays dead.

How: ``ServerConnection`` keeps one bytearray with a read offset. A message is
parsed in at most two steps: the 8-byte header (validated at once against the
per-command rules and ``max_payload_bytes``), then a body whose size is known
from the header, except TRANSFER_PUT/PUT2 whose 11/10-dword prefix carries
``data_size`` and decides what follows. ``send`` encodes reply dataclasses.
The client side (``encode_request``, ``ClientConnection``) is in
``virgl_viewer.vtest.client_codec``.

Wire facts (vtest_protocol.h, vtest_renderer.c, Mesa's vtest winsys): all
fields are little-endian uint32; CREATE_RENDERER's length counts bytes; a
TRANSFER_PUT is followed by exactly ``data_size`` raw bytes (not padded) while
its header length is 11 + ceil(data_size/4); Mesa sends TRANSFER_PUT2 with
length 10 + ceil(data_size/4) but no data (the data is in the shm).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from typing import Final, Literal

from virgl_viewer.vtest import protocol as p
from virgl_viewer.vtest.errors import LocalProtocolError, RemoteProtocolError
from virgl_viewer.vtest.protocol import Cmd


class Sentinel(enum.Enum):
    """Type of the ``NEED_DATA`` and ``CLOSED`` markers."""

    NEED_DATA = "NEED_DATA"
    CLOSED = "CLOSED"

    def __repr__(self) -> str:
        return self.value


NEED_DATA: Final = Sentinel.NEED_DATA
CLOSED: Final = Sentinel.CLOSED
Event = p.Request | Literal[Sentinel.NEED_DATA, Sentinel.CLOSED]

MAX_RENDERER_NAME = 4096  # bytes; upstream allows 1 MiB, Mesa sends <= 64
# A client can own at most this many syncs (session_sync.MAX_SYNCS_PER_CLIENT), so a
# longer wait list is hostile; batches are bounded likewise (each one costs a fence).
MAX_SYNC_WAIT_ENTRIES = 1 << 14
MAX_SUBMIT_BATCHES = 1024
_COMPACT_AT = 1 << 16  # drop consumed bytes once this many have piled up

_HDR = struct.Struct("<2I")
_U32 = struct.Struct("<I")
_BATCH = struct.Struct("<8I")

_FIXED: dict[int, tuple[int, Callable[..., p.Request]]] = {
    # command: (payload dwords, constructor taking the unpacked dwords)
    Cmd.GET_CAPS: (0, p.GetCaps),
    Cmd.GET_CAPS2: (0, p.GetCaps2),
    Cmd.PING_PROTOCOL_VERSION: (0, p.PingProtocolVersion),
    Cmd.PROTOCOL_VERSION: (p.PROTOCOL_VERSION_SIZE, p.ProtocolVersion),
    Cmd.RESOURCE_CREATE: (p.RES_CREATE_SIZE, p.ResourceCreate),
    Cmd.RESOURCE_CREATE2: (p.RES_CREATE2_SIZE, p.ResourceCreate2),
    Cmd.RESOURCE_UNREF: (p.RES_UNREF_SIZE, p.ResourceUnref),
    Cmd.TRANSFER_GET: (p.TRANSFER_HDR_SIZE, p.TransferGet),
    Cmd.TRANSFER_GET2: (p.TRANSFER2_HDR_SIZE, p.TransferGet2),
    Cmd.RESOURCE_BUSY_WAIT: (p.BUSY_WAIT_SIZE, p.ResourceBusyWait),
    Cmd.GET_PARAM: (p.GET_PARAM_SIZE, p.GetParam),
    Cmd.GET_CAPSET: (p.GET_CAPSET_SIZE, p.GetCapset),
    Cmd.CONTEXT_INIT: (p.CONTEXT_INIT_SIZE, p.ContextInit),
    Cmd.RESOURCE_CREATE_BLOB: (
        p.RES_CREATE_BLOB_SIZE,
        lambda t, f, slo, shi, ilo, ihi: p.ResourceCreateBlob(
            t, f, slo | shi << 32, ilo | ihi << 32),
    ),
    Cmd.SYNC_CREATE: (p.SYNC_CREATE_SIZE, lambda lo, hi: p.SyncCreate(lo | hi << 32)),
    Cmd.SYNC_UNREF: (p.SYNC_UNREF_SIZE, p.SyncUnref),
    Cmd.SYNC_READ: (p.SYNC_READ_SIZE, p.SyncRead),
    Cmd.SYNC_WRITE: (p.SYNC_WRITE_SIZE, lambda i, lo, hi: p.SyncWrite(i, lo | hi << 32)),
}
_FIXED_STRUCTS = {cmd: struct.Struct(f"<{n}I") for cmd, (n, _) in _FIXED.items()}
_TRANSFER_PUT_PREFIX = struct.Struct(f"<{p.TRANSFER_HDR_SIZE}I")
_TRANSFER_PUT2_PREFIX = struct.Struct(f"<{p.TRANSFER2_HDR_SIZE}I")


def command_name(command_id: int) -> str:
    """VCMD name without the prefix (``"SUBMIT_CMD"``), ``"#99"`` if unknown."""
    try:
        return Cmd(command_id).name
    except ValueError:
        return f"#{command_id}"


def negotiate_version(requested: int, max_supported: int = p.VTEST_PROTOCOL_VERSION) -> int:
    """The version a server answers PROTOCOL_VERSION with.

    ``min(requested, max_supported)``; 1 is answered as 0 because protocol 1
    is deprecated (upstream does the same and Mesa maps 1 to 0 itself).
    """
    version = min(requested, max_supported)
    return 0 if version == 1 else version


def _dwords(nbytes: int) -> int:
    return (nbytes + 3) // 4


class ServerConnection:
    """Parses a vtest client's byte stream into request dataclasses.

    ``receive_data(b"")`` signals EOF. ``next_event()`` returns one request,
    ``NEED_DATA`` or ``CLOSED`` (EOF at a message boundary), and raises
    ``RemoteProtocolError`` on any invalid input; after that every call
    raises again. ``max_payload_bytes`` bounds what a single message may make
    us buffer; it is checked as soon as the header (or TRANSFER_PUT prefix)
    is in, so a hostile length never causes an allocation. It also bounds a
    TRANSFER_GET's ``data_size`` (the inline reply the server would build);
    TRANSFER_GET2/PUT2 sizes are left to the server (checked against the shm).
    """

    def __init__(self, max_payload_bytes: int = 64 << 20) -> None:
        self.max_payload_bytes = max_payload_bytes
        self._buf = bytearray()
        self._pos = 0
        self._eof = False
        self._error: RemoteProtocolError | None = None
        self._have_renderer = False
        # Current message: None while waiting for a header, else the header
        # plus how many body bytes must be present before we act on it.
        self._cmd = 0
        self._length = 0
        self._need = -1

    @property
    def buffered_bytes(self) -> int:
        """Received bytes not yet turned into events."""
        return len(self._buf) - self._pos

    @property
    def at_rest(self) -> bool:
        """Between messages with nothing buffered (and no EOF or error)."""
        return (self._need < 0 and self._pos == len(self._buf) and not self._eof
                and self._error is None)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes read from the socket; ``b""`` means the peer hung up."""
        if self._eof:
            if data:
                raise LocalProtocolError("received data after EOF")
            return
        if not data:
            self._eof = True
            return
        buf = self._buf
        if self._pos and self._pos == len(buf):
            buf.clear()
            self._pos = 0
        elif self._pos >= _COMPACT_AT and self._pos * 2 >= len(buf):
            del buf[: self._pos]
            self._pos = 0
        buf += data

    def next_event(self) -> Event:
        """The next complete request, ``NEED_DATA`` or ``CLOSED``."""
        if self._error is not None:
            raise RemoteProtocolError(self._error.reason, command=self._error.command)
        try:
            return self._next_event()
        except RemoteProtocolError as exc:
            self._error = exc
            raise

    def _fail(self, reason: str) -> RemoteProtocolError:
        return RemoteProtocolError(reason, command=command_name(self._cmd))

    def _next_event(self) -> Event:
        avail = len(self._buf) - self._pos
        if self._need < 0:
            if avail < p.HEADER_SIZE:
                if not self._eof:
                    return NEED_DATA
                if avail == 0:
                    return CLOSED
                raise RemoteProtocolError("connection closed mid-message", command=None)
            self._length, self._cmd = _HDR.unpack_from(self._buf, self._pos)
            self._need = self._body_size()
            self._pos += p.HEADER_SIZE
            avail -= p.HEADER_SIZE
        if avail < self._need:
            if self._eof:
                raise self._fail("connection closed mid-message")
            return NEED_DATA
        cmd, pos = self._cmd, self._pos
        if cmd == Cmd.TRANSFER_PUT and self._need == 4 * p.TRANSFER_HDR_SIZE:
            # Prefix is in; now we know how many raw data bytes follow.
            data_size = _TRANSFER_PUT_PREFIX.unpack_from(self._buf, pos)[10]
            if data_size > self.max_payload_bytes:
                raise self._fail(f"data_size {data_size} exceeds the limit")
            if self._length != p.TRANSFER_HDR_SIZE + _dwords(data_size):
                raise self._fail(
                    f"length {self._length} does not match data_size {data_size}")
            if data_size:
                self._need += data_size
                return self._next_event()
        event = self._decode(cmd, pos)
        self._pos = pos + self._need
        self._need = -1
        return event

    def _body_size(self) -> int:
        """Validate the header just read; return the bytes to wait for."""
        cmd, length = self._cmd, self._length
        if not self._have_renderer:
            if cmd != Cmd.CREATE_RENDERER:
                raise self._fail("the first command must be CREATE_RENDERER")
            if length > MAX_RENDERER_NAME:
                raise self._fail(f"renderer name of {length} bytes is too long")
            return length
        fixed = _FIXED.get(cmd)
        if fixed is not None:
            if length != fixed[0]:
                raise self._fail(f"length {length} != {fixed[0]}")
            return 4 * length
        if cmd == Cmd.TRANSFER_PUT2:
            if length < p.TRANSFER2_HDR_SIZE:
                raise self._fail(f"length {length} < {p.TRANSFER2_HDR_SIZE}")
            return 4 * p.TRANSFER2_HDR_SIZE  # never any inline data
        if cmd == Cmd.CREATE_RENDERER:
            raise self._fail("renderer already created")
        if cmd not in (Cmd.SUBMIT_CMD, Cmd.TRANSFER_PUT, Cmd.SYNC_WAIT, Cmd.SUBMIT_CMD2):
            raise self._fail("unknown command")
        if 4 * length > self.max_payload_bytes:
            raise self._fail(f"length of {length} dwords exceeds the limit")
        if cmd == Cmd.TRANSFER_PUT:
            if length < p.TRANSFER_HDR_SIZE:
                raise self._fail(f"length {length} < {p.TRANSFER_HDR_SIZE}")
            return 4 * p.TRANSFER_HDR_SIZE  # then data_size bytes, see above
        if cmd == Cmd.SYNC_WAIT:
            if length < 2 or (length - 2) % 3:
                raise self._fail(f"length {length} is not 2 + 3*count")
            if (length - 2) // 3 > MAX_SYNC_WAIT_ENTRIES:
                raise self._fail(f"{(length - 2) // 3} waits exceed the limit of "
                                 f"{MAX_SYNC_WAIT_ENTRIES}")
        if cmd == Cmd.SUBMIT_CMD2 and length < 1:
            raise self._fail("empty payload")
        return 4 * length

    def _decode(self, cmd: int, pos: int) -> p.Request:
        buf, need = self._buf, self._need
        if not self._have_renderer:
            self._have_renderer = True
            return p.CreateRenderer(bytes(buf[pos : pos + need]))
        fixed = _FIXED.get(cmd)
        if fixed is not None:
            event = fixed[1](*_FIXED_STRUCTS[cmd].unpack_from(buf, pos))
            if isinstance(event, p.TransferGet) and event.data_size > self.max_payload_bytes:
                # The reply would make the server allocate data_size bytes.
                raise self._fail(f"data_size {event.data_size} exceeds the limit")
            return event
        if cmd == Cmd.SUBMIT_CMD:
            return p.SubmitCmd(buf[pos : pos + need])
        if cmd == Cmd.TRANSFER_PUT:
            handle, level, stride, lstride, x, y, z, w, h, d, size = (
                _TRANSFER_PUT_PREFIX.unpack_from(buf, pos))
            start = pos + 4 * p.TRANSFER_HDR_SIZE
            return p.TransferPut(handle, level, stride, lstride, x, y, z, w, h, d, size,
                                 bytes(buf[start : pos + need]))
        if cmd == Cmd.TRANSFER_PUT2:
            fields = _TRANSFER_PUT2_PREFIX.unpack_from(buf, pos)
            extra = self._length - p.TRANSFER2_HDR_SIZE
            if extra and extra != _dwords(fields[8]):
                raise self._fail(
                    f"length {self._length} matches neither 10 nor data_size {fields[8]}")
            return p.TransferPut2(*fields)
        if cmd == Cmd.SYNC_WAIT:
            flags, timeout = _HDR.unpack_from(buf, pos)
            n = (self._length - 2) // 3
            vals = struct.unpack_from(f"<{3 * n}I", buf, pos + 8)
            waits = tuple(
                (vals[i], vals[i + 1] | vals[i + 2] << 32) for i in range(0, 3 * n, 3))
            return p.SyncWait(flags, timeout, waits)
        return self._decode_submit_cmd2(buf[pos : pos + need])

    def _decode_submit_cmd2(self, payload: bytearray) -> p.SubmitCmd2:
        length = self._length
        (count,) = _U32.unpack_from(payload, 0)
        if 1 + p.SUBMIT_CMD2_BATCH_DWORDS * count > length:
            raise self._fail(f"{count} batch headers do not fit in {length} dwords")
        if count > MAX_SUBMIT_BATCHES:
            raise self._fail(f"{count} batches exceed the limit of {MAX_SUBMIT_BATCHES}")
        batches = []
        # Batches may point at the same dwords: bounded one by one, 1024 batches of a
        # 64 MiB message could each submit all of it (and each sync list be all of it),
        # a thousandfold work for one message. In total they may reference at most the
        # message's own dwords, so the work stays linear in its size.
        cmd_total = sync_total = 0
        for i in range(count):
            flags, cmd_off, cmd_size, sync_off, sync_count, ring, _, _ = _BATCH.unpack_from(
                payload, 4 + 4 * p.SUBMIT_CMD2_BATCH_DWORDS * i)
            if cmd_off + cmd_size > length:
                raise self._fail(f"batch {i} commands lie outside the message")
            if sync_off + 3 * sync_count > length:
                raise self._fail(f"batch {i} syncs lie outside the message")
            cmd_total += cmd_size
            sync_total += 3 * sync_count
            if cmd_total > length or sync_total > length:
                raise self._fail(f"batches 0-{i} reference {cmd_total} command and "
                                 f"{sync_total} sync dwords of a {length}-dword message")
            if ring >= p.MAX_TIMELINE_COUNT:
                raise self._fail(f"batch {i} ring_idx {ring} >= {p.MAX_TIMELINE_COUNT}")
            vals = struct.unpack_from(f"<{3 * sync_count}I", payload, 4 * sync_off)
            syncs = tuple(
                (vals[j], vals[j + 1] | vals[j + 2] << 32) for j in range(0, len(vals), 3))
            batches.append(p.SubmitBatch(flags, ring, cmd_off, cmd_size, syncs))
        return p.SubmitCmd2(tuple(batches), payload)

    def send(self, reply: p.Reply) -> bytes:
        """Encode a reply. ``FdMessage`` cannot be encoded: the server sends
        one ``b"\\0"`` byte with the fd as SCM_RIGHTS itself."""
        return encode_reply(reply)


def _pack(*values: int) -> bytes:
    try:
        return struct.pack(f"<{len(values)}I", *values)
    except struct.error as exc:
        raise LocalProtocolError(f"field out of uint32 range: {values}") from exc


def encode_reply(reply: p.Reply) -> bytes:
    """Bytes of a reply dataclass, exactly as upstream's server writes them."""
    match reply:
        case p.CapsReply(command, caps):
            # Upstream answers GET_CAPS with id 1 and GET_CAPS2 with id 2 (not
            # 9: Mesa checks for 2); the length counts caps *bytes* plus one.
            if command not in (Cmd.GET_CAPS, 2):
                raise LocalProtocolError(f"caps reply id must be 1 or 2, not {command}")
            return _pack(len(caps) + 1, command) + caps
        case p.PingProtocolVersionReply():
            return _pack(0, Cmd.PING_PROTOCOL_VERSION)
        case p.ProtocolVersionReply(version):
            return _pack(1, Cmd.PROTOCOL_VERSION, version)
        case p.ResourceIdReply(command, res_id):
            return _pack(1, command, res_id)
        case p.BusyWaitReply(busy):
            return _pack(1, Cmd.RESOURCE_BUSY_WAIT, busy)
        case p.TransferGetData(data):
            return bytes(data)
        case p.GetParamReply(valid, value):
            return _pack(2, Cmd.GET_PARAM, valid, value)
        case p.GetCapsetReply(valid, caps):
            if len(caps) % 4:
                raise LocalProtocolError("capset size must be a multiple of 4")
            return _pack(1 + len(caps) // 4, Cmd.GET_CAPSET, valid) + caps
        case p.SyncCreateReply(sync_id):
            return _pack(1, Cmd.SYNC_CREATE, sync_id)
        case p.SyncReadReply(value):
            if not 0 <= value < 1 << 64:
                raise LocalProtocolError(f"sync value out of range: {value}")
            return _pack(2, Cmd.SYNC_READ, value & 0xFFFFFFFF, value >> 32)
        case p.SyncWaitReply():
            return _pack(0, Cmd.SYNC_WAIT)
        case p.FdMessage():
            raise LocalProtocolError("fds are sent by the server itself (SCM_RIGHTS)")
    raise LocalProtocolError(f"not a reply: {reply!r}")


__all__ = [
    "CLOSED",
    "NEED_DATA",
    "Event",
    "Sentinel",
    "ServerConnection",
    "command_name",
    "encode_reply",
    "negotiate_version",
]
