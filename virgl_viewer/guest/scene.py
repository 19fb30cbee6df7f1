"""Render the test patterns into display targets with real virgl commands and present them.

Why: the viewer must be tested against a guest that exercises the server the way Mesa's
virpipe does (surfaces, shaders, vertex buffers, draws, clears, then a present), while
producing pixels known in advance (`patterns.expected_image`).

How: one virgl sub-context (created and set like Mesa's `virgl_context_create`) holds the
shared objects: blend (no blending), rasterizer (no culling, no scissor, half-pixel
centres), DSA (off), a pass-through vertex shader, a colour and a texture fragment shader
(`_tgsi`), vertex elements (vec4 position + vec4 colour/texcoord) and a NEAREST sampler.
Each scanout is a 2D display target (bind RENDER_TARGET|SAMPLER_VIEW|DISPLAY_TARGET = 0x8A,
like glxgears' window buffer) with a shm of W*H*4 bytes and a surface; for ``gradient`` a
W x H R8G8B8A8 texture uploaded once with TRANSFER_PUT2. A frame is one SUBMIT_CMD: the
vertices of every scanout in one RESOURCE_INLINE_WRITE into a vertex buffer, then per
scanout SET_FRAMEBUFFER_STATE, SET_VIEWPORT_STATE, CLEAR, draws. Presenting is Mesa's
`virgl_vtest_flush_frontbuffer`: TRANSFER_GET2 of each display target into its shm, then
BUSY_WAIT(handle, WAIT).

Orientation (verified against our server and upstream virgl_test_server 0.10.4 with
llvmpipe, tests/integration/test_guest_cli.py): vtest creates resources without
VIRGL_RESOURCE_Y_0_TOP, so TRANSFER_GET2/PUT2 copy GL texture row 0 to/from shm row 0 with
no flip, and virglrenderer renders with gallium's convention, in which window y = 0 is
resource row 0. With Mesa's window-system viewport (`commands.viewport(..., y_0_top=True)`,
scale_y = -H/2: NDC y = +1 on window row 0, which Mesa's st uses for window framebuffers),
what the guest means as the top row is shm row 0, and a texture uploaded from shm rows
top-first samples top-first with t = y / H. A viewport with y_0_top=False puts NDC y = +1 on
the LAST shm row (the image comes back upside down). The X byte of B8G8R8X8/R8G8B8X8
targets reads back as 255 on both servers; `to_rgba` forces it to 255 regardless.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass

from virgl_viewer.guest import _tgsi
from virgl_viewer.guest import commands as enc
from virgl_viewer.guest.client import VtestClient
from virgl_viewer.guest.patterns import Plan, gradient_texels, plan
from virgl_viewer.guest.resources import GuestResource
from virgl_viewer.vtest import protocol as p

log = logging.getLogger(__name__)

# --format -> virgl format id (src/virgl_hw.h enum virgl_formats) and its byte order
FORMATS: dict[str, tuple[int, str]] = {
    "bgrx": (2, "BGRX"),  # B8G8R8X8_UNORM, what Mesa's GLX windows use
    "bgra": (1, "BGRA"),  # B8G8R8A8_UNORM
    "rgba": (67, "RGBA"),  # R8G8B8A8_UNORM
    "rgbx": (134, "RGBX"),  # R8G8B8X8_UNORM
}
DISPLAY_TARGET_BIND = p.BIND_RENDER_TARGET | p.BIND_SAMPLER_VIEW | p.BIND_DISPLAY_TARGET
_R8_UNORM, _R8G8B8A8_UNORM, _R32G32B32A32_FLOAT = 64, 67, 31
_VERTEX_BYTES = 32  # vec4 position + vec4 colour / texcoord
_SUB_CTX = 1


def to_rgba(data: bytes, order: str) -> bytes:
    """Convert 4-byte pixels in memory ``order`` ("BGRX", "RGBA", ...) to RGBA; an X
    channel reads as 255."""
    if order == "RGBA":
        return bytes(data)
    out = bytearray(len(data))
    for i, ch in enumerate(order):
        if ch != "X":
            dst = "RGBA".index(ch)
            out[dst::4] = data[i::4]
    if "X" in order:
        out[3::4] = b"\xff" * (len(data) // 4)
    return bytes(out)


@dataclass
class Scanout:
    """One display target and what draws into it."""

    index: int
    width: int
    height: int
    resource: GuestResource
    surface: int  # SURFACE object handle
    texture: GuestResource | None = None  # gradient texture
    view: int = 0  # its SAMPLER_VIEW object handle

    @property
    def handle(self) -> int:
        return self.resource.handle


class GuestScene:
    """A pattern rendered into N display targets of a connected ``VtestClient``.

    ``present_frame(frame)`` renders and presents one frame; ``read_rgba(i)`` is what the
    last present left in scanout i's shm, as RGBA8 rows top-first. ``resize(sizes)``
    re-creates the display targets (a guest window resized). The client must speak
    protocol >= 2 (display targets need a shm).
    """

    def __init__(self, client: VtestClient, pattern: str, sizes: list[tuple[int, int]],
                 fmt: str = "bgrx") -> None:
        if client.protocol_version < 2:
            raise ValueError("the guest needs vtest protocol >= 2 (TRANSFER_GET2 and shm)")
        self.client = client
        self.pattern = pattern
        self.format_id, self.order = FORMATS[fmt]
        self.scanouts: list[Scanout] = []
        self._next_object = 1
        self._vbuf: GuestResource | None = None
        self._vbuf_size = 0
        self._setup_objects()
        self._create_scanouts(sizes)

    # ------------------------------------------------------------ objects
    def _object(self) -> int:
        handle, self._next_object = self._next_object, self._next_object + 1
        return handle

    def _setup_objects(self) -> None:
        cb = enc.CommandBuffer()
        cb.create_sub_ctx(_SUB_CTX)
        cb.set_sub_ctx(_SUB_CTX)
        self._blend, self._rast, self._dsa = self._object(), self._object(), self._object()
        cb.create_blend(self._blend)
        cb.create_rasterizer(self._rast, half_pixel_center=True)
        cb.create_dsa(self._dsa)
        self._vs, self._color_fs, self._tex_fs = self._object(), self._object(), self._object()
        cb.create_shader(self._vs, enc.PIPE_SHADER_VERTEX, _tgsi.COLOR_VS)
        cb.create_shader(self._color_fs, enc.PIPE_SHADER_FRAGMENT, _tgsi.COLOR_FS)
        cb.create_shader(self._tex_fs, enc.PIPE_SHADER_FRAGMENT, _tgsi.TEXTURE_FS)
        self._velems, self._sampler = self._object(), self._object()
        cb.create_vertex_elements(self._velems, [
            enc.VertexElement(0, _R32G32B32A32_FLOAT),
            enc.VertexElement(16, _R32G32B32A32_FLOAT)])
        cb.create_sampler_state(self._sampler, min_filter=enc.PIPE_TEX_FILTER_NEAREST,
                                mag_filter=enc.PIPE_TEX_FILTER_NEAREST)
        cb.bind_object(self._blend, enc.ObjectType.BLEND)
        cb.bind_object(self._rast, enc.ObjectType.RASTERIZER)
        cb.bind_object(self._dsa, enc.ObjectType.DSA)
        cb.bind_object(self._velems, enc.ObjectType.VERTEX_ELEMENTS)
        cb.bind_shader(self._vs, enc.PIPE_SHADER_VERTEX)
        self.client.submit(cb.to_bytes())

    def _create_scanouts(self, sizes: list[tuple[int, int]]) -> None:
        cb = enc.CommandBuffer()
        for i, (w, h) in enumerate(sizes):
            res = self.client.resource_create(
                p.TARGET_2D, self.format_id, DISPLAY_TARGET_BIND, w, h, data_size=w * h * 4)
            sc = Scanout(i, w, h, res, self._object())
            cb.create_surface(sc.surface, res.handle, self.format_id)
            if plan(self.pattern, w, h, 0, i).gradient:
                sc.texture = self._upload_texture(gradient_texels(w, h, i), w, h)
                sc.view = self._object()
                cb.create_sampler_view(sc.view, sc.texture.handle, _R8G8B8A8_UNORM)
            self.scanouts.append(sc)
        self.client.submit(cb.to_bytes())
        log.debug("display targets %s", [(s.handle, s.width, s.height) for s in self.scanouts])

    def _upload_texture(self, rgba: bytes, width: int, height: int) -> GuestResource:
        tex = self.client.resource_create(p.TARGET_2D, _R8G8B8A8_UNORM, p.BIND_SAMPLER_VIEW,
                                          width, height, data_size=len(rgba))
        assert tex.shm is not None
        tex.shm[:len(rgba)] = rgba
        self.client.transfer_put2(tex, width=width, height=height, data_size=len(rgba))
        return tex

    def _destroy_scanouts(self) -> None:
        cb = enc.CommandBuffer()
        for sc in self.scanouts:
            cb.destroy_object(sc.surface, enc.ObjectType.SURFACE)
            if sc.view:
                cb.destroy_object(sc.view, enc.ObjectType.SAMPLER_VIEW)
        self.client.submit(cb.to_bytes())
        for sc in self.scanouts:
            sc.resource.close()
            if sc.texture is not None:
                sc.texture.close()
        self.scanouts = []

    def resize(self, sizes: list[tuple[int, int]]) -> None:
        """Re-create every display target, scanout i at ``sizes[i]``."""
        self._destroy_scanouts()
        self._create_scanouts(sizes)

    def _vertex_buffer(self, size: int) -> GuestResource:
        if self._vbuf is None or self._vbuf_size < size:
            if self._vbuf is not None:
                self._vbuf.close()
            self._vbuf_size = max(4096, 1 << (size - 1).bit_length())
            # PIPE_BUFFER resources are R8_UNORM with width = bytes, as Mesa creates them.
            self._vbuf = self.client.resource_create(
                p.TARGET_BUFFER, _R8_UNORM, p.BIND_VERTEX_BUFFER, self._vbuf_size)
        return self._vbuf

    # -------------------------------------------------------------- frames
    def render(self, frame: int) -> None:
        """Encode and submit frame ``frame`` of every scanout (one SUBMIT_CMD)."""
        vertices = bytearray()
        draws: list[tuple[Scanout, Plan, int]] = []
        for sc in self.scanouts:
            pl = plan(self.pattern, sc.width, sc.height, frame, sc.index)
            draws.append((sc, pl, len(vertices) // _VERTEX_BYTES))
            vertices += _plan_vertices(pl, sc.width, sc.height)
        cb = enc.CommandBuffer()
        if vertices:
            vbuf = self._vertex_buffer(len(vertices))
            cb.buffer_write(vbuf.handle, 0, bytes(vertices))
            cb.set_vertex_buffers([enc.VertexBuffer(_VERTEX_BYTES, 0, vbuf.handle)])
        for sc, pl, first in draws:
            cb.set_framebuffer_state([sc.surface])
            cb.set_viewport_state([enc.viewport(0, 0, sc.width, sc.height, y_0_top=True)])
            cb.clear([c / 255 for c in (*pl.background, 255)])
            if pl.gradient:
                cb.bind_shader(self._tex_fs, enc.PIPE_SHADER_FRAGMENT)
                cb.set_sampler_views(enc.PIPE_SHADER_FRAGMENT, [sc.view])
                cb.bind_sampler_states(enc.PIPE_SHADER_FRAGMENT, [self._sampler])
                cb.draw_vbo(first, 6)
            if pl.rects:
                cb.bind_shader(self._color_fs, enc.PIPE_SHADER_FRAGMENT)
                cb.draw_vbo(first + 6 * pl.gradient, 6 * len(pl.rects))
        self.client.submit(cb.to_bytes())

    def present(self) -> None:
        """Mesa's present: TRANSFER_GET2 of each display target into its shm, then
        BUSY_WAIT(handle, WAIT) until the copy is done."""
        for sc in self.scanouts:
            self.client.transfer_get2(sc.resource, width=sc.width, height=sc.height,
                                      data_size=sc.width * sc.height * 4)
            self.client.busy_wait(sc.resource, wait=True)

    def present_frame(self, frame: int) -> None:
        """Render and present frame ``frame``."""
        self.render(frame)
        self.present()

    def read_rgba(self, index: int) -> bytes:
        """Scanout ``index``'s shm after the last present, as RGBA8 rows top-first."""
        sc = self.scanouts[index]
        assert sc.resource.shm is not None
        return to_rgba(sc.resource.shm[:sc.width * sc.height * 4], self.order)

    def close(self) -> None:
        """Unref every resource (the client stays open)."""
        if not self.client.closed:
            self._destroy_scanouts()
            if self._vbuf is not None:
                self._vbuf.close()
                self._vbuf = None


def _ndc(x: int, y: int, width: int, height: int) -> tuple[float, float]:
    # Inverse of the y_0_top viewport: window (x, y) = ((ndc_x + 1) W/2, (1 - ndc_y) H/2).
    return 2 * x / width - 1, 1 - 2 * y / height


def _quad(x0: int, y0: int, x1: int, y1: int, *, width: int, height: int,
          attr: tuple[float, float, float, float] | None) -> bytes:
    """Two triangles covering [x0, x1) x [y0, y1); ``attr`` is the colour, or None for
    texture coordinates s = x / W, t = y / H (texel (x, y) for pixel (x, y))."""
    out = bytearray()
    for x, y in ((x0, y0), (x1, y0), (x0, y1), (x0, y1), (x1, y0), (x1, y1)):
        nx, ny = _ndc(x, y, width, height)
        a = attr if attr is not None else (x / width, y / height, 0.0, 1.0)
        out += struct.pack("<8f", nx, ny, 0.0, 1.0, *a)
    return bytes(out)


def _plan_vertices(pl: Plan, width: int, height: int) -> bytes:
    out = bytearray()
    if pl.gradient:
        out += _quad(0, 0, width, height, width=width, height=height, attr=None)
    for r in pl.rects:
        color = (r.color[0] / 255, r.color[1] / 255, r.color[2] / 255, 1.0)
        out += _quad(r.x0, r.y0, r.x1, r.y1, width=width, height=height, attr=color)
    return bytes(out)
