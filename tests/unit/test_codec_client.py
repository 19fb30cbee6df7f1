"""Client side of the codec: encode_request's exact bytes (Mesa's layout) and
ClientConnection's reply parsing, fed bytes as virgl_test_server 0.10.4 sends
them."""

from __future__ import annotations

import struct

import pytest

from virgl_viewer.errors import LocalProtocolError, RemoteProtocolError
from virgl_viewer.vtest import protocol as p
from virgl_viewer.vtest.client_codec import ClientConnection, encode_request
from virgl_viewer.vtest.codec import CLOSED, NEED_DATA


def dw(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def drain(conn: ClientConnection, data: bytes = b"", fds: tuple[int, ...] = (),
          *, chunk: int | None = None) -> list[object]:
    out: list[object] = []
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    for i, piece in enumerate(pieces):
        if piece or i == 0:
            conn.receive_data(piece, fds if i == 0 else ())
        while (ev := conn.next_event()) is not NEED_DATA:
            out.append(ev)
            if ev is CLOSED:
                return out
    return out


@pytest.mark.parametrize(("request_", "wire"), [
    (p.CreateRenderer(b"glxgears\0"), dw(9, 8) + b"glxgears\0"),
    (p.PingProtocolVersion(), dw(0, 10)),
    (p.ResourceBusyWait(0, 0), dw(2, 7, 0, 0)),
    (p.ProtocolVersion(2), dw(1, 11, 2)),
    (p.GetCaps2(), dw(0, 9)),
    (p.ResourceCreate2(1, 2, 2, 0x8A, 300, 300, 1, 1, 0, 0, 360000),
     dw(11, 12, 1, 2, 2, 0x8A, 300, 300, 1, 1, 0, 0, 360000)),
    (p.TransferPut(1, 0, 8, 0, 0, 0, 0, 2, 1, 1, 6, b"abcdef"),
     dw(13, 5, 1, 0, 8, 0, 0, 0, 0, 2, 1, 1, 6) + b"abcdef"),
    (p.TransferPut2(1, 0, 0, 0, 0, 300, 300, 1, 360000, 0),
     dw(10 + 90000, 14, 1, 0, 0, 0, 0, 300, 300, 1, 360000, 0)),
    (p.TransferGet2(1, 0, 0, 0, 0, 300, 300, 1, 360000, 0),
     dw(10, 13, 1, 0, 0, 0, 0, 300, 300, 1, 360000, 0)),
    (p.ResourceCreateBlob(2, 1, (1 << 32) + 5, 7), dw(6, 18, 2, 1, 5, 1, 7, 0)),
    (p.SyncWait(1, 10, ((3, (2 << 32) + 1),)), dw(5, 23, 1, 10, 3, 1, 2)),
    (p.SubmitCmd(bytearray(dw(1, 2))), dw(2, 6, 1, 2)),
])
def test_encode_request_bytes(request_: p.Request, wire: bytes) -> None:
    assert encode_request(request_) == wire


@pytest.mark.parametrize("request_", [
    p.TransferPut(1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 5, b"abc"),
    p.SubmitCmd(bytearray(b"abc")), p.ResourceUnref(1 << 32), p.SyncCreate(-1),
    p.SyncWrite(1, 1 << 64), p.CapsReply(1, b""),
])
def test_encode_request_refuses(request_: p.Request) -> None:
    with pytest.raises(LocalProtocolError):
        encode_request(request_)


def test_mesa_handshake_as_upstream_answers_it() -> None:
    conn = ClientConnection()
    for r in (p.CreateRenderer(b"x\0"), p.PingProtocolVersion(), p.ResourceBusyWait(0, 0),
              p.ProtocolVersion(2), p.GetCaps2(), p.GetCaps()):
        conn.send(r)
    assert conn.pending == 5
    caps2, caps1 = bytes(range(256)) * 5 + bytes(96), bytes(308)
    wire = (dw(0, 10) + dw(1, 7, 0) + dw(1, 11, 2) + dw(1377, 2) + caps2
            + dw(309, 1) + caps1)
    for chunk in (None, 1, 7):
        c = ClientConnection()
        for r in (p.PingProtocolVersion(), p.ResourceBusyWait(0, 0), p.ProtocolVersion(2),
                  p.GetCaps2(), p.GetCaps()):
            c.send(r)
        assert drain(c, wire, chunk=chunk) == [
            p.PingProtocolVersionReply(), p.BusyWaitReply(0), p.ProtocolVersionReply(2),
            p.CapsReply(2, caps2), p.CapsReply(1, caps1)]
        assert c.protocol_version == 2
        assert c.pending == 0


def test_server_without_ping_answers_only_busy_wait() -> None:
    conn = ClientConnection()
    conn.send(p.PingProtocolVersion())
    conn.send(p.ResourceBusyWait(0, 0))
    assert drain(conn, dw(1, 7, 0)) == [p.BusyWaitReply(0)]
    assert conn.pending == 0


def test_caps2_reply_must_use_id_2() -> None:
    conn = ClientConnection()
    conn.send(p.GetCaps2())
    with pytest.raises(RemoteProtocolError, match="GET_CAPS2"):
        drain(conn, dw(5, 9, 0, 0, 0, 0) + b"\0\0\0\0")


@pytest.mark.parametrize(("version", "replies"), [
    (0, [p.FdMessage(42)]),  # never happens (no CREATE2 before v2) but parses as v2
    (2, [p.FdMessage(42)]),
    (3, [p.ResourceIdReply(12, 9), p.FdMessage(42)]),
])
def test_resource_create2_replies_by_version(version: int, replies: list[p.Reply]) -> None:
    conn = ClientConnection()
    conn.protocol_version = version
    conn.send(p.ResourceCreate2(0, 2, 2, 2, 4, 4, 1, 1, 0, 0, 64))
    wire = (dw(1, 12, 9) if version >= 3 else b"") + b"\0"
    assert drain(conn, wire, (42,)) == replies


def test_resource_create_v2_gets_nothing_v3_gets_an_id() -> None:
    conn = ClientConnection()
    conn.protocol_version = 2
    conn.send(p.ResourceCreate(1, 2, 2, 2, 4, 4, 1, 1, 0, 0))
    conn.send(p.ResourceCreate2(2, 2, 2, 2, 4, 4, 1, 1, 0, 0, 0))
    assert conn.pending == 0
    assert conn.next_event() is NEED_DATA
    conn.protocol_version = 3
    conn.send(p.ResourceCreate(0, 2, 2, 2, 4, 4, 1, 1, 0, 0))
    assert drain(conn, dw(1, 2, 5)) == [p.ResourceIdReply(2, 5)]


def test_pipelined_version_decides_later_replies() -> None:
    conn = ClientConnection()
    conn.send(p.ProtocolVersion(3))
    conn.send(p.ResourceCreate2(0, 2, 2, 2, 4, 4, 1, 1, 0, 0, 16))
    assert drain(conn, dw(1, 11, 3) + dw(1, 12, 4) + b"\0", (5,)) == [
        p.ProtocolVersionReply(3), p.ResourceIdReply(12, 4), p.FdMessage(5)]


def test_transfer_get_inline_data() -> None:
    conn = ClientConnection()
    conn.send(p.TransferGet(1, 0, 8, 0, 0, 0, 0, 2, 2, 1, 16))
    conn.send(p.TransferGet(1, 0, 8, 0, 0, 0, 0, 2, 2, 1, 0))  # no reply at all
    conn.send(p.ResourceBusyWait(1, 1))
    data = bytes(range(16))
    assert drain(conn, data + dw(1, 7, 0), chunk=3) == [
        p.TransferGetData(data), p.BusyWaitReply(0)]


def test_capset_and_sync_replies() -> None:
    conn = ClientConnection()
    conn.protocol_version = 3
    for r in (p.GetCapset(4, 0), p.GetCapset(9, 0), p.GetParam(1), p.SyncCreate(1),
              p.SyncRead(1), p.SyncWait(0, 5, ((1, 2),))):
        conn.send(r)
    wire = (dw(3, 16, 1, 7, 8) + dw(1, 16, 0) + dw(2, 15, 1, 64) + dw(1, 19, 1)
            + dw(2, 21, 5, 1) + dw(0, 23) + b"\0")
    assert drain(conn, wire, (77,)) == [
        p.GetCapsetReply(1, dw(7, 8)), p.GetCapsetReply(0, b""), p.GetParamReply(1, 64),
        p.SyncCreateReply(1), p.SyncReadReply((1 << 32) + 5), p.SyncWaitReply(),
        p.FdMessage(77)]


@pytest.mark.parametrize(("request_", "wire", "match"), [
    (p.ResourceBusyWait(1, 0), dw(2, 7, 0, 0), "length 2"),
    (p.ResourceBusyWait(1, 0), dw(1, 2, 0), "expected a RESOURCE_BUSY_WAIT"),
    (p.SyncWait(0, 0, ()), dw(0, 23) + b"\0", "without a file descriptor"),
    (p.GetCaps(), dw(0xFFFFFFFF, 1), "invalid"),
    (p.GetCaps(), dw(0, 1), "invalid"),
    (p.GetCapset(1, 0), dw(0, 16), "without the valid field"),
])
def test_bad_replies(request_: p.Request, wire: bytes, match: str) -> None:
    conn = ClientConnection()
    conn.send(request_)
    with pytest.raises(RemoteProtocolError, match=match):
        drain(conn, wire)


def test_unexpected_bytes_and_eof() -> None:
    conn = ClientConnection()
    with pytest.raises(RemoteProtocolError, match="unexpected"):
        drain(conn, dw(0, 10))
    idle = ClientConnection()
    assert drain(idle) == [CLOSED]  # b"" is EOF with nothing owed
    waiting = ClientConnection()
    waiting.send(p.ResourceBusyWait(1, 1))
    with pytest.raises(RemoteProtocolError, match="closed while waiting"):
        drain(waiting, dw(1, 7) + dw(0)[:2])
        drain(waiting)  # EOF


def test_unclaimed_fds_are_handed_back() -> None:
    conn = ClientConnection()
    conn.receive_data(b"", (3, 4))
    assert conn.take_unclaimed_fds() == [3, 4]
    assert conn.take_unclaimed_fds() == []
