"""Encoder for virgl command streams, the payload of vtest SUBMIT_CMD.

Why: our guest must render with real virgl commands (clears, shaders, draws) so the server
and the viewer are exercised the way Mesa's virpipe exercises them, without Mesa.

How: a command is little-endian uint32 dwords, a header `cmd | obj_type << 8 | len << 16`
(`VIRGL_CMD0`, len = payload dwords) and then the payload. Layouts follow Mesa's
`src/gallium/drivers/virgl/virgl_encode.c` and what virglrenderer decodes in
`src/vrend_decode.c` (field names from `src/virgl_protocol.h`, whose offsets count the
header as dword 0; the docstrings here count payload dwords from 0). Enum values are the
ones virglrenderer's `p_defines.h` uses, including its shader stage numbering.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from enum import IntEnum
from typing import NamedTuple

from virgl_viewer.guest._tgsi import estimate_num_tokens, shader_pieces


class Ccmd(IntEnum):
    """enum virgl_context_cmd (virgl_protocol.h), the commands this encoder emits."""

    NOP = 0
    CREATE_OBJECT = 1
    BIND_OBJECT = 2
    DESTROY_OBJECT = 3
    SET_VIEWPORT_STATE = 4
    SET_FRAMEBUFFER_STATE = 5
    SET_VERTEX_BUFFERS = 6
    CLEAR = 7
    DRAW_VBO = 8
    RESOURCE_INLINE_WRITE = 9
    SET_SAMPLER_VIEWS = 10
    SET_INDEX_BUFFER = 11
    SET_CONSTANT_BUFFER = 12
    SET_SCISSOR_STATE = 15
    BIND_SAMPLER_STATES = 18
    SET_SUB_CTX = 28
    CREATE_SUB_CTX = 29
    DESTROY_SUB_CTX = 30
    BIND_SHADER = 31


class ObjectType(IntEnum):
    """enum virgl_object_type."""

    NULL = 0
    BLEND = 1
    RASTERIZER = 2
    DSA = 3
    SHADER = 4
    VERTEX_ELEMENTS = 5
    SAMPLER_VIEW = 6
    SAMPLER_STATE = 7
    SURFACE = 8
    QUERY = 9
    STREAMOUT_TARGET = 10
    MSAA_SURFACE = 11


# enum pipe_shader_type as virglrenderer numbers it (what BIND_SHADER etc. expect)
PIPE_SHADER_VERTEX, PIPE_SHADER_FRAGMENT, PIPE_SHADER_GEOMETRY = 0, 1, 2
PIPE_SHADER_TESS_CTRL, PIPE_SHADER_TESS_EVAL, PIPE_SHADER_COMPUTE = 3, 4, 5
# PIPE_CLEAR_* (p_defines.h)
PIPE_CLEAR_DEPTH, PIPE_CLEAR_STENCIL, PIPE_CLEAR_COLOR0 = 1 << 0, 1 << 1, 1 << 2
PIPE_CLEAR_COLOR = 0xFF << 2  # COLOR0..COLOR7
# enum pipe_prim_type
PIPE_PRIM_POINTS, PIPE_PRIM_LINES, PIPE_PRIM_TRIANGLES = 0, 1, 4
PIPE_PRIM_TRIANGLE_STRIP, PIPE_PRIM_TRIANGLE_FAN = 5, 6
# enum pipe_blendfactor / pipe_blend_func / pipe_compare_func / pipe_tex_* / swizzle
PIPE_BLENDFACTOR_ONE, PIPE_BLENDFACTOR_SRC_ALPHA, PIPE_BLENDFACTOR_ZERO = 1, 3, 0x11
PIPE_BLENDFACTOR_INV_SRC_ALPHA = 0x13
PIPE_BLEND_ADD = 0
PIPE_FUNC_NEVER, PIPE_FUNC_LESS, PIPE_FUNC_ALWAYS = 0, 1, 7
PIPE_TEX_WRAP_REPEAT, PIPE_TEX_WRAP_CLAMP_TO_EDGE = 0, 2
PIPE_TEX_FILTER_NEAREST, PIPE_TEX_FILTER_LINEAR = 0, 1
PIPE_TEX_MIPFILTER_NEAREST, PIPE_TEX_MIPFILTER_NONE = 0, 2
PIPE_SWIZZLE_RGBA = (0, 1, 2, 3)
PIPE_FACE_NONE = 0

VIRGL_CMD0_MAX_DWORDS = ((1 << 16) - 1) // 4 * 4  # virgl_protocol.h: longest payload
_IW_HEADER = 11  # RESOURCE_INLINE_WRITE dwords before the data


class VertexElement(NamedTuple):
    """One `pipe_vertex_element`."""

    src_offset: int
    src_format: int  # a virgl format id, e.g. R32G32B32A32_FLOAT = 31
    vertex_buffer_index: int = 0
    instance_divisor: int = 0


class VertexBuffer(NamedTuple):
    """One SET_VERTEX_BUFFERS slot."""

    stride: int
    offset: int
    res_handle: int  # 0 unbinds


class Box(NamedTuple):
    """A `pipe_box` / `virgl_box`."""

    x: int
    y: int
    z: int
    width: int
    height: int
    depth: int


class Viewport(NamedTuple):
    """A `pipe_viewport_state`: window = ndc * scale + translate."""

    scale: tuple[float, float, float]
    translate: tuple[float, float, float]


def viewport(x: float, y: float, width: float, height: float, *, y_0_top: bool = True,
             near: float = 0.0, far: float = 1.0) -> Viewport:
    """The gallium viewport transform for a rectangle (like Mesa's st_atom_viewport).

    With `y_0_top` (Mesa's choice for window-system framebuffers) y is negated, `x, y` is
    the rectangle's first column and row in the resource and NDC y=+1 lands on that row,
    so row 0 is the top of what a scanout shows; otherwise y counts up from the bottom.
    """
    half_w, half_h = width / 2, height / 2
    scale_y, translate_y = (-half_h, y + half_h) if y_0_top else (half_h, y + half_h)
    return Viewport((half_w, scale_y, (far - near) / 2),
                    (x + half_w, translate_y, (far + near) / 2))


def f32(value: float) -> int:
    """The IEEE-754 single bits of `value`, as virgl's `fui()` sends floats."""
    return int(struct.unpack("<I", struct.pack("<f", value))[0])


def _u32(value: int) -> int:
    if not -(1 << 31) <= value < (1 << 32):
        raise ValueError(f"{value} does not fit a dword")
    return value & 0xFFFFFFFF


def _bytes_to_dwords(data: bytes) -> list[int]:
    data += b"\0" * (-len(data) % 4)
    return list(struct.unpack(f"<{len(data) // 4}I", data))


class CommandBuffer:
    """Accumulates virgl commands; `to_bytes()` is a SUBMIT_CMD payload.

    Handles given to `create_*` are OBJECT handles (per virgl context and sub-context,
    nonzero); `res_handle` arguments are RESOURCE handles.
    """

    def __init__(self) -> None:
        self._dwords: list[int] = []

    def __len__(self) -> int:
        return len(self._dwords)

    @property
    def dwords(self) -> list[int]:
        return list(self._dwords)

    def to_bytes(self) -> bytes:
        return struct.pack(f"<{len(self._dwords)}I", *self._dwords)

    def clear_buffer(self) -> None:
        """Forget every command encoded so far (after a submit)."""
        self._dwords.clear()

    def emit(self, cmd: int, obj_type: int, payload: Iterable[int]) -> None:
        """Append one raw command: header `VIRGL_CMD0(cmd, obj_type, len)` + payload."""
        body = [_u32(v) for v in payload]
        if not (0 <= cmd <= 0xFF and 0 <= obj_type <= 0xFF):
            raise ValueError(f"command {cmd} / object type {obj_type} must fit a byte")
        if len(body) > 0xFFFF:
            raise ValueError(f"command payload of {len(body)} dwords exceeds 65535")
        self._dwords.append(cmd | obj_type << 8 | len(body) << 16)
        self._dwords.extend(body)

    # Objects
    def create_blend(self, handle: int, *, colormask: int = 0xF, blend_enable: bool = False,
                     src_factor: int = PIPE_BLENDFACTOR_ONE,
                     dst_factor: int = PIPE_BLENDFACTOR_ZERO, func: int = PIPE_BLEND_ADD,
                     logicop_enable: bool = False, logicop_func: int = 0) -> None:
        """CREATE_OBJECT(BLEND), len 11 (VIRGL_OBJ_BLEND_SIZE).

        p0 handle; p1 S0 (bit0 independent_blend_enable, bit1 logicop_enable, bit2
        dither, bit3 alpha_to_coverage, bit4 alpha_to_one); p2 S1 logicop_func; p3..p10
        S2 per colour buffer: bit0 blend_enable, rgb_func<<1, rgb_src<<4, rgb_dst<<9,
        alpha_func<<14, alpha_src<<17, alpha_dst<<22, colormask<<27. The same state is
        written for all 8 buffers (independent blending off, like a GL default).
        """
        rt = (int(blend_enable) | (func & 7) << 1 | (src_factor & 0x1F) << 4
              | (dst_factor & 0x1F) << 9 | (func & 7) << 14 | (src_factor & 0x1F) << 17
              | (dst_factor & 0x1F) << 22 | (colormask & 0xF) << 27)
        self.emit(Ccmd.CREATE_OBJECT, ObjectType.BLEND,
                  [handle, int(logicop_enable) << 1, logicop_func & 0xF, *[rt] * 8])

    def create_rasterizer(self, handle: int, *, cull_face: int = PIPE_FACE_NONE,
                          front_ccw: bool = True, flatshade: bool = False,
                          scissor: bool = False, depth_clip: bool = True,
                          half_pixel_center: bool = True, bottom_edge_rule: bool = False,
                          point_size: float = 1.0, line_width: float = 1.0) -> None:
        """CREATE_OBJECT(RASTERIZER), len 9 (VIRGL_OBJ_RS_SIZE).

        p0 handle; p1 S0 bits: 0 flatshade, 1 depth_clip, 8-9 cull_face, 10-11/12-13 fill
        front/back (0 = FILL), 14 scissor, 15 front_ccw, 29 half_pixel_center, 30
        bottom_edge_rule (others 0); p2 point_size (f32); p3 sprite_coord_enable; p4 S3
        (line stipple, clip_plane_enable); p5 line_width (f32); p6-p8 offset
        units/scale/clamp (f32).
        """
        s0 = (int(flatshade) | int(depth_clip) << 1 | (cull_face & 3) << 8
              | int(scissor) << 14 | int(front_ccw) << 15 | int(half_pixel_center) << 29
              | int(bottom_edge_rule) << 30)
        self.emit(Ccmd.CREATE_OBJECT, ObjectType.RASTERIZER,
                  [handle, s0, f32(point_size), 0, 0, f32(line_width), 0, 0, 0])

    def create_dsa(self, handle: int, *, depth_enable: bool = False,
                   depth_writemask: bool = False, depth_func: int = PIPE_FUNC_LESS) -> None:
        """CREATE_OBJECT(DSA), len 5 (VIRGL_OBJ_DSA_SIZE).

        p0 handle; p1 S0: bit0 depth enable, bit1 writemask, func<<2, alpha test bits 8-11;
        p2/p3 S1 stencil front/back (0 = off); p4 alpha_ref (f32).
        """
        s0 = int(depth_enable) | int(depth_writemask) << 1 | (depth_func & 7) << 2
        self.emit(Ccmd.CREATE_OBJECT, ObjectType.DSA, [handle, s0, 0, 0, 0])

    def create_surface(
        self, handle: int, res_handle: int, format: int, level: int = 0,
        first_layer: int = 0, last_layer: int = 0,
    ) -> None:
        """CREATE_OBJECT(SURFACE), len 5 (VIRGL_OBJ_SURFACE_SIZE), a texture surface.

        p0 handle; p1 RESOURCE; p2 format; p3 level (TEXTURE_LEVEL); p4 first_layer |
        last_layer << 16 (TEXTURE_LAYERS).
        """
        self.emit(Ccmd.CREATE_OBJECT, ObjectType.SURFACE,
                  [handle, res_handle, format, level,
                   (first_layer & 0xFFFF) | (last_layer & 0xFFFF) << 16])

    def create_sampler_view(self, handle: int, res_handle: int, format: int, *,
                            first_layer: int = 0, last_layer: int = 0, first_level: int = 0,
                            last_level: int = 0,
                            swizzle: Sequence[int] = PIPE_SWIZZLE_RGBA,
                            target: int = 0) -> None:
        """CREATE_OBJECT(SAMPLER_VIEW), len 6 (VIRGL_OBJ_SAMPLER_VIEW_SIZE), of a texture.

        p0 handle; p1 RESOURCE; p2 format | target << 24 (target 0 = the resource's own;
        another needs VIRGL_CAP_TEXTURE_VIEW); p3 first_layer | last_layer << 16; p4
        first_level | last_level << 8; p5 swizzle r | g<<3 | b<<6 | a<<9.
        """
        r, g, b, a = swizzle
        self.emit(Ccmd.CREATE_OBJECT, ObjectType.SAMPLER_VIEW,
                  [handle, res_handle, format | (target & 0xFF) << 24,
                   (first_layer & 0xFFFF) | (last_layer & 0xFFFF) << 16,
                   (first_level & 0xFF) | (last_level & 0xFF) << 8,
                   (r & 7) | (g & 7) << 3 | (b & 7) << 6 | (a & 7) << 9])

    def create_sampler_state(self, handle: int, *, wrap: int = PIPE_TEX_WRAP_CLAMP_TO_EDGE,
                             min_filter: int = PIPE_TEX_FILTER_NEAREST,
                             mag_filter: int = PIPE_TEX_FILTER_NEAREST,
                             mip_filter: int = PIPE_TEX_MIPFILTER_NONE,
                             min_lod: float = 0.0, max_lod: float = 0.0) -> None:
        """CREATE_OBJECT(SAMPLER_STATE), len 9 (VIRGL_OBJ_SAMPLER_STATE_SIZE).

        p0 handle; p1 S0: wrap_s | wrap_t<<3 | wrap_r<<6 | min_img<<9 | min_mip<<11 |
        mag_img<<13 (compare/seamless/anisotropy 0); p2 lod_bias, p3 min_lod, p4 max_lod
        (f32); p5-p8 border colour (0).
        """
        s0 = ((wrap & 7) | (wrap & 7) << 3 | (wrap & 7) << 6 | (min_filter & 3) << 9
              | (mip_filter & 3) << 11 | (mag_filter & 3) << 13)
        self.emit(Ccmd.CREATE_OBJECT, ObjectType.SAMPLER_STATE,
                  [handle, s0, f32(0.0), f32(min_lod), f32(max_lod), 0, 0, 0, 0])

    def create_vertex_elements(self, handle: int, elements: Sequence[VertexElement]) -> None:
        """CREATE_OBJECT(VERTEX_ELEMENTS), len 1 + 4n.

        p0 handle; per element i: p(1+4i) src_offset, p(2+4i) instance_divisor,
        p(3+4i) vertex_buffer_index, p(4+4i) src_format.
        """
        payload = [handle]
        for e in elements:
            payload += [e.src_offset, e.instance_divisor, e.vertex_buffer_index, e.src_format]
        self.emit(Ccmd.CREATE_OBJECT, ObjectType.VERTEX_ELEMENTS, payload)

    def create_shader(self, handle: int, stage: int, tgsi_text: str, *,
                      num_tokens: int | None = None, req_local_mem: int = 0,
                      max_piece_bytes: int = 4 * (VIRGL_CMD0_MAX_DWORDS - 5)) -> None:
        """CREATE_OBJECT(SHADER), one or more packets (see `_tgsi` for the splitting).

        Each packet: p0 handle; p1 stage; p2 offlen (first: text bytes incl. NUL; later:
        VIRGL_OBJ_SHADER_OFFSET_CONT | byte offset); p3 num_tokens; p4 number of stream
        outputs (0; for COMPUTE this dword is req_local_mem); p5.. the text piece.
        """
        tokens = estimate_num_tokens(tgsi_text) if num_tokens is None else num_tokens
        so_or_mem = req_local_mem if stage == PIPE_SHADER_COMPUTE else 0
        for piece in shader_pieces(tgsi_text, max_piece_bytes):
            self.emit(Ccmd.CREATE_OBJECT, ObjectType.SHADER,
                      [handle, stage, piece.offlen, tokens, so_or_mem,
                       *_bytes_to_dwords(piece.data)])

    def bind_object(self, handle: int, obj_type: int) -> None:
        """BIND_OBJECT, len 1: p0 handle; the type (BLEND, RASTERIZER, DSA or
        VERTEX_ELEMENTS, the only ones the host binds this way) sits in header bits 8-15."""
        self.emit(Ccmd.BIND_OBJECT, obj_type, [handle])

    def destroy_object(self, handle: int, obj_type: int) -> None:
        """DESTROY_OBJECT, len 1: p0 handle (type in header bits 8-15, informational)."""
        self.emit(Ccmd.DESTROY_OBJECT, obj_type, [handle])

    def bind_shader(self, handle: int, stage: int) -> None:
        """BIND_SHADER, len 2 (VIRGL_BIND_SHADER_SIZE): p0 handle, p1 stage."""
        self.emit(Ccmd.BIND_SHADER, 0, [handle, stage])

    # State
    def set_framebuffer_state(self, cbufs: Sequence[int], zsurf: int = 0) -> None:
        """SET_FRAMEBUFFER_STATE, len 2 + n: p0 nr_cbufs (<= 8), p1 zsurf handle (0 =
        none), p2.. colour SURFACE handles."""
        if len(cbufs) > 8:
            raise ValueError("at most 8 colour buffers")
        self.emit(Ccmd.SET_FRAMEBUFFER_STATE, 0, [len(cbufs), zsurf, *cbufs])

    def set_viewport_state(self, viewports: Sequence[Viewport], start_slot: int = 0) -> None:
        """SET_VIEWPORT_STATE, len 1 + 6n: p0 start slot; per viewport scale x,y,z then
        translate x,y,z (f32)."""
        payload = [start_slot]
        for vp in viewports:
            payload += [f32(v) for v in (*vp.scale, *vp.translate)]
        self.emit(Ccmd.SET_VIEWPORT_STATE, 0, payload)

    def set_scissor_state(self, rects: Sequence[tuple[int, int, int, int]],
                          start_slot: int = 0) -> None:
        """SET_SCISSOR_STATE, len 1 + 2n: p0 start slot; per (minx, miny, maxx, maxy):
        minx | miny << 16, maxx | maxy << 16."""
        payload = [start_slot]
        for minx, miny, maxx, maxy in rects:
            payload += [minx & 0xFFFF | (miny & 0xFFFF) << 16,
                        maxx & 0xFFFF | (maxy & 0xFFFF) << 16]
        self.emit(Ccmd.SET_SCISSOR_STATE, 0, payload)

    def set_vertex_buffers(self, buffers: Sequence[VertexBuffer]) -> None:
        """SET_VERTEX_BUFFERS, len 3n: per slot stride, offset, RESOURCE."""
        payload: list[int] = []
        for vb in buffers:
            payload += [vb.stride, vb.offset, vb.res_handle]
        self.emit(Ccmd.SET_VERTEX_BUFFERS, 0, payload)

    def set_index_buffer(self, res_handle: int, index_size: int = 0, offset: int = 0) -> None:
        """SET_INDEX_BUFFER: len 3 (p0 RESOURCE, p1 index size, p2 offset) or, for
        res_handle 0, len 1 (unbind)."""
        payload = [res_handle, index_size, offset] if res_handle else [0]
        self.emit(Ccmd.SET_INDEX_BUFFER, 0, payload)

    def set_constant_buffer(self, stage: int, index: int, values: Sequence[float]) -> None:
        """SET_CONSTANT_BUFFER, len 2 + n: p0 stage, p1 index (unused by the host), then
        the constants (f32)."""
        self.emit(Ccmd.SET_CONSTANT_BUFFER, 0, [stage, index, *map(f32, values)])

    def set_sampler_views(self, stage: int, views: Sequence[int], start_slot: int = 0) -> None:
        """SET_SAMPLER_VIEWS, len 2 + n: p0 stage, p1 start slot, p2.. view handles."""
        self.emit(Ccmd.SET_SAMPLER_VIEWS, 0, [stage, start_slot, *views])

    def bind_sampler_states(self, stage: int, states: Sequence[int],
                            start_slot: int = 0) -> None:
        """BIND_SAMPLER_STATES, len 2 + n: p0 stage, p1 start slot, p2.. state handles."""
        self.emit(Ccmd.BIND_SAMPLER_STATES, 0, [stage, start_slot, *states])

    def set_sub_ctx(self, sub_ctx: int) -> None:
        """SET_SUB_CTX, len 1: p0 sub-context id."""
        self.emit(Ccmd.SET_SUB_CTX, 0, [sub_ctx])

    def create_sub_ctx(self, sub_ctx: int) -> None:
        """CREATE_SUB_CTX, len 1: p0 sub-context id."""
        self.emit(Ccmd.CREATE_SUB_CTX, 0, [sub_ctx])

    def destroy_sub_ctx(self, sub_ctx: int) -> None:
        """DESTROY_SUB_CTX, len 1: p0 sub-context id."""
        self.emit(Ccmd.DESTROY_SUB_CTX, 0, [sub_ctx])

    # Work
    def clear(self, color: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
              buffers: int = PIPE_CLEAR_COLOR0, depth: float = 1.0, stencil: int = 0) -> None:
        """CLEAR, len 8 (VIRGL_OBJ_CLEAR_SIZE): p0 buffers (PIPE_CLEAR_* bits), p1-p4
        colour RGBA (f32), p5-p6 depth (f64, low dword first), p7 stencil."""
        depth_lo, depth_hi = struct.unpack("<2I", struct.pack("<d", depth))
        r, g, b, a = color
        self.emit(Ccmd.CLEAR, 0, [buffers, f32(r), f32(g), f32(b), f32(a),
                                  depth_lo, depth_hi, stencil])

    def draw_vbo(self, start: int, count: int, mode: int = PIPE_PRIM_TRIANGLES, *,
                 indexed: bool = False, instance_count: int = 1, index_bias: int = 0,
                 start_instance: int = 0, primitive_restart: bool = False,
                 restart_index: int = 0, min_index: int = 0,
                 max_index: int = 0xFFFFFFFF) -> None:
        """DRAW_VBO, len 12 (VIRGL_DRAW_VBO_SIZE): p0 start, p1 count, p2 mode, p3
        indexed, p4 instance_count, p5 index_bias (signed), p6 start_instance, p7
        primitive_restart, p8 restart_index, p9 min_index, p10 max_index, p11
        count_from_so (0)."""
        self.emit(Ccmd.DRAW_VBO, 0, [start, count, mode, int(indexed), instance_count,
                                     index_bias, start_instance, int(primitive_restart),
                                     restart_index, min_index, max_index, 0])

    def resource_inline_write(
        self, res_handle: int, level: int, usage: int, stride: int, layer_stride: int,
        box: Box, data: bytes,
    ) -> None:
        """RESOURCE_INLINE_WRITE, len 11 + ceil(bytes/4).

        p0 RESOURCE, p1 level, p2 usage, p3 stride, p4 layer_stride (0 = the host's own
        for that level), p5-p10 box x, y, z, w, h, d (w in bytes for buffers), p11.. the
        data, zero-padded. The host checks the data covers the box.
        """
        if len(data) > 4 * (0xFFFF - _IW_HEADER):
            raise ValueError("inline write too large for one command; use buffer_write")
        self.emit(Ccmd.RESOURCE_INLINE_WRITE, 0,
                  [res_handle, level, usage, stride, layer_stride, *box,
                   *_bytes_to_dwords(data)])

    def buffer_write(self, res_handle: int, offset: int, data: bytes,
                     max_chunk_bytes: int = 4 * (VIRGL_CMD0_MAX_DWORDS - _IW_HEADER)) -> None:
        """Write `data` at byte `offset` of a PIPE_BUFFER resource, as many
        RESOURCE_INLINE_WRITE commands (box x = offset, w = bytes) as it takes."""
        if max_chunk_bytes <= 0 or max_chunk_bytes % 4:
            raise ValueError("max_chunk_bytes must be a positive multiple of 4")
        for pos in range(0, len(data), max_chunk_bytes):
            chunk = data[pos:pos + max_chunk_bytes]
            self.resource_inline_write(res_handle, 0, 0, 0, 0,
                                       Box(offset + pos, 0, 0, len(chunk), 1, 1), chunk)

