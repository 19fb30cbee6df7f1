"""The inspector against a real in-process server and our vtest guest: rows appear and
disappear with the right columns by the next tick, filters, "disconnect client", jump to
a resource, exports; qtmodeltester on every model and proxy."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from virgl_viewer.guest import VtestClient
from virgl_viewer.guest.commands import CommandBuffer
from virgl_viewer.server import RESOURCE_SYNC_S
from virgl_viewer.state import StateRegistry, TableDelta
from virgl_viewer.ui.inspector import TABLES, TICK_MS, Inspector
from virgl_viewer.ui.models import (
    ClientTableModel,
    RecordFilterProxy,
    ResourceTableModel,
    SyncPointTableModel,
)
from virgl_viewer.vtest import protocol as P

DT_BIND = P.BIND_RENDER_TARGET | P.BIND_SAMPLER_VIEW | P.BIND_DISPLAY_TARGET
B8G8R8X8, R8 = 2, 64


@pytest.fixture
def registry(virgl_server: Any) -> StateRegistry:
    reg = StateRegistry()
    virgl_server.call(reg.attach, virgl_server.server)
    return reg


@pytest.fixture
def inspector(qtbot: Any, registry: StateRegistry, virgl_server: Any) -> Iterator[Inspector]:
    def disconnect(pid: int) -> None:
        virgl_server.thread.call(virgl_server.server.disconnect, pid)

    w = Inspector(registry, disconnect=disconnect)
    qtbot.addWidget(w)
    w.resize(1100, 600)
    w.show()
    qtbot.waitExposed(w)
    yield w


@pytest.fixture
def guest(virgl_server: Any) -> Iterator[VtestClient]:
    with VtestClient.connect(virgl_server.path, "inspector-guest", 2) as g:
        yield g


def rows(w: Inspector, table: str) -> list[Any]:
    """The records of a table as shown (its tab brought to the front, as a user looks
    at it: only the current tab's table follows the registry): filtered and sorted."""
    w.tabs.setCurrentIndex(TABLES.index(table))
    proxy = w.proxies[table]
    return [proxy.record_at(i) for i in range(proxy.rowCount())]


def cells(w: Inspector, table: str, row: int) -> dict[str, str]:
    w.tabs.setCurrentIndex(TABLES.index(table))
    proxy, model = w.proxies[table], w.models[table]
    return {c.title: proxy.index(row, i).data() for i, c in enumerate(model.columns)}


def roundtrip(g: VtestClient, srv: Any) -> None:
    """Wait until the server has handled everything sent before (BUSY_WAIT answers) and
    its observers know every resource (the render thread's 100 ms sync, done now)."""
    g.busy_wait(0)
    srv.call(srv.server.sync_resources)


def test_models_pass_qtmodeltester(qtmodeltester: Any, registry: StateRegistry,
                                   guest: VtestClient, virgl_server: Any) -> None:
    models = {"clients": ClientTableModel(), "resources": ResourceTableModel(),
              "fences": SyncPointTableModel()}
    proxies = {}
    for name, m in models.items():
        qtmodeltester.check(m)
        proxies[name] = p = RecordFilterProxy()
        p.setSourceModel(m)
        p.sort(1)
        qtmodeltester.check(p)

    def pull() -> None:
        d = registry.pull()
        for name, part in zip(models, (d.clients, d.resources, d.fences), strict=True):
            models[name].apply(part)

    res = [guest.resource_create(P.TARGET_2D, B8G8R8X8, DT_BIND, 16 + i, 16,
                                 data_size=(16 + i) * 64) for i in range(6)]
    guest.submit(CommandBuffer().to_bytes())
    guest.busy_wait(0, wait=True)
    virgl_server.call(virgl_server.server.sync_resources)
    pull()
    assert [m.rowCount() for m in models.values()] == [1, 6, 1]
    for i in (0, 2, 3, 5):  # removals in several runs
        guest.resource_unref(res[i])
    roundtrip(guest, virgl_server)
    pull()
    assert [r.width for r in models["resources"].records()] == [17, 20]
    proxies["resources"].set_filter(text="17×16")
    assert proxies["resources"].rowCount() == 1
    models["resources"].apply(TableDelta(removed=(models["resources"].record(0).key,)))
    assert proxies["resources"].rowCount() == 0


def test_rows_follow_the_guest(qtbot: Any, inspector: Inspector, guest: VtestClient,
                               virgl_server: Any) -> None:
    assert inspector.timer.interval() == TICK_MS <= 150  # visible: a change shows in a tick
    tex = guest.resource_create(P.TARGET_2D, B8G8R8X8, DT_BIND, 300, 200,
                                data_size=300 * 200 * 4)
    buf = guest.resource_create(P.TARGET_BUFFER, R8, P.BIND_VERTEX_BUFFER, 4096)
    roundtrip(guest, virgl_server)
    inspector.tick()  # the next tick is enough
    (client,) = rows(inspector, "clients")
    assert (client.name, client.pid, client.protocol_version, client.resources) == (
        "inspector-guest", os.getpid(), 2, 2)
    c = cells(inspector, "clients", 0)
    assert (c["State"], c["Capset"], c["Memory"]) == ("active", "default (virgl)",
                                                      "238.4 KiB")
    by_handle = {r.client_handle: r for r in rows(inspector, "resources")}
    assert set(by_handle) == {tex.handle, buf.handle}
    t = cells(inspector, "resources", rows(inspector, "resources").index(by_handle[tex.handle]))
    assert (t["Target"], t["Format"], t["Size"], t["Levels"], t["Backing"], t["Scanout"]) == (
        "2D", "B8G8R8X8_UNORM", "300×200", "1", "shm", "display target")
    assert t["Bind"] == "RENDER_TARGET|SAMPLER_VIEW|DISPLAY_TARGET"
    assert t["Est. bytes"] == "234.4 KiB" and t["Owner"] == f"inspector-guest ({os.getpid()})"
    assert by_handle[buf.handle].backing == "none" and by_handle[buf.handle].kind == "buffer"

    guest.resource_unref(tex)
    roundtrip(guest, virgl_server)
    qtbot.waitUntil(lambda: [r.client_handle for r in rows(inspector, "resources")]
                    == [buf.handle], timeout=2000)  # the timer alone gets there

    cb = CommandBuffer()
    cb.create_sub_ctx(1)
    cb.set_sub_ctx(1)
    for _ in range(3):
        guest.submit(cb.to_bytes())
        assert guest.busy_wait(0, wait=True) is False
    inspector.tick()
    fences = rows(inspector, "fences")
    assert [f.kind for f in fences] == ["fence"] * 3
    assert all(f.signalled is not None and f.latency_ms >= 0 for f in fences)
    assert cells(inspector, "fences", 0)["Latency"].endswith(" ms")
    (client,) = rows(inspector, "clients")
    assert (client.submits, client.fences_submitted, client.fences_pending) == (3, 3, 0)
    assert sum(inspector.registry.histogram()) == 3


def test_syncs_of_a_protocol_3_client(inspector: Inspector, virgl_server: Any) -> None:
    with VtestClient.connect(virgl_server.path, "v3-guest", 3) as g:
        g.context_init(P.CAPSET_VIRGL2)
        a, b = g.sync_create(5), g.sync_create(0)
        g.sync_write(b, 9)
        assert g.sync_read(b) == 9
        inspector.tick()
        syncs = {f.id: f for f in rows(inspector, "fences") if f.kind == "sync"}
        assert (syncs[a].value, syncs[b].value) == (5, 9)
        (client,) = rows(inspector, "clients")
        assert (client.protocol_version, client.capset, client.syncs) == (3, "virgl2", 2)
        g.sync_unref(a)
        g.sync_read(b)
        inspector.tick()
        assert [f.id for f in rows(inspector, "fences")] == [b]


def test_filters(inspector: Inspector, virgl_server: Any, guest: VtestClient) -> None:
    guest.resource_create(P.TARGET_2D, B8G8R8X8, DT_BIND, 64, 64, data_size=64 * 64 * 4)
    guest.resource_create(P.TARGET_BUFFER, R8, P.BIND_VERTEX_BUFFER, 256)
    with VtestClient.connect(virgl_server.path, "other-guest", 2) as other:
        other.resource_create(P.TARGET_BUFFER, R8, P.BIND_INDEX_BUFFER, 128)
        roundtrip(other, virgl_server)
        roundtrip(guest, virgl_server)
        inspector.tick()
        assert len(rows(inspector, "resources")) == 3
        combo = inspector.client_combo
        assert combo.count() == 3
        combo.setCurrentIndex(combo.findText("other-guest", flags=_starts_with()))
        assert [r.width for r in rows(inspector, "resources")] == [128]
        assert [c.name for c in rows(inspector, "clients")] == ["other-guest"]
        inspector.set_client_filter(None)
        inspector.tabs.setCurrentIndex(1)
        inspector.kind_combo.setCurrentIndex(inspector.kind_combo.findData("buffer"))
        assert sorted(r.width for r in rows(inspector, "resources")) == [128, 256]
        inspector.kind_combo.setCurrentIndex(0)
        inspector.filter_edit.setText("b8g8r8x8")
        assert [r.width for r in rows(inspector, "resources")] == [64]
        inspector.filter_edit.setText("INDEX_BUFFER")
        assert [r.client_name for r in rows(inspector, "resources")] == ["other-guest"]


def _starts_with() -> Any:
    from PySide6.QtCore import Qt

    return Qt.MatchFlag.MatchStartsWith


def test_disconnect_client_closes_its_socket(qtbot: Any, inspector: Inspector,
                                              guest: VtestClient, virgl_server: Any) -> None:
    guest.resource_create(P.TARGET_BUFFER, R8, P.BIND_VERTEX_BUFFER, 256)
    roundtrip(guest, virgl_server)
    inspector.tick()
    view = inspector.views["clients"]
    view.setCurrentIndex(inspector.proxies["clients"].index(0, 0))
    assert inspector.disconnect_button.isEnabled()
    inspector.disconnect_button.click()
    assert guest.wait_closed(5.0)
    # the server closes the socket just before it reports the session closed
    qtbot.waitUntil(lambda: rows(inspector, "clients")[0].state == "disconnected",
                    timeout=2000)
    (client,) = rows(inspector, "clients")
    assert client.resources == 0
    assert rows(inspector, "resources") == []


def test_show_resource_selects_it_through_filters(inspector: Inspector,
                                                  guest: VtestClient, virgl_server: Any) -> None:
    res = [guest.resource_create(P.TARGET_2D, B8G8R8X8, DT_BIND, 32, 32 + i,
                                 data_size=32 * 64 * 4) for i in range(3)]
    roundtrip(guest, virgl_server)
    inspector.filter_edit.setText("nothing matches this")
    assert inspector.show_resource(os.getpid(), res[1].handle)
    assert inspector.current_table() == "resources"
    assert inspector.filter_edit.text() == ""
    rec = inspector.selected_record()
    assert (rec.client_handle, rec.height) == (res[1].handle, 33)
    assert f"client_handle: {res[1].handle}" in inspector.details.toPlainText()
    # no scanout and no texture copy service: the preview says why it is empty
    assert "only scanouts" in inspector.preview_label.text()
    assert not inspector.show_resource(os.getpid(), 999)


def test_texture_previews_interface(qtbot: Any, registry: StateRegistry,
                                    guest: VtestClient, virgl_server: Any) -> None:
    calls: list[tuple[str, int]] = []

    class Source:
        alive = True

        def take_latest(self) -> None:
            return None

        def drawn(self, frame: Any, ui_fence: int = 0) -> None:
            raise AssertionError("nothing was leased")

    class Previews:
        def open(self, rec: Any) -> Source:
            calls.append(("open", rec.server_handle))
            return Source()

        def refresh(self, source: Source) -> None:
            calls.append(("refresh", 0))

        def close(self, source: Source) -> None:
            calls.append(("close", 0))

    w = Inspector(registry, texture_previews=Previews())
    qtbot.addWidget(w)
    w.show()
    a = guest.resource_create(P.TARGET_2D, 67, P.BIND_SAMPLER_VIEW, 8, 8)
    b = guest.resource_create(P.TARGET_2D, 67, P.BIND_SAMPLER_VIEW, 8, 4)
    roundtrip(guest, virgl_server)
    assert w.show_resource(os.getpid(), a.handle)
    sa = w.selected_record().server_handle
    assert calls[0] == ("open", sa) and w.preview.source is not None
    qtbot.waitUntil(lambda: ("refresh", 0) in calls, timeout=3000)
    assert w.show_resource(os.getpid(), b.handle)
    assert ("close", 0) in calls and calls[-1][0] in ("open", "refresh")


def test_exports(tmp_path: Any, inspector: Inspector, guest: VtestClient,
                 virgl_server: Any) -> None:
    guest.resource_create(P.TARGET_2D, B8G8R8X8, DT_BIND, 40, 30, data_size=40 * 30 * 4)
    guest.resource_create(P.TARGET_BUFFER, R8, P.BIND_VERTEX_BUFFER, 100)
    roundtrip(guest, virgl_server)
    inspector.tick()
    inspector.tabs.setCurrentIndex(1)
    inspector.kind_combo.setCurrentIndex(inspector.kind_combo.findData("buffer"))
    assert inspector.export_csv(str(tmp_path / "r.csv")) == 1
    with open(tmp_path / "r.csv", newline="") as f:
        header, *body = list(csv.reader(f))
    assert header[:3] == ["Client id", "Server id", "Owner"]
    assert [row[header.index("Size")] for row in body] == ["100 B"]
    inspector.export_json(str(tmp_path / "all.json"))
    doc = json.loads((tmp_path / "all.json").read_text())
    assert sorted(r["width"] for r in doc["resources"]) == [40, 100]  # unfiltered
    assert doc["clients"][0]["name"] == "inspector-guest"


def test_a_table_behind_another_tab_catches_up_when_shown(inspector: Inspector,
                                                          guest: VtestClient,
                                                          virgl_server: Any) -> None:
    """Only the current tab's table follows each tick; another one is brought up to date
    when its tab comes to the front, keeping its selected row."""
    first = guest.resource_create(P.TARGET_BUFFER, R8, P.BIND_VERTEX_BUFFER, 64)
    roundtrip(guest, virgl_server)
    inspector.tick()
    assert [r.client_handle for r in rows(inspector, "resources")] == [first.handle]
    assert inspector.select("resources", rows(inspector, "resources")[0].key)
    inspector.tabs.setCurrentIndex(TABLES.index("clients"))
    more = [guest.resource_create(P.TARGET_BUFFER, R8, P.BIND_VERTEX_BUFFER, 128 + i)
            for i in range(3)]
    roundtrip(guest, virgl_server)
    inspector.tick()
    (client,) = rows(inspector, "clients")
    assert client.resources == 4  # the current table followed
    inspector.tabs.setCurrentIndex(TABLES.index("resources"))
    assert sorted(r.client_handle for r in inspector.models["resources"].records()) == \
        sorted([first.handle, *(r.handle for r in more)])
    rec = inspector.selected_record()
    assert rec is not None and rec.client_handle == first.handle


def test_resources_and_fences_reach_the_tables_by_the_timers_alone(
        qtbot: Any, inspector: Inspector, guest: VtestClient) -> None:
    """No sync point: the render thread's resource sync (every RESOURCE_SYNC_S) and the
    inspector's tick (TICK_MS) bring a new resource, its unref and new fences to the
    tables; together they fit the 250 ms a change may take to show."""
    assert RESOURCE_SYNC_S * 1000 + TICK_MS <= 250 - 20  # 20 ms for the work itself
    inspector.tabs.setCurrentIndex(TABLES.index("resources"))
    res = guest.resource_create(P.TARGET_BUFFER, R8, P.BIND_VERTEX_BUFFER, 4096)
    handles = lambda: [r.client_handle for r in inspector.models["resources"].records()]  # noqa: E731
    qtbot.waitUntil(lambda: handles() == [res.handle], timeout=2000)
    guest.resource_unref(res)
    qtbot.waitUntil(lambda: handles() == [], timeout=2000)
    inspector.tabs.setCurrentIndex(TABLES.index("fences"))
    guest.submit(CommandBuffer().to_bytes())
    qtbot.waitUntil(lambda: len(inspector.models["fences"].records()) == 1
                    and inspector.models["fences"].records()[0].signalled is not None,
                    timeout=2000)
