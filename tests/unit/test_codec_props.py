"""Property tests: encode_request -> ServerConnection round-trips for random
field values and random chunkings; random garbage only ever raises
RemoteProtocolError; replies round-trip through ClientConnection."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virgl_viewer.errors import RemoteProtocolError
from virgl_viewer.vtest import protocol as p
from virgl_viewer.vtest.client_codec import (
    BatchSpec,
    ClientConnection,
    encode_request,
    make_submit_cmd2,
)
from virgl_viewer.vtest.codec import CLOSED, NEED_DATA, ServerConnection, encode_reply

SETTINGS = settings(deadline=None, max_examples=150,
                    suppress_health_check=[HealthCheck.too_slow])

u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, (1 << 64) - 1)
dwords = st.binary(max_size=64).map(lambda b: b[: len(b) - len(b) % 4])


def fixed(cls: type, n: int) -> st.SearchStrategy[p.Request]:
    return st.builds(lambda vals: cls(*vals), st.tuples(*([u32] * n)))


@st.composite
def transfer_put(draw: st.DrawFn) -> p.TransferPut:
    data = draw(st.binary(max_size=40))
    h, lv, st_, ls, x, y, z, w, ht, d = draw(st.tuples(*([u32] * 10)))
    return p.TransferPut(h, lv, st_, ls, x, y, z, w, ht, d, len(data), data)


@st.composite
def transfer_put2(draw: st.DrawFn) -> p.TransferPut2:
    # Length 10 + ceil(data_size/4), as Mesa sends it, but no data follows.
    return p.TransferPut2(*draw(st.tuples(*([u32] * 10))))


batch = st.builds(
    BatchSpec, commands=dwords, syncs=st.lists(st.tuples(u32, u64), max_size=3),
    ring_idx=st.integers(0, p.MAX_TIMELINE_COUNT - 1), flags=u32)

requests: st.SearchStrategy[p.Request] = st.one_of(
    st.just(p.GetCaps()), st.just(p.GetCaps2()), st.just(p.PingProtocolVersion()),
    fixed(p.ProtocolVersion, 1), fixed(p.ResourceCreate, 10), fixed(p.ResourceCreate2, 11),
    fixed(p.ResourceUnref, 1), transfer_put(),
    st.tuples(*([u32] * 10), st.integers(0, 64 << 20)).map(  # larger inline GETs are refused
        lambda vals: p.TransferGet(*vals)),
    fixed(p.TransferGet2, 10), transfer_put2(), fixed(p.ResourceBusyWait, 2),
    dwords.map(lambda b: p.SubmitCmd(bytearray(b))), fixed(p.GetParam, 1),
    fixed(p.GetCapset, 2), fixed(p.ContextInit, 1),
    st.builds(p.ResourceCreateBlob, u32, u32, u64, u64), st.builds(p.SyncCreate, u64),
    fixed(p.SyncUnref, 1), fixed(p.SyncRead, 1), st.builds(p.SyncWrite, u32, u64),
    st.builds(p.SyncWait, u32, u32, st.lists(st.tuples(u32, u64), max_size=4).map(tuple)),
    st.lists(batch, max_size=4).map(make_submit_cmd2),
)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]  # b"" is EOF


@SETTINGS
@given(name=st.binary(max_size=100), reqs=st.lists(requests, max_size=8),
       cuts=st.lists(st.integers(0, 1 << 16), max_size=12))
def test_requests_round_trip_in_any_chunking(
    name: bytes, reqs: list[p.Request], cuts: list[int]
) -> None:
    sent = [p.CreateRenderer(name), *reqs]
    data = b"".join(encode_request(r) for r in sent)
    conn = ServerConnection()
    got: list[object] = []
    for piece in split(data, cuts):
        conn.receive_data(piece)
        while (ev := conn.next_event()) is not NEED_DATA:
            got.append(ev)
    conn.receive_data(b"")
    assert conn.next_event() is CLOSED
    assert got == sent


@SETTINGS
@given(garbage=st.binary(max_size=300), cuts=st.lists(st.integers(0, 400), max_size=6))
def test_garbage_raises_only_remote_protocol_error(garbage: bytes, cuts: list[int]) -> None:
    conn = ServerConnection(max_payload_bytes=1 << 12)
    try:
        for piece in [encode_request(p.CreateRenderer(b"x\0")), *split(garbage, cuts), b""]:
            conn.receive_data(piece)
            while (ev := conn.next_event()) not in (NEED_DATA, CLOSED):
                assert isinstance(ev, p.Request)
    except RemoteProtocolError:
        pass


@st.composite
def exchange(draw: st.DrawFn) -> tuple[p.Request, list[p.Reply]]:
    """A request and the replies a v3 server gives it (fds as FdMessage)."""
    kind = draw(st.integers(0, 9))
    v = draw(u32)
    if kind == 0:
        caps = draw(st.binary(max_size=50))
        return p.GetCaps2(), [p.CapsReply(2, caps)]
    if kind == 1:
        return p.ResourceBusyWait(v, 1), [p.BusyWaitReply(draw(st.integers(0, 1)))]
    if kind == 2:
        return p.GetParam(v), [p.GetParamReply(draw(st.integers(0, 1)), draw(u32))]
    if kind == 3:
        caps = draw(dwords)
        return p.GetCapset(v, 0), [p.GetCapsetReply(1 if caps else 0, caps)]
    if kind == 4:
        return p.SyncCreate(draw(u64)), [p.SyncCreateReply(v)]
    if kind == 5:
        return p.SyncRead(v), [p.SyncReadReply(draw(u64))]
    if kind == 6:
        return p.SyncWait(0, 1, ((v, 1),)), [p.SyncWaitReply(), p.FdMessage(100 + v % 50)]
    if kind == 7:
        size = draw(st.integers(0, 5))
        replies: list[p.Reply] = [p.ResourceIdReply(12, v)]
        if size:
            replies.append(p.FdMessage(7))
        return p.ResourceCreate2(0, 2, 2, 2, 4, 4, 1, 1, 0, 0, size), replies
    if kind == 8:
        data = draw(st.binary(min_size=1, max_size=30))
        return (p.TransferGet(1, 0, 0, 0, 0, 0, 0, 1, 1, 1, len(data)),
                [p.TransferGetData(data)])
    return p.ResourceUnref(v), []


@SETTINGS
@given(pairs=st.lists(exchange(), max_size=8), cuts=st.lists(st.integers(0, 1000), max_size=8))
def test_replies_round_trip_through_client_connection(
    pairs: list[tuple[p.Request, list[p.Reply]]], cuts: list[int]
) -> None:
    client = ClientConnection()
    client.protocol_version = 3
    for request, _ in pairs:
        client.send(request)
    wire = bytearray()
    fds: list[int] = []
    for _, replies in pairs:
        for reply in replies:
            if isinstance(reply, p.FdMessage):
                wire += b"\0"
                fds.append(reply.fd)
            else:
                wire += encode_reply(reply)
    got: list[object] = []
    if wire:
        for i, piece in enumerate(split(bytes(wire), cuts)):
            # Every fd comes with the first piece: when fds arrive must not matter.
            client.receive_data(piece, fds if i == 0 else ())
            while (ev := client.next_event()) is not NEED_DATA:
                got.append(ev)
    assert got == [r for _, replies in pairs for r in replies]
    assert client.pending == 0
    assert client.take_unclaimed_fds() == []
