"""The inspector shows venus guests live: Mesa's venus (vk_check, held open) with its
context and blobs, and a protocol-level venus client's syncs and ring timeline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from support.venus import HeldVkCheck, venus_env

from virgl_viewer.guest import BatchSpec, VtestClient
from virgl_viewer.state import StateRegistry
from virgl_viewer.testing import RunningServer
from virgl_viewer.ui.inspector import TABLES, Inspector
from virgl_viewer.vtest import protocol as P


@pytest.fixture
def inspector(qtbot: Any, venus_server: RunningServer) -> Iterator[Inspector]:
    reg = StateRegistry()
    venus_server.call(reg.attach, venus_server.server)
    w = Inspector(reg, disconnect=lambda pid: None)
    qtbot.addWidget(w)
    w.resize(1100, 600)
    w.show()
    qtbot.waitExposed(w)
    yield w


def rows(w: Inspector, table: str) -> list[Any]:
    w.tabs.setCurrentIndex(TABLES.index(table))
    proxy = w.proxies[table]
    return [proxy.record_at(i) for i in range(proxy.rowCount())]


def test_inspector_shows_venus_guests(qtbot: Any, inspector: Inspector,
                                      venus_server: RunningServer) -> None:
    held = HeldVkCheck(venus_env(venus_server.path))
    try:
        with VtestClient.connect(venus_server.path, "venus-syncs", 3) as g:
            g.context_init(P.CAPSET_VENUS)
            g.create_blob(P.BLOB_TYPE_HOST3D, P.BLOB_FLAG_MAPPABLE, 4096)
            sync = g.sync_create(0)
            g.submit_cmd2([BatchSpec(b"", syncs=[(sync, 3)], ring_idx=0)])
            assert g.sync_wait([(sync, 3)], 0xFFFFFFFF).wait(None)

            def shown() -> None:
                inspector.tick()
                clients = {c.name: c for c in rows(inspector, "clients")}
                assert {"vk_check", "venus-syncs"} <= set(clients)
                assert {clients[n].capset for n in ("vk_check", "venus-syncs")} == {"venus"}
                blobs = [r for r in rows(inspector, "resources")
                         if r.client_key == clients["vk_check"].key]
                assert blobs and {r.kind for r in blobs} == {"blob"}
                mine = [f for f in rows(inspector, "fences")
                        if f.client_key == clients["venus-syncs"].key]
                assert {(f.kind, f.id, f.value) for f in mine if f.kind != "fence"} == {
                    ("sync", sync, 3), ("timeline", 0, 1)}

            qtbot.waitUntil(shown, timeout=30_000)
            inspector.proxies["fences"].set_filter(kind="timeline")
            assert [(f.kind, f.id) for f in rows(inspector, "fences")] == [("timeline", 0)]
    finally:
        held.finish().assert_passed()
