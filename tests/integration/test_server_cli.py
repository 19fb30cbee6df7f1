"""``python -m virgl_viewer --headless --socket PATH`` as users and init systems
run it.

Each test starts the real CLI in a subprocess on a private socket and checks
what an operator sees: clients served, exit status and socket file on SIGTERM
and SIGINT, a clear refusal to take over a live or non-socket PATH (and the
takeover of a stale one), a 0600 socket whatever the umask, one log line per
client connect and disconnect, and ``--allow-uid`` gating other users.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from server_helpers import BLUE, RED, assert_filled, create_target, render_clear
from support.launch import launched
from support.procs import stop_process, wait_for

from virgl_viewer.errors import RemoteProtocolError
from virgl_viewer.guest import VtestClient
from virgl_viewer.vtest import protocol as p

pytestmark = pytest.mark.timeout(90)
NOBODY = 65534


class CliServer:
    """``python -m virgl_viewer --headless`` in a subprocess, its log in a file."""

    def __init__(self, path: str, log: Path, *args: str, umask: int = 0o022,
                 blocked: frozenset[signal.Signals] = frozenset(),
                 rlimit_nofile: int | None = None) -> None:
        self.path = path
        self.log_path = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                launched([sys.executable, "-m", "virgl_viewer", "--headless", "--socket", path,
                          "--log-level", "info", *args], blocked=blocked, nofile=rlimit_nofile),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, umask=umask)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_serving(self) -> None:
        assert wait_for(lambda: "serving vtest on" in self.log()
                          or self.proc.poll() is not None, 60), "server did not start"
        assert self.proc.poll() is None, f"server exited:\n{self.log()}"

    def exit_code(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """``sig``, then its exit status (-9: it had not exited 30 s later, and was killed)."""
        rc = stop_process(self.proc, 30, sig=sig)
        assert rc is not None
        return rc


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short private directory (AF_UNIX paths are limited to 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="vv-cli-") as d:
        yield Path(d)


@pytest.fixture
def cli(sock_dir: Path) -> Iterator[CliServer]:
    """A running CLI server on ``sock_dir/vtest.sock``; must exit 0 on SIGTERM."""
    server = CliServer(str(sock_dir / "vtest.sock"), sock_dir / "server.log")
    try:
        server.wait_serving()
        yield server
    finally:
        assert server.stop() == 0, server.log()


def test_cli_serves_clients(cli: CliServer) -> None:
    """The CLI server renders for a protocol-2 and a protocol-3 client."""
    with VtestClient.connect(cli.path, "cli-v2", 2) as a, \
            VtestClient.connect(cli.path, "cli-v3", 3) as b:
        assert_filled(render_clear(a, create_target(a), RED), RED)
        assert_filled(render_clear(b, create_target(b), BLUE), BLUE)


@pytest.mark.parametrize("blocked", [False, True], ids=["", "blocked-by-parent"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_signal_exits_cleanly(sock_dir: Path, sig: signal.Signals, blocked: bool) -> None:
    """SIGTERM and SIGINT, even with a client connected, end the server with
    exit status 0: the client's socket is closed and the socket file removed. Also
    when the process that started the server had the signal blocked."""
    server = CliServer(str(sock_dir / "vtest.sock"), sock_dir / "server.log",
                       blocked=frozenset({sig}) if blocked else frozenset())
    server.wait_serving()
    with VtestClient.connect(server.path, "lingering", 2) as client:
        assert_filled(render_clear(client, create_target(client), RED), RED)
        assert server.stop(sig) == 0, server.log()
        assert client.wait_closed()
    assert not os.path.lexists(server.path)
    assert "Traceback" not in server.log()


def test_cli_second_instance_is_refused(cli: CliServer, sock_dir: Path) -> None:
    """A second server on the same PATH exits non-zero saying another server is
    listening there; the first one keeps its socket and goes on serving."""
    inode = os.stat(cli.path).st_ino
    second = CliServer(cli.path, sock_dir / "second.log")
    assert second.exit_code() != 0
    assert f"another server is already listening on {cli.path}" in second.log()
    assert os.stat(cli.path).st_ino == inode
    with VtestClient.connect(cli.path, "after-second", 2) as client:
        assert_filled(render_clear(client, create_target(client), BLUE), BLUE)


def test_cli_replaces_stale_socket(sock_dir: Path) -> None:
    """A socket file left by a dead server (bound, closed, never unlinked) is
    replaced, and the new server serves on it."""
    path = str(sock_dir / "vtest.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    server = CliServer(path, sock_dir / "server.log")
    try:
        server.wait_serving()
        assert "replacing stale socket" in server.log()
        with VtestClient.connect(path, "on-stale", 2) as client:
            assert_filled(render_clear(client, create_target(client), RED), RED)
    finally:
        assert server.stop() == 0, server.log()


def test_cli_does_not_touch_a_non_socket_file(sock_dir: Path) -> None:
    """A regular file at PATH is left alone: the server exits non-zero saying
    so, and the file keeps its content."""
    path = sock_dir / "not-a-socket"
    path.write_bytes(b"precious data\n")
    server = CliServer(str(path), sock_dir / "server.log")
    assert server.exit_code() != 0
    assert f"{path} exists and is not a socket" in server.log()
    assert path.read_bytes() == b"precious data\n"


def test_cli_socket_is_0600_whatever_the_umask(sock_dir: Path) -> None:
    """Started with umask 000, the server still creates its socket 0600."""
    server = CliServer(str(sock_dir / "vtest.sock"), sock_dir / "server.log", umask=0)
    try:
        server.wait_serving()
        mode = os.lstat(server.path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600, oct(mode)
    finally:
        assert server.stop() == 0, server.log()


def test_cli_logs_each_connect_and_disconnect(cli: CliServer) -> None:
    """Each client gets one log line when it connects and one when it leaves,
    with its name and pid."""
    who = f"probe-client (pid {os.getpid()})"
    with VtestClient.connect(cli.path, "probe-client", 2) as client:
        create_target(client)
        assert wait_for(lambda: f"client {who} connected" in cli.log())
    assert wait_for(lambda: f"client {who} disconnected" in cli.log())
    lines = cli.log().splitlines()
    assert len([ln for ln in lines if f"client {who} connected" in ln]) == 1
    assert len([ln for ln in lines if f"client {who} disconnected" in ln]) == 1


def test_cli_client_names_cannot_forge_log_lines(cli: CliServer) -> None:
    """A renderer name with a newline, a terminal escape and a bidi override is
    logged on one line with those characters escaped: no forged line, no colour."""
    name = "evil\nclient x (pid 1) dropped: FORGED\x1b[31m\u202e"
    with VtestClient.connect(cli.path, name, 2) as client:
        create_target(client)
        assert wait_for(lambda: "connected (uid" in cli.log())
    assert wait_for(lambda: "disconnected" in cli.log())
    log = cli.log()
    assert "\x1b" not in log and "\u202e" not in log
    assert not [ln for ln in log.splitlines() if ln.startswith("client x")]
    escaped = "evil\\nclient x (pid 1) dropped: FORGED\\x1b[31m\\u202e"
    assert len([ln for ln in log.splitlines()
                if f"client {escaped} (pid {os.getpid()}) connected" in ln]) == 1, log


# The other user's client: stdlib only (it cannot read our venv), prints
# "served" if PING_PROTOCOL_VERSION is answered, "refused" if the server hangs up.
_OTHER_USER = textwrap.dedent("""
    import os, socket, struct, sys
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(sys.argv[1])
    name = b"nobody-guest\\0"
    try:
        s.sendall(struct.pack("<2I", len(name), 8) + name + struct.pack("<2I", 0, 10))
        reply = s.recv(8)
    except (BrokenPipeError, ConnectionResetError):
        reply = b""
    print("served" if reply == struct.pack("<2I", 0, 10) else "refused", os.getpid(),
          flush=True)
""")


@pytest.mark.parametrize("allowed", [False, True], ids=["refused", "allowed"])
def test_cli_allow_uid(sock_dir: Path, allowed: bool) -> None:
    """With the socket made world-writable, a client running as uid 65534 is
    refused (and the refusal logged with its pid and uid) unless the server was
    started with ``--allow-uid 65534``."""
    python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    assert python is not None, "no system python3 the other user can run"
    as_nobody: dict[str, object] = {"user": NOBODY, "group": NOBODY, "extra_groups": []}
    argv = [python, "-I", "-c", _OTHER_USER]
    if os.geteuid() != 0:  # a user of the README's commands, whose sudo installs the packages
        if subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False).returncode:
            pytest.skip("needs root or sudo without a password to run a client as another uid")
        argv = ["sudo", "-n", "-u", f"#{NOBODY}", "-g", f"#{NOBODY}", *argv]
        as_nobody = {}
    args = ("--allow-uid", str(NOBODY)) if allowed else ()
    server = CliServer(str(sock_dir / "vtest.sock"), sock_dir / "server.log", *args)
    try:
        server.wait_serving()
        os.chmod(sock_dir, 0o755)
        os.chmod(server.path, 0o666)
        with subprocess.Popen([*argv, server.path], cwd="/", text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              **as_nobody) as child:
            out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        result, pid = out.split()  # the client's own pid (sudo's child, when not root)
        if allowed:
            assert result == "served"
            who = f"client nobody-guest (pid {pid}) connected (uid {NOBODY})"
            assert wait_for(lambda: who in server.log()), server.log()
            assert "is not allowed" not in server.log()
        else:
            assert result == "refused"
            refusal = f"refused client pid {pid}: uid {NOBODY} is not allowed"
            assert wait_for(lambda: refusal in server.log()), server.log()
            assert "nobody-guest" not in server.log()
        # Our own uid is served either way.
        with VtestClient.connect(server.path, "owner", 2) as client:
            assert_filled(render_clear(client, create_target(client), RED), RED)
    finally:
        assert server.stop() == 0, server.log()


def _ping(sock: socket.socket) -> None:
    """CREATE_RENDERER and PING_PROTOCOL_VERSION, raw (the reply is read by the caller)."""
    name = b"queued\0"
    sock.sendall(struct.pack("<2I", len(name), 8) + name + struct.pack("<2I", 0, 10))


def test_cli_out_of_fds_pauses_accept_and_resumes(sock_dir: Path) -> None:
    """With its fd limit reached, the server does not spin on accept: one log line,
    the clients already connected go on, a client waiting in the backlog is served
    as soon as another leaves, and the server says it accepts again."""
    limit = 48
    server = CliServer(str(sock_dir / "vtest.sock"), sock_dir / "server.log",
                       "--log-level", "debug", rlimit_nofile=limit)
    clients: list[VtestClient] = []
    waiting: list[socket.socket] = []
    try:
        server.wait_serving()
        while not wait_for(lambda: "cannot accept clients" in server.log(), 0.5):
            assert len(clients) < limit, server.log()
            clients.append(VtestClient.connect(server.path, f"c{len(clients)}", 2))
            clients[-1].sock.settimeout(0.5)
        # the last connect may not have been accepted: it waits with the others
        for _ in range(3):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(server.path)
            _ping(s)
            waiting.append(s)
        # the server retries once a second (a debug line each): two retries, one error
        assert wait_for(lambda: server.log().count("still cannot accept clients") >= 2, 20)
        assert server.log().count("ERROR virgl_viewer.server: cannot accept clients") == 1
        assert_filled(render_clear(clients[0], create_target(clients[0]), RED), RED)
        clients.pop(1).close()
        waiting[0].settimeout(20)
        assert waiting[0].recv(8) == struct.pack("<2I", 0, 10)
        assert wait_for(lambda: "accepting clients again" in server.log(), 10)
    finally:
        for s in waiting:
            s.close()
        for c in clients:
            c.close()
        assert server.stop() == 0, server.log()


def _dropped_over_a_server_budget(client: VtestClient, make: Callable[[], object],
                                  isolation: str) -> None:
    """``make()`` passes a server-wide budget: shared, it is refused before it is made;
    with a renderer process per client the main process holds the sum of the workers'
    reports, and drops the client right after the create that passed it."""
    if isolation == "shared":
        with pytest.raises(RemoteProtocolError):
            make()
            make()
    else:
        with contextlib.suppress(RemoteProtocolError, OSError):
            make()
    assert client.wait_closed()


@pytest.mark.parametrize("isolation", ["shared", "process"])
def test_cli_budgets_drop_the_client_over_them(sock_dir: Path, isolation: str) -> None:
    """--budget sets the limits: a client whose resources' shm would pass 1 MiB is
    dropped with a line naming the budget; with 4 shm mappings for all clients, the
    client that would map a fifth is dropped, and the one holding four goes on."""
    server = CliServer(str(sock_dir / "vtest.sock"), sock_dir / "server.log",
                       "--isolation", isolation,
                       "--budget", "shm_bytes=1M", "--budget", "server-mappings=4")
    try:
        server.wait_serving()
        with VtestClient.connect(server.path, "greedy", 2) as greedy:
            for _ in range(3):  # 3 x 256 KiB (+ 64 KiB slack allowed by the bound)
                create_target(greedy, 256, 256)
            with pytest.raises(RemoteProtocolError):
                create_target(greedy, 256, 256)
                create_target(greedy, 256, 256)
            assert greedy.wait_closed()
        assert wait_for(lambda: "dropped: RESOURCE_CREATE2: over the budget of 1048576 "
                                  "shm bytes a client" in server.log()), server.log()
        with VtestClient.connect(server.path, "holder", 2) as holder, \
                VtestClient.connect(server.path, "fifth", 2) as fifth:
            targets = [create_target(holder) for _ in range(4)]
            _dropped_over_a_server_budget(fifth, lambda: create_target(fifth), isolation)
            assert wait_for(lambda: "client fifth" in server.log() and "over the budget "
                              "of 4 shm mappings of all clients" in server.log()), server.log()
            assert_filled(render_clear(holder, targets[3], BLUE), BLUE)
    finally:
        assert server.stop() == 0, server.log()


def test_cli_rejects_an_unknown_budget(sock_dir: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "virgl_viewer", "--headless", "--socket",
                           str(sock_dir / "x.sock"), "--budget", "gpu_hours=3"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "--budget 'gpu_hours=3': expected NAME=VALUE with NAME one of" in proc.stderr


@pytest.mark.parametrize("isolation", ["shared", "process"])
def test_cli_resource_bytes_budgets(sock_dir: Path, isolation: str) -> None:
    """A 16384x16384 BGRA texture is 1 GiB of the renderer's memory from one small
    message: over a client's resource_bytes it is refused before the renderer makes it.
    Over server_resource_bytes, the client that would pass it is dropped, not the one
    that holds the memory."""
    server = CliServer(str(sock_dir / "vtest.sock"), sock_dir / "server.log",
                       "--isolation", isolation,
                       "--budget", "resource_bytes=256M",
                       "--budget", "server_resource_bytes=100M")
    try:
        server.wait_serving()
        with VtestClient.connect(server.path, "huge", 0) as huge, \
                pytest.raises((RemoteProtocolError, OSError)):
            huge.resource_create(p.TARGET_2D, 1, p.BIND_RENDER_TARGET, 16384, 16384)
            huge.busy_wait(0, wait=True)  # a round trip: the drop is seen
        assert wait_for(lambda: "client huge" in server.log() and "dropped: "
                          "RESOURCE_CREATE: over the budget of 268435456 resource bytes a "
                          "client" in server.log()), server.log()
        with VtestClient.connect(server.path, "holder", 2) as holder, \
                VtestClient.connect(server.path, "late", 2) as late:
            held = [create_target(holder, 2048, 2048) for _ in range(5)]  # 5 x 16 MiB
            create_target(late, 2048, 2048)
            _dropped_over_a_server_budget(late, lambda: create_target(late, 2048, 2048),
                                          isolation)
            assert wait_for(lambda: "client late" in server.log() and "over the budget of "
                              "104857600 resource bytes of all clients" in server.log())
            assert_filled(render_clear(holder, held[4], BLUE, 2048, 2048), BLUE)
    finally:
        assert server.stop() == 0, server.log()
