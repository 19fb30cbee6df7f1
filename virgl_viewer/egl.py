"""GL-context providers for virglrenderer.

``SurfacelessProvider`` (headless, no X): a Mesa EGL display on
EGL_MESA_platform_surfaceless; every context virglrenderer asks for shares
with one root context, so all of them are in one share group, exactly as the
Qt provider (virgl_viewer.ui) shares them with Qt's global share context.
Contexts are made without a config (EGL_KHR_no_config_context) and made
current without a surface (EGL_KHR_surfaceless_context); make_current itself
is C (native/vv_glue.c). EGL is reached through the binding (virgl_viewer.virgl);
displays and contexts are addresses (ints).
"""

from __future__ import annotations

import logging

from virgl_viewer import virgl
from virgl_viewer.errors import RendererError

log = logging.getLogger(__name__)

EGL_EXTENSIONS = virgl.EGL_EXTENSIONS
EGL_VENDOR = 0x3053
EGL_VERSION = 0x3054
REQUIRED_EXTENSIONS = ("EGL_KHR_no_config_context", "EGL_KHR_surfaceless_context")


class SharedProvider:
    """Contexts on an existing, initialised EGL display, all sharing with one
    existing context (Qt's global share context in the GUI app)."""

    def __init__(self, display: int, share_context: int) -> None:
        self._dpy = display
        self._root = share_context
        self.contexts: set[int] = set()

    @property
    def egl_display(self) -> int:
        return self._dpy

    def _create(self, major: int, minor: int, share: int) -> int:
        return virgl.egl_create_context(self._dpy, share, major, minor)

    def create_context(self, major: int, minor: int, shared: bool) -> int:
        # virglrenderer asks ctx0 with shared=false; share with the root
        # anyway so every context (and the UI) sees every texture.
        ctx = self._create(major, minor, self._root)
        if not ctx:
            log.debug("GL %d.%d context refused (EGL error 0x%x)", major, minor,
                      virgl.egl_error())
            return 0
        self.contexts.add(ctx)
        return ctx

    def destroy_context(self, ctx: int) -> None:
        self.contexts.discard(ctx)
        virgl.egl_destroy_context(self._dpy, ctx)

    def close(self) -> None:
        """Destroy our contexts; the display and share context are not ours."""
        virgl.egl_release_current(self._dpy)
        for ctx in list(self.contexts):
            virgl.egl_destroy_context(self._dpy, ctx)
        self.contexts.clear()


class SurfacelessProvider(SharedProvider):
    """EGL contexts on a surfaceless Mesa display (server-only mode): a root
    context of our own plays the part of Qt's share context."""

    def __init__(self) -> None:
        dpy = virgl.egl_surfaceless_display()
        if not dpy:
            raise RendererError("eglGetPlatformDisplayEXT(SURFACELESS)", virgl.egl_error())
        major, minor = virgl.egl_initialize(dpy)
        exts = virgl.egl_query_string(dpy, EGL_EXTENSIONS).split()
        missing = [e for e in REQUIRED_EXTENSIONS if e not in exts]
        if missing:
            virgl.egl_terminate(dpy)
            raise RendererError("EGL extensions missing: " + ", ".join(missing), 0)
        vendor = virgl.egl_query_string(dpy, EGL_VENDOR)
        log.info("EGL %d.%d surfaceless display (%s)", major, minor, vendor)
        super().__init__(dpy, 0)
        self._root = self._create(4, 5, 0) or self._create(3, 3, 0)
        if not self._root:
            virgl.egl_terminate(dpy)
            raise RendererError("eglCreateContext(root)", virgl.egl_error())

    def close(self) -> None:
        super().close()
        if self._root:
            virgl.egl_destroy_context(self._dpy, self._root)
            self._root = 0
        virgl.egl_terminate(self._dpy)
