"""ScanoutView: a GL surface widget (ui.gl_surface) that draws one scanout from its shared texture.

Why here: drawing happens in paintGL only, from the ring frame the render
thread handed over (see virgl_viewer.scanout): lease the newest frame,
glWaitSync on its copy fence, draw, fence the draw and hand the lease back.
No readback, no CPU copy. A frame shown 1:1 is blitted (llvmpipe copies its
rows, where a quad shades every pixel: about 0.11 ms against 0.9 ms at
800x600); a scaled one is drawn as a quad. The view repaints at most once per
screen refresh however fast the guest presents.
"""

from __future__ import annotations

import logging
import time
from enum import Enum

from OpenGL import GL
from PySide6.QtCore import QRectF, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QPainter
from PySide6.QtWidgets import QWidget

from virgl_viewer.formats import format_info
from virgl_viewer.frames import Frame, Scanout, gl_blit_frame, gl_draw_frame
from virgl_viewer.ui.gl_surface import GLSurfaceWidget

log = logging.getLogger(__name__)

GL_TEXTURE_SRGB_DECODE_EXT = 0x8A48
GL_SKIP_DECODE_EXT = 0x8A4A

VERTEX_SHADER = """#version 330 core
uniform vec4 u_rect;      // x0, y0, x1, y1 in NDC
uniform bool u_flip;
out vec2 v_uv;
void main() {
    vec2 corner = vec2(gl_VertexID & 1, (gl_VertexID >> 1) & 1);
    gl_Position = vec4(mix(u_rect.xy, u_rect.zw, corner), 0.0, 1.0);
    // texture row 0 is the guest's first row; NDC y grows upwards
    v_uv = vec2(corner.x, u_flip ? corner.y : 1.0 - corner.y);
}
"""

FRAGMENT_SHADER = """#version 330 core
uniform sampler2D u_tex;
uniform bool u_ignore_alpha;
uniform float u_dim;
in vec2 v_uv;
out vec4 o_color;
void main() {
    vec4 c = texture(u_tex, v_uv);
    if (u_ignore_alpha) c.a = 1.0;
    o_color = vec4(c.rgb * u_dim, c.a);
}
"""


def repaint_delay_ms(widget: QWidget, last: float, max_fps: float = 1000.0) -> int:
    """Milliseconds until ``widget`` may ask for its next paint: at most one
    per screen refresh (and ``max_fps``) after ``last``, none of the wait when
    ``last`` is older. A view at the screen's refresh passes the time of its
    last request (``update()``), not of its last paint: Qt delivers a paint
    some milliseconds after the request, and timing from the paint adds that
    to every interval (44 paints a second on a 60 Hz screen)."""
    screen = widget.screen()
    rate = screen.refreshRate() if screen is not None else 60.0
    interval = 1.0 / max(1.0, min(rate, max_fps))
    left = interval - (time.monotonic() - last)
    return max(0, int(left * 1000.0))


class ScaleMode(Enum):
    ONE_TO_ONE = "1:1"
    FIT = "fit"
    INTEGER = "integer"


def fit_rect(mode: ScaleMode, img_w: int, img_h: int, view_w: int, view_h: int
             ) -> tuple[int, int, int, int]:
    """Where the image goes in a view (device pixels): x, y, w, h."""
    if img_w <= 0 or img_h <= 0 or view_w <= 0 or view_h <= 0:
        return 0, 0, 0, 0
    if mode is ScaleMode.FIT:
        s = min(view_w / img_w, view_h / img_h)
        w, h = max(1, round(img_w * s)), max(1, round(img_h * s))
    elif mode is ScaleMode.INTEGER:
        k = max(1, min(view_w // img_w, view_h // img_h))
        w, h = img_w * k, img_h * k
    else:
        w, h = img_w, img_h
    return (view_w - w) // 2, (view_h - h) // 2, w, h


class _Program:
    """The shader program and sampler objects of one GL context."""

    def __init__(self) -> None:
        self.prog = GL.glCreateProgram()
        for kind, src in ((GL.GL_VERTEX_SHADER, VERTEX_SHADER),
                          (GL.GL_FRAGMENT_SHADER, FRAGMENT_SHADER)):
            sh = GL.glCreateShader(kind)
            GL.glShaderSource(sh, src)
            GL.glCompileShader(sh)
            if not GL.glGetShaderiv(sh, GL.GL_COMPILE_STATUS):
                raise RuntimeError(GL.glGetShaderInfoLog(sh).decode())
            GL.glAttachShader(self.prog, sh)
            GL.glDeleteShader(sh)
        GL.glLinkProgram(self.prog)
        if not GL.glGetProgramiv(self.prog, GL.GL_LINK_STATUS):
            raise RuntimeError(GL.glGetProgramInfoLog(self.prog).decode())
        self.vao = GL.glGenVertexArrays(1)
        self.u_rect = GL.glGetUniformLocation(self.prog, "u_rect")
        self.u_flip = GL.glGetUniformLocation(self.prog, "u_flip")
        self.u_ignore_alpha = GL.glGetUniformLocation(self.prog, "u_ignore_alpha")
        self.u_dim = GL.glGetUniformLocation(self.prog, "u_dim")
        self.u_tex = GL.glGetUniformLocation(self.prog, "u_tex")
        self.uniforms = (self.u_rect, self.u_flip, self.u_ignore_alpha, self.u_dim, self.u_tex)
        # Sampler objects: the ring textures' own parameters are never touched.
        self.samplers = {}
        for name, filt in (("nearest", GL.GL_NEAREST), ("linear", GL.GL_LINEAR)):
            s = GL.glGenSamplers(1)
            GL.glSamplerParameteri(s, GL.GL_TEXTURE_MIN_FILTER, filt)
            GL.glSamplerParameteri(s, GL.GL_TEXTURE_MAG_FILTER, filt)
            GL.glSamplerParameteri(s, GL.GL_TEXTURE_WRAP_S, GL.GL_CLAMP_TO_EDGE)
            GL.glSamplerParameteri(s, GL.GL_TEXTURE_WRAP_T, GL.GL_CLAMP_TO_EDGE)
            # sRGB guests wrote encoded bytes: show them as they are
            GL.glSamplerParameteri(s, GL_TEXTURE_SRGB_DECODE_EXT, GL_SKIP_DECODE_EXT)
            self.samplers[name] = s


def draw_frame(prog: _Program, frame: Frame, rect: tuple[int, int, int, int],
               view_w: int, view_h: int, nearest: bool, dim: float = 1.0,
               opaque: bool = False) -> int:
    """Draw ``frame`` into rect (device pixels, top-left origin) of the
    current framebuffer; returns a GLsync fencing the draw (as an int).
    Alpha is written as stored (1 for X formats) unless ``opaque``."""
    x, y, w, h = rect
    ndc = (2.0 * x / view_w - 1.0, 1.0 - 2.0 * (y + h) / view_h,
           2.0 * (x + w) / view_w - 1.0, 1.0 - 2.0 * y / view_h)
    info = format_info(frame.virgl_format)
    # one native call (vv_gl_draw_frame): every PyOpenGL call costs microseconds of
    # Python, and this runs per paint of every view
    return gl_draw_frame(prog.prog, prog.uniforms, prog.vao,
                         prog.samplers["nearest" if nearest else "linear"], frame.texture,
                         frame.fence, ndc, frame.y_0_top,
                         not (info and info.has_alpha and not opaque), dim)


class ScanoutView(GLSurfaceWidget):
    """Draws one scanout, scaled by a ScaleMode, centred on a dark background."""

    def __init__(self, scanout: Scanout, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scanout = scanout
        self.mode = ScaleMode.FIT
        self._prog: _Program | None = None
        self._dirty = True
        self._last_request = 0.0  # when _tick last asked for a paint
        self.painted_seq = 0  # seq of the frame drawn by the last paint
        self.paints = 0
        self.blits = 0  # paints that were a blit (1:1): see _blit
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        self.setMinimumSize(QSize(64, 48))

    # called (GUI thread) whenever the scanout got a new frame
    def frame_ready(self) -> None:
        """A new frame is there: paint it now if the last paint is one
        refresh old, else once that refresh interval has passed."""
        if not self._dirty:
            self._dirty = True
            if not self._timer.isActive():
                self._timer.start(repaint_delay_ms(self, self._last_request))

    def _tick(self) -> None:
        self._timer.stop()
        self._last_request = time.monotonic()
        self.update()

    def set_mode(self, mode: ScaleMode) -> None:
        self.mode = mode
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802
        sc = self.scanout
        if sc.width and sc.height:
            dpr = self.devicePixelRatioF() or 1.0
            return QSize(round(sc.width / dpr), round(sc.height / dpr))
        return QSize(640, 480)

    def initializeGL(self) -> None:  # noqa: N802
        self._prog = _Program()

    def paintGL(self) -> None:  # noqa: N802
        self._dirty = False
        dpr = self.devicePixelRatioF() or 1.0
        vw, vh = round(self.width() * dpr), round(self.height() * dpr)
        GL.glViewport(0, 0, vw, vh)
        frame = self.scanout.take_latest() if self._prog is not None else None
        if frame is None:
            self._clear()
            return
        fence = 0
        try:
            rect = fit_rect(self.mode, frame.width, frame.height, vw, vh)
            one_to_one = (rect[2], rect[3]) == (frame.width, frame.height)
            nearest = self.mode is not ScaleMode.FIT or one_to_one
            alive = self.scanout.alive
            if rect != (0, 0, vw, vh):
                self._clear()  # the background around the image
            if one_to_one and alive and self._blit_keeps_alpha(frame):
                fence = self._blit(frame, rect, vh)
                self.blits += 1
            else:
                assert self._prog is not None
                fence = draw_frame(self._prog, frame, rect, vw, vh, nearest,
                                   1.0 if alive else 0.45)
            self.painted_seq = frame.seq
            self.paints += 1
        finally:
            self.scanout.drawn(frame, fence)
        if not self.scanout.alive:
            self._paint_overlay(self.scanout.gone_reason or "client disconnected")

    @staticmethod
    def _clear() -> None:
        GL.glClearColor(0.12, 0.12, 0.13, 1.0)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT)

    def _blit_keeps_alpha(self, frame: Frame) -> bool:
        """A blit writes the stored alpha: right for formats with alpha, and for X
        formats when the target has no alpha to show (the draw forces it to 1)."""
        info = format_info(frame.virgl_format)
        if info is not None and info.has_alpha:
            return True
        # (a grab's FBO has alpha, but grabFramebuffer drops it when the window has none)
        return self.surface.format().alphaBufferSize() <= 0

    def _blit(self, frame: Frame, rect: tuple[int, int, int, int], vh: int) -> int:
        """Draw a 1:1 frame as a framebuffer blit: llvmpipe copies rows where a quad
        would shade each pixel (vv_gl_blit_frame)."""
        x, y, w, h = rect
        return gl_blit_frame(frame.texture, frame.fence, w, h, x, vh - (y + h), frame.y_0_top)

    def _paint_overlay(self, text: str) -> None:
        p = QPainter(self.paint_device())
        p.setPen(QColor(255, 255, 255))
        f = QFont()
        f.setPointSize(14)
        f.setBold(True)
        p.setFont(f)
        p.drawText(QRectF(0, 0, self.width(), self.height()), Qt.AlignmentFlag.AlignCenter,
                   text)
        p.end()
