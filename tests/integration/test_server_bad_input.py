"""A hostile or broken client is dropped alone, cleanly, with one log line.

Each case sends one kind of bad input over a real socket to the in-process
server and proves what ``hostile_client_checks`` promises: exactly one warning
``client NAME (pid N) dropped: COMMAND: reason``; the bad client's socket is
closed; a bystander client connected all along still renders correctly; this
process's fd count returns to its value from before the bad client connected.
The gigabyte cases also prove nothing that big was allocated (peak RSS).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from server_helpers import (
    B8G8R8X8_UNORM,
    DISPLAY_BIND,
    HEIGHT,
    WIDTH,
    create_target,
    dwords,
    header,
    hostile_client_checks,
    peak_rss_growth,
    reset_peak_rss,
)

from virgl_viewer.guest import VtestClient
from virgl_viewer.testing import RunningServer
from virgl_viewer.vtest import protocol as p

pytestmark = pytest.mark.timeout(60)

Act = Callable[[VtestClient], None]
C = p.Cmd
GIB = 1 << 30


@dataclass(frozen=True)
class Bad:
    """One kind of bad input: what the client does, and the drop it must cause."""

    act: Act
    command: str
    reason: str
    version: int = 2
    handshake: bool = True


def raw(*parts: bytes) -> Act:
    return lambda c: c.send_raw(b"".join(parts))


def then_eof(*parts: bytes) -> Act:
    def act(c: VtestClient) -> None:
        c.send_raw(b"".join(parts))
        c.sock.shutdown(socket.SHUT_WR)
    return act


def on_target(make: Callable[[int], bytes]) -> Act:
    """Create a 16x8 display target (shm from protocol 2 on), then send make(handle)."""
    def act(c: VtestClient) -> None:
        c.send_raw(make(create_target(c).handle))
    return act


def get2(handle: int, *, level: int = 0, x: int = 0, y: int = 0, z: int = 0, w: int = WIDTH,
         h: int = HEIGHT, d: int = 1, size: int = 0, offset: int = 0,
         cmd: int = C.TRANSFER_GET2) -> bytes:
    return header(cmd, 10) + dwords(handle, level, x, y, z, w, h, d, size, offset)


def put2(handle: int, **kw: int) -> bytes:
    return get2(handle, cmd=C.TRANSFER_PUT2, **kw)


def transfer(cmd: int, handle: int, *, x: int = 0, y: int = 0, w: int = WIDTH, h: int = HEIGHT,
             d: int = 1, data: bytes | None = None, level: int = 0,
             data_size: int | None = None, length: int | None = None,
             stride: int = WIDTH * 4, layer_stride: int = 0) -> bytes:
    """TRANSFER_GET / TRANSFER_PUT (protocol 0 style, stride of the resource)."""
    size = (len(data) if data is not None else w * h * 4) if data_size is None else data_size
    body = dwords(handle, level, stride, layer_stride, x, y, 0, w, h, d, size)
    n = 11 + ((len(data) + 3) // 4 if cmd == C.TRANSFER_PUT and data is not None else 0)
    return header(cmd, n if length is None else length) + body + (data or b"")


def on_volume(make: Callable[[int], bytes]) -> Act:
    """Create a 16x16x4 3D texture, then send make(handle)."""
    def act(c: VtestClient) -> None:
        res = c.resource_create(p.TARGET_3D, B8G8R8X8_UNORM, p.BIND_SAMPLER_VIEW, 16, 16,
                                depth=4)
        c.send_raw(make(res.handle))
    return act


def unref_twice(c: VtestClient) -> None:
    handle = create_target(c).handle
    c.send_raw(header(C.RESOURCE_UNREF, 1) + dwords(handle) + header(C.RESOURCE_UNREF, 1)
               + dwords(handle))


def cut_transfer_put(c: VtestClient) -> None:
    handle = create_target(c).handle
    c.send_raw(header(C.TRANSFER_PUT, 11 + 128) + dwords(handle, 0, WIDTH * 4, 0, 0, 0, 0,
                                                      WIDTH, 2, 1, 512) + b"\x55" * 200)
    c.sock.shutdown(socket.SHUT_WR)


def cmd2(*payload: int) -> Act:
    return raw(header(C.SUBMIT_CMD2, len(payload)), dwords(*payload))


def sync_wait(*payload: int) -> Act:
    def act(c: VtestClient) -> None:
        c.sync_create(0)
        c.send_raw(header(C.SYNC_WAIT, len(payload)) + dwords(*payload))
    return act


def many_waits(waiters: int, syncs: int) -> Act:
    """``syncs`` syncs at 0, then ``waiters`` SYNC_WAITs each for all of them to reach 1
    (no timeout): every one stays pending."""
    def act(c: VtestClient) -> None:
        ids = [c.sync_create(0) for _ in range(syncs)]
        wait = header(C.SYNC_WAIT, 2 + 3 * syncs) + dwords(0, 0xFFFFFFFF) + b"".join(
            dwords(i, 1, 0) for i in ids)
        c.send_raw(wait * waiters)
    return act


NAME = b"renderer\0"
FRAMING = {
    "unknown-command": Bad(raw(header(99, 0)), "#99", "unknown command"),
    "unknown-command-payload": Bad(raw(header(250, 2), dwords(1, 2)), "#250",
                                   "unknown command"),
    "unref-before-create-renderer": Bad(raw(header(C.RESOURCE_UNREF, 1), dwords(1)),
                                        "RESOURCE_UNREF", "must be CREATE_RENDERER",
                                        handshake=False),
    "caps-before-create-renderer": Bad(raw(header(C.GET_CAPS, 0)), "GET_CAPS",
                                       "must be CREATE_RENDERER", handshake=False),
    "submit-before-create-renderer": Bad(raw(header(C.SUBMIT_CMD, 1), dwords(0)),
                                         "SUBMIT_CMD", "must be CREATE_RENDERER",
                                         handshake=False),
    "second-create-renderer": Bad(raw(header(C.CREATE_RENDERER, len(NAME)), NAME),
                                  "CREATE_RENDERER", "renderer already created"),
    "protocol-version-length-2": Bad(raw(header(C.PROTOCOL_VERSION, 2), dwords(2, 2)),
                                     "PROTOCOL_VERSION", "length 2 != 1"),
    "unref-length-0": Bad(raw(header(C.RESOURCE_UNREF, 0)), "RESOURCE_UNREF",
                          "length 0 != 1"),
    "create2-length-10": Bad(raw(header(C.RESOURCE_CREATE2, 10), dwords(*[1] * 10)),
                             "RESOURCE_CREATE2", "length 10 != 11"),
    "busy-wait-length-3": Bad(raw(header(C.RESOURCE_BUSY_WAIT, 3), dwords(0, 0, 0)),
                              "RESOURCE_BUSY_WAIT", "length 3 != 2"),
    "get-caps-length-1": Bad(raw(header(C.GET_CAPS, 1), dwords(0)), "GET_CAPS",
                             "length 1 != 0"),
    "eof-in-header": Bad(then_eof(b"\x0b\x00\x00"), "header", "closed mid-message"),
    "eof-in-create": Bad(then_eof(header(C.RESOURCE_CREATE, 10), dwords(1, 2, 3)),
                         "RESOURCE_CREATE", "closed mid-message"),
    "eof-in-submit": Bad(then_eof(header(C.SUBMIT_CMD, 100), dwords(*[0] * 99)),
                         "SUBMIT_CMD", "closed mid-message"),
    "transfer-put-data-ends-early": Bad(cut_transfer_put, "TRANSFER_PUT",
                                        "closed mid-message", version=0),
    "sync-wait-length-4": Bad(sync_wait(0, 100, 1, 1), "SYNC_WAIT", "not 2 + 3*count",
                              version=3),
    "sync-wait-length-1": Bad(sync_wait(0), "SYNC_WAIT", "not 2 + 3*count", version=3),
    "sync-wait-unknown-sync": Bad(sync_wait(0, 100, 7, 1, 0), "SYNC_WAIT",
                                  "sync 7 does not belong", version=3),
    "cmd2-headers-past-end": Bad(cmd2(2, 1, 0, 0, 0, 0, 0, 0, 0), "SUBMIT_CMD2",
                                 "do not fit", version=3),
    "cmd2-commands-past-end": Bad(cmd2(1, 1, 9, 4, 0, 0, 0, 0, 0, 0xAB), "SUBMIT_CMD2",
                                  "commands lie outside", version=3),
    "cmd2-offset-wraps": Bad(cmd2(1, 1, 0xFFFFFFFF, 2, 0, 0, 0, 0, 0), "SUBMIT_CMD2",
                             "commands lie outside", version=3),
    "cmd2-syncs-past-end": Bad(cmd2(1, 1, 0, 0, 9, 1, 0, 0, 0, 1, 2), "SUBMIT_CMD2",
                               "syncs lie outside", version=3),
    # two batches submitting the same 20 dwords: in total more than the message holds
    "cmd2-batches-share-commands": Bad(cmd2(2, 0, 17, 20, 0, 0, 0, 0, 0, 0, 17, 20, 0, 0, 0, 0,
                                            0, *[0] * 20), "SUBMIT_CMD2",
                                       "batches 0-1 reference 40 command and 0 sync dwords of "
                                       "a 37-dword message", version=3),
    "sync-wait-257-pending": Bad(many_waits(257, 1), "SYNC_WAIT",
                                 "more than 256 sync waits pending", version=3),
    "sync-waits-on-too-many-syncs": Bad(many_waits(2, 9000), "SYNC_WAIT",
                                        "pending sync waits would wait on 18000 syncs, more "
                                        "than 16384", version=3),
    "cmd2-ring-64": Bad(cmd2(1, 1, 0, 0, 0, 0, 64, 0, 0), "SUBMIT_CMD2", "ring_idx 64",
                        version=3),
}
SEMANTICS = {
    "get2-box-past-width": Bad(on_target(lambda h: get2(h, x=WIDTH - 2, w=4)),
                               "TRANSFER_GET2", "outside resource"),
    "get2-box-wraps": Bad(on_target(lambda h: get2(h, y=0xFFFFFFFF, h=2)), "TRANSFER_GET2",
                          "outside resource"),
    "get2-depth-2": Bad(on_target(lambda h: get2(h, d=2)), "TRANSFER_GET2",
                        "outside resource"),
    "put2-level-1": Bad(on_target(lambda h: put2(h, level=1, w=8, h=4)), "TRANSFER_PUT2",
                        "level 1 > last level 0"),
    "get2-offset-at-shm-end": Bad(on_target(lambda h: get2(h, offset=WIDTH * HEIGHT * 4)),
                                  "TRANSFER_GET2", "offset 512 outside the 512-byte shm"),
    "put2-offset-huge": Bad(on_target(lambda h: put2(h, offset=0xFFFFFFF0)),
                            "TRANSFER_PUT2", "outside the 512-byte shm"),
    "get2-box-past-shm-end": Bad(on_target(lambda h: get2(h, offset=WIDTH * HEIGHT * 4 - 4)),
                                 "TRANSFER_GET2", "failed"),
    "put-box-past-height": Bad(on_target(lambda h: transfer(C.TRANSFER_PUT, h, y=HEIGHT - 1,
                                                            h=2, data=bytes(WIDTH * 8))),
                               "TRANSFER_PUT", "outside resource", version=0),
    "get-level-3": Bad(on_target(lambda h: transfer(C.TRANSFER_GET, h, level=3, w=2, h=1)),
                       "TRANSFER_GET", "level 3 > last level 0", version=0),
    "get-box-past-width": Bad(on_target(lambda h: transfer(C.TRANSFER_GET, h, x=1)),
                              "TRANSFER_GET", "outside resource", version=0),
    # virglrenderer's own check sums these in 32 bits: 2^31 * 2 rows wraps to 0 and the
    # copy ran 4 GiB past the data (SIGSEGV in the server before the check)
    "put-stride-wraps-32-bits": Bad(on_target(lambda h: transfer(
        C.TRANSFER_PUT, h, w=WIDTH, h=3, stride=1 << 31, data=bytes(4096))), "TRANSFER_PUT",
        "stride 2147483648 and layer_stride 0 spans 4294967360 bytes, data_size is 4096",
        version=0),
    "get-stride-wraps-32-bits": Bad(on_target(lambda h: transfer(
        C.TRANSFER_GET, h, w=WIDTH, h=3, stride=1 << 31, data_size=4096)), "TRANSFER_GET",
        "spans 4294967360 bytes, data_size is 4096", version=0),
    "put-layer-stride-wraps-32-bits": Bad(on_volume(lambda h: transfer(
        C.TRANSFER_PUT, h, w=16, h=16, d=3, stride=0, layer_stride=1 << 31,
        data=bytes(4096))), "TRANSFER_PUT",
        "layer_stride 2147483648 spans 4294968320 bytes, data_size is 4096", version=0),
    "put-stride-below-row": Bad(on_target(lambda h: transfer(
        C.TRANSFER_PUT, h, stride=WIDTH * 4 - 4, data=bytes(WIDTH * HEIGHT * 4))),
        "TRANSFER_PUT", "stride 60 is less than the box's row of 64 bytes", version=0),
    "get-layer-stride-below-rows": Bad(on_volume(lambda h: transfer(
        C.TRANSFER_GET, h, w=16, h=16, d=2, stride=0, layer_stride=64, data_size=4096)),
        "TRANSFER_GET", "layer_stride 64 is less than the box's 1024 bytes of rows",
        version=0),
    "protocol-version-after-resources": Bad(on_target(lambda h: header(
        C.PROTOCOL_VERSION, 1) + dwords(3)), "PROTOCOL_VERSION",
        "cannot change once resources, syncs or a context exist"),
    "unref-twice": Bad(unref_twice, "RESOURCE_UNREF", "does not belong to this client"),
    "unref-never-created": Bad(raw(header(C.RESOURCE_UNREF, 1), dwords(5)),
                               "RESOURCE_UNREF", "resource 5 does not belong"),
    "create-duplicate-handle": Bad(on_target(lambda h: header(C.RESOURCE_CREATE2, 11) + dwords(
        h, p.TARGET_2D, B8G8R8X8_UNORM, DISPLAY_BIND, 4, 4, 1, 1, 0, 0, 64)),
        "RESOURCE_CREATE2", "already exists"),
    "create-handle-0": Bad(raw(header(C.RESOURCE_CREATE2, 11), dwords(
        0, p.TARGET_2D, B8G8R8X8_UNORM, DISPLAY_BIND, 4, 4, 1, 1, 0, 0, 64)),
        "RESOURCE_CREATE2", "resource handle 0"),
    "create-v1-duplicate-handle": Bad(on_target(lambda h: header(C.RESOURCE_CREATE, 10) + dwords(
        h, p.TARGET_2D, B8G8R8X8_UNORM, DISPLAY_BIND, 4, 4, 1, 1, 0, 0)),
        "RESOURCE_CREATE", "already exists", version=0),
    "v3-create-with-handle": Bad(raw(header(C.RESOURCE_CREATE2, 11), dwords(
        7, p.TARGET_2D, B8G8R8X8_UNORM, DISPLAY_BIND, 4, 4, 1, 1, 0, 0, 64)),
        "RESOURCE_CREATE2", "handle must be 0", version=3),
    "submit-unknown-virgl-command": Bad(raw(header(C.SUBMIT_CMD, 1), dwords(0xFF)),
                                        "SUBMIT_CMD", "unknown virgl command: virgl command 255"),
    "submit-command-past-buffer": Bad(raw(header(C.SUBMIT_CMD, 2), dwords(7 | 10 << 16, 0)),
                                      "SUBMIT_CMD", "command runs past the buffer: virgl "
                                      "command 7"),
    "submit-virgl-rejects-surface": Bad(on_target(lambda h: header(C.SUBMIT_CMD, 6) + dwords(
        1 | 8 << 8 | 5 << 16, 1, h, 9999, 0, 0)), "SUBMIT_CMD",
        "virgl_renderer_submit_cmd failed"),
    # virglrenderer binds a long shader's object before all its text came; a draw with it
    # then crashed 0.10.4 (the server fuzzer's crash-517641c9)
    "bind-unfinished-long-shader": Bad(raw(
        header(C.SUBMIT_CMD, 16), dwords(1 | 4 << 8 | 15 << 16, 4, 0, 400, 300, 0,
                                         *[0x41414141] * 10),
        header(C.SUBMIT_CMD, 3), dwords(31 | 2 << 16, 4, 0)), "SUBMIT_CMD",
        "shader 4 used before all its text came: virgl command 31"),
    # 60 indices x 2^27 + 1 instances: llvmpipe's vertex stage held the render thread
    # for minutes (the server fuzzer's crash-1016ba88)
    "draw-over-budget": Bad(raw(header(C.SUBMIT_CMD, 13), dwords(
        8 | 12 << 16, 0, 60, 4, 1, 0x08000001, 0, 0, 0, 0, 0, 0xFFFFFFFF, 0)), "SUBMIT_CMD",
        "a draw of count x instances over budget draw_vertices: virgl command 8"),
    "long-shader-over-budget": Bad(raw(header(C.SUBMIT_CMD, 16), dwords(
        1 | 4 << 8 | 15 << 16, 4, 0, 0x7FFFFFFF, 300, 0, *[0x41414141] * 10)), "SUBMIT_CMD",
        "shader 4: long shader text over budget long_shader_bytes"),
    "long-shader-continuation-alone": Bad(raw(header(C.SUBMIT_CMD, 16), dwords(
        1 | 4 << 8 | 15 << 16, 4, 0, 1 << 31 | 40, 300, 0, *[0x41414141] * 10)), "SUBMIT_CMD",
        "shader 4: long shader text out of sequence"),
    "create-invalid-target": Bad(raw(header(C.RESOURCE_CREATE2, 11), dwords(
        1, 99, B8G8R8X8_UNORM, DISPLAY_BIND, 4, 4, 1, 1, 0, 0, 64)), "RESOURCE_CREATE2",
        "virgl_renderer_resource_create failed"),
    "context-init-capset-0": Bad(raw(header(C.CONTEXT_INIT, 1), dwords(0)), "CONTEXT_INIT",
                                 "capset 0", version=3),
    "context-init-changes-capset": Bad(raw(header(C.CONTEXT_INIT, 1), dwords(2),
                                           header(C.CONTEXT_INIT, 1), dwords(1)),
                                       "CONTEXT_INIT", "context already initialised",
                                       version=3),
    "context-init-unknown-capset": Bad(raw(header(C.CONTEXT_INIT, 1), dwords(99)),
                                       "CONTEXT_INIT", "failed", version=3),
    "blob-on-protocol-2": Bad(raw(header(C.RESOURCE_CREATE_BLOB, 6), dwords(1, 1, 4096, 0,
                                                                            0, 0)),
                              "RESOURCE_CREATE_BLOB", "need protocol 3"),
}
GIGABYTES = {
    "submit-cmd-4gib": Bad(raw(header(C.SUBMIT_CMD, 0x3FFFFFFF)), "SUBMIT_CMD",
                           "exceeds the limit"),
    "transfer-put-4gib": Bad(raw(header(C.TRANSFER_PUT, 11 + 0x3FFFFFFC), dwords(
        1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0xFFFFFFF0)), "TRANSFER_PUT", "exceeds the limit",
        version=0),
    "transfer-put-data-size-4gib": Bad(on_target(lambda h: transfer(
        C.TRANSFER_PUT, h, w=1, h=1, data_size=0xFFFFFFF0, length=15)), "TRANSFER_PUT",
        "exceeds the limit", version=0),
    "create2-data-size-4gib": Bad(raw(header(C.RESOURCE_CREATE2, 11), dwords(
        1, p.TARGET_2D, B8G8R8X8_UNORM, DISPLAY_BIND, 1, 1, 1, 1, 0, 0, 0xFFFFFFFF)),
        "RESOURCE_CREATE2", "data_size 4294967295 is larger than a 1x1x1 resource needs"),
    "transfer-get-data-size-4gib": Bad(on_target(lambda h: transfer(
        C.TRANSFER_GET, h, w=1, h=1, data_size=0xFFFFFFFF)), "TRANSFER_GET",
        "data_size 4294967295", version=0),
    "sync-wait-4gib": Bad(raw(header(C.SYNC_WAIT, 0xFFFFFFFE)), "SYNC_WAIT",
                          "exceeds the limit", version=3),
    "submit-cmd2-4gib": Bad(raw(header(C.SUBMIT_CMD2, 0xFFFFFFFF), dwords(1)),
                            "SUBMIT_CMD2", "exceeds the limit", version=3),
    "renderer-name-1gib": Bad(raw(header(C.CREATE_RENDERER, GIB)), "CREATE_RENDERER",
                              "too long", handshake=False),
}


def run_bad(server: RunningServer, caplog: pytest.LogCaptureFixture, bad: Bad) -> None:
    name = "hostile" if bad.handshake else "?"
    with hostile_client_checks(server, caplog, name, bad.command, reason=bad.reason), \
            VtestClient.connect(server.path, "hostile", bad.version,
                                handshake=bad.handshake) as client:
        bad.act(client)
        assert client.wait_closed(), "the server kept the bad client's socket open"


@pytest.mark.parametrize("bad", FRAMING.values(), ids=FRAMING.keys())
def test_bad_framing_drops_only_that_client(virgl_server: RunningServer,
                                            caplog: pytest.LogCaptureFixture,
                                            bad: Bad) -> None:
    """Unknown commands, commands before CREATE_RENDERER, a second one, lengths
    that disagree with a fixed-size command, EOF inside a message, SYNC_WAIT and
    SUBMIT_CMD2 layouts that do not fit their message: the client is dropped."""
    run_bad(virgl_server, caplog, bad)


@pytest.mark.parametrize("bad", SEMANTICS.values(), ids=SEMANTICS.keys())
def test_bad_requests_drop_only_that_client(virgl_server: RunningServer,
                                            caplog: pytest.LogCaptureFixture,
                                            bad: Bad) -> None:
    """Well-framed requests that name boxes outside the resource or its levels,
    offsets past the shm, resources the client does not own (again), or handles
    the protocol version forbids: the client is dropped."""
    run_bad(virgl_server, caplog, bad)


@pytest.mark.parametrize("bad", GIGABYTES.values(), ids=GIGABYTES.keys())
def test_gigabyte_sizes_allocate_nothing(virgl_server: RunningServer,
                                         caplog: pytest.LogCaptureFixture,
                                         bad: Bad) -> None:
    """Lengths and data sizes of gigabytes drop the client before anything of
    that size is allocated: this process's peak RSS grows by less than 64 MiB (the
    watcher's rendering meanwhile moves it by up to ~20 MiB: llvmpipe's JIT and
    thread arenas; Mesa 25 more than 22.3)."""
    reset_peak_rss()
    run_bad(virgl_server, caplog, bad)
    assert peak_rss_growth() < 64 << 20, f"peak RSS grew {peak_rss_growth() >> 20} MiB"


def test_sync_wait_with_more_waits_than_syncs_allocates_nothing(
        virgl_server: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    """A SYNC_WAIT naming 720896 (sync, value) pairs, far more than the 16384
    syncs a client may own, is dropped at its header: the peak RSS grows by
    less than 16 MiB (decoding it costs ~100 MiB of Python objects)."""
    count = 11 << 16
    with hostile_client_checks(virgl_server, caplog, "hostile", "SYNC_WAIT"), \
            VtestClient.connect(virgl_server.path, "hostile", 3) as client:
        entries = dwords(client.sync_create(0), 1, 0) * (1 << 16)
        reset_peak_rss()
        try:
            client.send_raw(header(C.SYNC_WAIT, 2 + 3 * count) + dwords(0, 60_000))
            for _ in range(count >> 16):
                client.send_raw(entries)
            client.recv_raw(8, timeout=30)  # the server has handled it (reply or EOF)
        except (BrokenPipeError, ConnectionResetError):
            pass  # dropped at the header, as it should be
        assert peak_rss_growth() < 16 << 20, f"peak RSS grew {peak_rss_growth() >> 20} MiB"
        assert client.wait_closed()
