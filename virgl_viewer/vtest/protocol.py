"""vtest protocol constants and message types.

Constants mirror virglrenderer's vtest/vtest_protocol.h (protocol 3) and the
bind/target values of src/virgl_hw.h. A message is a header of two little-
endian uint32 ``[length, command_id]`` and a payload; ``length`` counts payload
dwords except for CREATE_RENDERER (bytes) and the GET_CAPS/GET_CAPS2 replies
(caps bytes + 1).

Every message is a frozen dataclass named after its VCMD (CamelCase). The same
classes describe requests (client -> server) and, with the ``*Reply`` classes,
replies (server -> client).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

VTEST_PROTOCOL_VERSION = 3
VTEST_DEFAULT_SOCKET_NAME = "/tmp/.virgl_test"
HEADER_SIZE = 8  # bytes: [length, command_id]


class Cmd(IntEnum):
    GET_CAPS = 1
    RESOURCE_CREATE = 2
    RESOURCE_UNREF = 3
    TRANSFER_GET = 4
    TRANSFER_PUT = 5
    SUBMIT_CMD = 6
    RESOURCE_BUSY_WAIT = 7
    CREATE_RENDERER = 8
    GET_CAPS2 = 9
    PING_PROTOCOL_VERSION = 10
    PROTOCOL_VERSION = 11
    RESOURCE_CREATE2 = 12
    TRANSFER_GET2 = 13
    TRANSFER_PUT2 = 14
    GET_PARAM = 15
    GET_CAPSET = 16
    CONTEXT_INIT = 17
    RESOURCE_CREATE_BLOB = 18
    SYNC_CREATE = 19
    SYNC_UNREF = 20
    SYNC_READ = 21
    SYNC_WRITE = 22
    SYNC_WAIT = 23
    SUBMIT_CMD2 = 24


# Fixed payload sizes in dwords (vtest_protocol.h VCMD_*_SIZE).
RES_CREATE_SIZE = 10
RES_CREATE2_SIZE = 11
RES_UNREF_SIZE = 1
TRANSFER_HDR_SIZE = 11
TRANSFER2_HDR_SIZE = 10
BUSY_WAIT_SIZE = 2
PROTOCOL_VERSION_SIZE = 1
GET_PARAM_SIZE = 1
GET_CAPSET_SIZE = 2
CONTEXT_INIT_SIZE = 1
RES_CREATE_BLOB_SIZE = 6
SYNC_CREATE_SIZE = 2
SYNC_UNREF_SIZE = 1
SYNC_READ_SIZE = 1
SYNC_WRITE_SIZE = 3
SUBMIT_CMD2_BATCH_DWORDS = 8  # upstream 0.10.4 wrongly bound-checks 6

BUSY_WAIT_FLAG_WAIT = 1
SYNC_WAIT_FLAG_ANY = 1
SUBMIT_CMD2_FLAG_RING_IDX = 1
PARAM_MAX_TIMELINE_COUNT = 1
MAX_TIMELINE_COUNT = 64

BLOB_TYPE_GUEST = 1
BLOB_TYPE_HOST3D = 2
BLOB_TYPE_HOST3D_GUEST = 3
BLOB_FLAG_MAPPABLE = 1
BLOB_FLAG_SHAREABLE = 2
BLOB_FLAG_CROSS_DEVICE = 4

# virgl capset ids (virglrenderer.h enum virgl_renderer_capset)
CAPSET_VIRGL = 1
CAPSET_VIRGL2 = 2
CAPSET_VENUS = 4
CAPSET_NAMES = {CAPSET_VIRGL: "virgl", CAPSET_VIRGL2: "virgl2", CAPSET_VENUS: "venus"}

# Bind flags (src/virgl_hw.h VIRGL_BIND_*)
BIND_DEPTH_STENCIL = 1 << 0
BIND_RENDER_TARGET = 1 << 1
BIND_SAMPLER_VIEW = 1 << 3
BIND_VERTEX_BUFFER = 1 << 4
BIND_INDEX_BUFFER = 1 << 5
BIND_CONSTANT_BUFFER = 1 << 6
BIND_DISPLAY_TARGET = 1 << 7
BIND_COMMAND_ARGS = 1 << 8
BIND_STREAM_OUTPUT = 1 << 11
BIND_SHADER_BUFFER = 1 << 14
BIND_QUERY_BUFFER = 1 << 15
BIND_CURSOR = 1 << 16
BIND_CUSTOM = 1 << 17
BIND_SCANOUT = 1 << 18
BIND_STAGING = 1 << 19
BIND_SHARED = 1 << 20
BIND_NAMES = {
    BIND_DEPTH_STENCIL: "DEPTH_STENCIL", BIND_RENDER_TARGET: "RENDER_TARGET",
    BIND_SAMPLER_VIEW: "SAMPLER_VIEW", BIND_VERTEX_BUFFER: "VERTEX_BUFFER",
    BIND_INDEX_BUFFER: "INDEX_BUFFER", BIND_CONSTANT_BUFFER: "CONSTANT_BUFFER",
    BIND_DISPLAY_TARGET: "DISPLAY_TARGET", BIND_COMMAND_ARGS: "COMMAND_ARGS",
    BIND_STREAM_OUTPUT: "STREAM_OUTPUT", BIND_SHADER_BUFFER: "SHADER_BUFFER",
    BIND_QUERY_BUFFER: "QUERY_BUFFER", BIND_CURSOR: "CURSOR", BIND_CUSTOM: "CUSTOM",
    BIND_SCANOUT: "SCANOUT", BIND_STAGING: "STAGING", BIND_SHARED: "SHARED",
}

# pipe_texture_target (src/gallium/include/pipe/p_defines.h order)
TARGET_BUFFER = 0
TARGET_1D = 1
TARGET_2D = 2
TARGET_3D = 3
TARGET_CUBE = 4
TARGET_RECT = 5
TARGET_1D_ARRAY = 6
TARGET_2D_ARRAY = 7
TARGET_CUBE_ARRAY = 8
TARGET_NAMES = {
    TARGET_BUFFER: "buffer", TARGET_1D: "1D", TARGET_2D: "2D", TARGET_3D: "3D",
    TARGET_CUBE: "cube", TARGET_RECT: "rect", TARGET_1D_ARRAY: "1D array",
    TARGET_2D_ARRAY: "2D array", TARGET_CUBE_ARRAY: "cube array",
}


# ---------------------------------------------------------------- requests
@dataclass(slots=True)
class CreateRenderer:
    name: bytes  # as sent, usually NUL-terminated


@dataclass(slots=True)
class GetCaps:
    pass


@dataclass(slots=True)
class GetCaps2:
    pass


@dataclass(slots=True)
class PingProtocolVersion:
    pass


@dataclass(slots=True)
class ProtocolVersion:
    version: int


@dataclass(slots=True)
class ResourceCreate:
    handle: int
    target: int
    format: int
    bind: int
    width: int
    height: int
    depth: int
    array_size: int
    last_level: int
    nr_samples: int


@dataclass(slots=True)
class ResourceCreate2:
    handle: int
    target: int
    format: int
    bind: int
    width: int
    height: int
    depth: int
    array_size: int
    last_level: int
    nr_samples: int
    data_size: int


@dataclass(slots=True)
class ResourceUnref:
    handle: int


@dataclass(slots=True)
class TransferGet:
    handle: int
    level: int
    stride: int
    layer_stride: int
    x: int
    y: int
    z: int
    width: int
    height: int
    depth: int
    data_size: int


@dataclass(slots=True)
class TransferPut:
    handle: int
    level: int
    stride: int
    layer_stride: int
    x: int
    y: int
    z: int
    width: int
    height: int
    depth: int
    data_size: int
    data: bytes = field(repr=False)  # exactly data_size bytes


@dataclass(slots=True)
class TransferGet2:
    handle: int
    level: int
    x: int
    y: int
    z: int
    width: int
    height: int
    depth: int
    data_size: int
    offset: int


@dataclass(slots=True)
class TransferPut2:
    handle: int
    level: int
    x: int
    y: int
    z: int
    width: int
    height: int
    depth: int
    data_size: int
    offset: int


@dataclass(slots=True)
class ResourceBusyWait:
    handle: int
    flags: int


@dataclass(slots=True)
class SubmitCmd:
    # The virgl command dwords, little-endian. A fresh bytearray owned by the
    # event: the server may rewrite handles in place.
    commands: bytearray = field(repr=False)


@dataclass(slots=True)
class GetParam:
    param: int


@dataclass(slots=True)
class GetCapset:
    capset_id: int
    version: int


@dataclass(slots=True)
class ContextInit:
    capset_id: int


@dataclass(slots=True)
class ResourceCreateBlob:
    blob_type: int
    flags: int
    size: int  # 64-bit
    blob_id: int  # 64-bit


@dataclass(slots=True)
class SyncCreate:
    value: int  # 64-bit


@dataclass(slots=True)
class SyncUnref:
    sync_id: int


@dataclass(slots=True)
class SyncRead:
    sync_id: int


@dataclass(slots=True)
class SyncWrite:
    sync_id: int
    value: int


@dataclass(slots=True)
class SyncWait:
    flags: int
    timeout: int  # ms
    waits: tuple[tuple[int, int], ...]  # (sync_id, value)


@dataclass(slots=True)
class SubmitBatch:
    flags: int
    ring_idx: int
    cmd_offset: int  # dwords into SubmitCmd2.payload
    cmd_size: int  # dwords
    syncs: tuple[tuple[int, int], ...]  # (sync_id, value) to signal


@dataclass(slots=True)
class SubmitCmd2:
    batches: tuple[SubmitBatch, ...]
    # The whole SUBMIT_CMD2 payload (bytearray, rewritable in place). A batch's
    # commands are payload[4*cmd_offset : 4*(cmd_offset+cmd_size)]; the codec
    # has checked every batch lies inside it.
    payload: bytearray = field(repr=False)


Request = (
    CreateRenderer | GetCaps | GetCaps2 | PingProtocolVersion | ProtocolVersion
    | ResourceCreate | ResourceCreate2 | ResourceUnref | TransferGet | TransferPut
    | TransferGet2 | TransferPut2 | ResourceBusyWait | SubmitCmd | GetParam | GetCapset
    | ContextInit | ResourceCreateBlob | SyncCreate | SyncUnref | SyncRead | SyncWrite
    | SyncWait | SubmitCmd2
)

# ---------------------------------------------------------------- replies
@dataclass(slots=True)
class CapsReply:
    """GET_CAPS reply (header id 1) or GET_CAPS2 reply (header id 2, not 9):
    header length is len(caps)+1, as upstream sends it."""

    command: int
    caps: bytes = field(repr=False)


@dataclass(slots=True)
class PingProtocolVersionReply:
    pass


@dataclass(slots=True)
class ProtocolVersionReply:
    version: int


@dataclass(slots=True)
class ResourceIdReply:
    """[1, command, res_id] for RESOURCE_CREATE(2) (v3) and CREATE_BLOB."""

    command: int
    res_id: int


@dataclass(slots=True)
class BusyWaitReply:
    busy: int


@dataclass(slots=True)
class TransferGetData:
    """Raw bytes of a TRANSFER_GET (v0/1): no header."""

    data: bytes = field(repr=False)


@dataclass(slots=True)
class GetParamReply:
    valid: int
    value: int


@dataclass(slots=True)
class GetCapsetReply:
    valid: int
    caps: bytes = field(repr=False)


@dataclass(slots=True)
class SyncCreateReply:
    sync_id: int


@dataclass(slots=True)
class SyncReadReply:
    value: int


@dataclass(slots=True)
class SyncWaitReply:
    """[0, 23]; an eventfd follows as a separate fd message."""


@dataclass(slots=True)
class FdMessage:
    """One data byte carrying a file descriptor by SCM_RIGHTS (shm, blob,
    SYNC_WAIT eventfd). Always sent with its own sendmsg, after the bytes
    queued before it."""

    fd: int


Reply = (
    CapsReply | PingProtocolVersionReply | ProtocolVersionReply | ResourceIdReply
    | BusyWaitReply | TransferGetData | GetParamReply | GetCapsetReply | SyncCreateReply
    | SyncReadReply | SyncWaitReply | FdMessage
)
