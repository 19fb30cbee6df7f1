"""The C engine and the codec frame every message the same way.

The per-frame commands are framed by the C engine (vv_frame_body: which messages it
reads and runs itself, and how many payload bytes) and every other message by the sans-IO
codec. Whatever the engine takes, the codec accepts with the same payload size; whatever
the codec refuses, the engine does not take (it leaves it to the codec, which reports it).
Also TRANSFER_PUT2's length rule, which both apply once the payload is in. The commands,
lengths and data sizes are drawn around every boundary (0, the fixed sizes, the budget,
2^32 - 1).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from virgl_viewer._native import lib
from virgl_viewer.budgets import DEFAULT
from virgl_viewer.errors import RemoteProtocolError
from virgl_viewer.virgl import FastConn, HandleMap
from virgl_viewer.vtest import codec
from virgl_viewer.vtest import protocol as P

U32 = st.integers(0, 0xFFFFFFFF)
LIMIT_DW = DEFAULT.message_bytes // 4
LENGTHS = st.one_of(
    st.integers(0, 40),
    st.sampled_from([LIMIT_DW - 1, LIMIT_DW, LIMIT_DW + 1, 0x3FFFFFFF, 0x40000000,
                     0xFFFFFFFF]),
    U32,
)
COMMANDS = st.one_of(st.sampled_from(list(P.Cmd)).map(int), st.integers(0, 40), U32)


@pytest.fixture(scope="module")
def conns() -> Iterator[dict[bool, FastConn]]:
    """An engine connection without a virgl context yet, and one with."""
    pairs = [socket.socketpair() for _ in range(2)]
    out = {False: FastConn(pairs[0][0].fileno(), HandleMap(), 1),
           True: FastConn(pairs[1][0].fileno(), HandleMap(), 2)}
    out[True].set_context(1)
    yield out
    for fast in out.values():
        fast.close()
    for a, b in pairs:
        a.close()
        b.close()


def codec_verdict(cmd: int, length: int) -> int | None:
    """Payload bytes the codec reads for this header, or None if it refuses it."""
    c = codec.ServerConnection(DEFAULT.message_bytes)
    c.receive_data(struct.pack("<2I", 4, P.Cmd.CREATE_RENDERER) + b"name")
    assert isinstance(c.next_event(), P.CreateRenderer)
    c.receive_data(struct.pack("<2I", length, cmd))
    try:
        ev = c.next_event()
    except RemoteProtocolError:
        return None
    if ev is not codec.NEED_DATA:  # a message of a header alone, decoded at once
        assert length == 0, (cmd, length)
        return 0
    return c._need  # the bytes it waits for, the header checked


@settings(max_examples=3000, deadline=None)
@given(cmd=COMMANDS, length=LENGTHS, ctx=st.booleans())
def test_whatever_the_engine_takes_the_codec_takes_alike(conns: dict[bool, FastConn],
                                                        cmd: int, length: int,
                                                        ctx: bool) -> None:
    body = conns[ctx].frame_body(length, cmd)
    expected = codec_verdict(cmd, length)
    if body >= 0:
        assert expected == body, (cmd, length)
    # what the codec refuses, the engine leaves to it
    if expected is None:
        assert body < 0, (cmd, length)


@settings(max_examples=3000, deadline=None)
@given(length=st.one_of(st.integers(10, 60), LENGTHS), size=st.one_of(
    st.integers(0, 200), st.sampled_from([0xFFFFFFFC, 0xFFFFFFFD, 0xFFFFFFFE, 0xFFFFFFFF]), U32))
def test_transfer_put2_length_rule_agrees(length: int, size: int) -> None:
    if length < P.TRANSFER2_HDR_SIZE:
        return
    c = codec.ServerConnection(DEFAULT.message_bytes)
    c.receive_data(struct.pack("<2I", 4, P.Cmd.CREATE_RENDERER) + b"name")
    c.next_event()
    c.receive_data(struct.pack("<2I", length, P.Cmd.TRANSFER_PUT2)
                   + struct.pack("<10I", 1, 0, 0, 0, 0, 1, 1, 1, size, 0))
    try:
        accepted = isinstance(c.next_event(), P.TransferPut2)
    except RemoteProtocolError:
        accepted = False
    assert bool(lib.vv_put2_length_ok(length, size)) == accepted, (length, size)


def test_the_engine_takes_the_per_frame_commands(conns: dict[bool, FastConn]) -> None:
    # not vacuous: with a context the engine frames these itself, without one only these
    def taken(fast: FastConn) -> set[str]:
        return {cmd.name for cmd in P.Cmd for length in (0, 1, 2, 10, 11, 12)
                if fast.frame_body(length, int(cmd)) >= 0}
    assert taken(conns[True]) == {"SUBMIT_CMD", "RESOURCE_UNREF", "RESOURCE_BUSY_WAIT",
                                  "RESOURCE_CREATE2", "TRANSFER_GET2", "TRANSFER_PUT2"}
    assert taken(conns[False]) == {"TRANSFER_GET2", "TRANSFER_PUT2"}
