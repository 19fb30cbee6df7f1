"""Coverage-guided fuzzing (atheris) of the sans-IO vtest codec, both sides.

Why: ``vtest/codec.py`` parses what any local process sends; its contract is that any
byte stream yields events or raises ``RemoteProtocolError``, never another exception,
and that how the bytes are cut into reads changes nothing. ``client_codec.py`` makes
the same promise about what a server sends back.

How: one input = 4 control bytes + a request stream + a reply stream (the control
bytes say where the split is, how reads are cut, and the payload limit). The request
stream goes through ``ServerConnection`` whole and then in random chunks: the same
events and the same error (reason and command) both ways. Each request parsed is
re-encoded with ``encode_request`` and must parse back to an equal event. The
requests are then sent through a ``ClientConnection`` and the reply stream (with fake
fds for SCM_RIGHTS) is parsed, again whole and in chunks (the same replies, and an error in both or
neither: its reason may count the bytes buffered when it was found). Any other exception, or a
difference, is a crash for atheris (and libFuzzer underneath), which saves the input.

Run: ``python tests/fuzz/fuzz_codec.py [libFuzzer flags] CORPUS_DIR SEED_DIR``; inputs
given as files are replayed once (``tests/fuzz/regressions/codec``).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports():
    from virgl_viewer.vtest import client_codec, codec
    from virgl_viewer.vtest import protocol as p
    from virgl_viewer.vtest.errors import RemoteProtocolError

Outcome = tuple[list[object], tuple[str, str | None] | None]
FAKE_FD = 1000


def _chunks(data: bytes, rng: random.Random) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        n = rng.choice((1, 1, 2, 3, 7, 8, 9, 64, 4096))
        out.append(data[pos : pos + n])
        pos += n
    return out


def _drain(next_event: Callable[[], object], events: list[object]) -> bool:
    """Collect events until NEED_DATA (False) or CLOSED (True)."""
    while True:
        ev = next_event()
        if ev is codec.NEED_DATA:
            return False
        events.append(ev)
        if ev is codec.CLOSED:
            return True


def parse_requests(parts: list[bytes], limit: int) -> Outcome:
    conn = codec.ServerConnection(max_payload_bytes=limit)
    events: list[object] = []
    try:
        for part in [*parts, b""]:
            conn.receive_data(part)
            if _drain(conn.next_event, events):
                break
    except RemoteProtocolError as exc:
        return events, (exc.reason, exc.command)
    return events, None


def parse_replies(requests: list[p.Request], parts: list[bytes], fds: int) -> Outcome:
    conn = client_codec.ClientConnection(max_reply_bytes=1 << 16)
    for req in requests:
        conn.send(req)
    events: list[object] = []
    try:
        for i, part in enumerate([*parts, b""]):
            conn.receive_data(part, [FAKE_FD + i] if i < fds else [])
            if _drain(conn.next_event, events):
                break
    except RemoteProtocolError as exc:
        return events, (exc.reason, exc.command)
    return events, None


def check_round_trip(events: list[object]) -> None:
    reqs = [e for e in events if not isinstance(e, codec.Sentinel)]
    if not reqs or not isinstance(reqs[0], p.CreateRenderer):
        return
    data = b"".join(client_codec.encode_request(r) for r in reqs)  # type: ignore[arg-type]
    again, err = parse_requests([data], 64 << 20)
    again = [e for e in again if not isinstance(e, codec.Sentinel)]
    assert err is None, (err, reqs)
    assert again == reqs, (again, reqs)


def test_one_input(data: bytes) -> None:
    if len(data) < 4:
        return
    seed, limit_sel, split = data[0], data[1], int.from_bytes(data[2:4], "little")
    body = data[4:]
    req_bytes, reply_bytes = body[:split], body[split:]
    limit = 64 << 20 if limit_sel < 128 else 64 * (limit_sel - 127)
    rng = random.Random(seed)

    whole = parse_requests([req_bytes], limit)
    chunked = parse_requests(_chunks(req_bytes, rng), limit)
    assert whole == chunked, (whole, chunked)
    if limit == 64 << 20:
        check_round_trip(whole[0])

    requests = [e for e in whole[0] if isinstance(e, p.Request)]  # type: ignore[arg-type]
    replies_whole = parse_replies(requests, [reply_bytes], 1)
    parts = _chunks(reply_bytes, rng)
    replies_chunked = parse_replies(requests, parts, 1)
    # fds arrive with the first read either way: the same events, and an error in
    # both or neither (its text may count the bytes buffered when it was found)
    assert replies_whole[0] == replies_chunked[0], (replies_whole, replies_chunked)
    assert (replies_whole[1] is None) == (replies_chunked[1] is None), (
        replies_whole, replies_chunked)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
