"""Scanout windows of the test guest: one window per scanout, each showing exactly its own
scanout's pixels, following a resize, and saving what it shows as a PNG."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from virgl_viewer.guest.patterns import expected_image
from virgl_viewer.ui.gl_view import ScaleMode, fit_rect
from virgl_viewer.ui.windows import ScanoutWindow

pytestmark = pytest.mark.usefixtures("isolated_settings")

SIZES = [(320, 240), (200, 150), (128, 96)]
SIZE_ARG = ",".join(f"{w}x{h}" for w, h in SIZES)


# shared: one process; process: a renderer process per client, frames across processes
# (in shared memory objects; process-shm: the CPU readback fallback)
BOTH_MODES = pytest.mark.parametrize("virgl_viewer", ["shared", "process", "process-shm"],
                                     indirect=True)


def counter_frame(pix, grabbed: bytes, w: int, h: int, *, scanout: int, upto: int) -> int:
    """The counter frame a grab shows: the background red is frame % 256 (pixel (0, 0) is
    background); the candidate whose whole image matches is the frame."""
    red = grabbed[0]
    for frame in range(red, upto + 256, 256):
        if grabbed == expected_image("counter", w, h, frame, scanout):
            return frame
    pytest.fail(f"scanout {scanout}: no counter frame = {red} mod 256 matches: "
                f"{pix.diff(grabbed, expected_image('counter', w, h, red, scanout), w, h)}")


@BOTH_MODES
def test_three_scanouts_three_windows_with_their_own_pixels(virgl_viewer, guests, pix,
                                                            monkeypatch) -> None:
    # every title a scanout window ever had, and each scanout's size when "added" is emitted
    # (a direct connection: on the render thread, at the moment the window is asked for)
    titles: list[str] = []
    added: list[tuple[int, int]] = []
    original = ScanoutWindow.refresh_title

    def refresh_title(self: ScanoutWindow) -> None:
        original(self)
        titles.append(self.windowTitle())

    monkeypatch.setattr(ScanoutWindow, "refresh_title", refresh_title)
    virgl_viewer.controller.bridge.scanout_event.connect(
        lambda kind, sc: added.append((sc.width, sc.height)) if kind == "added" else None,
        Qt.ConnectionType.DirectConnection)
    g = guests.start(virgl_viewer.path, "--scanouts", "3", "--size", SIZE_ARG,
                     "--fps", "30", "--pattern", "gradient", name="three-heads")
    wins = virgl_viewer.wait_scanouts(3)
    assert len(virgl_viewer.windows) == 3
    for n, (win, (w, h)) in enumerate(zip(wins, SIZES, strict=True), start=1):
        assert win.windowTitle() == f"three-heads — scanout {n} — {w}×{h}"
        assert win.isVisible()
        img = virgl_viewer.grab(win)
        assert (img.width(), img.height()) == (w, h)
        # the gradient's blue is 85 * scanout: each window shows its own scanout
        pix.assert_equal(pix.rgba(img), expected_image("gradient", w, h, 0, n - 1), w, h,
                         win.windowTitle())
    assert g.running(), g.log()
    # no window was ever titled (or sized) 0x0 while its first frame was on its way
    assert sorted(added) == sorted(SIZES)
    assert titles and not [t for t in titles if "0×0" in t], titles


@BOTH_MODES
def test_counter_windows_show_their_scanout_and_advance(virgl_viewer, guests, pix) -> None:
    guests.start(virgl_viewer.path, "--scanouts", "3", "--size", SIZE_ARG, "--fps", "30",
                 "--pattern", "counter", name="counting")
    wins = virgl_viewer.wait_scanouts(3)
    for index, (win, (w, h)) in enumerate(zip(wins, SIZES, strict=True)):
        first = counter_frame(pix, pix.rgba(virgl_viewer.grab(win)), w, h,
                              scanout=index, upto=win.scanout.presents)
        # a present newer than any the grab could have taken reached the window
        virgl_viewer.wait_frame(win, after=win.scanout.frames)
        later = counter_frame(pix, pix.rgba(virgl_viewer.grab(win)), w, h,
                              scanout=index, upto=win.scanout.presents)
        assert later > first, win.windowTitle()


@BOTH_MODES
def test_window_follows_a_resize_of_its_display_target(virgl_viewer, guests, pix) -> None:
    # 25 fps, resize before frame 50: two seconds to see the window at its first size
    g = guests.start(virgl_viewer.path, "--size", "320x240", "--fps", "25", "--pattern",
                     "gradient", "--resize-at", "50:200x100", name="resizer")
    (win,) = virgl_viewer.wait_scanouts(1)
    g.proc.send_signal(signal.SIGSTOP)  # no resize while the first size is checked
    try:
        assert win.windowTitle() == "resizer — scanout 1 — 320×240", \
            "the resize came before the first window check (machine too loaded?)"
        pix.assert_equal(pix.rgba(virgl_viewer.grab(win)),
                         expected_image("gradient", 320, 240, 0, 0), 320, 240,
                         "before the resize")
    finally:
        g.proc.send_signal(signal.SIGCONT)

    def resized() -> None:
        assert win.windowTitle() == "resizer — scanout 1 — 200×100"
        assert (win.scanout.width, win.scanout.height) == (200, 100)

    virgl_viewer.qtbot.waitUntil(resized, timeout=15000)
    virgl_viewer.wait_frame(win)
    assert virgl_viewer.windows == [win]  # the same window, no second one
    assert win.isVisible()
    img = virgl_viewer.grab(win)
    assert (img.width(), img.height()) == (200, 100)
    pix.assert_equal(pix.rgba(img), expected_image("gradient", 200, 100, 0, 0), 200, 100,
                     "after the resize")
    # the window keeps its size; fit mode shows the new 2:1 image letterboxed in it
    shown = virgl_viewer.grab_window(win)
    vw, vh = shown.width(), shown.height()
    data = pix.rgba(shown)
    bg = pix.pixel(data, vw, 0, 0)
    box = pix.bounding_box(data, vw, vh, lambda p: p != bg)
    assert box == fit_rect(ScaleMode.FIT, 200, 100, vw, vh), (vw, vh)
    assert box[3] < vh  # letterboxed: not the old 4:3 image filling the view
    assert g.running(), g.log()


def test_save_png_writes_the_scanout_pixels(virgl_viewer, guests, pix, tmp_path: Path) -> None:
    guests.start(virgl_viewer.path, "--scanouts", "2", "--size", "200x150,96x64",
                 "--fps", "30", "--pattern", "gradient", name="shooter")
    wins = virgl_viewer.wait_scanouts(2)
    for index, (win, (w, h)) in enumerate(zip(wins, [(200, 150), (96, 64)], strict=True)):
        path = tmp_path / f"shot-{index}.png"
        assert win.save_png(path)
        img = QImage(str(path))
        assert not img.isNull(), f"{path} is not a readable PNG"
        assert (img.width(), img.height()) == (w, h)
        pix.assert_equal(pix.rgba(img), expected_image("gradient", w, h, 0, index), w, h,
                         str(path))
