"""vv_rewrite: the resource-handle map and the virgl command-stream rewriter.

Each test builds a command stream dword by dword and checks the exact dwords
that come back. Handle positions are written out literally from
docs/virgl-handles.md (payload index p0 = first dword after the
header), independent of how the C code derives them.
"""

from __future__ import annotations

import errno
import random

import pytest

from virgl_viewer._native import ffi, lib

# Client handle -> server handle used by most tests. Every client id below 10
# is mapped, so a dword rewritten by mistake is always visible.
MAPPING = {c: 0x1000 + 16 * c for c in range(1, 10)}
FILLER = 1  # a mapped client id, used for every dword that must stay put


def cmd(cmd_id: int, payload: list[int], obj: int = 0) -> list[int]:
    """Header dword (bits 0-7 cmd, 8-15 object type, 16-31 len) + payload."""
    assert len(payload) < 1 << 16
    return [cmd_id | (obj << 8) | (len(payload) << 16), *payload]


def new_map(mapping: dict[int, int] | None = None):
    m = ffi.gc(lib.vv_map_new(), lib.vv_map_free)
    assert m != ffi.NULL
    for client, server in (MAPPING if mapping is None else mapping).items():
        assert lib.vv_map_set(m, client, server) == 0
    return m


def rewrite(m, dwords: list[int]) -> tuple[int, tuple[int, int, int, int, int], list[int]]:
    buf = ffi.new("uint32_t[]", dwords) if dwords else ffi.new("uint32_t[1]")
    err = ffi.new("struct vv_rewrite_error *")
    code = lib.vv_rewrite_cmds(m, buf, len(dwords), err)
    fields = (err.offset_dw, err.cmd, err.obj_type, err.handle, err.code)
    return code, fields, list(buf)[: len(dwords)]


OK_ERR = (0, 0, 0, 0, 0)

# Command ids (enum virgl_context_cmd) used by name below.
NOP, CREATE_OBJECT, BIND_OBJECT = 0, 1, 2
SET_FRAMEBUFFER_STATE, SET_VERTEX_BUFFERS, DRAW_VBO = 5, 6, 8
RESOURCE_INLINE_WRITE, SET_SAMPLER_VIEWS, SET_INDEX_BUFFER = 9, 10, 11
SET_CONSTANT_BUFFER, BLIT, RESOURCE_COPY_REGION = 12, 16, 17
SET_UNIFORM_BUFFER, SET_SHADER_BUFFERS, SET_SHADER_IMAGES = 27, 34, 35
LAUNCH_GRID, SET_ATOMIC_BUFFERS, SET_DEBUG_FLAGS = 37, 40, 41
GET_QUERY_RESULT_QBO, TRANSFER3D, END_TRANSFERS = 42, 43, 44
COPY_TRANSFER3D, CLEAR_TEXTURE, PIPE_RESOURCE_SET_TYPE = 45, 47, 49
GET_MEMORY_INFO, SEND_STRING_MARKER = 50, 51
CREATE_VIDEO_BUFFER, DECODE_BITSTREAM, ENCODE_BITSTREAM = 55, 59, 60
# enum virgl_object_type
OBJ_SHADER, OBJ_SAMPLER_VIEW, OBJ_SURFACE, OBJ_QUERY = 4, 6, 8, 9
OBJ_STREAMOUT_TARGET, OBJ_MSAA_SURFACE = 10, 11

# (name, cmd, obj, len, payload indices holding resource handles)
HANDLE_CASES = [
    ("create sampler view", CREATE_OBJECT, OBJ_SAMPLER_VIEW, 6, [1]),
    ("create surface", CREATE_OBJECT, OBJ_SURFACE, 5, [1]),
    ("create query", CREATE_OBJECT, OBJ_QUERY, 4, [3]),
    ("create streamout target", CREATE_OBJECT, OBJ_STREAMOUT_TARGET, 4, [1]),
    ("create msaa surface", CREATE_OBJECT, OBJ_MSAA_SURFACE, 6, [1]),
    ("vertex buffers x0", SET_VERTEX_BUFFERS, 0, 0, []),
    ("vertex buffers x1", SET_VERTEX_BUFFERS, 0, 3, [2]),
    ("vertex buffers x3", SET_VERTEX_BUFFERS, 0, 9, [2, 5, 8]),
    ("draw vbo", DRAW_VBO, 0, 12, []),
    ("draw vbo tess", DRAW_VBO, 0, 14, []),
    ("draw vbo indirect", DRAW_VBO, 0, 20, [14, 19]),
    ("inline write, no data", RESOURCE_INLINE_WRITE, 0, 11, [0]),
    ("inline write", RESOURCE_INLINE_WRITE, 0, 20, [0]),
    ("index buffer unbind form", SET_INDEX_BUFFER, 0, 1, [0]),
    ("index buffer", SET_INDEX_BUFFER, 0, 3, [0]),
    ("blit", BLIT, 0, 21, [3, 12]),
    ("resource copy region", RESOURCE_COPY_REGION, 0, 13, [0, 5]),
    ("uniform buffer", SET_UNIFORM_BUFFER, 0, 5, [4]),
    ("shader buffers x0", SET_SHADER_BUFFERS, 0, 2, []),
    ("shader buffers x1", SET_SHADER_BUFFERS, 0, 5, [4]),
    ("shader buffers x2", SET_SHADER_BUFFERS, 0, 8, [4, 7]),
    ("shader buffers x2 + 2 ignored", SET_SHADER_BUFFERS, 0, 10, [4, 7]),
    ("shader images x0 + 4 ignored", SET_SHADER_IMAGES, 0, 6, []),
    ("shader images x1", SET_SHADER_IMAGES, 0, 7, [6]),
    ("shader images x2", SET_SHADER_IMAGES, 0, 12, [6, 11]),
    ("shader images x2 + 4 ignored", SET_SHADER_IMAGES, 0, 16, [6, 11]),
    ("launch grid", LAUNCH_GRID, 0, 8, [6]),
    ("atomic buffers x0", SET_ATOMIC_BUFFERS, 0, 3, []),
    ("atomic buffers x1", SET_ATOMIC_BUFFERS, 0, 4, [3]),
    ("atomic buffers x2", SET_ATOMIC_BUFFERS, 0, 7, [3, 6]),
    ("atomic buffers x2 + 2 ignored", SET_ATOMIC_BUFFERS, 0, 9, [3, 6]),
    ("query result qbo", GET_QUERY_RESULT_QBO, 0, 6, [1]),
    ("transfer3d", TRANSFER3D, 0, 13, [0]),
    ("transfer3d + extra", TRANSFER3D, 0, 16, [0]),
    ("copy transfer3d", COPY_TRANSFER3D, 0, 14, [0, 11]),
    ("clear texture", CLEAR_TEXTURE, 0, 12, [0]),
    ("pipe resource set type, 1 plane", PIPE_RESOURCE_SET_TYPE, 0, 10, [0]),
    ("pipe resource set type, 4 planes", PIPE_RESOURCE_SET_TYPE, 0, 16, [0]),
    ("video buffer, 1 plane", CREATE_VIDEO_BUFFER, 0, 5, [4]),
    ("video buffer, 3 planes", CREATE_VIDEO_BUFFER, 0, 7, [4, 5, 6]),
    ("video buffer, planes clamped to 3", CREATE_VIDEO_BUFFER, 0, 9, [4, 5, 6]),
    ("decode bitstream", DECODE_BITSTREAM, 0, 5, [2, 3]),
    ("encode bitstream", ENCODE_BITSTREAM, 0, 5, [2, 3, 4]),
]


@pytest.mark.parametrize(
    ("cmd_id", "obj", "length", "slots"),
    [case[1:] for case in HANDLE_CASES],
    ids=[case[0] for case in HANDLE_CASES],
)
def test_resource_slots_are_rewritten_and_nothing_else(cmd_id, obj, length, slots):
    payload = [FILLER] * length
    for k, slot in enumerate(slots):
        payload[slot] = 2 + k
    expected = list(payload)
    for slot in slots:
        expected[slot] = MAPPING[payload[slot]]
    stream = cmd(cmd_id, payload, obj)
    code, err, out = rewrite(new_map(), stream)
    assert (code, err) == (0, OK_ERR)
    assert out == [stream[0], *expected]


@pytest.mark.parametrize(
    ("cmd_id", "obj", "length", "slots"),
    [case[1:] for case in HANDLE_CASES if case[4]],
    ids=[case[0] for case in HANDLE_CASES if case[4]],
)
def test_handle_zero_stays_zero(cmd_id, obj, length, slots):
    stream = cmd(cmd_id, [0] * length, obj)
    assert rewrite(new_map(), stream) == (0, OK_ERR, stream)


# Commands (and CREATE_OBJECT types) with no resource handles at all, at a
# length the decoder accepts: every dword must stay as it was.
NO_HANDLE_CASES = [
    (0, 0, 7),  # NOP
    (CREATE_OBJECT, 1, 11),  # BLEND
    (CREATE_OBJECT, 2, 9),  # RASTERIZER
    (CREATE_OBJECT, 3, 5),  # DSA
    (CREATE_OBJECT, OBJ_SHADER, 12),
    (CREATE_OBJECT, 5, 9),  # VERTEX_ELEMENTS x2
    (CREATE_OBJECT, 7, 9),  # SAMPLER_STATE
    (CREATE_OBJECT, 0, 6),  # NULL type (decoder: EINVAL)
    (CREATE_OBJECT, 12, 6),  # past VIRGL_MAX_OBJECTS
    (CREATE_OBJECT, 255, 6),
    (BIND_OBJECT, 1, 1),
    (3, 8, 1),  # DESTROY_OBJECT
    (4, 0, 7),  # SET_VIEWPORT_STATE
    (SET_FRAMEBUFFER_STATE, 0, 4),
    (7, 0, 8),  # CLEAR
    (SET_SAMPLER_VIEWS, 0, 5),
    (SET_CONSTANT_BUFFER, 0, 10),
    *[(c, 0, n) for c, n in [(13, 1), (14, 4), (15, 3), (18, 4), (19, 1), (20, 1)]],
    *[(c, 0, n) for c, n in [(21, 2), (22, 32), (23, 32), (24, 1), (25, 3), (26, 3)]],
    *[(c, 0, n) for c, n in [(28, 1), (29, 1), (30, 1), (31, 2), (32, 6), (33, 1)]],
    *[(c, 0, n) for c, n in [(36, 1), (38, 2), (39, 1), (SET_DEBUG_FLAGS, 3)]],
    (END_TRANSFERS, 0, 9),
    (46, 0, 2),  # SET_TWEAKS
    (48, 0, 11),  # PIPE_RESOURCE_CREATE: p10 is a blob id, not a handle
    (SEND_STRING_MARKER, 0, 3),
    (52, 0, 6),  # LINK_SHADER
    *[(c, 0, n) for c, n in [(53, 8), (54, 1), (56, 1), (57, 2), (58, 4), (61, 2)]],
]


@pytest.mark.parametrize(("cmd_id", "obj", "length"), NO_HANDLE_CASES)
def test_commands_without_resource_handles_are_untouched(cmd_id, obj, length):
    stream = cmd(cmd_id, [FILLER] * length, obj)
    assert rewrite(new_map(), stream) == (0, OK_ERR, stream)


def test_every_command_id_is_covered_by_the_tables():
    covered = {c for _, c, _, _, _ in HANDLE_CASES} | {c for c, _, _ in NO_HANDLE_CASES}
    assert covered | {GET_MEMORY_INFO} == set(range(62))


def test_get_memory_info_is_refused():
    """vrend writes through the resource's iov unchecked (NULL for resources
    without guest backing): the command is refused, whatever its handle."""
    m = new_map({1: 500})
    stream = cmd(TRANSFER3D, [1] + [0] * 12) + cmd(GET_MEMORY_INFO, [1])
    code, err, out = rewrite(m, stream)
    assert code == lib.VV_RW_BAD_COMMAND
    assert err[0] == 14  # the GET_MEMORY_INFO header, after the 14-dword TRANSFER3D
    assert out[:14] == [stream[0], 500] + [0] * 12  # everything before it is rewritten
    assert out[14:] == stream[14:]


@pytest.mark.parametrize(
    ("cmd_id", "obj", "length"),
    [
        (DRAW_VBO, 0, 15),  # p14 exists, but only len 20 is the indirect form
        (DRAW_VBO, 0, 19),
        (DRAW_VBO, 0, 21),
        (CREATE_OBJECT, OBJ_QUERY, 3),  # p3 not inside len
        (CREATE_OBJECT, OBJ_SURFACE, 1),
        (BLIT, 0, 3),
        (SET_UNIFORM_BUFFER, 0, 4),
        (LAUNCH_GRID, 0, 6),
        (GET_QUERY_RESULT_QBO, 0, 1),
        (SET_VERTEX_BUFFERS, 0, 2),
        (SET_SHADER_BUFFERS, 0, 4),
        (SET_SHADER_IMAGES, 0, 6),
        (SET_ATOMIC_BUFFERS, 0, 3),
        (CREATE_VIDEO_BUFFER, 0, 4),
        (DECODE_BITSTREAM, 0, 2),
        (ENCODE_BITSTREAM, 0, 2),
        (TRANSFER3D, 0, 0),
        (COPY_TRANSFER3D, 0, 0),
    ],
)
def test_commands_too_short_for_a_slot_are_left_alone(cmd_id, obj, length):
    # 999 is not mapped: had any dword been taken for a handle, this would fail
    stream = cmd(cmd_id, [999] * length, obj)
    assert rewrite(new_map(), stream) == (0, OK_ERR, stream)


def test_partial_runs_rewrite_only_the_slots_inside_len():
    stream = cmd(BLIT, [2] * 12)  # dst at p3 is inside, src at p12 is not
    code, _, out = rewrite(new_map(), stream)
    assert code == 0
    assert out == [stream[0], 2, 2, 2, MAPPING[2], *[2] * 8]
    stream = cmd(COPY_TRANSFER3D, [3] * 11)  # staging handle p11 missing
    assert rewrite(new_map(), stream)[2] == [stream[0], MAPPING[3], *[3] * 10]


def test_inline_write_data_is_never_rewritten():
    data = [1, 2, 3, cmd(BLIT, [])[0], 0xFFFFFFFF, 999, 0]
    stream = cmd(RESOURCE_INLINE_WRITE, [4, 0, 0, 64, 0, 0, 0, 0, 16, 1, 1, *data])
    code, err, out = rewrite(new_map(), stream)
    assert (code, err) == (0, OK_ERR)
    assert out == [stream[0], MAPPING[4], *stream[2:]]


def test_constant_buffer_debug_and_marker_payloads_are_raw():
    stream = [
        *cmd(SET_CONSTANT_BUFFER, [0, 0, 1, 2, 3, 999]),
        *cmd(SET_DEBUG_FLAGS, [1, 2, 999]),
        *cmd(SEND_STRING_MARKER, [8, 1, 999]),
        *cmd(CLEAR_TEXTURE, [5, 0, 0, 0, 0, 1, 1, 1, 1, 2, 999, 4]),
    ]
    code, _, out = rewrite(new_map(), stream)
    assert code == 0
    assert out == [*stream[:16], MAPPING[5], *stream[17:]]


def _text_dwords(text: bytes) -> list[int]:
    text += b"\0" * (-len(text) % 4)
    return [int.from_bytes(text[i : i + 4], "little") for i in range(0, len(text), 4)]


def test_shader_text_is_untouched():
    tgsi = _text_dwords(b"VERT\nDCL IN[0]\nDCL OUT[0], POSITION\n  0: MOV OUT[0], IN[0]\n")
    # stage, offlen, num tokens, nso=0, then TGSI; plus values that look like handles
    # (a "long shader": the first part announces both parts' text, 12 bytes follow)
    part = (len(tgsi) + 3) * 4
    first = cmd(CREATE_OBJECT, [7, 0, part + 12, 300, 0, *tgsi, 1, 2, 999], OBJ_SHADER)
    cont = cmd(CREATE_OBJECT, [7, 0, (1 << 31) | part, 0, 0, 1, 2, 999], OBJ_SHADER)
    stream = first + cont
    assert rewrite(new_map(), stream) == (0, OK_ERR, stream)


def test_end_transfers_and_nop_payloads_are_skipped_by_len():
    # Mesa's transfer region: TRANSFER3Ds, then END_TRANSFERS covering stale
    # dwords that look like commands with unknown handles and bad ids.
    stale = [
        *cmd(SET_VERTEX_BUFFERS, [16, 0, 999]),
        *cmd(BLIT, [0] * 3 + [1]),  # truncated-looking stale command
        0xFF,  # bad command id
        0xFFFFFFFF,
    ]
    stream = [
        *cmd(TRANSFER3D, [2, 0, 0, 0, 0, 0, 0, 0, 64, 1, 1, 0, 1]),
        *cmd(END_TRANSFERS, stale),
        *cmd(NOP, stale),
        *cmd(SET_VERTEX_BUFFERS, [16, 0, 3]),
    ]
    code, err, out = rewrite(new_map(), stream)
    assert (code, err) == (0, OK_ERR)
    expected = list(stream)
    expected[1] = MAPPING[2]
    expected[-1] = MAPPING[3]
    assert out == expected


def test_realistic_stream():
    stream = [
        *cmd(CREATE_OBJECT, [40, 1, 2, 0, 0], OBJ_SURFACE),
        *cmd(SET_FRAMEBUFFER_STATE, [1, 0, 40]),
        *cmd(CREATE_OBJECT, [41, 3, 2, 0, 0, 0x03020100], OBJ_SAMPLER_VIEW),
        *cmd(SET_SAMPLER_VIEWS, [1, 0, 41]),
        *cmd(SET_VERTEX_BUFFERS, [16, 0, 4, 32, 64, 5]),
        *cmd(SET_INDEX_BUFFER, [6, 2, 0]),
        *cmd(SET_CONSTANT_BUFFER, [0, 0, 1, 2, 3, 4]),
        *cmd(DRAW_VBO, [0, 3, 4, 1, 1, 0, 0, 0, 0, 0, 2, 0]),
        *cmd(SET_INDEX_BUFFER, [0]),
    ]
    code, err, out = rewrite(new_map(), stream)
    assert (code, err) == (0, OK_ERR)
    expected = list(stream)
    for index, client in [(2, 1), (12, 3), (24, 4), (27, 5), (29, 6)]:
        assert stream[index] == client
        expected[index] = MAPPING[client]
    assert out == expected


def test_empty_buffer_is_ok():
    assert rewrite(new_map(), []) == (0, OK_ERR, [])


def test_err_may_be_null():
    buf = ffi.new("uint32_t[]", cmd(SET_INDEX_BUFFER, [999]))
    assert lib.vv_rewrite_cmds(new_map(), buf, 2, ffi.NULL) == lib.VV_RW_UNKNOWN_HANDLE
    buf = ffi.new("uint32_t[]", cmd(SET_INDEX_BUFFER, [2]))
    assert lib.vv_rewrite_cmds(new_map(), buf, 2, ffi.NULL) == lib.VV_RW_OK
    assert buf[1] == MAPPING[2]


def test_constants_match_the_contract():
    assert (lib.VV_RW_OK, lib.VV_RW_UNKNOWN_HANDLE) == (0, 1)
    assert (lib.VV_RW_TRUNCATED, lib.VV_RW_BAD_COMMAND) == (2, 3)


# ---- errors -----------------------------------------------------------------


def test_unknown_handle_reports_the_command_and_leaves_it_untouched():
    head = [*cmd(SET_INDEX_BUFFER, [2, 2, 0]), *cmd(NOP, [999])]
    failing = cmd(BLIT, [0, 0, 0, 3, *[0] * 8, 777, *[0] * 8])  # dst ok, src unknown
    tail = cmd(SET_UNIFORM_BUFFER, [0, 0, 0, 0, 4])
    stream = head + failing + tail
    code, err, out = rewrite(new_map(), stream)
    assert code == lib.VV_RW_UNKNOWN_HANDLE
    assert err == (len(head), BLIT, 0, 777, lib.VV_RW_UNKNOWN_HANDLE)
    # prefix rewritten, failing command and everything after exactly as sent
    assert out == [head[0], MAPPING[2], *head[2:], *failing, *tail]


def test_unknown_handle_in_create_object_reports_object_type():
    stream = [*cmd(NOP, []), *cmd(CREATE_OBJECT, [9, 0, 0, 0xDEADBEEF], OBJ_QUERY)]
    code, err, out = rewrite(new_map(), stream)
    assert code == lib.VV_RW_UNKNOWN_HANDLE
    assert err == (1, CREATE_OBJECT, OBJ_QUERY, 0xDEADBEEF, code)
    assert out == stream


def test_unknown_handle_in_a_later_element():
    stream = cmd(SET_VERTEX_BUFFERS, [16, 0, 2, 16, 0, 3, 16, 0, 10])
    code, err, out = rewrite(new_map(), stream)
    assert err == (0, SET_VERTEX_BUFFERS, 0, 10, code) and code == 1
    assert out == stream


def test_removed_handle_is_refused():
    m = new_map()
    assert lib.vv_map_remove(m, 3) == MAPPING[3]
    code, err, _ = rewrite(m, cmd(TRANSFER3D, [3, *[0] * 12]))
    assert (code, err[3]) == (lib.VV_RW_UNKNOWN_HANDLE, 3)


@pytest.mark.parametrize("missing", [1, 5, 100])
def test_truncated_command(missing):
    head = cmd(SET_INDEX_BUFFER, [2])
    bad = cmd(SET_VERTEX_BUFFERS, [16, 0, 3, 16, 0, 3, 7, 7, 7, 7])
    bad[0] = (bad[0] & 0xFFFF) | ((len(bad) - 1 + missing) << 16)
    stream = head + bad
    code, err, out = rewrite(new_map(), stream)
    assert code == lib.VV_RW_TRUNCATED
    assert err == (2, SET_VERTEX_BUFFERS, 0, 0, code)
    assert out == [head[0], MAPPING[2], *bad]


def test_lone_header_with_nonzero_len_is_truncated():
    stream = [*cmd(NOP, [1, 2]), (5 << 16) | END_TRANSFERS]
    code, err, out = rewrite(new_map(), stream)
    assert (code, err) == (2, (3, END_TRANSFERS, 0, 0, 2))
    assert out == stream


def test_ndw_limits_the_walk():
    stream = [*cmd(SET_INDEX_BUFFER, [2]), *cmd(SET_INDEX_BUFFER, [3])]
    buf = ffi.new("uint32_t[]", stream)
    err = ffi.new("struct vv_rewrite_error *")
    assert lib.vv_rewrite_cmds(new_map(), buf, 2, err) == 0
    assert list(buf) == [stream[0], MAPPING[2], stream[2], 3]
    assert lib.vv_rewrite_cmds(new_map(), buf + 2, 1, err) == lib.VV_RW_TRUNCATED


@pytest.mark.parametrize("cmd_id", [62, 63, 100, 255])
def test_bad_command_id(cmd_id):
    head = cmd(SET_INDEX_BUFFER, [4])
    bad = cmd(cmd_id, [1, 2, 3], obj=7)
    stream = head + bad + cmd(SET_INDEX_BUFFER, [5])
    code, err, out = rewrite(new_map(), stream)
    assert code == lib.VV_RW_BAD_COMMAND
    assert err == (2, cmd_id, 7, 0, code)
    assert out == [head[0], MAPPING[4], *stream[2:]]


def test_bad_command_is_reported_before_truncation():
    stream = [(50 << 16) | 62, 1]  # both: bad id and len past the end
    code, err, _ = rewrite(new_map(), stream)
    assert (code, err[1]) == (lib.VV_RW_BAD_COMMAND, 62)


def test_longest_command():
    n = 0xFFFF // 3  # 21845 vertex buffers, len 65535
    payload = [v for i in range(n) for v in (16, i, 1 + i % 9)]
    stream = cmd(SET_VERTEX_BUFFERS, payload)
    code, _, out = rewrite(new_map(), stream)
    assert code == 0
    assert out[3::3] == [MAPPING[1 + i % 9] for i in range(n)]
    assert out[1::3] == [16] * n and out[2::3] == list(range(n))


# ---- handle map ------------------------------------------------------------------


def test_map_basics():
    m = new_map({})
    assert lib.vv_map_count(m) == 0
    assert lib.vv_map_get(m, 1) == 0
    assert lib.vv_map_set(m, 1, 500) == 0
    assert lib.vv_map_set(m, 0xFFFFFFFF, 0xFFFFFFFF) == 0
    assert (lib.vv_map_get(m, 1), lib.vv_map_get(m, 0xFFFFFFFF)) == (500, 0xFFFFFFFF)
    assert lib.vv_map_count(m) == 2
    assert lib.vv_map_remove(m, 1) == 500
    assert lib.vv_map_remove(m, 1) == 0
    assert lib.vv_map_get(m, 1) == 0
    assert lib.vv_map_count(m) == 1
    assert lib.vv_map_set(m, 1, 501) == 0
    assert lib.vv_map_get(m, 1) == 501


def test_map_duplicate_is_refused_and_keeps_the_old_value():
    m = new_map({})
    assert lib.vv_map_set(m, 7, 70) == 0
    assert lib.vv_map_set(m, 7, 71) == -errno.EEXIST
    assert lib.vv_map_get(m, 7) == 70
    assert lib.vv_map_count(m) == 1


def test_map_zero_is_invalid():
    m = new_map({})
    assert lib.vv_map_set(m, 0, 5) == -errno.EINVAL
    assert lib.vv_map_set(m, 5, 0) == -errno.EINVAL
    assert lib.vv_map_set(m, 0, 0) == -errno.EINVAL
    assert lib.vv_map_count(m) == 0
    assert lib.vv_map_get(m, 0) == 0
    assert lib.vv_map_remove(m, 0) == 0


def test_map_free_null_is_harmless():
    lib.vv_map_free(ffi.NULL)


def test_map_grows_to_100k_sequential_entries():
    m = new_map({})
    n = 100_000
    for c in range(1, n + 1):
        assert lib.vv_map_set(m, c, c + 7_000_000) == 0
    assert lib.vv_map_count(m) == n
    assert all(lib.vv_map_get(m, c) == c + 7_000_000 for c in range(1, n + 1))
    assert lib.vv_map_get(m, n + 1) == 0
    for c in range(1, n + 1, 2):
        assert lib.vv_map_remove(m, c) == c + 7_000_000
    assert lib.vv_map_count(m) == n // 2
    assert all(lib.vv_map_get(m, c) == (0 if c % 2 else c + 7_000_000) for c in range(1, n + 1))
    for c in range(2, n + 1, 2):
        assert lib.vv_map_remove(m, c) == c + 7_000_000
    assert lib.vv_map_count(m) == 0
    assert lib.vv_map_set(m, 42, 43) == 0  # still usable after shrinking
    assert lib.vv_map_get(m, 42) == 43


def test_map_random_keys_against_a_dict():
    rng = random.Random(1234)
    m = new_map({})
    model: dict[int, int] = {}
    pool = [rng.randrange(1, 1 << 32) for _ in range(3000)] + list(range(1, 3000))
    for _ in range(60_000):
        key = rng.choice(pool)
        op = rng.random()
        if op < 0.5:
            ret = lib.vv_map_set(m, key, (key * 3) & 0xFFFFFFFF or 1)
            assert ret == (-errno.EEXIST if key in model else 0)
            model.setdefault(key, (key * 3) & 0xFFFFFFFF or 1)
        elif op < 0.8:
            assert lib.vv_map_remove(m, key) == model.pop(key, 0)
        else:
            assert lib.vv_map_get(m, key) == model.get(key, 0)
        assert lib.vv_map_count(m) == len(model)
    assert all(lib.vv_map_get(m, k) == v for k, v in model.items())
