"""The event stream between the main process and its renderer workers.

Why: in ``--isolation process`` each client is served by a worker process; the main
process's observers (state registry, inspector, --stats-json, scanout windows) must see
every worker's clients as if they were its own. How: one SOCK_SEQPACKET socketpair per
worker. The worker sends datagrams, each a JSON array of events (each an array whose
first item names it); the main process sends one control message a datagram, the
client's socket riding along by SCM_RIGHTS. A worker runs the guest's bytes through
virglrenderer, so its stream is as hostile as a guest's: ``decode_events`` is the one
place that checks it (kinds, arity, types, ranges, string lengths, datagram size), and
anything else ends the worker.

Events (worker -> main):
  ["hello", pid]                      forked, before initialising
  ["ready", pid]                      virglrenderer and EGL are up: give it a client
  ["named", name, connected_at]       CREATE_RENDERER
  ["res+", key, client_handle, server_handle, target, format, bind, width, height,
           depth, array_size, last_level, nr_samples, blob, shm_size, created]
  ["res-", key]
  ["present", key, count]
  ["stats", ctx_id, protocol_version, capset_id, submits, bytes_submitted, presents,
            fence_submitted, fence_completed, fences, syncs, timelines]
      fences:    [[id, created, retired or null], ...]  new or newly retired ones
      syncs:     [[id, value, waiters], ...] or null    every sync, when they changed
      timelines: [[ring, given, retired], ...] or null  a venus client's rings (fences
                                                        given and retired on each), all
                                                        of them, when they changed
  ["usage", mappings, resource_bytes, grew_at]
                                      what the client's live resources hold against the
                                      server-wide budgets, when it changed; grew_at: when
                                      it last made one
  ["want", key, width, height, virgl_format, internal_format, y_0_top, preview]
                                      display target `key` is presented (preview false)
                                      or texture `key` is to be previewed: slots for it?
  ["frame", key, slot, width, height, virgl_format, y_0_top, preview]
                                      a frame (or preview copy) is in slot
  ["unpreviewable", key]              texture `key` cannot be previewed (or is gone)
  ["closed", reason]                  its client is gone (the worker exits next)
  ["log", level, logger, message]     a log record of the worker (main logs it again)
Control (main -> worker):
  ["client", pid, uid, observed] + fd | ["snapshot"] | ["stop"] | ["drop", command, reason]
  | ["close", reason] | ["observe"] | ["present_interval", seconds]
  | ["slots", key, transport, width, height, internal_format, bytes, preview] + an fd
                                         a slot
  | ["drawn", key, slot, preview]        the main process is done with that slot
  | ["preview", key]                     copy texture `key` once for the inspector
  | ["preview_end", key]                 its preview is closed: free its slots
Times are CLOCK_MONOTONIC seconds (one clock for every process of the machine).
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DATAGRAM = 1 << 18  # bytes; a longer one arrives cut (MSG_TRUNC): the worker goes
MAX_TEXT = 512  # characters of a name or reason (names are cut to 64 later anyway)
MAX_LOG = 1 << 14  # characters of a log message (a traceback)
MAX_LIST = 1 << 14  # fences, syncs or timelines in one stats event
_U64 = (1 << 64) - 1


class StreamError(ValueError):
    """A worker sent something that is not a well-formed event."""


_I, _F, _S, _B, _L = "int", "float", "str", "bool", "log"
_SCHEMA: dict[str, tuple[str, ...]] = {
    "hello": (_I,),
    "ready": (_I,),
    "named": (_S, _F),
    "res+": (_I, _I, _I, _I, _I, _I, _I, _I, _I, _I, _I, _I, _B, _I, _F),
    "res-": (_I,),
    "present": (_I, _I),
    "stats": (_I, _I, _I, _I, _I, _I, _I, _I, "fences", "triples", "triples"),
    "usage": (_I, _I, _F),
    "want": (_I, _I, _I, _I, _I, _B, _B),
    "frame": (_I, _I, _I, _I, _I, _B, _B),
    "unpreviewable": (_I,),
    "closed": (_S,),
    "log": (_I, _S, _L),
}


def _check(kind: str, value: Any) -> Any:
    if kind == _I:
        if type(value) is not int or not 0 <= value <= _U64:
            raise StreamError(f"not an unsigned 64-bit integer: {value!r:.40}")
        return value
    if kind == _F:
        if type(value) not in (int, float) or not math.isfinite(value):
            raise StreamError(f"not a finite number: {value!r:.40}")
        return float(value)
    if kind == _S:
        if type(value) is not str or len(value) > MAX_TEXT:
            raise StreamError(f"not a string of at most {MAX_TEXT} characters")
        return value
    if kind == _L:
        if type(value) is not str or len(value) > MAX_LOG:
            raise StreamError(f"not a string of at most {MAX_LOG} characters")
        return safe_text(value)
    if kind == _B:
        if type(value) is not bool:
            raise StreamError(f"not a boolean: {value!r:.40}")
        return value
    if kind == "fences":
        rows = _rows(value, 3, allow_null=False)
        return [(_check(_I, r[0]), _check(_F, r[1]),
                 None if r[2] is None else _check(_F, r[2])) for r in rows]
    if kind == "triples":  # null, or rows of three unsigned integers
        if value is None:
            return None
        return [(_check(_I, r[0]), _check(_I, r[1]), _check(_I, r[2]))
                for r in _rows(value, 3, allow_null=False)]
    raise AssertionError(kind)


def safe_text(text: str) -> str:
    """``text`` with every character that is not printable written as an escape, new
    lines kept but indented: a worker cannot forge a log line of the main process."""
    lines = ("".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in line)
             for line in text.split("\n"))
    return "\n    ".join(lines)


def _rows(value: Any, width: int, *, allow_null: bool) -> list[list[Any]]:
    if type(value) is not list or len(value) > MAX_LIST:
        raise StreamError(f"not a list of at most {MAX_LIST} rows")
    for r in value:
        if type(r) is not list or len(r) != width:
            raise StreamError(f"a row is not a list of {width}")
    return value


def decode_events(data: bytes) -> list[tuple[Any, ...]]:
    """The events of one datagram from a worker, each a tuple (kind, *fields) with the
    fields checked; StreamError if anything does not fit."""
    if len(data) >= MAX_DATAGRAM:
        raise StreamError("datagram too long")
    try:
        batch = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise StreamError(f"not JSON: {exc}") from None
    if type(batch) is not list:
        raise StreamError("a datagram is not a list of events")
    out = []
    for ev in batch:
        if type(ev) is not list or not ev or type(ev[0]) is not str:
            raise StreamError("an event is not a list starting with its kind")
        schema = _SCHEMA.get(ev[0])
        if schema is None:
            raise StreamError(f"unknown event {ev[0]!r:.40}")
        if len(ev) != len(schema) + 1:
            raise StreamError(f"{ev[0]}: {len(ev) - 1} fields, expected {len(schema)}")
        out.append((ev[0], *(_check(k, v) for k, v in zip(schema, ev[1:], strict=True))))
    return out


def encode(items: list[Any]) -> bytes:
    """One datagram (either direction)."""
    return json.dumps(items, separators=(",", ":")).encode()


def decode_control(data: bytes) -> list[Any]:
    """A control message from the main process (trusted: the worker's parent)."""
    msg = json.loads(data.decode("utf-8"))
    if type(msg) is not list or not msg or type(msg[0]) is not str:
        raise StreamError("a control message is not a list starting with its kind")
    return msg
