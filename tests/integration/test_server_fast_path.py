"""The C fast path (native/vv_fast.c) and its hand-offs to the Python session.

SUBMIT_CMD, TRANSFER_GET2/PUT2 and RESOURCE_BUSY_WAIT are served in C; any
other message, or one whose checks fail, goes to the Python codec, and C reads
again once the codec has consumed what it was given. These tests feed the real
server through a real socket with byte streams that cross that border in
awkward places, and assert what the client gets back: replies in order and
the right pixels.
"""

from __future__ import annotations

import logging
import os

import pytest
from server_helpers import (
    BLUE,
    GREEN,
    HEIGHT,
    PLUM,
    RED,
    TEAL,
    WIDTH,
    assert_filled,
    assert_one_drop,
    bgrx,
    clear_commands,
    create_target,
    dwords,
    header,
    read_back,
    recv_exactly,
)
from support.procs import wait_for

from virgl_viewer.guest import VtestClient
from virgl_viewer.testing import RunningServer
from virgl_viewer.vtest import protocol as p
from virgl_viewer.vtest.client_codec import encode_request

SIZE = WIDTH * HEIGHT * 4


def frame_bytes(handle: int, color: tuple[float, float, float, float]) -> bytes:
    """One Mesa-like frame: clear, read the display target back, wait."""
    return b"".join(encode_request(r) for r in (
        p.SubmitCmd(bytearray(clear_commands(handle, color))),
        p.TransferGet2(handle, 0, 0, 0, 0, WIDTH, HEIGHT, 1, SIZE, 0),
        p.ResourceBusyWait(handle, p.BUSY_WAIT_FLAG_WAIT),
    ))


BUSY_REPLY = header(p.Cmd.RESOURCE_BUSY_WAIT, 1) + dwords(0)


def test_frames_split_one_byte_at_a_time(virgl_server: RunningServer) -> None:
    with VtestClient.connect(virgl_server.path, "fast-bytes", 2) as g:
        res = create_target(g)
        for color in (RED, TEAL):
            for b in frame_bytes(res.handle, color):
                g.send_raw(bytes([b]))
            assert recv_exactly(g, len(BUSY_REPLY)) == BUSY_REPLY
            assert res.shm is not None
            assert_filled(bytes(res.shm[:SIZE]), color)


def test_slow_and_fast_messages_in_one_write(virgl_server: RunningServer) -> None:
    """A create (Python), frames (C), an unref (Python) and a GET_CAPS reply
    (Python) sent in a single write come back in order."""
    with VtestClient.connect(virgl_server.path, "fast-mixed", 2) as g:
        res = create_target(g)
        other = create_target(g)
        caps = encode_request(p.GetCaps2())
        blob = (frame_bytes(res.handle, GREEN) + encode_request(p.ResourceUnref(other.handle))
                + frame_bytes(res.handle, PLUM) + caps + frame_bytes(res.handle, BLUE))
        g.send_raw(blob)
        assert recv_exactly(g, len(BUSY_REPLY) * 2) == BUSY_REPLY * 2
        hdr = recv_exactly(g, 8)
        length, cmd = int.from_bytes(hdr[:4], "little"), int.from_bytes(hdr[4:], "little")
        assert cmd == 2 and length > 1  # the caps reply, between the frames
        recv_exactly(g, length - 1)
        assert recv_exactly(g, len(BUSY_REPLY)) == BUSY_REPLY
        assert res.shm is not None
        assert_filled(bytes(res.shm[:SIZE]), BLUE)
        # the unreffed handle is gone: a transfer on it drops the client
        g.send_raw(encode_request(p.TransferGet2(other.handle, 0, 0, 0, 0, 1, 1, 1, 4, 0)))
        assert g.recv_raw(timeout=10) == b""


def test_transfer_put2_in_c_uploads_pixels(virgl_server: RunningServer) -> None:
    with VtestClient.connect(virgl_server.path, "fast-put", 2) as g:
        res = create_target(g)
        assert res.shm is not None
        res.shm[:SIZE] = bgrx(TEAL) * (WIDTH * HEIGHT)
        g.transfer_put2(res, width=WIDTH, height=HEIGHT, data_size=SIZE)
        g.busy_wait(0)  # its reply means the upload is done
        res.shm[:SIZE] = b"\0" * SIZE
        assert_filled(read_back(g, res), TEAL)


def test_busy_wait_parks_while_more_input_arrives(virgl_server: RunningServer) -> None:
    """A client that keeps writing behind a parked BUSY_WAIT gets its replies
    in order once the fences retire."""
    with VtestClient.connect(virgl_server.path, "fast-park", 2) as g:
        res = create_target(g)
        g.send_raw(b"".join(frame_bytes(res.handle, c) for c in (RED, GREEN, TEAL, PLUM)))
        assert recv_exactly(g, len(BUSY_REPLY) * 4) == BUSY_REPLY * 4
        assert res.shm is not None
        assert_filled(bytes(res.shm[:SIZE]), PLUM)


@pytest.mark.isolation("shared")  # reads the C path's state on the render thread
def test_eof_inside_a_fast_message_is_reported(virgl_server: RunningServer,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with VtestClient.connect(virgl_server.path, "fast-cut", 2) as g:
        res = create_target(g)
        g.busy_wait(0)
        msg = encode_request(p.SubmitCmd(bytearray(clear_commands(res.handle, RED))))
        caplog.clear()
        g.send_raw(msg[: len(msg) - 6])
        (s,) = [s for s in virgl_server.server.sessions if s.name == "fast-cut"]
        # the C path (not the Python codec) holds the partial message before the EOF
        assert wait_for(lambda: virgl_server.call(
            lambda: (s.fast.py_mode, s.fast.input_size())) == (0, len(msg) - 6))
    assert wait_for(lambda: any("dropped" in r.getMessage() for r in caplog.records))
    assert_one_drop(caplog, "fast-cut", os.getpid(), "SUBMIT_CMD",
                    "connection closed mid-message")


def test_unknown_handle_in_a_c_submit_names_it(virgl_server: RunningServer,
                                               caplog: pytest.LogCaptureFixture) -> None:
    with VtestClient.connect(virgl_server.path, "fast-handle", 2) as g:
        res = create_target(g)
        g.busy_wait(0)
        caplog.clear()
        g.send_raw(encode_request(p.SubmitCmd(bytearray(clear_commands(res.handle + 77, RED)))))
        assert g.recv_raw(timeout=10) == b""
    msg = assert_one_drop(caplog, "fast-handle", os.getpid(), "SUBMIT_CMD")
    assert f"unknown resource handle {res.handle + 77}" in msg


@pytest.mark.isolation("shared")  # reads the session's C fence log
def test_fence_log_records_every_submit(virgl_server: RunningServer) -> None:
    with VtestClient.connect(virgl_server.path, "fast-fences", 2) as g:
        res = create_target(g)
        for color in (RED, GREEN, BLUE):
            g.send_raw(frame_bytes(res.handle, color))
            assert recv_exactly(g, len(BUSY_REPLY)) == BUSY_REPLY
        (s,) = [s for s in virgl_server.server.sessions if s.name == "fast-fences"]
        recs = s.fast.fences(1)
        assert [r.fence_id for r in recs] == [1, 2, 3]
        assert all(r.retired is not None and r.retired >= r.created for r in recs)
        assert s.submits == 3 and s.fence_completed == 3
