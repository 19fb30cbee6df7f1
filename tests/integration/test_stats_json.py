"""``--stats-json``: the JSON snapshot follows a real guest and is always whole.

The writer class runs against the in-process server; the command-line test runs
``python -m virgl_viewer --headless --stats-json``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.jsonfile import wait_json

from virgl_viewer.guest import VtestClient
from virgl_viewer.guest.commands import CommandBuffer
from virgl_viewer.state import LATENCY_EDGES_MS, StateRegistry
from virgl_viewer.stats_json import FORMAT, StatsJsonWriter
from virgl_viewer.vtest import protocol as P

DT_BIND = P.BIND_RENDER_TARGET | P.BIND_SAMPLER_VIEW | P.BIND_DISPLAY_TARGET


@pytest.fixture
def writer(virgl_server: Any, tmp_path: Path) -> Iterator[StatsJsonWriter]:
    reg = StateRegistry()
    virgl_server.call(reg.attach, virgl_server.server)
    w = StatsJsonWriter(str(tmp_path / "stats.json"), reg, meta={"socket": virgl_server.path})
    w.start()
    try:
        yield w
    finally:
        w.stop()


def test_snapshot_follows_a_guest(writer: StatsJsonWriter, virgl_server: Any,
                                  tmp_path: Path) -> None:
    path = Path(writer.path)
    doc = wait_json(path, lambda d: True)  # written at start
    assert (doc["format"], doc["version"], doc["socket"]) == (FORMAT, 1, virgl_server.path)
    assert doc["clients"] == [] and doc["totals"]["resources"] == 0
    with VtestClient.connect(virgl_server.path, "json-guest", 2) as g:
        tex = g.resource_create(P.TARGET_2D, 2, DT_BIND, 128, 64, data_size=128 * 64 * 4)
        buf = g.resource_create(P.TARGET_BUFFER, 64, P.BIND_VERTEX_BUFFER, 1000)
        cb = CommandBuffer()
        cb.create_sub_ctx(1)
        for _ in range(4):
            g.submit(cb.to_bytes())
            g.busy_wait(0, wait=True)
        doc = wait_json(path, lambda d: d["totals"]["resources"] == 2
                        and d["clients"][0]["fences_completed"] == 4)
        (c,) = doc["clients"]
        assert (c["name"], c["pid"], c["protocol_version"], c["state"]) == (
            "json-guest", os.getpid(), 2, "active")
        assert (c["submits"], c["resources"], c["fences_pending"]) == (4, 2, 0)
        assert c["resource_bytes"] == 128 * 64 * 4 + 1000
        # its renderer: this process (shared), or its worker (process isolation)
        assert c["renderer_pid"] == (
            os.getpid() if virgl_server.isolation == "shared"
            else virgl_server.renderer_pids()[0]) != 0
        assert virgl_server.isolation == "shared" or c["renderer_pid"] != os.getpid()
        assert c["latency"]["count"] == 4 and c["latency"]["max_ms"] >= 0
        assert sum(c["latency_histogram"]) == 4
        assert len(doc["latency_histogram"]["edges_ms"]) == len(LATENCY_EDGES_MS)
        res = {r["client_handle"]: r for r in doc["resources"]}
        t = res[tex.handle]
        assert (t["target_name"], t["format_name"], t["width"], t["height"], t["backing"],
                t["display_target"], t["estimated_bytes"]) == (
            "2D", "B8G8R8X8_UNORM", 128, 64, "shm", True, 128 * 64 * 4)
        assert t["bind_names"] == ["RENDER_TARGET", "SAMPLER_VIEW", "DISPLAY_TARGET"]
        assert (res[buf.handle]["target_name"], res[buf.handle]["backing"]) == (
            "buffer", "none")
        assert [f["kind"] for f in doc["fences"]] == ["fence"] * 4
        assert all(f["signalled_at"] >= f["created_at"] for f in doc["fences"])
        g.resource_unref(tex)
        g.busy_wait(0)
        doc = wait_json(path, lambda d: d["totals"]["resources"] == 1)
        assert [r["client_handle"] for r in doc["resources"]] == [buf.handle]
    doc = wait_json(path, lambda d: d["clients"][0]["state"] == "disconnected")
    assert doc["resources"] == [] and doc["totals"]["clients"] == 0
    assert os.listdir(tmp_path) == ["stats.json"]  # no temporary file left behind


def test_syncs_and_churn(writer: StatsJsonWriter, virgl_server: Any) -> None:
    path = Path(writer.path)
    with VtestClient.connect(virgl_server.path, "v3", 3) as g:
        g.context_init(P.CAPSET_VIRGL2)
        sid = g.sync_create(7)
        for i in range(300):  # glxgears-like churn: none of it is left at the end
            r = g.resource_create(P.TARGET_BUFFER, 64, P.BIND_CUSTOM, 8 + i)
            g.resource_unref(r)
        g.busy_wait(0)
        doc = wait_json(path, lambda d: len(d["syncs"]) == 1 and len(d["clients"]) == 1
                        and d["totals"]["resources"] == 0)
        (s,) = doc["syncs"]
        assert (s["id"], s["value"], s["kind"], s["client_name"]) == (sid, 7, "sync", "v3")
        assert doc["clients"][0]["capset"] == "virgl2"
    wait_json(path, lambda d: d["clients"][0]["state"] == "disconnected")
    # From here the test drives the writer's clock: with nothing changing, no poll
    # writes, however much time passes.
    writer.stop()
    writes, now = writer.writes, time.monotonic()
    assert not [t for t in range(1, 50) if writer.poll(now + t * writer.write_interval)]
    assert writer.writes == writes


def test_headless_cli_keeps_the_file_current(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="vv-") as d:
        sock, out = os.path.join(d, "vtest.sock"), tmp_path / "stats.json"
        proc = subprocess.Popen([sys.executable, "-m", "virgl_viewer", "--headless",
                                 "--socket", sock, "--stats-json", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_json(out, lambda doc: doc["format"] == FORMAT, timeout=20)
            with VtestClient.connect(sock, "cli-guest", 2) as g:
                g.resource_create(P.TARGET_BUFFER, 64, P.BIND_VERTEX_BUFFER, 512)
                g.busy_wait(0)
                doc = wait_json(out, lambda doc: doc["totals"]["resources"] == 1)
                assert doc["clients"][0]["name"] == "cli-guest"
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
        doc = json.loads(out.read_text())
        assert all(c["state"] != "active" for c in doc["clients"])
