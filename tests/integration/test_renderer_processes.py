"""A renderer process per client (``--isolation process``): crashes stay with their client.

Real libvirglrenderer in real worker processes, real sockets, real Mesa glxgears: a
SIGSEGV to one client's renderer ends that client only, with one log line naming it,
its pid and the signal; another client's glxgears keeps presenting; a new client is
served; the dead worker is reaped and nothing of it is left. 200 clients coming and
going leave no process, fd or memory behind. Each client's entry names its renderer.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_helpers import (
    PLUM,
    RED,
    TEAL,
    assert_filled,
    create_target,
    read_back,
    render_clear,
    rss_bytes,
)
from support.mesa import BackgroundClient, glxgears_argv, mesa_env
from support.procs import descendants, process_table, wait_for
from support.xvfb import Xvfb

from virgl_viewer.guest import VtestClient
from virgl_viewer.state import StateRegistry
from virgl_viewer.testing import RunningServer, start_server

pytestmark = pytest.mark.timeout(240)
WARM = 2  # warm renderers in these tests (fewer processes on a small machine)


@pytest.fixture
def procs_server() -> Iterator[RunningServer]:
    """A server with a renderer process per client, observed (a state registry, as
    --stats-json or the GUI attach): its workers report presents, fences and syncs."""
    with tempfile.TemporaryDirectory(prefix="vv-") as d:
        running = start_server(os.path.join(d, "vtest.sock"), "process", pool_size=WARM)
        running.call(StateRegistry().attach, running.server)
        try:
            yield running
        finally:
            running.thread.stop()


def _session(server: RunningServer, name: str) -> object | None:
    found = server.call(lambda: [s for s in server.server.sessions if s.name == name])
    return found[0] if found else None


def _presents(server: RunningServer, name: str) -> int:
    s = _session(server, name)
    return int(getattr(s, "presents", 0)) if s is not None else 0


def _zombies_below(pid: int) -> list[int]:
    below = {pid, *descendants(pid)}
    return [child for child, state, parent in process_table()
            if state == "Z" and parent in below]


@pytest.mark.mesa
def test_sigsegv_in_one_renderer_ends_only_its_client(
        procs_server: RunningServer, xvfb: Xvfb, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """glxgears renders through its renderer process while a second client's renderer
    gets SIGSEGV: the second client's socket closes, one ERROR line names it, its pid
    and the signal; glxgears keeps presenting; a new client connects and renders;
    the dead worker is reaped (no zombie) and the pool is whole again."""
    path = procs_server.path
    env = mesa_env(path, xvfb.display)
    with BackgroundClient(glxgears_argv(0, 0, 300), env, tmp_path, "glxgears") as gears:
        assert wait_for(lambda: _presents(procs_server, "glxgears") > 20, 60), gears.describe()
        victim = VtestClient.connect(path, "victim", 2)
        try:
            target = create_target(victim)
            assert_filled(render_clear(victim, target, TEAL), TEAL)
            # a client handed to a worker still starting learns its pid from the
            # worker's hello, which may come after the client's first frames
            def pids() -> tuple[int, int]:
                return (getattr(_session(procs_server, "victim"), "renderer_pid", 0),
                        getattr(_session(procs_server, "glxgears"), "renderer_pid", 0))
            assert wait_for(lambda: all(pids()), 30), pids()
            vpid, gpid = pids()
            assert len({vpid, gpid, os.getpid()}) == 3
            caplog.clear()
            os.kill(vpid, signal.SIGSEGV)
            assert victim.wait_closed(30)
        finally:
            victim.close()
        assert wait_for(lambda: any("SIGSEGV" in r.getMessage() for r in caplog.records), 30)
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == [f"client victim (pid {os.getpid()}): its renderer process {vpid} "
                          "killed by SIGSEGV"], errors
        before = _presents(procs_server, "glxgears")
        assert wait_for(lambda: _presents(procs_server, "glxgears") > before + 20, 30)
        assert gears.running(), gears.describe()
        with VtestClient.connect(path, "after", 2) as after:
            t = create_target(after)
            assert_filled(render_clear(after, t, PLUM), PLUM)
            assert_filled(read_back(after, t), PLUM)
        assert wait_for(lambda: not os.path.exists(f"/proc/{vpid}"), 30)
        assert not _zombies_below(os.getpid())
    assert procs_server.settle()


def test_200_clients_leave_no_process_fd_or_memory(procs_server: RunningServer,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """200 clients connect, handshake, make a resource (every tenth renders) and leave,
    one after another: afterwards exactly the warm renderers run (every served one
    has exited and been reaped, no zombie), this process's fds are where they were after
    a warm-up of 20, its RSS grew by less than 30 MiB, nothing was logged at WARNING."""
    caplog.set_level(logging.WARNING)

    def visit(i: int) -> None:
        with VtestClient.connect(procs_server.path, f"visitor-{i}", (0, 2, 3)[i % 3]) as c:
            res = create_target(c)
            if i % 10 == 0:
                assert_filled(render_clear(c, res, RED), RED)

    for i in range(20):
        visit(i)
    assert procs_server.settle()
    fds, rss = procs_server.open_fds(), rss_bytes()
    procs = descendants(os.getpid())
    for i in range(20, 220):
        visit(i)
    assert procs_server.settle()
    assert wait_for(lambda: procs_server.open_fds() == fds), (
        f"{procs_server.open_fds()} fds open, {fds} before")
    # the zygote and WARM workers (new ones: every served worker has exited)
    assert len(descendants(os.getpid())) == len(procs)
    assert not _zombies_below(os.getpid())
    assert rss_bytes() - rss < 30 << 20
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_each_client_names_its_renderer_process(procs_server: RunningServer) -> None:
    """The registry (the inspector's and --stats-json's source) lists every worker's
    clients, each with its own renderer_pid, none of them this process."""
    registry = StateRegistry()
    procs_server.call(registry.attach, procs_server.server)
    with VtestClient.connect(procs_server.path, "one", 2) as a, \
            VtestClient.connect(procs_server.path, "two", 3) as b:
        for c in (a, b):
            assert_filled(render_clear(c, create_target(c), RED), RED)

        def listed() -> dict[str, int]:
            registry.pull()
            return {c.name: c.renderer_pid for c in registry.snapshot().clients
                    if c.state == "active"}

        # both listed, each with its pid (from its worker's hello, maybe after its frames)
        assert wait_for(lambda: set(listed()) == {"one", "two"} and all(listed().values()))
        pids = listed()
        assert len({*pids.values(), os.getpid()}) == 3

        def resources() -> dict[str, int]:
            registry.pull()
            return {c.name: c.resources for c in registry.snapshot().clients
                    if c.state == "active"}

        assert wait_for(lambda: resources() == {"one": 1, "two": 1})
