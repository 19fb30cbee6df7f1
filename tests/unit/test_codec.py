"""ServerConnection: every request whole and byte by byte, every error case,
and every reply's exact bytes (as virgl_test_server 0.10.4 writes them)."""

from __future__ import annotations

import struct
import tracemalloc

import pytest

from virgl_viewer.errors import LocalProtocolError, RemoteProtocolError
from virgl_viewer.vtest import protocol as p
from virgl_viewer.vtest.client_codec import BatchSpec, encode_request, make_submit_cmd2
from virgl_viewer.vtest.codec import (
    CLOSED,
    NEED_DATA,
    ServerConnection,
    command_name,
    encode_reply,
    negotiate_version,
)


def dw(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


HELLO = dw(6, 8) + b"hello\0"  # CREATE_RENDERER, length in bytes


def events(data: bytes, *, chunk: int | None = None, eof: bool = True,
           conn: ServerConnection | None = None) -> list[object]:
    """Feed ``data`` (whole or ``chunk`` bytes at a time), collect events up
    to NEED_DATA/CLOSED (included)."""
    conn = conn or ServerConnection()
    out: list[object] = []
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        conn.receive_data(piece)
        while (ev := conn.next_event()) is not NEED_DATA:
            out.append(ev)
    if eof:
        conn.receive_data(b"")
        while (ev := conn.next_event()) is not CLOSED:
            out.append(ev)
        out.append(CLOSED)
    return out


def fails(data: bytes, command: str | None, match: str = "", **kw: object) -> None:
    with pytest.raises(RemoteProtocolError, match=match) as info:
        events(data, **kw)  # type: ignore[arg-type]
    assert info.value.command == command


SAMPLES: list[p.Request] = [
    p.GetCaps(), p.GetCaps2(), p.PingProtocolVersion(), p.ProtocolVersion(2),
    p.ResourceCreate(1, 2, 2, 0x8A, 300, 300, 1, 1, 0, 0),
    p.ResourceCreate2(7, 2, 2, 0x8A, 300, 300, 1, 1, 0, 0, 360000),
    p.ResourceUnref(7),
    p.TransferGet(7, 0, 1200, 0, 0, 0, 0, 300, 300, 1, 360000),
    p.TransferPut(7, 0, 8, 0, 1, 2, 0, 2, 1, 1, 5, b"\x01\x02\x03\x04\x05"),
    p.TransferPut(7, 0, 8, 0, 1, 2, 0, 2, 1, 1, 0, b""),
    p.TransferGet2(7, 0, 0, 0, 0, 300, 300, 1, 360000, 0),
    p.TransferPut2(7, 1, 2, 3, 0, 4, 5, 1, 80, 4096),
    p.ResourceBusyWait(7, 1), p.SubmitCmd(bytearray(dw(0x00010203, 5, 6))),
    p.SubmitCmd(bytearray()), p.GetParam(1), p.GetCapset(4, 0), p.ContextInit(4),
    p.ResourceCreateBlob(2, 3, (5 << 32) | 4096, (9 << 32) | 1), p.SyncCreate(1 << 40 | 3),
    p.SyncUnref(3), p.SyncRead(3), p.SyncWrite(3, (1 << 63) + 1),
    p.SyncWait(1, 1000, ((1, 2), (3, 1 << 33))), p.SyncWait(0, 0, ()),
    make_submit_cmd2([BatchSpec(dw(1, 2, 3), ((1, 5), (2, 1 << 32)), ring_idx=63),
                      BatchSpec(b"", (), flags=0), BatchSpec(dw(9), ((4, 4),))]),
]


@pytest.mark.parametrize("request_", SAMPLES, ids=lambda r: type(r).__name__)
@pytest.mark.parametrize("chunk", [None, 1, 3])
def test_every_request_whole_and_in_pieces(request_: p.Request, chunk: int | None) -> None:
    data = HELLO + encode_request(request_) + encode_request(p.PingProtocolVersion())
    assert events(data, chunk=chunk) == [
        p.CreateRenderer(b"hello\0"), request_, p.PingProtocolVersion(), CLOSED]


def test_mesa_byte_layouts_parse_back_to_back() -> None:
    # Written by hand the way Mesa's vtest winsys writes them.
    data = (
        dw(5, 8) + b"glx\0\0"  # odd name length: next header is unaligned
        + dw(13, 5, 1, 0, 20, 0, 0, 0, 0, 5, 1, 1, 5) + b"ABCDE"  # TRANSFER_PUT, 5 raw bytes
        + dw(10 + 4, 14, 1, 0, 0, 0, 0, 4, 1, 1, 16, 0)  # TRANSFER_PUT2 len 10+4, no data
        + dw(10, 14, 1, 0, 0, 0, 0, 4, 1, 1, 16, 64)  # TRANSFER_PUT2 len 10
        + dw(2, 7, 0, 0)  # BUSY_WAIT(0, 0)
    )
    for chunk in (None, 1):
        assert events(data, chunk=chunk) == [
            p.CreateRenderer(b"glx\0\0"),
            p.TransferPut(1, 0, 20, 0, 0, 0, 0, 5, 1, 1, 5, b"ABCDE"),
            p.TransferPut2(1, 0, 0, 0, 0, 4, 1, 1, 16, 0),
            p.TransferPut2(1, 0, 0, 0, 0, 4, 1, 1, 16, 64),
            p.ResourceBusyWait(0, 0),
            CLOSED,
        ]


def test_submit_cmd_is_a_fresh_bytearray() -> None:
    conn = ServerConnection()
    conn.receive_data(HELLO + dw(2, 6, 1, 2) + dw(1, 6, 3))
    conn.next_event()
    first = conn.next_event()
    assert isinstance(first, p.SubmitCmd) and isinstance(first.commands, bytearray)
    first.commands[:4] = dw(99)
    assert conn.next_event() == p.SubmitCmd(bytearray(dw(3)))
    assert first.commands == bytearray(dw(99, 2))


def test_many_small_messages_and_buffer_compaction() -> None:
    conn = ServerConnection()
    conn.receive_data(HELLO)
    conn.next_event()
    ping = dw(0, 10)
    blob = ping * 100000  # 800 kB in unaligned chunks: the buffer must not grow
    n = 0
    biggest = 0
    for i in range(0, len(blob), 4093):
        conn.receive_data(blob[i : i + 4093])
        biggest = max(biggest, len(conn._buf))
        while conn.next_event() is not NEED_DATA:
            n += 1
    assert n == 100000
    assert conn.buffered_bytes == 0
    assert biggest < 2 * 65536 + 4096


def test_eof_at_boundary_is_closed_repeatedly() -> None:
    conn = ServerConnection()
    conn.receive_data(b"")
    assert conn.next_event() is CLOSED
    assert conn.next_event() is CLOSED
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"more")


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("cmd", [0, 25, 99, 0xFFFFFFFF])
def test_unknown_command(cmd: int) -> None:
    fails(HELLO + dw(0, cmd), f"#{cmd}", "unknown")


@pytest.mark.parametrize("first", [dw(0, 10), dw(0, 1), dw(2, 7, 0, 0), dw(0, 77)])
def test_anything_before_create_renderer(first: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="first command must be CREATE_RENDERER"):
        events(first)


def test_second_create_renderer() -> None:
    fails(HELLO + HELLO, "CREATE_RENDERER", "already")


def test_renderer_name_cap() -> None:
    assert events(dw(4096, 8) + b"x" * 4096)[0] == p.CreateRenderer(b"x" * 4096)
    fails(dw(4097, 8), "CREATE_RENDERER", "too long", eof=False)


FIXED = [(1, 0), (9, 0), (10, 0), (11, 1), (2, 10), (12, 11), (3, 1), (7, 2), (15, 1),
         (16, 2), (17, 1), (18, 6), (19, 2), (20, 1), (21, 1), (22, 3), (4, 11), (13, 10)]


@pytest.mark.parametrize(("cmd", "length"), [
    pytest.param(cmd, size + delta, id=f"{command_name(cmd)}-{size + delta}")
    for cmd, size in FIXED for delta in (-1, 1, 1000) if size + delta >= 0
])
def test_fixed_size_commands_reject_other_lengths(cmd: int, length: int) -> None:
    # The error comes with the header alone: the body is never waited for.
    fails(HELLO + dw(length, cmd), command_name(cmd), "length", eof=False)


def test_transfer_put_length_must_match_data_size() -> None:
    put = dw(7, 0, 0, 0, 0, 0, 0, 5, 1, 1, 5)
    assert events(HELLO + dw(13, 5) + put + b"12345")[1] == p.TransferPut(
        7, 0, 0, 0, 0, 0, 0, 5, 1, 1, 5, b"12345")
    fails(HELLO + dw(12, 5) + put, "TRANSFER_PUT", "does not match", eof=False)
    fails(HELLO + dw(14, 5) + put, "TRANSFER_PUT", "does not match", eof=False)
    fails(HELLO + dw(10, 5), "TRANSFER_PUT", "< 11", eof=False)


def test_transfer_put2_lengths() -> None:
    body = dw(7, 0, 0, 0, 0, 5, 1, 1, 20, 0)
    assert events(HELLO + dw(15, 14) + body)[1] == p.TransferPut2(7, 0, 0, 0, 0, 5, 1, 1, 20, 0)
    fails(HELLO + dw(14, 14) + body, "TRANSFER_PUT2", "neither")
    fails(HELLO + dw(9, 14), "TRANSFER_PUT2", "< 10", eof=False)
    # Huge data_size is fine: the data is in the shm, nothing is buffered.
    big = dw(7, 0, 0, 0, 0, 5, 1, 1, 1 << 31, 0)
    assert events(HELLO + dw(10 + (1 << 29), 14) + big)[1].data_size == 1 << 31  # type: ignore[attr-defined]


@pytest.mark.parametrize(("prefix", "command"), [
    (dw(6, 8)[:5], None), (dw(6, 8) + b"hel", "CREATE_RENDERER"),
    (HELLO + dw(0), None), (HELLO + dw(2, 6, 1), "SUBMIT_CMD"),
    (HELLO + dw(13, 5, 7, 0, 0, 0, 0, 0, 0, 5, 1, 1, 5) + b"12", "TRANSFER_PUT"),
    (HELLO + dw(13, 5, 7, 0, 0), "TRANSFER_PUT"), (HELLO + dw(10, 2, 1), "RESOURCE_CREATE"),
])
def test_eof_mid_message(prefix: bytes, command: str | None) -> None:
    fails(prefix, command, "closed mid-message")


@pytest.mark.parametrize(("cmd", "name"), [(6, "SUBMIT_CMD"), (23, "SYNC_WAIT"),
                                           (24, "SUBMIT_CMD2"), (5, "TRANSFER_PUT")])
def test_gigantic_length_rejected_after_header_without_allocating(cmd: int, name: str) -> None:
    conn = ServerConnection()
    conn.receive_data(HELLO)
    conn.next_event()
    tracemalloc.start()
    try:
        conn.receive_data(dw(0xFFFFFFFE, cmd))
        with pytest.raises(RemoteProtocolError, match="exceeds") as info:
            conn.next_event()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.command == name
    assert peak < 1 << 20


def test_limit_is_configurable() -> None:
    conn = ServerConnection(max_payload_bytes=64)
    assert events(HELLO + dw(16, 6) + bytes(64), conn=conn)[1] == p.SubmitCmd(bytearray(64))
    fails(HELLO + dw(17, 6), "SUBMIT_CMD", "exceeds", conn=ServerConnection(64), eof=False)


def test_transfer_put_gigantic_data_size_rejected_after_prefix() -> None:
    put = dw(7, 0, 0, 0, 0, 0, 0, 5, 1, 1, 0xFFFFFFFF)
    fails(HELLO + dw(11, 5) + put, "TRANSFER_PUT", "data_size", eof=False)


def test_transfer_get_data_size_is_bounded_get2_is_not() -> None:
    conn = ServerConnection(max_payload_bytes=1024)
    get = dw(7, 0, 0, 0, 0, 0, 0, 5, 1, 1)
    assert events(HELLO + dw(11, 4) + get + dw(1024), conn=conn)[1].data_size == 1024  # type: ignore[attr-defined]
    fails(HELLO + dw(11, 4) + get + dw(1025), "TRANSFER_GET", "data_size",
          conn=ServerConnection(1024))
    get2 = dw(7, 0, 0, 0, 0, 5, 1, 1, 1 << 30, 0)
    assert events(HELLO + dw(10, 13) + get2, conn=ServerConnection(1024))[1] == p.TransferGet2(
        7, 0, 0, 0, 0, 5, 1, 1, 1 << 30, 0)


@pytest.mark.parametrize("length", [0, 1, 3, 4, 6])
def test_sync_wait_bad_length(length: int) -> None:
    fails(HELLO + dw(length, 23), "SYNC_WAIT", "2 \\+ 3\\*count", eof=False)


@pytest.mark.parametrize(("payload", "match"), [
    (dw(2, 0, 0, 0, 0, 0, 0, 0, 0), "batch headers"),  # 2 batches in 9 dwords
    (dw(0xFFFFFFFF), "batch headers"),
    (dw(1, 0, 1, 0, 0, 0, 0), "batch headers"),  # 6-dword batch: upstream accepts, we don't
    (dw(1, 0, 9, 1, 0, 0, 0, 0, 0), "commands lie outside"),
    (dw(1, 0, 5, 0xFFFFFFFF, 0, 0, 0, 0, 0), "commands lie outside"),
    (dw(1, 0, 0, 0, 7, 1, 0, 0, 0), "syncs lie outside"),
    (dw(1, 0, 0, 0, 0, 0x55555556, 0, 0, 0), "syncs lie outside"),
    (dw(1, 1, 0, 0, 0, 0, 64, 0, 0), "ring_idx 64"),
    (b"", "empty"),
])
def test_submit_cmd2_bad_batches(payload: bytes, match: str) -> None:
    fails(HELLO + dw(len(payload) // 4, 24) + payload, "SUBMIT_CMD2", match)


def test_submit_cmd2_layout() -> None:
    ev = make_submit_cmd2([BatchSpec(dw(1, 2), ((5, 6),)), BatchSpec(dw(3), ())])
    assert [(b.cmd_offset, b.cmd_size) for b in ev.batches] == [(17, 2), (19, 1)]
    parsed = events(HELLO + encode_request(ev))[1]
    assert isinstance(parsed, p.SubmitCmd2)
    assert parsed.payload[4 * 17 : 4 * 20] == dw(1, 2, 3)
    assert parsed.batches[0].syncs == ((5, 6),)


def test_error_is_sticky() -> None:
    conn = ServerConnection()
    conn.receive_data(dw(0, 10))
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    conn.receive_data(HELLO)
    with pytest.raises(RemoteProtocolError, match="CREATE_RENDERER"):
        conn.next_event()


# ------------------------------------------------------------------ replies
@pytest.mark.parametrize(("reply", "wire"), [
    (p.CapsReply(2, b"\x01\x02\x03\x04\x05"), dw(6, 2) + b"\x01\x02\x03\x04\x05"),
    (p.CapsReply(1, bytes(308)), dw(309, 1) + bytes(308)),
    (p.PingProtocolVersionReply(), dw(0, 10)),
    (p.ProtocolVersionReply(2), dw(1, 11, 2)),
    (p.ResourceIdReply(12, 5), dw(1, 12, 5)),
    (p.ResourceIdReply(18, 6), dw(1, 18, 6)),
    (p.BusyWaitReply(1), dw(1, 7, 1)),
    (p.TransferGetData(b"xyz"), b"xyz"),
    (p.GetParamReply(1, 64), dw(2, 15, 1, 64)),
    (p.GetCapsetReply(0, b""), dw(1, 16, 0)),
    (p.GetCapsetReply(1, dw(7, 8)), dw(3, 16, 1, 7, 8)),
    (p.SyncCreateReply(3), dw(1, 19, 3)),
    (p.SyncReadReply((2 << 32) | 9), dw(2, 21, 9, 2)),
    (p.SyncWaitReply(), dw(0, 23)),
])
def test_reply_bytes(reply: p.Reply, wire: bytes) -> None:
    assert encode_reply(reply) == wire
    assert ServerConnection().send(reply) == wire


@pytest.mark.parametrize("reply", [
    p.FdMessage(3), p.CapsReply(9, b""), p.GetCapsetReply(1, b"abc"),
    p.SyncReadReply(1 << 64), p.ResourceIdReply(2, -1), p.BusyWaitReply(1 << 32),
])
def test_reply_refused(reply: p.Reply) -> None:
    with pytest.raises(LocalProtocolError):
        encode_reply(reply)


@pytest.mark.parametrize(("requested", "max_supported", "answer"),
                         [(0, 3, 0), (1, 3, 0), (2, 3, 2), (3, 3, 3), (9, 3, 3), (3, 2, 2),
                          (2, 1, 0)])
def test_negotiate_version(requested: int, max_supported: int, answer: int) -> None:
    assert negotiate_version(requested, max_supported) == answer


def test_command_name() -> None:
    assert command_name(6) == "SUBMIT_CMD"
    assert command_name(99) == "#99"
