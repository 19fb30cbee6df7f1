"""The rewriter's long-shader guard (vv_rewrite.c shader_guard).

virglrenderer inserts a shader object at the first part of a "long shader" (text
announced longer than its CREATE_OBJECT) and binds it by handle before the rest
has come; a draw with it bound crashes 0.10.4. The guard follows the text across
buffers, per sub-context and shader type, and refuses what would use an
unfinished shader or send its text out of order. Layouts are written out from
virgl_protocol.h (VIRGL_OBJ_SHADER_*, VIRGL_BIND_SHADER_*, VIRGL_LINK_SHADER_*).
"""

from __future__ import annotations

import pytest

from virgl_viewer._native import ffi, lib
from virgl_viewer.budgets import DEFAULT
from virgl_viewer.virgl import HandleMap

CREATE_OBJECT, SET_SUB_CTX, BIND_SHADER, DRAW_VBO, LINK_SHADER = 1, 28, 31, 8, 52
OBJ_SHADER = 4
VERTEX, FRAGMENT, COMPUTE = 0, 1, 5
CONT = 1 << 31


def cmd(cmd_id: int, payload: list[int], obj: int = 0) -> list[int]:
    return [cmd_id | (obj << 8) | (len(payload) << 16), *payload]


def shader(handle: int, stage: int, offlen: int, text_dwords: int, nso: int = 0) -> list[int]:
    """CREATE_OBJECT(SHADER): handle, type, offlen, num_tokens, nso, [so], text."""
    so = [0, 0, 0, 0, *([0, 0] * nso)] if nso else []
    return cmd(CREATE_OBJECT, [handle, stage, offlen, 300, nso, *so, *([0x41] * text_dwords)],
               OBJ_SHADER)


def run(m: object, *commands: list[int]) -> tuple[int, int, int]:
    """(code, handle, cmd) of one buffer made of the commands."""
    dwords = [d for c in commands for d in c]
    buf = ffi.new("uint32_t[]", dwords)
    err = ffi.new("struct vv_rewrite_error *")
    code = lib.vv_rewrite_cmds(m, buf, len(dwords), err)
    return code, err.handle, err.cmd


@pytest.fixture
def m():
    return ffi.gc(lib.vv_map_new(), lib.vv_map_free)


def test_a_short_shader_binds_at_once(m) -> None:
    assert run(m, shader(4, VERTEX, 40, 10), cmd(BIND_SHADER, [4, VERTEX])) == (0, 0, 0)


def test_binding_an_unfinished_long_shader_is_refused(m) -> None:
    # 400 bytes announced, 40 sent: the object exists in virglrenderer, with no program
    assert run(m, shader(4, VERTEX, 400, 10)) == (lib.VV_RW_OK, 0, 0)
    assert run(m, cmd(BIND_SHADER, [4, VERTEX]), cmd(DRAW_VBO, [0] * 12)) == (
        lib.VV_RW_SHADER_UNFINISHED, 4, BIND_SHADER)


def test_a_long_shader_across_buffers_binds_once_complete(m) -> None:
    # Mesa's encoder flushes in the middle of a long shader: parts in later SUBMIT_CMDs
    assert run(m, shader(4, VERTEX, 120, 10))[0] == lib.VV_RW_OK
    assert run(m, shader(4, VERTEX, CONT | 40, 10))[0] == lib.VV_RW_OK
    assert run(m, cmd(BIND_SHADER, [4, VERTEX]))[0] == lib.VV_RW_SHADER_UNFINISHED
    assert run(m, shader(4, VERTEX, CONT | 80, 10), cmd(BIND_SHADER, [4, VERTEX]))[0] == 0


def test_stream_output_layout_is_followed(m) -> None:
    # with 2 stream outputs the text starts 8 dwords later (4 strides, 2 per output)
    assert run(m, shader(9, VERTEX, 80, 10, nso=2))[0] == lib.VV_RW_OK
    assert run(m, cmd(BIND_SHADER, [9, VERTEX]))[0] == lib.VV_RW_SHADER_UNFINISHED
    assert run(m, shader(9, VERTEX, CONT | 40, 10, nso=2), cmd(BIND_SHADER, [9, VERTEX])) \
        == (0, 0, 0)


def test_link_shader_naming_an_unfinished_shader_is_refused(m) -> None:
    run(m, shader(6, FRAGMENT, 400, 10))
    assert run(m, cmd(LINK_SHADER, [5, 6, 0, 0, 0, 0])) == (
        lib.VV_RW_SHADER_UNFINISHED, 6, LINK_SHADER)
    assert run(m, cmd(LINK_SHADER, [5, 7, 0, 0, 0, 0]))[0] == lib.VV_RW_OK


@pytest.mark.parametrize("bad", [
    pytest.param(shader(4, VERTEX, CONT | 44, 10), id="wrong-offset"),
    pytest.param(shader(5, VERTEX, CONT | 40, 10), id="other-handle"),
    pytest.param(shader(4, VERTEX, CONT | 40, 91), id="past-the-announced-length"),
    pytest.param(shader(8, VERTEX, 40, 10), id="new-shader-of-the-unfinished-type"),
    pytest.param(shader(4, FRAGMENT, 400, 10), id="same-handle-as-the-unfinished-one"),
])
def test_text_out_of_sequence_is_refused(m, bad: list[int]) -> None:
    assert run(m, shader(4, VERTEX, 400, 10))[0] == lib.VV_RW_OK
    assert run(m, bad)[0] == lib.VV_RW_SHADER_STREAM


def test_a_continuation_without_a_start_is_refused(m) -> None:
    assert run(m, shader(4, VERTEX, CONT, 10))[0] == lib.VV_RW_SHADER_STREAM


def test_sub_contexts_are_followed_apart(m) -> None:
    run(m, cmd(SET_SUB_CTX, [1]), shader(4, VERTEX, 400, 10))
    # another sub-context has no unfinished vertex shader: its continuation is refused
    assert run(m, cmd(SET_SUB_CTX, [2]), shader(4, VERTEX, CONT | 40, 10))[0] == \
        lib.VV_RW_SHADER_STREAM
    m2 = ffi.gc(lib.vv_map_new(), lib.vv_map_free)
    run(m2, cmd(SET_SUB_CTX, [1]), shader(4, VERTEX, 400, 10))
    # ... and binding the handle anywhere is refused while it is unfinished in one
    assert run(m2, cmd(SET_SUB_CTX, [2]), cmd(BIND_SHADER, [4, VERTEX]))[0] == \
        lib.VV_RW_SHADER_UNFINISHED
    # a new long shader of the same type in another sub-context is allowed
    assert run(m2, shader(5, VERTEX, 400, 10))[0] == lib.VV_RW_OK


def test_announced_text_is_budgeted_per_client(m) -> None:
    budget = DEFAULT.long_shader_bytes
    assert run(m, shader(4, VERTEX, budget + 4, 10)) == (
        lib.VV_RW_SHADER_BUDGET, 4, CREATE_OBJECT)
    half = budget // 2
    assert run(m, shader(4, VERTEX, half, 10))[0] == lib.VV_RW_OK
    assert run(m, shader(5, FRAGMENT, half, 10))[0] == lib.VV_RW_OK
    assert run(m, shader(6, COMPUTE, 400, 10))[0] == lib.VV_RW_SHADER_BUDGET
    # finishing one gives its bytes back (the continuation carries the rest at once
    # only in this test: a real one is cut at 64 Ki dwords a command)
    other = ffi.gc(lib.vv_map_new(), lib.vv_map_free)
    assert run(other, shader(6, COMPUTE, 400, 10))[0] == lib.VV_RW_OK


def test_the_log_reason_names_the_shader() -> None:
    hm = HandleMap()
    words = shader(4, VERTEX, 400, 10) + cmd(BIND_SHADER, [4, VERTEX])
    buf = bytearray(b"".join(w.to_bytes(4, "little") for w in words))
    assert hm.rewrite(buf, len(words), 3) == (
        "shader 4 used before all its text came: virgl command 31 (object type 0) "
        f"at dword {3 + len(words) - 3}")
