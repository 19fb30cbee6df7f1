"""Venus clients are held to the hostile-guest budgets and isolated like GL ones.

A protocol-level client on a venus context of the real render server goes over one
budget at a time (blob size, resources, syncs, pending sync waits, one SUBMIT_CMD2's
size); it is dropped with one line naming it, the command and the budget, and a venus
bystander (its own blob, sync and ring-0 fence) goes on. A second venus client cannot
reach the first one's blobs or syncs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from collections.abc import Iterator

import pytest

from virgl_viewer.budgets import DEFAULT, Budgets
from virgl_viewer.egl import SurfacelessProvider
from virgl_viewer.guest import BatchSpec, VtestClient
from virgl_viewer.server import RenderThread
from virgl_viewer.testing import RunningServer
from virgl_viewer.vtest import protocol as P

SMALL = dataclasses.replace(DEFAULT, shm_bytes_per_resource=1 << 20, resources=4, syncs=4,
                            sync_waits=2, message_bytes=64 << 10)
NO_TIMEOUT = 0xFFFFFFFF  # SYNC_WAIT's "forever"


def _start(budgets: Budgets) -> Iterator[RunningServer]:
    def factory() -> tuple[SurfacelessProvider, object]:
        p = SurfacelessProvider()
        return p, p.close

    with tempfile.TemporaryDirectory(prefix="vv-") as d:
        rt = RenderThread(os.path.join(d, "vtest.sock"), factory, venus=True, budgets=budgets)
        rt.start()
        try:
            yield RunningServer(rt.path, rt)
        finally:
            rt.stop()


@pytest.fixture
def small_server() -> Iterator[RunningServer]:
    yield from _start(SMALL)


def venus_client(server: RunningServer, name: str) -> VtestClient:
    g = VtestClient.connect(server.path, name, 3)
    g.context_init(P.CAPSET_VENUS)
    return g


def signal_through_ring0(g: VtestClient, sync: int, value: int) -> None:
    """A SUBMIT_CMD2 batch on ring 0 signalling ``sync``: the render server retires its
    fence, then the server signals the sync."""
    g.submit_cmd2([BatchSpec(b"", syncs=[(sync, value)], ring_idx=0)])
    assert g.sync_wait([(sync, value)], NO_TIMEOUT).wait(None)
    assert g.sync_read(sync) == value


class VenusBystander:
    def __init__(self, server: RunningServer) -> None:
        self.g = venus_client(server, "venus-bystander")
        self.blob = self.g.create_blob(P.BLOB_TYPE_HOST3D, P.BLOB_FLAG_MAPPABLE, 4096)
        self.sync = self.g.sync_create(0)
        self.value = 0

    def works(self) -> None:
        self.value += 1
        signal_through_ring0(self.g, self.sync, self.value)
        m = self.blob.map()  # the render server's shm, still ours to use
        m[:4] = self.value.to_bytes(4, "little")
        assert m[:4] == self.value.to_bytes(4, "little")


def drops(caplog: pytest.LogCaptureFixture, name: str, command: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
            and f"client {name} (pid {os.getpid()}) dropped: {command}: " in r.getMessage()]


@pytest.mark.parametrize("attack", ["blob_size", "resources", "syncs", "sync_waits",
                                    "submit_size"])
def test_venus_client_over_a_budget_is_dropped(small_server: RunningServer, attack: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    bystander = VenusBystander(small_server)
    bystander.works()
    g = venus_client(small_server, "venus-hostile")
    if attack == "blob_size":
        command, budget = "RESOURCE_CREATE_BLOB", "blob size"
        g.send(P.ResourceCreateBlob(P.BLOB_TYPE_HOST3D, P.BLOB_FLAG_MAPPABLE, 2 << 20, 0))
    elif attack == "resources":
        command, budget = "RESOURCE_CREATE_BLOB", "over the budget of 4 resources"
        for _ in range(SMALL.resources):
            g.create_blob(P.BLOB_TYPE_HOST3D, P.BLOB_FLAG_MAPPABLE, 4096)
        g.send(P.ResourceCreateBlob(P.BLOB_TYPE_HOST3D, P.BLOB_FLAG_MAPPABLE, 4096, 0))
    elif attack == "syncs":
        command, budget = "SYNC_CREATE", "over the budget of 4 syncs"
        for _ in range(SMALL.syncs):
            g.sync_create(0)
        g.send(P.SyncCreate(0))
    elif attack == "sync_waits":
        command, budget = "SYNC_WAIT", "more than 2 sync waits pending"
        sync = g.sync_create(0)
        for _ in range(SMALL.sync_waits):
            g.sync_wait([(sync, 1)], NO_TIMEOUT)
        g.send(P.SyncWait(0, NO_TIMEOUT, ((sync, 1),)))
    else:
        command, budget = "SUBMIT_CMD2", "dwords exceeds the limit"
        sync = g.sync_create(0)
        g.submit_cmd2([BatchSpec(bytes(80 << 10), syncs=[(sync, 1)], ring_idx=0)])
    assert g.wait_closed(30), "the hostile client was not dropped"
    lines = drops(caplog, "venus-hostile", command)
    assert len(lines) == 1 and budget in lines[0], lines
    bystander.works()
    assert small_server.session_count() == 1
    g.close()
    bystander.g.close()


def test_venus_clients_are_isolated(small_server: RunningServer,
                                    caplog: pytest.LogCaptureFixture) -> None:
    """B cannot unref, or signal through, what A made; dropping B leaves A whole."""
    caplog.set_level(logging.INFO)
    a = VenusBystander(small_server)
    b = venus_client(small_server, "venus-b")
    b_sync = b.sync_create(0)
    assert b_sync == a.sync  # sync ids are per client: B's 1 is not A's 1
    signal_through_ring0(b, b_sync, 5)
    assert a.g.sync_read(a.sync) == 0  # B's signal reached B's sync only
    b.send(P.ResourceUnref(a.blob.handle))
    assert b.wait_closed(30)
    (line,) = drops(caplog, "venus-b", "RESOURCE_UNREF")
    assert f"resource {a.blob.handle} does not belong to this client" in line
    a.works()
    b.close()
    a.g.close()
