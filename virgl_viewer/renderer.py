"""Renderer facade: what sessions ask of virglrenderer, with global ids.

Why: virglrenderer's context and resource ids are process-global while every
client has its own numbering. The facade allocates server ids, caches the
caps (so a handshake never touches GL), and owns the binding and its
GL-context provider (fences are the C fast path's: vv_fast.c).
Everything here runs on the render thread.
"""

from __future__ import annotations

import errno
import itertools
import logging
from collections.abc import Callable

from virgl_viewer.errors import RendererError
from virgl_viewer.virgl import (
    LIBRARY,
    GLContextProvider,
    Renderer,
    new_resource_id,
    release_resource_id,
)
from virgl_viewer.vtest.protocol import CAPSET_VENUS, CAPSET_VIRGL, CAPSET_VIRGL2

log = logging.getLogger(__name__)



class RenderHost:
    def __init__(self, provider: GLContextProvider, *, venus: bool = False) -> None:
        self.provider = provider
        self.venus_enabled = venus
        self.renderer = Renderer(provider, thread_sync=True, venus=venus)
        if venus and self.renderer.capset_info(CAPSET_VENUS)[1] == 0:
            self.renderer.close()
            raise RendererError(
                "virgl_renderer_init: libvirglrenderer "
                f"{'.'.join(map(str, LIBRARY.version))} offers no venus capset (built "
                "without venus, or its virgl_render_server did not start)", errno.ENOTSUP)
        self._ctx_ids = itertools.count(1)
        self.caps_v1 = self.renderer.fill_caps(CAPSET_VIRGL, 1)
        self.caps_v2 = self.renderer.fill_caps(CAPSET_VIRGL2, 1)
        self._capsets: dict[tuple[int, int], bytes] = {}
        log.info("virglrenderer ready: caps v1 %d bytes, v2 %d bytes, poll fd %d",
                 len(self.caps_v1), len(self.caps_v2), self.renderer.poll_fd)

    # ------------------------------------------------------------ ids
    def new_context_id(self) -> int:
        return next(self._ctx_ids)

    def new_resource_id(self) -> int:
        """A free global resource handle (never 0), from the pool the C path
        takes its ids from too."""
        return new_resource_id()

    def release_resource_id(self, rid: int) -> None:
        release_resource_id(rid)

    # ------------------------------------------------------------ caps
    def capset(self, capset_id: int, version: int) -> bytes | None:
        """Caps of a capset, or None when this host does not offer it."""
        key = (capset_id, version)
        caps = self._capsets.get(key)
        if caps is not None:
            return caps
        max_ver, size = self.renderer.capset_info(capset_id)
        if capset_id == CAPSET_VENUS:
            # Venus answers with version 0; it only works when the
            # renderer was initialised with it (a render server).
            supported = self.venus_enabled and size > 0 and version <= max_ver
        else:
            supported = size > 0 and max_ver > 0 and version <= max_ver
        if not supported:
            return None  # never cached: the client picks any of 2^64 (id, version) pairs
        # cached: at most the few versions each of the library's capsets has
        caps = self._capsets[key] = self.renderer.fill_caps(capset_id, version)
        return caps

    def close(self, close_provider: Callable[[], None] | None = None) -> None:
        self.renderer.close()
        if close_provider is not None:
            close_provider()
