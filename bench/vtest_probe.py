"""A tiny raw-socket vtest client: time from connect() to the caps reply.

It sends what Mesa 22.3.6's virpipe winsys sends first (vtest_protocol.h ids):
CREATE_RENDERER(name), PING_PROTOCOL_VERSION + RESOURCE_BUSY_WAIT(0, 0),
PROTOCOL_VERSION(2), GET_CAPS2, and stops the clock once the whole caps reply is read.
The caps reply header is ``[size + 1, 2]`` with ``size`` in bytes (upstream's quirk,
which Mesa mirrors: it reads ``hdr[0] - 1`` bytes).
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

# vtest_protocol.h
VCMD_GET_CAPS = 1
VCMD_RESOURCE_BUSY_WAIT = 7
VCMD_CREATE_RENDERER = 8
VCMD_GET_CAPS2 = 9
VCMD_PING_PROTOCOL_VERSION = 10
VCMD_PROTOCOL_VERSION = 11
VCMD_GET_CAPS2_REPLY_ID = 2  # the reply to GET_CAPS2 carries id 2

_HDR = struct.Struct("<2I")


class ProbeError(RuntimeError):
    """The server answered something unexpected."""


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ProbeError(f"server closed the connection ({len(buf)}/{n} bytes read)")
        buf += chunk
    return bytes(buf)


def _header(sock: socket.socket) -> tuple[int, int]:
    length, cmd = _HDR.unpack(_read_exact(sock, _HDR.size))
    return length, cmd


def time_to_caps(path: Path, name: bytes = b"vv-bench-probe", timeout: float = 30.0) -> float:
    """Seconds from connect() until the GET_CAPS2 reply has been read completely."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        start = time.perf_counter()
        sock.connect(str(path))
        payload = name + b"\0"
        sock.sendall(_HDR.pack(len(payload), VCMD_CREATE_RENDERER) + payload
                     + _HDR.pack(0, VCMD_PING_PROTOCOL_VERSION)
                     + _HDR.pack(2, VCMD_RESOURCE_BUSY_WAIT) + struct.pack("<2I", 0, 0))
        length, cmd = _header(sock)
        if cmd != VCMD_PING_PROTOCOL_VERSION:
            raise ProbeError(f"no PING_PROTOCOL_VERSION reply (got [{length}, {cmd}])")
        length, cmd = _header(sock)
        if cmd != VCMD_RESOURCE_BUSY_WAIT:
            raise ProbeError(f"no BUSY_WAIT reply (got [{length}, {cmd}])")
        _read_exact(sock, 4 * length)
        sock.sendall(_HDR.pack(1, VCMD_PROTOCOL_VERSION) + struct.pack("<I", 2))
        length, cmd = _header(sock)
        (version,) = struct.unpack("<I", _read_exact(sock, 4 * length))
        if cmd != VCMD_PROTOCOL_VERSION or version != 2:
            raise ProbeError(f"protocol version reply [{length}, {cmd}] {version}, wanted 2")
        sock.sendall(_HDR.pack(0, VCMD_GET_CAPS2))
        length, cmd = _header(sock)
        if cmd != VCMD_GET_CAPS2_REPLY_ID or length < 1:
            raise ProbeError(f"bad caps reply header [{length}, {cmd}]")
        _read_exact(sock, length - 1)
        return time.perf_counter() - start


def connect_samples(path: Path, count: int, pause: float = 0.02) -> list[float]:
    """``count`` connect-to-caps times in milliseconds, one fresh connection each."""
    samples = []
    for _ in range(count):
        samples.append(1000.0 * time_to_caps(path))
        time.sleep(pause)  # let the server retire the previous client (upstream: a fork)
    return samples
