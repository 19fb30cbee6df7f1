"""Helpers shared by the server integration tests (``test_server_*.py``).

Why: every test there proves a requirement by what a user sees: pixels read back
through a real socket from the real libvirglrenderer, bytes on the socket, log
lines, this process's open fds and RSS. These helpers render a clear with real
virgl commands and read it back, and run the checks every hostile-client test
makes: one warning naming client, command and reason; the socket closed; a
bystander client still rendering; the fd count back to where it was.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from support.procs import sanitized, wait_for

from virgl_viewer.guest import GuestResource, VtestClient
from virgl_viewer.guest.commands import CommandBuffer, ObjectType
from virgl_viewer.testing import RunningServer
from virgl_viewer.vtest import protocol as p

B8G8R8X8_UNORM = 2  # virgl_hw.h VIRGL_FORMAT_B8G8R8X8_UNORM
DISPLAY_BIND = p.BIND_RENDER_TARGET | p.BIND_SAMPLER_VIEW | p.BIND_DISPLAY_TARGET  # 0x8A
WIDTH, HEIGHT = 16, 8
# Colours whose components are exact in 8 bits (k * 0.2 * 255 is an integer).
RED = (1.0, 0.0, 0.0, 1.0)
GREEN = (0.0, 1.0, 0.0, 1.0)
BLUE = (0.0, 0.0, 1.0, 1.0)
TEAL = (0.2, 0.4, 0.6, 1.0)
PLUM = (0.8, 0.2, 0.6, 1.0)
Color = tuple[float, float, float, float]
SURFACE = 1  # the SURFACE object handle render_clear uses (objects are per context)


# ---------------------------------------------------------------- process probes
def rss_bytes() -> int:
    """This process's resident set size."""
    return _status_kib("VmRSS") * 1024


_peak_base = [0]


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> None:
    """Reset this process's peak RSS (VmHWM) to its current RSS (clear_refs 5)."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")
    _peak_base[0] = rss_bytes()


def peak_rss_growth() -> int:
    """How far the peak RSS rose above the RSS at ``reset_peak_rss()``: catches an
    allocation that was freed again before anyone looked."""
    return _status_kib("VmHWM") * 1024 - _peak_base[0]


def recv_exactly(client: VtestClient, n: int, timeout: float = 10.0) -> bytes:
    """Read exactly ``n`` raw bytes from the server (fails on EOF)."""
    data = b""
    while len(data) < n:
        chunk = client.recv_raw(n - len(data), timeout=timeout)
        assert chunk, f"server closed the connection after {len(data)} of {n} bytes"
        data += chunk
    return data


def dwords(*values: int) -> bytes:
    """Little-endian uint32s, as every vtest field travels."""
    return struct.pack(f"<{len(values)}I", *values)


def header(command: int, length: int) -> bytes:
    """A vtest message header ``[length, command]``."""
    return dwords(length, command)


# ---------------------------------------------------------------- rendering
def bgrx(color: Color) -> bytes:
    """The 4 bytes a B8G8R8X8 pixel cleared to ``color`` (alpha 1) holds."""
    r, g, b, _a = (round(c * 255) for c in color)
    return bytes((b, g, r, 255))


def create_target(client: VtestClient, width: int = WIDTH, height: int = HEIGHT,
                  handle: int | None = None) -> GuestResource:
    """A 2D B8G8R8X8 display target like glxgears' window buffer; from protocol 2 on
    with a shm of width*height*4 bytes that TRANSFER_GET2 fills. ``handle``
    overrides the client's choice (protocol < 3)."""
    size = width * height * 4 if client.protocol_version >= 2 else 0
    return client.resource_create(p.TARGET_2D, B8G8R8X8_UNORM, DISPLAY_BIND, width, height,
                                  data_size=size, handle=handle)


def clear_commands(res_handle: int, color: Color) -> bytes:
    """Real virgl commands: a surface on the resource, bound as the framebuffer,
    cleared to ``color``; the surface object is destroyed again."""
    cb = CommandBuffer()
    cb.create_surface(SURFACE, res_handle, B8G8R8X8_UNORM)
    cb.set_framebuffer_state([SURFACE])
    cb.clear(color)
    cb.destroy_object(SURFACE, ObjectType.SURFACE)
    return cb.to_bytes()


def read_back(client: VtestClient, res: GuestResource, width: int = WIDTH,
              height: int = HEIGHT) -> bytes:
    """The resource's pixels as Mesa's present reads them: TRANSFER_GET2 into the
    shm and BUSY_WAIT(WAIT) (protocol >= 2), or an inline TRANSFER_GET (0)."""
    size = width * height * 4
    if client.protocol_version < 2:
        return client.transfer_get(res, width=width, height=height, data_size=size,
                                   stride=width * 4)
    client.transfer_get2(res, width=width, height=height, data_size=size)
    assert client.busy_wait(res, wait=True) is False
    assert res.shm is not None
    return bytes(res.shm[:size])


def render_clear(client: VtestClient, res: GuestResource, color: Color, width: int = WIDTH,
                 height: int = HEIGHT) -> bytes:
    """Clear ``res`` to ``color`` with SUBMIT_CMD and read it back."""
    client.submit(clear_commands(res.handle, color))
    return read_back(client, res, width, height)


def assert_filled(pixels: bytes, color: Color) -> None:
    """Every pixel is ``color`` in BGRX byte order."""
    want = bgrx(color)
    assert pixels and len(pixels) % 4 == 0, f"{len(pixels)} bytes are not whole pixels"
    if pixels != want * (len(pixels) // 4):
        first = next(i for i in range(0, len(pixels), 4) if pixels[i:i + 4] != want)
        raise AssertionError(f"pixel {first // 4} is {pixels[first:first + 4].hex()}, "
                             f"expected {want.hex()} (colour {color})")


# ---------------------------------------------------------------- hostile clients
def drop_pattern(name: str, pid: int, command: str) -> re.Pattern[str]:
    """The server's log line when it drops a client."""
    return re.compile(rf"client {re.escape(name)} \(pid {pid}\) dropped: "
                      rf"{re.escape(command)}: \S.*")


def assert_one_drop(caplog: pytest.LogCaptureFixture, name: str, pid: int, command: str,
                    reason: str | None = None) -> str:
    """Exactly one warning (or worse) was logged, by the session, naming the
    client, its pid, the command and a reason; returns the message. In process
    isolation the line is the worker's, relayed after it closed the client's socket:
    it is waited for."""
    def warnings() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.levelno >= logging.WARNING]

    wait_for(lambda: bool(warnings()), 10)
    records = warnings()
    messages = [f"{r.name}: {r.getMessage()}" for r in records]
    assert len(records) == 1, f"expected one warning, got {messages}"
    record = records[0]
    message = record.getMessage()
    assert record.name == "virgl_viewer.session", messages
    assert drop_pattern(name, pid, command).fullmatch(message), message
    if reason is not None:
        assert reason in message, message
    return message


class Bystander:
    """A well-behaved protocol-2 client connected next to a hostile one."""

    colors: Sequence[Color] = (TEAL, PLUM, GREEN, BLUE)

    def __init__(self, server: RunningServer) -> None:
        self.client = VtestClient.connect(server.path, "bystander", 2)
        self.target = create_target(self.client)
        self._turn = 0
        self.renders()

    def renders(self) -> None:
        """Clear to the next colour and read it back: all pixels must match."""
        color = self.colors[self._turn % len(self.colors)]
        self._turn += 1
        assert_filled(render_clear(self.client, self.target, color), color)

    def close(self) -> None:
        self.client.close()


class Watcher:
    """A well-behaved client rendering in a thread of its own while a hostile one
    attacks: every round trip (a clear read back, pixels checked) is timed; the
    hostile-client issue asks that the others are answered within 250 ms throughout."""

    # Under make test-asan the server is the sanitized build, 2-3x slower: the limit is
    # the product's (make test) and scales with it there (297 ms was seen once under ASan
    # with a Debian 12 lane running beside it; sanitizer reports are what that run is for).
    LIMIT_S = 0.25 * (3 if sanitized() else 1)

    def __init__(self, server: RunningServer) -> None:
        self.client = VtestClient.connect(server.path, "watcher", 2)
        self.target = create_target(self.client)
        self.worst = 0.0
        self.rounds = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watcher")
        self._thread.start()

    def _run(self) -> None:
        colors = (TEAL, PLUM)
        try:
            while not self._stop.is_set():
                color = colors[self.rounds % 2]
                t0 = time.monotonic()
                assert_filled(render_clear(self.client, self.target, color), color)
                self.worst = max(self.worst, time.monotonic() - t0)
                self.rounds += 1
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.client.close()

    def check(self) -> None:
        """Stop; every round trip was right and answered within LIMIT_S."""
        self.stop()
        if self.error is not None:
            raise self.error
        assert self.rounds > 0
        assert self.worst < self.LIMIT_S, (
            f"the watcher waited {self.worst * 1000:.0f} ms for a round trip")


@dataclass
class Culprit:
    """Who ``hostile_client_checks`` expects to see dropped (the pid may be set
    inside the block, once a child process exists)."""

    name: str
    pid: int


@contextmanager
def hostile_client_checks(server: RunningServer, caplog: pytest.LogCaptureFixture,
                          name: str, command: str, *, reason: str | None = None,
                          other_sessions: int = 0) -> Iterator[Culprit]:
    """Around a block in which one client misbehaves and is closed (``wait_closed``
    inside the block), check what the requirement promises: one warning naming
    ``name``, ``command`` and ``reason``; a bystander connected all along renders
    correctly afterwards; a watcher rendering in a thread all along got every round
    trip right within 250 ms; this process's fd count returns to its value from
    before the hostile client connected; only the bystander's session (and
    ``other_sessions`` the caller keeps open) is left."""
    bystander = Bystander(server)
    watcher = Watcher(server)
    try:
        assert wait_for(lambda: watcher.rounds >= 2 or watcher.error is not None)
        assert server.settle(clients=2 + other_sessions)
        baseline = server.open_fds()
        caplog.clear()
        culprit = Culprit(name, os.getpid())
        yield culprit
        # with a renderer process per client its log line is relayed: it may land
        # after the client saw its socket close
        wait_for(lambda: any(r.levelno >= logging.WARNING for r in caplog.records))
        assert_one_drop(caplog, culprit.name, culprit.pid, command, reason)
        bystander.renders()
        assert server.settle(clients=2 + other_sessions)
        assert wait_for(lambda: server.open_fds() == baseline), (
            f"{server.open_fds()} fds open, {baseline} before the hostile client")
        watcher.check()
        assert wait_for(lambda: server.session_count() == 1 + other_sessions)
        bystander.renders()
    finally:
        bystander.close()
        watcher.stop()
