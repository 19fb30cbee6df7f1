"""The binding on the installed libvirglrenderer (0.10.4 on Debian 12, 1.1 on Debian 13):
the differences ``virgl.LIBRARY`` names hold there, and the caps never invite blobs.

Real library, surfaceless llvmpipe EGL display (no X)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from virgl_viewer.egl import SurfacelessProvider
from virgl_viewer.virgl import LIBRARY, Renderer
from virgl_viewer.vtest.protocol import CAPSET_VIRGL2

# virgl_hw.h (0.10.4 and 1.1 alike): struct virgl_caps_v2.capability_bits sits at byte
# 392 of the caps; VIRGL_CAP_ARB_BUFFER_STORAGE is its bit 31.
CAPABILITY_BITS_OFFSET = 392
CAP_ARB_BUFFER_STORAGE = 1 << 31


@pytest.fixture
def provider() -> Iterator[SurfacelessProvider]:
    p = SurfacelessProvider()
    try:
        yield p
    finally:
        p.close()


def contexts_made_at_init(provider: SurfacelessProvider, thread_sync: bool) -> int:
    """How many of the provider's contexts are alive once virglrenderer is up."""
    r = Renderer(provider, thread_sync=thread_sync)
    try:
        return len(provider.contexts)
    finally:
        r.close()


def test_sync_thread_context_is_ours_only_where_library_says(
        provider: SurfacelessProvider) -> None:
    without = contexts_made_at_init(provider, thread_sync=False)
    with_sync = contexts_made_at_init(provider, thread_sync=True)
    assert with_sync - without == (1 if LIBRARY.sync_context_is_ours else 0), LIBRARY


def test_caps_do_not_advertise_buffer_storage(provider: SurfacelessProvider) -> None:
    """Mesa >= 23 virpipe makes HOST3D blobs for persistent/coherent buffers when this
    bit is set; USE_EXTERNAL_BLOB keeps it off, as in upstream's server."""
    r = Renderer(provider, thread_sync=True)
    try:
        caps = r.fill_caps(CAPSET_VIRGL2, 1)
    finally:
        r.close()
    bits = int.from_bytes(caps[CAPABILITY_BITS_OFFSET:CAPABILITY_BITS_OFFSET + 4], "little")
    assert not bits & CAP_ARB_BUFFER_STORAGE
