"""A resource the client unrefs can outlive the unref inside virglrenderer.

A query object keeps the buffer it writes its result into (vrend_create_query
takes a reference), and every GET_QUERY_RESULT writes the result into that
buffer's backing. Before the server detached the backing at unref, the write
went into the unmapped shm: one client, four messages, SIGSEGV of the whole
server (probed: exit 139). Now the client goes on rendering, and so does a
bystander.
"""

from __future__ import annotations

import struct

import pytest
from server_helpers import (
    TEAL,
    Bystander,
    assert_filled,
    create_target,
    render_clear,
)
from support.procs import wait_for

from virgl_viewer.guest import VtestClient
from virgl_viewer.guest.commands import ObjectType
from virgl_viewer.testing import RunningServer
from virgl_viewer.vtest import protocol as p

pytestmark = pytest.mark.timeout(60)

BIND_CUSTOM = 1 << 17  # virgl_hw.h VIRGL_BIND_CUSTOM: a host-memory buffer, as Mesa's query buffers
CCMD_CREATE_OBJECT, CCMD_BEGIN_QUERY, CCMD_END_QUERY, CCMD_GET_QUERY_RESULT = 1, 19, 20, 21
PIPE_QUERY_TIME_ELAPSED = 5
QUERY = 1  # the query object's handle (objects are per context)


def ccmd(op: int, obj: int, *payload: int) -> list[int]:
    return [op | obj << 8 | len(payload) << 16, *payload]


def pack(dws: list[int]) -> bytes:
    return struct.pack(f"<{len(dws)}I", *dws)


@pytest.mark.parametrize("version", [2, 0], ids=["shm", "no-shm"])
def test_query_result_after_its_buffer_is_unrefd(virgl_server: RunningServer,
                                                  version: int) -> None:
    bystander = Bystander(virgl_server)
    try:
        with VtestClient.connect(virgl_server.path, "querier", version) as c:
            buf = c.resource_create(p.TARGET_BUFFER, 0, BIND_CUSTOM, 64, 1,
                                    data_size=64 if version >= 2 else 0)
            c.submit(pack(ccmd(CCMD_CREATE_OBJECT, ObjectType.QUERY, QUERY,
                               PIPE_QUERY_TIME_ELAPSED, 0, buf.handle)
                          + ccmd(CCMD_BEGIN_QUERY, 0, QUERY) + ccmd(CCMD_END_QUERY, 0, QUERY)
                          + ccmd(CCMD_GET_QUERY_RESULT, 0, QUERY, 0)))
            c.resource_unref(buf)
            for _ in range(20):
                c.submit(pack(ccmd(CCMD_GET_QUERY_RESULT, 0, QUERY, 0)))
            target = create_target(c)
            assert_filled(render_clear(c, target, TEAL), TEAL)
            bystander.renders()
        assert wait_for(lambda: virgl_server.session_count() == 1)
        bystander.renders()
    finally:
        bystander.close()
