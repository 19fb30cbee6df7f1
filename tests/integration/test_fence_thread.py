"""Clients that leave with fences in flight never crash virglrenderer's fence thread.

virglrenderer's fence thread (``vrend-sync``) walks its wait list with a saved
pointer to the next fence while it waits for the current one; destroying a
context frees that context's queued fences, so the saved pointer could be a
freed fence, and the thread unlinked it: SIGSEGV at address 8 in
libvirglrenderer, seen on a fresh Debian 12 under two parallel piglit jobs
(native/vv_fast.c, "context teardown", has the whole story). The server now
keeps a leaving client's context until its last fence retires.

The storm below crashed the server (exit -11) within its first few leavers
before that change: a "grinder" keeps the fence thread waiting on long clears,
and many short-lived clients queue fences behind it and disconnect at once.
"""

from __future__ import annotations

import threading

import pytest
from server_helpers import (
    GREEN,
    RED,
    Bystander,
    assert_filled,
    clear_commands,
    create_target,
    read_back,
)
from support.procs import wait_for
from support.servers import Server

from virgl_viewer.guest import VtestClient
from virgl_viewer.testing import RunningServer

pytestmark = pytest.mark.timeout(240)

BIG = 2048  # a grinder clear of BIG x BIG pixels keeps llvmpipe busy for milliseconds
LEAVERS = 2
ROUNDS = 300  # per leaver; before the fix the server died within the first hundred


def _grinder(path: str, stop: threading.Event, errors: list[BaseException],
             frames: list[int]) -> None:
    """Long clears of a big target, each waited for: the fence thread is nearly
    always waiting on one of its fences. Its last frame is checked pixel by pixel."""
    try:
        with VtestClient.connect(path, "grinder", 0) as c:
            target = create_target(c, BIG * 2, BIG * 2)
            cmds = clear_commands(target.handle, GREEN) * 4
            while not stop.is_set():
                c.submit(cmds)
                assert c.busy_wait(target, wait=True) is False
                frames[0] += 1
            c.submit(clear_commands(target.handle, GREEN))
            assert_filled(read_back(c, target, 64, 1), GREEN)
    except BaseException as exc:
        errors.append(exc)


def _leaver(path: str, tag: int, errors: list[BaseException]) -> None:
    """Connect, queue four fenced submits and disconnect without waiting."""
    try:
        for i in range(ROUNDS):
            c = VtestClient.connect(path, f"leaver-{tag}-{i}", 0)
            target = create_target(c, 16, 16)
            cmds = clear_commands(target.handle, RED)
            for _ in range(4):
                c.submit(cmds)
            c.close()
    except BaseException as exc:
        errors.append(exc)


def test_leaving_with_fences_in_flight_does_not_crash(vtest_server: Server) -> None:
    """Two threads of clients that leave with fences queued behind a grinder's long
    fence: the server lives (exit 0 on SIGTERM is the fixture's own check), the
    grinder renders correct pixels throughout, and a new client is served after."""
    stop = threading.Event()
    errors: list[BaseException] = []
    frames = [0]
    path = str(vtest_server.socket_path)
    grinder = threading.Thread(target=_grinder, args=(path, stop, errors, frames))
    grinder.start()
    try:
        assert wait_for(lambda: frames[0] > 0 or bool(errors), 60)
        leavers = [threading.Thread(target=_leaver, args=(path, k, errors))
                   for k in range(LEAVERS)]
        for t in leavers:
            t.start()
        for t in leavers:
            t.join()
    finally:
        stop.set()
        grinder.join(60)
    assert not errors, f"{errors!r}\n{vtest_server.log()}"
    assert vtest_server.alive(), vtest_server.log()
    with VtestClient.connect(path, "after", 2) as c:
        target = create_target(c)
        c.submit(clear_commands(target.handle, RED))
        assert_filled(read_back(c, target), RED)


@pytest.mark.isolation("shared")  # reads the render thread's renderer
def test_a_leaving_clients_context_waits_for_its_last_fence(virgl_server: RunningServer) -> None:
    """A client that leaves right after queueing long work keeps its context
    (counted as retiring) until its fences retire; then it is destroyed. A
    bystander renders meanwhile."""
    renderer = virgl_server.server.host.renderer
    bystander = Bystander(virgl_server)
    try:
        c = VtestClient.connect(virgl_server.path, "leaver", 0)
        target = create_target(c, BIG * 2, BIG * 2)
        cmds = clear_commands(target.handle, RED) * 8
        for _ in range(3):
            c.submit(cmds)
        c.close()
        assert wait_for(lambda: virgl_server.session_count() == 1)
        seen = virgl_server.call(lambda: renderer.contexts_retiring)
        bystander.renders()
        assert wait_for(lambda: virgl_server.call(lambda: renderer.contexts_retiring) == 0,
                          120)
        bystander.renders()
    finally:
        bystander.close()
    # The leaver's three fences cannot all have retired before its close was seen.
    assert seen == 1
