"""Venus contexts, blobs, syncs and timelines in the state registry and the stats JSON,
in both isolation modes (``venus_server``: in this process, or a renderer process per
client whose worker relays them).

Mesa's venus (vk_check, held open) shows its context (capset venus) and its blobs
(HOST3D: the ring, the reply stream and its device memory). Mesa 25 sends its queue work
through its own ring and signals no vtest syncs on this stack, so the syncs and
timelines are made by our protocol-level client on a venus context of the real render
server: a sync signalled by a SUBMIT_CMD2 batch on ring 0 once its fence retires.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.jsonfile import wait_json
from support.venus import HeldVkCheck, venus_env

from virgl_viewer.guest import BatchSpec, VtestClient
from virgl_viewer.state import StateRegistry
from virgl_viewer.stats_json import StatsJsonWriter
from virgl_viewer.testing import RunningServer
from virgl_viewer.vtest import protocol as P


@pytest.fixture
def stats(venus_server: RunningServer, tmp_path: Path) -> Iterator[tuple[Path, StateRegistry]]:
    reg = StateRegistry()
    venus_server.call(reg.attach, venus_server.server)
    w = StatsJsonWriter(str(tmp_path / "stats.json"), reg, meta={"socket": venus_server.path})
    w.start()
    try:
        yield Path(w.path), reg
    finally:
        w.stop()


def _client(doc: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((c for c in doc["clients"] if c["name"] == name and c["state"] == "active"),
                None)


def test_mesa_venus_context_and_blobs_appear(venus_server: RunningServer,
                                             stats: tuple[Path, StateRegistry]) -> None:
    path, reg = stats
    held = HeldVkCheck(venus_env(venus_server.path))
    try:
        def ready(d: dict[str, Any]) -> bool:
            c = _client(d, "vk_check")
            return c is not None and c["resources"] > 0
        doc = wait_json(path, ready)
        c = _client(doc, "vk_check")
        assert c is not None
        assert (c["protocol_version"], c["capset_id"], c["capset"]) == (3, P.CAPSET_VENUS,
                                                                        "venus")
        blobs = [r for r in doc["resources"] if r["client_key"] == c["key"]]
        assert blobs and all(r["kind"] == "blob" and r["backing"] == "blob" for r in blobs)
        assert c["resources"] == len(blobs)
        # the inspector's tables hold the same rows
        snap = reg.snapshot()
        (row,) = [r for r in snap.clients if r.key == c["key"]]
        assert row.capset == "venus"
        assert {r.key for r in snap.resources if r.client_key == c["key"]} == {
            r["key"] for r in blobs}
    finally:
        result = held.finish()
    result.assert_passed()
    doc = wait_json(path, lambda d: _client(d, "vk_check") is None)
    assert not [r for r in doc["resources"] if r["client_name"] == "vk_check"]


def test_venus_syncs_and_timelines_appear(venus_server: RunningServer,
                                          stats: tuple[Path, StateRegistry]) -> None:
    path, reg = stats
    with VtestClient.connect(venus_server.path, "venus-syncs", 3) as g:
        assert g.get_param(P.PARAM_MAX_TIMELINE_COUNT)
        assert g.get_capset(P.CAPSET_VENUS) is not None
        g.context_init(P.CAPSET_VENUS)
        blob = g.create_blob(P.BLOB_TYPE_HOST3D, P.BLOB_FLAG_MAPPABLE, 4096)
        sync = g.sync_create(0)
        g.submit_cmd2([BatchSpec(b"", syncs=[(sync, 7)], ring_idx=0)])
        assert g.sync_wait([(sync, 7)], timeout_ms=0xFFFFFFFF).wait(None)  # no timeout
        assert g.sync_read(sync) == 7

        def ready(d: dict[str, Any]) -> bool:
            c = _client(d, "venus-syncs")
            return (c is not None and any(s["value"] == 7 for s in d["syncs"])
                    and any(t["value"] == 1 for t in d["timelines"]))
        doc = wait_json(path, ready)
        c = _client(doc, "venus-syncs")
        assert c is not None and c["capset"] == "venus"
        (res,) = [r for r in doc["resources"] if r["client_key"] == c["key"]]
        assert (res["kind"], res["server_handle"]) == ("blob", blob.handle)
        (srow,) = [s for s in doc["syncs"] if s["client_key"] == c["key"]]
        assert (srow["kind"], srow["id"], srow["value"], srow["pending"]) == ("sync", sync, 7, 0)
        (trow,) = [t for t in doc["timelines"] if t["client_key"] == c["key"]]
        assert (trow["kind"], trow["id"], trow["value"], trow["pending"]) == (
            "timeline", 0, 1, 0)
        assert doc["totals"]["timelines"] >= 1
        kinds = {f.kind for f in reg.snapshot().fences if f.client_key == c["key"]}
        assert {"sync", "timeline", "fence"} <= kinds
        # the row follows the ring: two more batches, two more fences given and retired
        for value in (8, 9):
            g.submit_cmd2([BatchSpec(b"", syncs=[(sync, value)], ring_idx=0)])
            assert g.sync_wait([(sync, value)], timeout_ms=0xFFFFFFFF).wait(None)
        doc = wait_json(path, lambda d: any(t["client_key"] == c["key"] and t["value"] == 3
                                            for t in d["timelines"]))
        (trow,) = [t for t in doc["timelines"] if t["client_key"] == c["key"]]
        assert (trow["id"], trow["value"], trow["pending"]) == (0, 3, 0)
    doc = wait_json(path, lambda d: _client(d, "venus-syncs") is None)
    assert not [t for t in doc["timelines"] if t["client_name"] == "venus-syncs"]
