"""Clients that come and go, or die mid-message, leave nothing behind.

A child process SIGKILLed in the middle of a TRANSFER_PUT is dropped like any
broken client (one warning naming it, its pid and the command; bystander
unharmed; fds back). Hundreds of clients connecting, handshaking, creating a
resource and disconnecting leave the fd count where it was and the RSS nearly
flat.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from server_helpers import (
    RED,
    WIDTH,
    assert_filled,
    create_target,
    hostile_client_checks,
    open_fds,
    render_clear,
    rss_bytes,
    wait_until,
)

from virgl_viewer.guest import VtestClient
from virgl_viewer.testing import RunningServer

pytestmark = pytest.mark.timeout(120)

# The child: our client in another process; handshake (protocol 0), a 16x8
# resource, then half of a 512-byte TRANSFER_PUT, and it waits to be killed.
_CHILD = textwrap.dedent("""
    import struct, sys, time
    from virgl_viewer.guest import VtestClient
    client = VtestClient.connect(sys.argv[1], "doomed", 0)
    res = client.resource_create(2, 2, 0x8A, 16, 8)
    head = struct.pack("<13I", 11 + 128, 5, res.handle, 0, 64, 0, 0, 0, 0, 16, 8, 1, 512)
    client.send_raw(head + b"\\x77" * 256)
    print("sent", flush=True)
    time.sleep(60)
""")


def test_client_killed_mid_transfer(virgl_server: RunningServer,
                                    caplog: pytest.LogCaptureFixture) -> None:
    """A client process SIGKILLed halfway through sending a TRANSFER_PUT's data
    is dropped with one warning naming it, its pid, TRANSFER_PUT and the cut;
    the bystander renders on and the fd count returns to where it was."""
    with hostile_client_checks(virgl_server, caplog, "doomed", "TRANSFER_PUT",
                               reason="connection closed mid-message") as culprit:
        child = subprocess.Popen([sys.executable, "-c", _CHILD, virgl_server.path],
                                 stdout=subprocess.PIPE, text=True)
        culprit.pid = child.pid
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "sent\n"
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(30) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            assert child.stdout is not None
            child.stdout.close()
        assert wait_until(lambda: virgl_server.session_count() == 1)


def _visit(path: str, i: int) -> None:
    """One short-lived client: handshake, a resource (with a shm from protocol
    2 on), every tenth one also renders, then it disconnects."""
    version = (0, 2, 3)[i % 3]
    with VtestClient.connect(path, f"visitor-{i}", version) as client:
        res = create_target(client)
        if version >= 2:
            assert res.shm is not None and len(res.shm) == WIDTH * 8 * 4
        if i % 10 == 0:
            assert_filled(render_clear(client, res, RED), RED)


def test_many_short_lived_clients_leak_nothing(virgl_server: RunningServer,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """200 clients (protocols 0, 2 and 3 in turn) connect, handshake, create a
    resource and disconnect, one after another: afterwards no session is left,
    the fd count is what it was after a warm-up of 20 clients, RSS grew by less
    than 30 MiB, and nothing was logged at WARNING or above."""
    caplog.set_level(logging.WARNING)
    for i in range(20):
        _visit(virgl_server.path, i)
    assert wait_until(lambda: virgl_server.session_count() == 0)
    fds, rss = open_fds(), rss_bytes()
    for i in range(20, 220):
        _visit(virgl_server.path, i)
    assert wait_until(lambda: virgl_server.session_count() == 0)
    assert wait_until(lambda: open_fds() == fds), f"{open_fds()} fds open, {fds} before"
    growth = rss_bytes() - rss
    assert growth < 30 << 20, f"RSS grew by {growth >> 20} MiB over 200 clients"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
