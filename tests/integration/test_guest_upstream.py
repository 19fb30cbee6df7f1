"""Our VtestClient against upstream's virgl_test_server (virglrenderer 0.10.4).

These prove the client speaks vtest exactly as upstream expects, so the same
tests can later be pointed at our server. Upstream with --multi-clients only
accepts protocol 3; without it, it serves one client at a time at any version.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.procs import stop_process, wait_for
from support.servers import accepts_connections

from virgl_viewer.errors import RemoteProtocolError
from virgl_viewer.guest import BatchSpec, VtestClient
from virgl_viewer.vtest import protocol as p

SERVER = shutil.which("virgl_test_server")
pytestmark = pytest.mark.skipif(SERVER is None, reason="virgl_test_server not installed")

RT_SV = p.BIND_RENDER_TARGET | p.BIND_SAMPLER_VIEW
B8G8R8X8 = 2
SIZE = 64 * 64 * 4
PATTERN = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(SIZE))


def _start(multi_clients: bool) -> Iterator[str]:
    workdir = Path(tempfile.mkdtemp(prefix="vv-up-"))  # short: sun_path is 108 bytes
    path = str(workdir / "vtest.sock")
    args = [SERVER or "", "--use-egl-surfaceless", "--no-fork", f"--socket-path={path}"]
    if multi_clients:
        args.append("--multi-clients")
    with (workdir / "server.log").open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        # upstream accepts and drops a silent client: one probe that connects
        if not wait_for(lambda: proc.poll() is not None
                        or accepts_connections(Path(path)), 20) or proc.poll() is not None:
            log_text = (workdir / "server.log").read_text(errors="replace")
            pytest.fail(f"virgl_test_server did not start:\n{log_text}")
        yield path
    finally:
        stop_process(proc)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def single_server() -> Iterator[str]:
    yield from _start(multi_clients=False)


@pytest.fixture(scope="module")
def multi_server() -> Iterator[str]:
    yield from _start(multi_clients=True)


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


# ------------------------------------------------------------ protocol 0-2
@pytest.mark.parametrize(("asked", "agreed"), [(0, 0), (1, 0), (2, 2), (3, 3), (9, 3)])
def test_handshake_versions_and_caps(single_server: str, asked: int, agreed: int) -> None:
    with VtestClient.connect(single_server, "handshake", asked) as client:
        assert client.protocol_version == agreed
        assert len(client.caps_v1) == 308  # sizeof(struct virgl_caps_v1), GET_CAPS id 1
        assert len(client.caps) > len(client.caps_v1)  # virgl_caps_v2, GET_CAPS2 id 2
        assert len(client.caps) % 4 == 0
        assert client.busy_wait() is False


def test_protocol2_transfer_through_shm(single_server: str) -> None:
    before = _open_fds()
    with VtestClient.connect(single_server, "shm", 2) as client:
        res = client.resource_create(p.TARGET_2D, B8G8R8X8, RT_SV, 64, 64, data_size=2 * SIZE)
        assert res.handle == 1  # protocol 2: the client picks handles from 1
        assert res.shm is not None and len(res.shm) == 2 * SIZE
        res.shm[:SIZE] = PATTERN
        client.transfer_put2(res, width=64, height=64, data_size=SIZE, offset=0)
        client.transfer_get2(res, width=64, height=64, data_size=SIZE, offset=SIZE)
        assert client.busy_wait(res, wait=True) is False
        assert res.shm[SIZE:] == PATTERN
        # A sub-box is written from ``offset`` on with the level's stride (64 * 4):
        # the box origin is not added, the client points offset at it.
        res.shm[SIZE:] = bytes(SIZE)
        client.transfer_get2(res, x=8, y=2, width=4, height=3, data_size=SIZE, offset=SIZE)
        client.busy_wait(res, wait=True)
        for row in range(3):
            got = res.shm[SIZE + 256 * row : SIZE + 256 * row + 16]
            assert got == PATTERN[256 * (2 + row) + 32 : 256 * (2 + row) + 48]
        assert res.shm[SIZE + 16 : SIZE + 256] == bytes(240)
        second = client.resource_create(p.TARGET_2D, B8G8R8X8, RT_SV, 8, 8, data_size=256)
        assert second.handle == 2
        res.close()
        assert res.closed and res.shm is None
        assert client.busy_wait() is False  # the unref did not break the stream
    assert _open_fds() == before


def test_protocol0_inline_transfers(single_server: str) -> None:
    with VtestClient.connect(single_server, "inline", 0) as client:
        assert client.protocol_version == 0
        res = client.resource_create(p.TARGET_2D, B8G8R8X8, RT_SV, 64, 64)
        assert res.shm is None
        client.transfer_put(res, PATTERN, width=64, height=64, stride=256)
        client.submit(b"")
        assert client.busy_wait(res, wait=True) is False
        got = client.transfer_get(res, width=64, height=64, stride=256, data_size=SIZE)
        assert got == PATTERN
        part = client.transfer_get(res, x=1, y=1, width=2, height=2, stride=8, data_size=16)
        assert part == PATTERN[256 + 4 : 256 + 12] + PATTERN[512 + 4 : 512 + 12]


def test_busy_wait_after_submit(single_server: str) -> None:
    with VtestClient.connect(single_server, "busy", 2) as client:
        client.submit(b"")  # an empty command buffer still gets a fence upstream
        assert client.busy_wait(0, wait=True) is False
        assert client.busy_wait(0) is False


def test_hostile_bytes_get_the_client_dropped(single_server: str) -> None:
    with VtestClient.connect(single_server, "hostile", 2) as client:
        client.send_raw(struct_pack(0, 99))  # unknown command id
        assert client.wait_closed(10)
    with VtestClient.connect(single_server, "after", 2) as client:  # the server lives on
        assert client.busy_wait() is False


def struct_pack(*values: int) -> bytes:
    return b"".join(v.to_bytes(4, "little") for v in values)


# ---------------------------------------------------------------- protocol 3
def test_multi_clients_requires_protocol3(multi_server: str) -> None:
    with pytest.raises(RemoteProtocolError):
        VtestClient.connect(multi_server, "too-old", 2)


def test_protocol3_resources_and_params(multi_server: str) -> None:
    with VtestClient.connect(multi_server, "v3", 3) as client, \
            VtestClient.connect(multi_server, "v3-other", 3) as other:
        assert client.protocol_version == 3
        assert client.get_param(p.PARAM_MAX_TIMELINE_COUNT) == p.MAX_TIMELINE_COUNT
        assert client.get_param(99) is None
        capset = client.get_capset(p.CAPSET_VIRGL2, 2)
        assert capset is not None and len(capset) == len(client.caps)
        assert client.get_capset(77, 0) is None
        res = client.resource_create(p.TARGET_2D, B8G8R8X8, RT_SV, 64, 64, data_size=2 * SIZE)
        mine = other.resource_create(p.TARGET_2D, B8G8R8X8, RT_SV, 4, 4)
        assert res.handle > 0 and mine.handle not in (0, res.handle)  # server-chosen ids
        assert res.shm is not None and mine.shm is None
        res.shm[:SIZE] = PATTERN
        client.transfer_put2(res, width=64, height=64, data_size=SIZE)
        client.transfer_get2(res, width=64, height=64, data_size=SIZE, offset=SIZE)
        assert client.busy_wait(res, wait=True) is False
        assert res.shm[SIZE:] == PATTERN
        blob = client.create_blob(p.BLOB_TYPE_GUEST, p.BLOB_FLAG_MAPPABLE, 4096)
        assert blob.fd is not None
        blob.map()[:4] = b"vtst"
        assert other.busy_wait() is False


def test_protocol3_syncs(multi_server: str) -> None:
    before = _open_fds()
    with VtestClient.connect(multi_server, "syncs", 3) as client:
        sync = client.sync_create((1 << 33) + 5)
        assert client.sync_read(sync) == (1 << 33) + 5
        waiter = client.sync_wait([(sync, (1 << 33) + 7)], timeout_ms=10_000)
        assert not waiter.wait(0.05)
        client.sync_write(sync, (1 << 33) + 7)
        assert waiter.wait(5)
        assert client.sync_read(sync) == (1 << 33) + 7
        waiter.close()
        # Already reached: readable at once; any-of with one reached: readable.
        assert client.sync_wait([(sync, 3)], timeout_ms=0).wait(0)
        other = client.sync_create(0)
        assert client.sync_wait([(sync, 1 << 40), (other, 0)], 1000, wait_any=True).wait(1)
        # SUBMIT_CMD2, an empty batch without a ring: its syncs signal at once.
        client.submit_cmd2([BatchSpec(b"", ((other, 9),), flags=0)])
        assert client.sync_read(other) == 9
        # On ring 0: signalled by the context fence once virgl has run it.
        late = client.sync_wait([(other, 10)], 10_000)
        client.submit_cmd2([BatchSpec(b"", ((other, 10),), ring_idx=0)])
        assert late.wait(10)
        assert client.sync_read(other) == 10
        client.sync_unref(sync)
        client.sync_unref(other)
        assert client.busy_wait() is False
    assert _open_fds() == before
