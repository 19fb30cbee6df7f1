"""What the fuzzers (tests/fuzz/) found, as a client meets it: each case once made a target
fail; its input also lies in tests/fuzz/regressions/.

- ``engine`` crash-2e8949ae: RESOURCE_CREATE2 with client handle 0xffffffff (protocol 2).
  The C engine's resource table used that value as its tombstone, so it handed the
  message to Python, which created the resource and then failed to tell the C path
  (``vv_conn_add_resource failed (errno 22)``): a valid handle got the client dropped.
"""

from __future__ import annotations

import logging

import pytest
from server_helpers import assert_filled, create_target, render_clear

from virgl_viewer.guest import VtestClient
from virgl_viewer.testing import RunningServer

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
