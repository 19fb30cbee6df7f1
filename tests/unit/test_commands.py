"""Dword layouts of the virgl command encoder.

Expected values are written from the upstream definitions, not from the encoder:
virglrenderer src/virgl_protocol.h (offsets count the header as dword 0, so define N is
payload index N-1 here) and the length checks in src/vrend_decode.c.
"""

from __future__ import annotations

import struct

import pytest

from virgl_viewer.guest import _tgsi
from virgl_viewer.guest import commands as enc

ONE = 0x3F800000  # fui(1.0f)
HALF = 0x3F000000  # fui(0.5f)


def decode(data: bytes) -> list[tuple[int, int, list[int]]]:
    """An independent walk of the stream like vrend_decode_ctx_submit_cmd."""
    assert len(data) % 4 == 0
    dwords = struct.unpack(f"<{len(data) // 4}I", data)
    out, pos = [], 0
    while pos < len(dwords):
        header = dwords[pos]
        length = header >> 16
        assert pos + 1 + length <= len(dwords)
        out.append((header & 0xFF, (header >> 8) & 0xFF, list(dwords[pos + 1:pos + 1 + length])))
        pos += 1 + length
    return out


def one(cb: enc.CommandBuffer) -> tuple[int, int, list[int]]:
    (cmd,) = decode(cb.to_bytes())
    return cmd


def test_header_packing_and_bytes() -> None:
    cb = enc.CommandBuffer()
    cb.set_sub_ctx(7)
    # VIRGL_CMD0(cmd, obj, len) = cmd | obj << 8 | len << 16, little-endian dwords
    assert cb.to_bytes() == struct.pack("<2I", 28 | 1 << 16, 7)
    assert len(cb) == 2 and cb.dwords == [28 | 1 << 16, 7]
    cb.clear_buffer()
    assert cb.to_bytes() == b""


def test_enum_values_match_virgl_protocol_h() -> None:
    assert (enc.Ccmd.CREATE_OBJECT, enc.Ccmd.CLEAR, enc.Ccmd.DRAW_VBO) == (1, 7, 8)
    assert (enc.Ccmd.RESOURCE_INLINE_WRITE, enc.Ccmd.SET_SUB_CTX) == (9, 28)
    assert int(enc.Ccmd.BIND_SHADER) == 31
    assert (enc.ObjectType.SHADER, enc.ObjectType.SURFACE) == (4, 8)
    assert int(enc.ObjectType.MSAA_SURFACE) == 11
    # p_defines.h: PIPE_CLEAR_DEPTH 1<<0, STENCIL 1<<1, COLOR0 1<<2 .. COLOR7 1<<9
    assert (enc.PIPE_CLEAR_DEPTH, enc.PIPE_CLEAR_STENCIL, enc.PIPE_CLEAR_COLOR0) == (1, 2, 4)
    assert enc.PIPE_CLEAR_COLOR == 0x3FC
    assert (enc.PIPE_PRIM_TRIANGLES, enc.PIPE_PRIM_TRIANGLE_STRIP) == (4, 5)


def test_sub_ctx_commands() -> None:
    cb = enc.CommandBuffer()
    cb.create_sub_ctx(3)
    cb.set_sub_ctx(3)
    cb.destroy_sub_ctx(3)
    # vrend_decode_{create,set,destroy}_sub_ctx: length == 1, id at buf[1]
    assert decode(cb.to_bytes()) == [(29, 0, [3]), (28, 0, [3]), (30, 0, [3])]


def test_create_surface() -> None:
    cb = enc.CommandBuffer()
    cb.create_surface(10, 1, 2, level=1, first_layer=2, last_layer=3)
    # VIRGL_OBJ_SURFACE_SIZE 5: HANDLE 1, RES_HANDLE 2, FORMAT 3, TEXTURE_LEVEL 4,
    # TEXTURE_LAYERS 5 (first | last << 16, vrend_create_surface)
    assert one(cb) == (1, 8, [10, 1, 2, 1, 2 | 3 << 16])


def test_set_framebuffer_state() -> None:
    cb = enc.CommandBuffer()
    cb.set_framebuffer_state([10, 11], zsurf=12)
    # NR_CBUFS 1, NR_ZSURF_HANDLE 2, CBUF_HANDLE(x) x+3; decoder wants len == 2 + nr_cbufs
    assert one(cb) == (5, 0, [2, 12, 10, 11])
    with pytest.raises(ValueError):
        cb.set_framebuffer_state(list(range(1, 10)))


def test_clear() -> None:
    cb = enc.CommandBuffer()
    cb.clear((1.0, 0.5, 0.0, 1.0), enc.PIPE_CLEAR_COLOR0 | enc.PIPE_CLEAR_DEPTH, depth=1.0,
             stencil=5)
    # VIRGL_OBJ_CLEAR_SIZE 8: BUFFERS 1, COLOR_0..3 2-5, DEPTH_0/1 6-7 (memcpy'd double),
    # STENCIL 8
    depth_lo, depth_hi = struct.unpack("<2I", struct.pack("<d", 1.0))
    assert one(cb) == (7, 0, [5, ONE, HALF, 0, ONE, depth_lo, depth_hi, 5])


def test_blend_rasterizer_dsa_defaults() -> None:
    cb = enc.CommandBuffer()
    cb.create_blend(1)
    cb.create_rasterizer(2)
    cb.create_dsa(3)
    blend, rs, dsa = decode(cb.to_bytes())
    # VIRGL_OBJ_BLEND_SIZE 11: HANDLE, S0, S1, S2(cbuf) for 8 cbufs. Blend off, factors
    # ONE/ZERO, colormask RGBA << 27 (VIRGL_OBJ_BLEND_S2_RT_COLORMASK).
    rt = 1 << 4 | 0x11 << 9 | 1 << 17 | 0x11 << 22 | 0xF << 27
    assert blend == (1, 1, [1, 0, 0, *[rt] * 8])
    # VIRGL_OBJ_RS_SIZE 9: S0 bits DEPTH_CLIP 1, FRONT_CCW 15, HALF_PIXEL_CENTER 29;
    # POINT_SIZE 3 and LINE_WIDTH 6 are floats
    assert rs == (1, 2, [2, 1 << 1 | 1 << 15 | 1 << 29, ONE, 0, 0, ONE, 0, 0, 0])
    # VIRGL_OBJ_DSA_SIZE 5: S0 depth func LESS << 2, depth and stencil disabled
    assert dsa == (1, 3, [3, 1 << 2, 0, 0, 0])


def test_alpha_blend_and_culling() -> None:
    cb = enc.CommandBuffer()
    cb.create_blend(1, blend_enable=True, src_factor=enc.PIPE_BLENDFACTOR_SRC_ALPHA,
                    dst_factor=enc.PIPE_BLENDFACTOR_INV_SRC_ALPHA, colormask=0x7)
    cb.create_rasterizer(2, cull_face=2, front_ccw=False, scissor=True)
    blend, rs = decode(cb.to_bytes())
    rt = 1 | 3 << 4 | 0x13 << 9 | 3 << 17 | 0x13 << 22 | 0x7 << 27
    assert blend[2][3:] == [rt] * 8
    assert rs[2][1] == 1 << 1 | 2 << 8 | 1 << 14 | 1 << 29


def test_sampler_view_and_state() -> None:
    cb = enc.CommandBuffer()
    cb.create_sampler_view(20, 3, 67, first_level=0, last_level=2, swizzle=(2, 1, 0, 5))
    cb.create_sampler_view(21, 3, 67, target=2)
    cb.create_sampler_state(22, min_filter=enc.PIPE_TEX_FILTER_LINEAR,
                            mag_filter=enc.PIPE_TEX_FILTER_LINEAR)
    view, view_target, state = decode(cb.to_bytes())
    # VIRGL_OBJ_SAMPLER_VIEW_SIZE 6: HANDLE, RES_HANDLE, FORMAT (| target << 24),
    # TEXTURE_LAYER, TEXTURE_LEVEL (first | last << 8), SWIZZLE r | g<<3 | b<<6 | a<<9
    assert view == (1, 6, [20, 3, 67, 0, 2 << 8, 2 | 1 << 3 | 0 << 6 | 5 << 9])
    assert view_target[2][2] == 67 | 2 << 24
    # VIRGL_OBJ_SAMPLER_STATE_SIZE 9: S0 wrap CLAMP_TO_EDGE (2) for s/t/r, min img
    # filter << 9, min mip filter NONE (2) << 11, mag filter << 13; lod floats; border
    s0 = 2 | 2 << 3 | 2 << 6 | 1 << 9 | 2 << 11 | 1 << 13
    assert state == (1, 7, [22, s0, 0, 0, 0, 0, 0, 0, 0])
    cb.clear_buffer()
    cb.set_sampler_views(enc.PIPE_SHADER_FRAGMENT, [20, 0], start_slot=1)
    cb.bind_sampler_states(enc.PIPE_SHADER_FRAGMENT, [22])
    # SHADER_TYPE 1, START_SLOT 2, handles from 3 (both commands)
    assert decode(cb.to_bytes()) == [(10, 0, [1, 1, 20, 0]), (18, 0, [1, 0, 22])]


def test_vertex_elements_and_buffers() -> None:
    cb = enc.CommandBuffer()
    cb.create_vertex_elements(14, [enc.VertexElement(0, 31), enc.VertexElement(16, 30, 1, 2)])
    cb.set_vertex_buffers([enc.VertexBuffer(32, 0, 2), enc.VertexBuffer(12, 64, 5)])
    ve, vb = decode(cb.to_bytes())
    # VERTEX_ELEMENTS_SIZE(n) 4n+1: V0_SRC_OFFSET, INSTANCE_DIVISOR, VERTEX_BUFFER_INDEX,
    # SRC_FORMAT per element
    assert ve == (1, 5, [14, 0, 0, 0, 31, 16, 2, 1, 30])
    # SET_VERTEX_BUFFERS_SIZE(n) 3n: STRIDE, OFFSET, HANDLE per buffer
    assert vb == (6, 0, [32, 0, 2, 12, 64, 5])


def test_index_and_constant_buffers() -> None:
    cb = enc.CommandBuffer()
    cb.set_index_buffer(4, 2, 8)
    cb.set_index_buffer(0)
    cb.set_constant_buffer(enc.PIPE_SHADER_VERTEX, 0, [1.0, 0.5])
    # decoder accepts len 1 (unbind) or 3; constant buffer: SHADER_TYPE, INDEX, data
    assert decode(cb.to_bytes()) == [(11, 0, [4, 2, 8]), (11, 0, [0]),
                                     (12, 0, [0, 0, ONE, HALF])]


def test_viewport_state() -> None:
    cb = enc.CommandBuffer()
    cb.set_viewport_state([enc.viewport(0, 0, 300, 200)])
    # SIZE(n) 6n+1: START_SLOT, then SCALE_0..2 and TRANSLATE_0..2 per viewport
    scale = (150.0, -100.0, 0.5)
    translate = (150.0, 100.0, 0.5)
    assert one(cb) == (4, 0, [0, *map(enc.f32, scale), *map(enc.f32, translate)])
    assert enc.viewport(10, 20, 100, 50, y_0_top=False) == enc.Viewport(
        (50.0, 25.0, 0.5), (60.0, 45.0, 0.5))


def test_scissor_state() -> None:
    cb = enc.CommandBuffer()
    cb.set_scissor_state([(1, 2, 30, 40)])
    # SET_SCISSOR_MINX_MINY / MAXX_MAXY: x | y << 16
    assert one(cb) == (15, 0, [0, 1 | 2 << 16, 30 | 40 << 16])


def test_draw_vbo() -> None:
    cb = enc.CommandBuffer()
    cb.draw_vbo(0, 4, enc.PIPE_PRIM_TRIANGLE_STRIP)
    cb.draw_vbo(6, 3, indexed=True, index_bias=-2, instance_count=2, primitive_restart=True,
                restart_index=0xFFFF, min_index=1, max_index=9)
    plain, indexed = decode(cb.to_bytes())
    # VIRGL_DRAW_VBO_SIZE 12: START, COUNT, MODE, INDEXED, INSTANCE_COUNT, INDEX_BIAS,
    # START_INSTANCE, PRIMITIVE_RESTART, RESTART_INDEX, MIN_INDEX, MAX_INDEX, COUNT_FROM_SO
    assert plain == (8, 0, [0, 4, 5, 0, 1, 0, 0, 0, 0, 0, 0xFFFFFFFF, 0])
    assert indexed[2] == [6, 3, 4, 1, 2, 0xFFFFFFFE, 0, 1, 0xFFFF, 1, 9, 0]


def test_resource_inline_write() -> None:
    cb = enc.CommandBuffer()
    data = bytes(range(1, 11))
    cb.resource_inline_write(3, 0, 0, 8, 16, enc.Box(1, 2, 0, 2, 2, 1), data)
    cmd, obj, payload = one(cb)
    # IW_RES_HANDLE 1, LEVEL 2, USAGE 3, STRIDE 4, LAYER_STRIDE 5, X..D 6-11, DATA_START 12;
    # vrend_decode_resource_inline_write: data_len = (len - 11) * 4
    assert (cmd, obj, payload[:11]) == (9, 0, [3, 0, 0, 8, 16, 1, 2, 0, 2, 2, 1])
    assert struct.pack("<3I", *payload[11:]) == data + b"\0\0"


def test_buffer_write_splits_into_inline_writes() -> None:
    cb = enc.CommandBuffer()
    data = bytes(range(20))
    cb.buffer_write(2, 100, data, max_chunk_bytes=8)
    cmds = decode(cb.to_bytes())
    assert [c[2][5] for c in cmds] == [100, 108, 116]  # box x advances in bytes
    assert [c[2][8] for c in cmds] == [8, 8, 4]  # box w = bytes of the piece
    assert all(c[2][9:11] == [1, 1] for c in cmds)
    assert b"".join(struct.pack(f"<{len(c[2]) - 11}I", *c[2][11:]) for c in cmds)[:20] == data
    with pytest.raises(ValueError):
        cb.buffer_write(2, 0, data, max_chunk_bytes=6)


def test_shader_single_packet() -> None:
    cb = enc.CommandBuffer()
    cb.create_shader(15, enc.PIPE_SHADER_FRAGMENT, _tgsi.COLOR_FS)
    cmd, obj, payload = one(cb)
    text = _tgsi.COLOR_FS.encode() + b"\0"
    # VIRGL_OBJ_SHADER_HDR_SIZE(0) 5: HANDLE, TYPE, OFFSET (= total length, incl. NUL),
    # NUM_TOKENS, SO_NUM_OUTPUTS; text from dword 6 (vrend_decode_create_shader)
    assert (cmd, obj, payload[:5]) == (1, 4, [15, 1, len(text), len(text) - 1, 0])
    raw = struct.pack(f"<{len(payload) - 5}I", *payload[5:])
    assert raw[:len(text)] == text and set(raw[len(text):]) <= {0}
    # vrend_create_shader: (offlen + 3) / 4 >= packet dwords, NUL in the last 4 bytes
    assert (len(text) + 3) // 4 == len(payload) - 5
    assert 0 in raw[-4:]


def test_shader_continuations() -> None:
    text = _tgsi.COLOR_VS
    raw = text.encode() + b"\0"
    cb = enc.CommandBuffer()
    cb.create_shader(9, enc.PIPE_SHADER_VERTEX, text, num_tokens=300, max_piece_bytes=32)
    cmds = decode(cb.to_bytes())
    assert len(cmds) == -(-len(raw) // 32)
    offlens = [c[2][2] for c in cmds]
    # first: total length; then VIRGL_OBJ_SHADER_OFFSET_CONT (1 << 31) | byte offset,
    # which must equal the padded bytes the host has received so far
    assert offlens == [len(raw)] + [1 << 31 | 32 * i for i in range(1, len(cmds))]
    assert all(c[:2] == (1, 4) and c[2][:2] == [9, 0] and c[2][3:5] == [300, 0]
               for c in cmds)
    assert all(len(c[2]) - 5 == 8 for c in cmds[:-1])  # whole dwords before the last
    joined = b"".join(struct.pack(f"<{len(c[2]) - 5}I", *c[2][5:]) for c in cmds)
    assert joined[:len(raw)] == raw and 0 in joined[-4:]


def test_shader_pieces_edge_cases() -> None:
    # a text whose NUL starts a new piece still ends on a NUL the host can find
    text = "A" * 7  # 8 bytes with NUL
    pieces = _tgsi.shader_pieces(text, 4)
    assert [p.offlen for p in pieces] == [8, 1 << 31 | 4]
    assert pieces[1].data == b"AAA\0"
    assert _tgsi.shader_pieces("ABCDEFGH", 8)[1] == _tgsi.ShaderPiece(1 << 31 | 8, b"\0" * 4)
    with pytest.raises(ValueError):
        _tgsi.shader_pieces(text, 6)
    with pytest.raises(ValueError):
        _tgsi.shader_pieces("a\0b", 8)
    assert _tgsi.estimate_num_tokens("VERT\nEND\n") == 16
    assert _tgsi.estimate_num_tokens(_tgsi.TEXTURE_FS) == len(_tgsi.TEXTURE_FS)


def test_compute_shader_sends_req_local_mem() -> None:
    cb = enc.CommandBuffer()
    cb.create_shader(5, enc.PIPE_SHADER_COMPUTE, "COMP\nEND\n", req_local_mem=1024)
    # for PIPE_SHADER_COMPUTE the SO_NUM_OUTPUTS dword is req_local_mem
    assert one(cb)[2][1:5:3] == [5, 1024]


def test_bind_and_destroy() -> None:
    cb = enc.CommandBuffer()
    cb.bind_object(11, enc.ObjectType.BLEND)
    cb.bind_shader(15, enc.PIPE_SHADER_VERTEX)
    cb.destroy_object(11, enc.ObjectType.BLEND)
    # BIND_OBJECT: type in header bits 8-15, len 1; BIND_SHADER_SIZE 2: HANDLE, TYPE
    assert decode(cb.to_bytes()) == [(2, 1, [11]), (31, 0, [15, 0]), (3, 1, [11])]


def test_limits() -> None:
    cb = enc.CommandBuffer()
    with pytest.raises(ValueError):
        cb.emit(enc.Ccmd.NOP, 0, [0] * 0x10000)
    with pytest.raises(ValueError):
        cb.emit(enc.Ccmd.NOP, 0, [1 << 32])
    with pytest.raises(ValueError):
        cb.emit(256, 0, [])
    with pytest.raises(ValueError):
        cb.resource_inline_write(1, 0, 0, 0, 0, enc.Box(0, 0, 0, 1, 1, 1),
                                 bytes(4 * 0xFFFF))
    cb.emit(enc.Ccmd.NOP, 0, [-1])
    assert cb.dwords == [1 << 16, 0xFFFFFFFF]


def test_colour_bar_frame_lengths_fit_the_decoder() -> None:
    """A whole frame of a colour-bar guest; every length passes vrend_decode's checks."""
    cb = enc.CommandBuffer()
    cb.create_surface(1, 1, 2)
    cb.set_framebuffer_state([1])
    cb.clear((0.0, 0.0, 0.0, 1.0))
    cb.create_blend(2)
    cb.bind_object(2, enc.ObjectType.BLEND)
    cb.create_dsa(3)
    cb.bind_object(3, enc.ObjectType.DSA)
    cb.create_rasterizer(4)
    cb.bind_object(4, enc.ObjectType.RASTERIZER)
    cb.create_vertex_elements(5, [enc.VertexElement(0, 31), enc.VertexElement(16, 31)])
    cb.bind_object(5, enc.ObjectType.VERTEX_ELEMENTS)
    cb.buffer_write(2, 0, struct.pack("<32f", *range(32)))
    cb.set_vertex_buffers([enc.VertexBuffer(32, 0, 2)])
    cb.create_shader(6, enc.PIPE_SHADER_VERTEX, _tgsi.COLOR_VS)
    cb.create_shader(7, enc.PIPE_SHADER_FRAGMENT, _tgsi.COLOR_FS)
    cb.bind_shader(6, enc.PIPE_SHADER_VERTEX)
    cb.bind_shader(7, enc.PIPE_SHADER_FRAGMENT)
    cb.set_viewport_state([enc.viewport(0, 0, 300, 300)])
    cb.draw_vbo(0, 4, enc.PIPE_PRIM_TRIANGLE_STRIP)
    fixed = {(1, 1): 11, (1, 2): 9, (1, 3): 5, (1, 8): 5, (2, 1): 1, (2, 2): 1, (2, 3): 1,
             (2, 5): 1, (5, 0): 3, (6, 0): 3, (7, 0): 8, (8, 0): 12, (31, 0): 2, (4, 0): 7}
    for cmd, obj, payload in decode(cb.to_bytes()):
        if (cmd, obj) in fixed:
            assert len(payload) == fixed[cmd, obj], (cmd, obj)
        elif (cmd, obj) == (1, 5):
            assert (len(payload) - 1) % 4 == 0
        elif (cmd, obj) == (1, 4):
            assert len(payload) >= 5
        else:
            assert (cmd, obj) == (9, 0) and len(payload) >= 12
