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
import struct
import subprocess
import sys
import textwrap
import threading

import pytest
from server_helpers import (
    DISPLAY_BIND,
    RED,
    WIDTH,
    Bystander,
    assert_filled,
    create_target,
    dwords,
    header,
    hostile_client_checks,
    peak_rss_growth,
    render_clear,
    reset_peak_rss,
    rss_bytes,
)
from support.procs import renderer_workers, stop_process, wait_for
from support.servers import Server

from virgl_viewer.guest import VtestClient
from virgl_viewer.testing import RunningServer
from virgl_viewer.vtest import protocol as p

pytestmark = pytest.mark.timeout(120)
WARM_RENDERERS = 4  # the CLI's --warm-renderers default

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
            stop_process(child, sig=signal.SIGKILL)
            assert child.stdout is not None
            child.stdout.close()
        assert wait_for(lambda: virgl_server.session_count() == 2)  # bystander, watcher


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
    assert virgl_server.settle()
    fds, rss = virgl_server.open_fds(), rss_bytes()
    for i in range(20, 220):
        _visit(virgl_server.path, i)
    assert virgl_server.settle()
    assert wait_for(lambda: virgl_server.open_fds() == fds), (
        f"{virgl_server.open_fds()} fds open, {fds} before")
    growth = rss_bytes() - rss
    assert growth < 30 << 20, f"RSS grew by {growth >> 20} MiB over 200 clients"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def _fds_and_maps(pid: int) -> tuple[int, int]:
    """The server's open fds and its shared-memory mappings (memfds: resource shm)."""
    with open(f"/proc/{pid}/maps", encoding="ascii", errors="replace") as maps:
        return len(os.listdir(f"/proc/{pid}/fd")), sum("/memfd:" in ln for ln in maps)


@pytest.mark.parametrize("version", [2, 3])
def test_client_gone_before_its_replies_leaves_nothing(vtest_server: Server,
                                                       version: int) -> None:
    """A client that sends 400 RESOURCE_CREATE2 and closes its socket at once: the
    server's replies (ids, shm fds) fail to send part-way. Whatever a handler made
    after its send failed must still be freed: the server's fds and mappings come
    back to where they were (protocol 3 leaked an fd and a mapping a client)."""
    pid = vtest_server.pid
    assert pid is not None
    path = str(vtest_server.socket_path)
    burst = b"".join(
        header(p.Cmd.RESOURCE_CREATE2, 11)
        + dwords(0 if version >= 3 else i + 1, p.TARGET_2D, 2, DISPLAY_BIND, 64, 64, 1, 1,
                 0, 0, 64 * 64 * 4)
        for i in range(400))

    def leave(rounds: int) -> None:
        for _ in range(rounds):
            c = VtestClient.connect(path, "leaver", version)
            c.sock.sendall(burst)
            c.sock.close()

    def gone() -> int:
        who = f"client leaver (pid {os.getpid()}) "
        return sum(1 for ln in vtest_server.log().splitlines()
                   if who + "disconnected:" in ln or who + "dropped:" in ln)

    leave(1)  # the first client's one-time allocations are not a leak
    assert wait_for(lambda: gone() == 1, 30)
    baseline = _fds_and_maps(pid)
    leave(5)
    assert wait_for(lambda: gone() == 6, 30)
    # With a renderer process per client (the headless default) the server holds a
    # channel to each worker: the baseline may still count the first client's, so
    # "no more than before"; the workers' own fds end with them (and none is left).
    assert wait_for(lambda: all(a <= b for a, b in zip(_fds_and_maps(pid), baseline,
                                                         strict=True))), (
        f"fds and mappings {_fds_and_maps(pid)}, {baseline} before")
    assert wait_for(lambda: len(renderer_workers(pid)) <= WARM_RENDERERS), (
        renderer_workers(pid))


def _read(client: VtestClient, n: int) -> bytes:
    """Exactly ``n`` bytes from the client's socket (blocking; the test's timeout bounds it)."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = client.sock.recv_into(view[got:])
        assert k, f"connection closed after {got} of {n} bytes"
        got += k
    return bytes(buf)


@pytest.mark.isolation("shared")  # reads the renderer's RSS and debug log in this process
def test_client_that_never_reads_its_replies_is_held_not_buffered(
        virgl_server: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    """50 000 GET_CAPS2 (400 KB) ask for 69 MB of replies. A client that sends them
    and reads nothing is no longer read from once 1 MiB of its replies wait: the
    server does not grow, a bystander is served meanwhile, and when the client
    finally reads, every reply arrives, byte for byte the caps."""
    n = 50_000
    bystander = Bystander(virgl_server)
    try:
        with VtestClient.connect(virgl_server.path, "deaf", 2) as c:
            request = header(p.Cmd.GET_CAPS2, 0)
            caplog.set_level(logging.DEBUG, "virgl_viewer.session")
            reset_peak_rss()
            sender = threading.Thread(target=c.sock.sendall, args=(request * n,))
            sender.start()
            bystander.renders()
            assert wait_for(lambda: "replies unread: not reading" in caplog.text)
            bystander.renders()
            assert peak_rss_growth() < 32 << 20, f"peak RSS grew {peak_rss_growth() >> 20} MiB"
            # a caps reply's length field counts the caps bytes plus one (upstream's)
            head = _read(c, 8)
            size = 8 + struct.unpack_from("<I", head)[0] - 1
            stream = head + _read(c, size * n - 8)
            sender.join(30)
            assert stream == stream[:size] * n
    finally:
        bystander.close()
