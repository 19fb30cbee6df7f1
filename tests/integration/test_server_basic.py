"""The vtest server speaks the protocol as Mesa's virpipe and Venus expect it.

Over a real socket to the in-process server (``virgl_server``) on the real
libvirglrenderer: the handshake bytes for every protocol version, caps, real
virgl rendering read back through TRANSFER_GET2 and the inline protocol-0
transfers, and the protocol-3 additions (server-chosen ids, guest blobs, sync
objects with SYNC_WAIT eventfds, SUBMIT_CMD2 fences, GET_PARAM, GET_CAPSET).
"""

from __future__ import annotations

import os
import struct

import pytest
from server_helpers import (
    BLUE,
    GREEN,
    HEIGHT,
    PLUM,
    RED,
    TEAL,
    WIDTH,
    assert_filled,
    bgrx,
    clear_commands,
    create_target,
    dwords,
    header,
    read_back,
    recv_exactly,
    render_clear,
)

from virgl_viewer.guest import BatchSpec, VtestClient
from virgl_viewer.testing import RunningServer
from virgl_viewer.vtest import protocol as p

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(("requested", "answered"), [
    (0, 0), (1, 0), (2, 2), (3, 3), (4, 3), (0xFFFFFFFF, 3)])
def test_protocol_version_reply_bytes(virgl_server: RunningServer, requested: int,
                                      answered: int) -> None:
    """Mesa's handshake gets exactly upstream's bytes back: PING answered with
    ``[0, 10]``, PROTOCOL_VERSION with ``[1, 11, min(requested, 3)]`` and 1 as 0."""
    name = b"handshake\0"
    with VtestClient.connect(virgl_server.path, handshake=False) as client:
        client.send_raw(header(p.Cmd.CREATE_RENDERER, len(name)) + name
                        + header(p.Cmd.PING_PROTOCOL_VERSION, 0)
                        + header(p.Cmd.RESOURCE_BUSY_WAIT, 2) + dwords(0, 0)
                        + header(p.Cmd.PROTOCOL_VERSION, 1) + dwords(requested))
        reply = recv_exactly(client, 8 + 12 + 12)
        assert reply == (dwords(0, p.Cmd.PING_PROTOCOL_VERSION)
                         + dwords(1, p.Cmd.RESOURCE_BUSY_WAIT, 0)
                         + dwords(1, p.Cmd.PROTOCOL_VERSION, answered))


@pytest.mark.parametrize("version", [0, 2, 3])
def test_handshake_returns_caps(virgl_server: RunningServer, version: int) -> None:
    """After Mesa's handshake the client has the negotiated version and both caps
    blobs (virgl_caps_v1 / v2, whose first dword is max_version >= 1)."""
    with VtestClient.connect(virgl_server.path, "caps", version) as client:
        assert client.protocol_version == version
        for caps in (client.caps_v1, client.caps):
            assert len(caps) >= 4 and len(caps) % 4 == 0
            assert struct.unpack_from("<I", caps)[0] >= 1
        assert len(client.caps) > len(client.caps_v1)


@pytest.mark.parametrize("version", [2, 3])
def test_clear_reads_back_bgrx(virgl_server: RunningServer, version: int) -> None:
    """A display target cleared with real virgl commands (surface, framebuffer,
    clear) reads back through TRANSFER_GET2 into the shm in BGRX byte order;
    a second clear replaces the first, and a sub-box lands where it lies in the
    shm, leaving the rest untouched."""
    with VtestClient.connect(virgl_server.path, "clear", version) as client:
        target = create_target(client)
        assert target.shm is not None and len(target.shm) == WIDTH * HEIGHT * 4
        pixels = render_clear(client, target, TEAL)
        assert pixels[:4] == bytes((153, 102, 51, 255))  # B, G, R, X
        assert_filled(pixels, TEAL)
        assert_filled(render_clear(client, target, RED), RED)
        # Mesa's partial present: a 4x2 box at (3, 2), offset to where it lies in
        # the shm (rows keep the resource's stride): only those pixels change.
        client.submit(clear_commands(target.handle, BLUE))
        stride = WIDTH * 4
        client.transfer_get2(target, x=3, y=2, width=4, height=2, data_size=stride + 16,
                             offset=2 * stride + 3 * 4)
        assert client.busy_wait(target, wait=True) is False
        for y in range(HEIGHT):
            row = bytes(target.shm[y * stride:(y + 1) * stride])
            box = y in (2, 3)
            want = bgrx(RED) * 3 + bgrx(BLUE if box else RED) * 4 + bgrx(RED) * 9
            assert row == want, f"row {y}"


def test_protocol0_inline_transfers(virgl_server: RunningServer) -> None:
    """Protocol 0: TRANSFER_PUT carries the texels inline and TRANSFER_GET returns
    them inline, a whole resource and a sub-box; a clear reads back too."""
    with VtestClient.connect(virgl_server.path, "proto0", 0) as client:
        assert client.protocol_version == 0
        target = create_target(client)
        assert target.shm is None
        texels = bytes((i * 7 + 3) & 0xFF for i in range(WIDTH * HEIGHT * 4))
        client.transfer_put(target, texels, width=WIDTH, height=HEIGHT, stride=WIDTH * 4)
        assert read_back(client, target) == texels
        box = client.transfer_get(target, x=2, y=3, width=5, height=2, data_size=40,
                                  stride=20)
        want = b"".join(texels[(y * WIDTH + 2) * 4:(y * WIDTH + 7) * 4] for y in (3, 4))
        assert box == want
        assert_filled(render_clear(client, target, PLUM), PLUM)


def test_protocol3_server_allocates_resource_ids(virgl_server: RunningServer) -> None:
    """Protocol 3: RESOURCE_CREATE2 with handle 0 is answered with a server-chosen
    id, distinct across resources (and across clients when they share a renderer:
    in process isolation each has a renderer, and ids, of its own), and each renders."""
    with VtestClient.connect(virgl_server.path, "v3-a", 3) as a, \
            VtestClient.connect(virgl_server.path, "v3-b", 3) as b:
        ra = [create_target(a) for _ in range(3)]
        rb = [create_target(b) for _ in range(3)]
        for ids in ([r.handle for r in ra], [r.handle for r in rb],
                    [r.handle for r in ra + rb] if virgl_server.isolation == "shared" else []):
            assert 0 not in ids and len(set(ids)) == len(ids)
        for res, color in zip(ra + rb, [RED, GREEN, BLUE] * 2, strict=True):
            client = a if res in ra else b
            assert_filled(render_clear(client, res, color), color)


def test_protocol3_guest_blob_is_a_mapped_fd(virgl_server: RunningServer) -> None:
    """RESOURCE_CREATE_BLOB(GUEST) answers a fresh id and an fd of exactly the
    blob's size that maps read/write."""
    with VtestClient.connect(virgl_server.path, "blob", 3) as client:
        sizes = (4096, 10000)
        blobs = [client.create_blob(p.BLOB_TYPE_GUEST, p.BLOB_FLAG_MAPPABLE, n)
                 for n in sizes]
        assert blobs[0].handle != blobs[1].handle and 0 not in (b.handle for b in blobs)
        for blob, size in zip(blobs, sizes, strict=True):
            assert blob.fd is not None and os.fstat(blob.fd).st_size == size
            view = blob.map()
            view[:5] = b"hello"
            view[size - 1] = 0x5A
            assert view[:5] == b"hello" and view[size - 1] == 0x5A
        # The client still works after the blobs.
        assert_filled(render_clear(client, create_target(client), GREEN), GREEN)


def test_protocol3_sync_create_read_write(virgl_server: RunningServer) -> None:
    """SYNC_CREATE answers distinct ids with the initial value; SYNC_WRITE sets
    it (64 bits) and SYNC_READ reads it back."""
    with VtestClient.connect(virgl_server.path, "sync", 3) as client:
        s1, s2 = client.sync_create(5), client.sync_create(1 << 40)
        assert s1 != s2
        assert client.sync_read(s1) == 5 and client.sync_read(s2) == 1 << 40
        client.sync_write(s1, (1 << 63) + 9)
        assert client.sync_read(s1) == (1 << 63) + 9
        assert client.sync_read(s2) == 1 << 40


def test_protocol3_sync_wait_signalled_by_sync_write(virgl_server: RunningServer) -> None:
    """SYNC_WAIT answers at once with an eventfd that stays unreadable while the
    sync is below the value (after a write of a lower value too) and becomes
    readable once SYNC_WRITE reaches it; one already met is readable at once."""
    with VtestClient.connect(virgl_server.path, "wait", 3) as client:
        sync = client.sync_create(0)
        with client.sync_wait([(sync, 2)], timeout_ms=60_000) as fd:
            assert not fd.wait(0.05)
            client.sync_write(sync, 1)
            assert client.sync_read(sync) == 1  # the write has been handled
            assert not fd.wait(0.05)
            client.sync_write(sync, 2)
            assert fd.wait(10)
        with client.sync_wait([(sync, 2)], timeout_ms=60_000) as done:
            assert done.wait(10)


def test_protocol3_submit_cmd2_signals_sync_on_fence(virgl_server: RunningServer) -> None:
    """SUBMIT_CMD2 with the RING_IDX flag signals its syncs when the batch's
    fence retires: the SYNC_WAIT eventfd becomes readable, SYNC_READ shows the
    value and the batch's clear is in the resource."""
    with VtestClient.connect(virgl_server.path, "cmd2", 3) as client:
        target = create_target(client)
        sync = client.sync_create(0)
        with client.sync_wait([(sync, 7)], timeout_ms=60_000) as fd:
            assert not fd.wait(0.05)
            client.submit_cmd2([BatchSpec(clear_commands(target.handle, PLUM),
                                          syncs=[(sync, 7)], ring_idx=1)])
            assert fd.wait(10)
        assert client.sync_read(sync) == 7
        assert_filled(read_back(client, target), PLUM)


def test_protocol3_get_param(virgl_server: RunningServer) -> None:
    """GET_PARAM(MAX_TIMELINE_COUNT) is valid (64); an unknown param is invalid."""
    with VtestClient.connect(virgl_server.path, "param", 3) as client:
        assert client.get_param(p.PARAM_MAX_TIMELINE_COUNT) == p.MAX_TIMELINE_COUNT
        assert client.get_param(0) is None
        assert client.get_param(999) is None


def test_protocol3_get_capset(virgl_server: RunningServer) -> None:
    """GET_CAPSET(virgl2) is valid and the same caps GET_CAPS2 gave; unknown
    capsets and versions above the host's are invalid."""
    with VtestClient.connect(virgl_server.path, "capset", 3) as client:
        assert client.get_capset(p.CAPSET_VIRGL2, 1) == client.caps
        assert client.get_capset(p.CAPSET_VIRGL, 1) == client.caps_v1
        assert client.get_capset(99, 0) is None
        assert client.get_capset(p.CAPSET_VIRGL2, 999) is None
        assert client.get_param(p.PARAM_MAX_TIMELINE_COUNT) == p.MAX_TIMELINE_COUNT
