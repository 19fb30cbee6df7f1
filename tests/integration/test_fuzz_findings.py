"""What the fuzzers (tests/fuzz/) found, as a client meets it: each case once made a target
fail; its input also lies in tests/fuzz/regressions/.

- ``engine`` crash-2e8949ae: RESOURCE_CREATE2 with client handle 0xffffffff (protocol 2).
  The C engine's resource table used that value as its tombstone, so it handed the
  message to Python, which created the resource and then failed to tell the C path
  (``vv_conn_add_resource failed (errno 22)``): a valid handle got the client dropped.
- ``server`` leak (log: ``disconnected`` then ``dropped: RESOURCE_CREATE2:
  virgl_renderer_resource_attach_iov failed (errno 22)``): a protocol-3 client that
  hangs up right after RESOURCE_CREATE2. Sending the reply found it gone and closed the
  session, but the handler went on: it made the shm (fd + mapping) for a resource the
  close had already destroyed, and kept neither (issue 13 class 3).
"""

from __future__ import annotations

import logging
import socket

import pytest
from server_helpers import (
    B8G8R8X8_UNORM,
    DISPLAY_BIND,
    assert_filled,
    create_target,
    dwords,
    header,
    render_clear,
)
from support.procs import wait_for

from virgl_viewer.guest import VtestClient
from virgl_viewer.testing import RunningServer
from virgl_viewer.vtest import protocol as p

pytestmark = pytest.mark.timeout(60)
RED = (1.0, 0.0, 0.0, 1.0)
GREEN = (0.0, 1.0, 0.0, 1.0)


@pytest.mark.parametrize("handle", [0xFFFFFFFF, 0xFFFFFFFE])
def test_top_resource_handles_are_served_like_any_other(
        virgl_server: RunningServer, caplog: pytest.LogCaptureFixture, handle: int) -> None:
    caplog.set_level(logging.INFO)
    with VtestClient.connect(virgl_server.path, "top-handle", 2) as client:
        target = create_target(client, handle=handle)
        assert_filled(render_clear(client, target, RED), RED)
        client.resource_unref(target)
        again = create_target(client, handle=handle)  # the same handle, reused
        assert_filled(render_clear(client, again, GREEN), GREEN)
    drops = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert not drops, drops


def _shm_mappings() -> int:
    with open("/proc/self/maps") as f:
        return f.read().count("memfd:vtest-")


def test_a_client_gone_before_its_create_reply_leaves_nothing(
        virgl_server: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with VtestClient.connect(virgl_server.path, "bystander", 2) as bystander:
        target = create_target(bystander)
        assert_filled(render_clear(bystander, target, RED), RED)
        assert virgl_server.settle(clients=1)  # process isolation: the pool at rest
        fds, maps = virgl_server.open_fds(), _shm_mappings()
        for _ in range(5):
            client = VtestClient.connect(virgl_server.path, "gone", 3)
            client.send_raw(header(p.Cmd.RESOURCE_CREATE2, p.RES_CREATE2_SIZE) + dwords(
                0, p.TARGET_2D, B8G8R8X8_UNORM, DISPLAY_BIND, 16, 16, 1, 1, 0, 0, 16 * 16 * 4))
            client.sock.shutdown(socket.SHUT_RDWR)
            client.close()
        assert virgl_server.settle(clients=1)
        assert wait_for(lambda: (virgl_server.open_fds(), _shm_mappings()) == (fds, maps),
                        5.0), (f"{virgl_server.open_fds()} fds and {_shm_mappings()} shm "
                               f"mappings, {fds} and {maps} before")
        assert_filled(render_clear(bystander, target, GREEN), GREEN)
    late = [r.getMessage() for r in caplog.records if "gone" in r.getMessage()
            and "dropped" in r.getMessage()]
    assert not late, late  # nothing is handled for a client after it is closed
