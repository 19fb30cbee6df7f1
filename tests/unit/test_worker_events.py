"""The worker -> main event stream is checked in one place (worker_events.decode_events):
a worker runs guest bytes through virglrenderer, so what it sends is hostile too."""

from __future__ import annotations

import json

import pytest

from virgl_viewer.worker_events import MAX_DATAGRAM, StreamError, decode_events, encode


def test_well_formed_events_come_back_typed() -> None:
    data = encode([["named", "glxgears", 12.5], ["res+", 1, 1, 7, 2, 2, 0x8A, 300, 300, 1, 1,
                                                  0, 0, False, 360000, 13.0],
                   ["stats", 1, 2, 0, 10, 400, 3, 10, 9, [[9, 1.0, 2.0], [10, 1.5, None]],
                    None, [[0, 10, 9], [1, 4, 2]]],
                   ["usage", 2, 720000, 14.0],
                   ["log", 30, "virgl_viewer.session", "a\nb\x1b[2J"]])
    named, res, stats, usage, log = decode_events(data)
    assert named == ("named", "glxgears", 12.5)
    assert res[0] == "res+" and res[13] is False
    assert stats[9] == [(9, 1.0, 2.0), (10, 1.5, None)] and stats[10] is None
    assert stats[11] == [(0, 10, 9), (1, 4, 2)]  # a venus client's rings
    assert usage == ("usage", 2, 720000, 14.0)
    # newlines kept but indented, control characters escaped: no forged log line
    assert log[3] == "a\n    b\\x1b[2J"


def test_frame_events_say_whether_they_are_a_preview() -> None:
    want, frame, nope = decode_events(encode([
        ["want", 3, 32, 16, 1, 0x8058, False, True], ["frame", 3, 0, 32, 16, 1, False, True],
        ["unpreviewable", 4]]))
    assert want[-1] is True and frame == ("frame", 3, 0, 32, 16, 1, False, True)
    assert nope == ("unpreviewable", 4)


@pytest.mark.parametrize("batch", [
    {"named": 1},  # not a list
    [["nope", 1]],  # unknown kind
    [["res-"]],  # too few fields
    [["res-", 1, 2]],  # too many
    [["res-", -1]],  # negative
    [["res-", 1 << 64]],  # past 64 bits
    [["res-", True]],  # a bool is not an int here
    [["usage", 1, -5, 1.0]],  # negative bytes
    [["usage", 1, 5]],  # no time
    [["named", "x" * 600, 1.0]],  # too long
    [["named", "x", float("nan")]],  # not finite (json.dumps writes NaN)
    [["stats", 0, 0, 0, 0, 0, 0, 0, 0, [[1, 2.0]], None, None]],  # a short row
    [["stats", 0, 0, 0, 0, 0, 0, 0, 0, "x", None, None]],
    [["stats", 0, 0, 0, 0, 0, 0, 0, 0, [], None]],  # no timelines field
    [["stats", 0, 0, 0, 0, 0, 0, 0, 0, [], None, [[1, 2]]]],  # a short timeline row
    [["stats", 0, 0, 0, 0, 0, 0, 0, 0, [], None, [[1, 2, -3]]]],  # a negative count
    [["stats", 0, 0, 0, 0, 0, 0, 0, 0, [], None, [[1, 2, 3.5]]]],  # not an integer
    [["present", 1, "2"]],
    [["want", 1, 64, 48, 1, 0x8058, False]],  # no preview flag
    [["frame", 1, 0, 64, 48, 1, False, 1]],  # the preview flag is a bool
    [["unpreviewable", -1]],
])
def test_malformed_events_are_refused(batch: object) -> None:
    with pytest.raises(StreamError):
        decode_events(json.dumps(batch).encode())


@pytest.mark.parametrize("data", [b"\xff\xfe", b"[" * 100_000, b"x" * MAX_DATAGRAM, b"[1"])
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(StreamError):
        decode_events(data)
