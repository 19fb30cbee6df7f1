"""The scanout ring (native/vv_ring.c) on a real llvmpipe context: which entry a copy may
write, leases, drops, the UI's fences and the present count. The UI tests show its frames
on screen; these pin down the bookkeeping that a real GPU would need and llvmpipe would
forgive: an entry that is shown, newest or being drawn is never written."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from virgl_viewer._native import ffi, lib
from virgl_viewer.egl import SurfacelessProvider
from virgl_viewer.virgl import FrameRing, GLPresenter

GL_RGBA8 = 0x8058
GL_TEXTURE_2D = 0x0DE1
W = H = 8


def texture(gl: GLPresenter) -> int:
    """A W x H RGBA8 texture in the presenter's context (current), as a guest's
    display target would be: the ring's copies read from it."""
    assert gl is not None
    return int(lib.vv_gl_create_texture(GL_RGBA8, W, H))


@pytest.fixture
def gl() -> Iterator[GLPresenter]:
    provider = SurfacelessProvider()
    presenter = GLPresenter(provider.egl_display, provider.create_context(4, 5, True))
    presenter.make_current()
    try:
        yield presenter
    finally:
        provider.close()


def ring_with_source(gl: GLPresenter) -> tuple[FrameRing, int]:
    ring = FrameRing(gl)
    assert ring.configure(W, H, GL_RGBA8, 1, False)  # made: it had no textures
    assert not ring.configure(W, H, GL_RGBA8, 1, False)  # same size: kept
    return ring, texture(gl)


def ui_fence(gl: GLPresenter, src: int) -> int:
    """A real GLsync, as a UI draw would hand back."""
    scratch = texture(gl)
    fence = lib.vv_gl_copy_and_fence(src, GL_TEXTURE_2D, scratch, W, H)
    return int(ffi.cast("uintptr_t", fence))


def test_copies_skip_every_entry_in_use_and_drop_when_none_is_free(gl) -> None:
    ring, src = ring_with_source(gl)
    assert ring.take_latest() is None  # nothing presented yet
    held = []
    for _ in range(4):  # each frame taken and kept (drawn never called)
        assert ring.copy(src)
        frame = ring.take_latest()
        assert frame is not None
        held.append(frame)
    indices = [f[0] for f in held]
    assert sorted(indices) == [0, 1, 2, 3], indices  # every copy went to a free entry
    assert [f[7] for f in held] == [1, 2, 3, 4]  # seq
    assert all(f[1] and f[2] for f in held)  # a texture and its copy's fence
    # all four leased: the present is dropped, nothing is overwritten
    assert not ring.copy(src)
    assert ring.stats()[1:3] == (4, 1)  # frames, dropped
    # the oldest lease ends: that entry (and only it) is written next
    ring.drawn(indices[0], 0)
    assert ring.copy(src)
    newest = ring.take_latest()
    assert newest is not None and newest[0] == indices[0] and newest[7] == 5


def test_the_newest_unshown_frame_is_replaced_not_queued(gl) -> None:
    ring, src = ring_with_source(gl)
    assert ring.copy(src)
    shown = ring.take_latest()
    assert shown is not None
    ring.drawn(shown[0], 0)
    for _ in range(10):  # ten presents before the UI looks again: all copied
        assert ring.copy(src)
    latest = ring.take_latest()
    assert latest is not None and latest[7] == 11 and ring.stats()[2] == 0
    # the shown entry stays out of reach while it is shown, even with no lease on it
    ring.drawn(latest[0], 0)
    shown = latest
    for _ in range(6):
        assert ring.copy(src)
        f = ring.take_latest()
        assert f is not None and f[0] != shown[0], (f, shown)
        ring.drawn(f[0], 0)
        shown = f


def test_ui_fences_are_waited_for_and_do_not_pile_up(gl) -> None:
    ring, src = ring_with_source(gl)
    assert ring.copy(src)
    # one frame drawn 50 times with nothing newer (a window repainted while the guest
    # idles): its fences are capped, the oldest finished and dropped
    for _ in range(50):
        f = ring.take_latest()
        assert f is not None
        ring.drawn(f[0], ui_fence(gl, src))
    # newer frames reuse every entry, each after a GPU wait on its UI fences
    for _ in range(8):
        assert ring.copy(src)
        f = ring.take_latest()
        assert f is not None
        ring.drawn(f[0], ui_fence(gl, src))
    assert ring.stats()[1:3] == (9, 0)


def test_presents_and_fps(gl) -> None:
    ring, _ = ring_with_source(gl)
    now = time.monotonic()
    ring.note_present(now - 2.0, 5)  # more than a second ago
    ring.note_present(now - 0.5, 3)
    ring.note_present(now - 0.1, 1)
    presents, frames, dropped, last_present, _ = ring.stats()
    assert (presents, frames, dropped) == (9, 0, 0)
    assert last_present == pytest.approx(now - 0.1)
    assert ring.fps(now) == 4


def test_released_ring_hands_presents_back_and_can_be_made_again(gl) -> None:
    ring, src = ring_with_source(gl)
    assert ring.copy(src)
    ring.release_gl()
    assert ring.take_latest() is None  # its frames went with the textures
    assert not ring.copy(src)  # nothing to copy into
    assert ring.configure(W, H, GL_RGBA8, 1, False)
    assert ring.copy(src)
    assert ring.take_latest() is not None
