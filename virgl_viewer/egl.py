"""GL-context providers for virglrenderer.

``SurfacelessProvider`` (headless, no X): a Mesa EGL display on
EGL_MESA_platform_surfaceless; every context virglrenderer asks for shares
with one root context, so all of them are in one share group, exactly as the
Qt provider (virgl_viewer.ui) shares them with Qt's global share context.
Contexts are made without a config (EGL_KHR_no_config_context) and made
current without a surface (EGL_KHR_surfaceless_context); make_current itself
is C (native/vv_glue.c).
"""

from __future__ import annotations

import logging
from typing import Any

from virgl_viewer._native import ffi, lib
from virgl_viewer.errors import RendererError

log = logging.getLogger(__name__)

EGL_EXTENSIONS = lib.EGL_EXTENSIONS
EGL_VENDOR = 0x3053
EGL_VERSION = 0x3054
REQUIRED_EXTENSIONS = ("EGL_KHR_no_config_context", "EGL_KHR_surfaceless_context")


class SharedProvider:
    """Contexts on an existing, initialised EGL display, all sharing with one
    existing context (Qt's global share context in the GUI app).

    ``display`` and ``share_context`` are EGLDisplay/EGLContext addresses as
    integers, so the UI can hand them over without touching cffi.
    """

    def __init__(self, display: int, share_context: int) -> None:
        self._dpy = ffi.cast("void *", display)
        self._root = ffi.cast("void *", share_context)
        self.contexts: set[Any] = set()

    @property
    def egl_display(self) -> Any:
        return self._dpy

    def _create(self, major: int, minor: int, share: Any) -> Any:
        ctx = lib.vv_egl_create_context(self._dpy, share, major, minor, 0)
        return ctx if ctx != ffi.NULL else ffi.NULL

    def create_context(self, major: int, minor: int, shared: bool) -> Any:
        # virglrenderer asks ctx0 with shared=false; share with the root
        # anyway so every context (and the UI) sees every texture.
        ctx = self._create(major, minor, self._root)
        if ctx == ffi.NULL:
            log.debug("GL %d.%d context refused (EGL error 0x%x)", major, minor,
                      lib.vv_egl_get_error())
            return ffi.NULL
        self.contexts.add(ctx)
        return ctx

    def destroy_context(self, ctx: Any) -> None:
        self.contexts.discard(ctx)
        lib.vv_egl_destroy_context(self._dpy, ctx)

    def close(self) -> None:
        """Destroy our contexts; the display and share context are not ours."""
        lib.vv_egl_release_current(self._dpy)
        for ctx in list(self.contexts):
            lib.vv_egl_destroy_context(self._dpy, ctx)
        self.contexts.clear()


class SurfacelessProvider(SharedProvider):
    """EGL contexts on a surfaceless Mesa display (server-only mode): a root
    context of our own plays the part of Qt's share context."""

    def __init__(self) -> None:
        dpy = lib.vv_egl_surfaceless_display()
        if dpy == ffi.NULL:
            raise RendererError("eglGetPlatformDisplayEXT(SURFACELESS)", lib.vv_egl_get_error())
        major = ffi.new("int *")
        minor = ffi.new("int *")
        if lib.vv_egl_initialize(dpy, major, minor) != 0:
            raise RendererError("eglInitialize", lib.vv_egl_get_error())
        exts = ffi.string(lib.vv_egl_query_string(dpy, EGL_EXTENSIONS)).decode().split()
        missing = [e for e in REQUIRED_EXTENSIONS if e not in exts]
        if missing:
            lib.vv_egl_terminate(dpy)
            raise RendererError("EGL extensions missing: " + ", ".join(missing), 0)
        vendor = ffi.string(lib.vv_egl_query_string(dpy, EGL_VENDOR)).decode()
        log.info("EGL %d.%d surfaceless display (%s)", major[0], minor[0], vendor)
        super().__init__(0, 0)
        self._dpy = dpy
        self._root = self._create(4, 5, ffi.NULL) or self._create(3, 3, ffi.NULL)
        if self._root == ffi.NULL:
            lib.vv_egl_terminate(dpy)
            raise RendererError("eglCreateContext(root)", lib.vv_egl_get_error())

    def close(self) -> None:
        super().close()
        if self._root != ffi.NULL:
            lib.vv_egl_destroy_context(self._dpy, self._root)
            self._root = ffi.NULL
        lib.vv_egl_terminate(self._dpy)
