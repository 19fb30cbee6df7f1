"""Display-target formats and orientation: whatever the guest's format, the window shows the
guest's pixels exactly (channels swizzled right, X bytes ignored, sRGB bytes shown as
stored), top row at the top; a Y_0_TOP texture is drawn flipped."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from virgl_viewer.guest.patterns import expected_image
from virgl_viewer.ui.gl_view import ScaleMode, fit_rect

pytestmark = pytest.mark.usefixtures("isolated_settings")

# --format name -> (virgl format id, memory byte order); the *-srgb ones are not offered by
# virgl-guest, the test adds them to its FORMATS table (see SRGB_CLI).
FORMATS = {
    "bgrx": (2, "BGRX"),     # B8G8R8X8_UNORM
    "bgra": (1, "BGRA"),     # B8G8R8A8_UNORM
    "rgba": (67, "RGBA"),    # R8G8B8A8_UNORM
    "rgbx": (134, "RGBX"),   # R8G8B8X8_UNORM
    "bgrx-srgb": (101, "BGRX"),  # B8G8R8X8_SRGB
    "bgra-srgb": (100, "BGRA"),  # B8G8R8A8_SRGB
    "rgba-srgb": (104, "RGBA"),  # R8G8B8A8_SRGB
    "rgbx-srgb": (230, "RGBX"),  # R8G8B8X8_SRGB
}
SRGB = {k: v for k, v in FORMATS.items() if k.endswith("-srgb")}

# virgl-guest with the sRGB formats added to its table
SRGB_CLI = f"""
import sys
from virgl_viewer.guest import scene
scene.FORMATS.update({SRGB!r})
from virgl_viewer.guest.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_bars_in_every_format_are_exact(virgl_viewer, guests, pix) -> None:
    w, h = 96, 40
    started = {}
    for fmt in FORMATS:
        # bars are 0s and 255s: the same bytes whether or not rendering into an sRGB
        # surface encodes them
        args = ("--size", f"{w}x{h}", "--fps", "30", "--pattern", "bars", "--format", fmt)
        if fmt in SRGB:
            started[fmt] = guests.script(SRGB_CLI, "--socket", virgl_viewer.path,
                                         "--name", f"fmt-{fmt}", *args)
        else:
            started[fmt] = guests.start(virgl_viewer.path, *args, name=f"fmt-{fmt}")
    wins = virgl_viewer.wait_scanouts(len(FORMATS))
    expected = expected_image("bars", w, h, 0, 0)
    failures = []
    for win in wins:
        fmt = win.scanout.client_name.removeprefix("fmt-")
        assert win.scanout.virgl_format == FORMATS[fmt][0], fmt
        diff = pix.diff(pix.rgba(virgl_viewer.grab(win)), expected, w, h)
        if diff:
            failures.append(f"{fmt} (grab): {diff}")
        _, _, raw = pix.draw_rgba(win.view)  # what the shader wrote, alpha included
        diff = pix.diff(raw, expected, w, h)
        if diff:
            failures.append(f"{fmt} (raw RGBA): {diff}")
    assert not failures, "\n".join(failures)
    for fmt, g in started.items():
        assert g.running(), f"{fmt}: {g.log()}"


# ------------------------------------------------------------------ bytes put by the guest
def logical_pixels(w: int, h: int) -> bytes:
    """RGBA8 rows top-first: red = x ramp, green = y ramp, blue = 0x5a, alpha = (x + 3y) %
    256 (every alpha value, 0 included: what an X byte may hold)."""
    out = bytearray()
    for y in range(h):
        for x in range(w):
            out += bytes((x * 255 // (w - 1), y * 255 // (h - 1), 0x5A, (x + 3 * y) % 256))
    return bytes(out)


def to_memory(rgba: bytes, order: str) -> bytes:
    """RGBA pixels -> bytes in memory ``order``; an X byte carries the alpha value."""
    out = bytearray(len(rgba))
    for i, ch in enumerate(order):
        src = "RGBA".index("A" if ch == "X" else ch)
        out[i::4] = rgba[src::4]
    return bytes(out)


# A guest that writes known bytes (X bytes not 255) straight into its display target with
# TRANSFER_PUT2 and presents it 30 times a second: argv = socket name format order w h.
PUT_GUEST = "\n".join([
    "import signal, sys, time",
    inspect.getsource(logical_pixels),
    inspect.getsource(to_memory),
    """
from virgl_viewer.guest import VtestClient
from virgl_viewer.guest.scene import DISPLAY_TARGET_BIND
from virgl_viewer.vtest import protocol as p

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
sock, name, fmt, order, w, h = sys.argv[1:7]
fmt, w, h = int(fmt), int(w), int(h)
with VtestClient.connect(sock, name, 2) as c:
    res = c.resource_create(p.TARGET_2D, fmt, DISPLAY_TARGET_BIND, w, h, data_size=4 * w * h)
    res.shm[:] = to_memory(logical_pixels(w, h), order)
    c.transfer_put2(res, width=w, height=h, data_size=4 * w * h)
    while True:
        c.transfer_get2(res, width=w, height=h, data_size=4 * w * h)
        c.busy_wait(res, wait=True)
        time.sleep(1 / 30)
"""])


def opaque(rgba: bytes) -> bytes:
    out = bytearray(rgba)
    out[3::4] = b"\xff" * (len(rgba) // 4)
    return bytes(out)


def test_x_bytes_ignored_alpha_kept_srgb_shown_as_stored(virgl_viewer, guests, pix,
                                                         tmp_path: Path) -> None:
    w, h = 64, 48
    for fmt, (fid, order) in FORMATS.items():
        guests.script(PUT_GUEST, virgl_viewer.path, f"put-{fmt}", str(fid), order, str(w),
                      str(h))
    wins = virgl_viewer.wait_scanouts(len(FORMATS))
    logical = logical_pixels(w, h)
    failures = []
    for win in wins:
        fmt = win.scanout.client_name.removeprefix("put-")
        has_alpha = "A" in FORMATS[fmt][1]
        # the shader's output: X formats opaque, alpha formats keep their alpha; sRGB
        # texels are not decoded (a decoded ramp would come out darker)
        _, _, raw = pix.draw_rgba(win.view)
        diff = pix.diff(raw, logical if has_alpha else opaque(logical), w, h)
        if diff:
            failures.append(f"{fmt} (raw RGBA): {diff}")
        # what the window shows (1:1): the stored colour bytes, whatever the alpha
        win.view.set_mode(ScaleMode.ONE_TO_ONE)
        shown = virgl_viewer.grab_window(win)
        x, y, _, _ = fit_rect(ScaleMode.ONE_TO_ONE, w, h, shown.width(), shown.height())
        diff = pix.diff(pix.crop(pix.rgba(shown), shown.width(), x, y, w, h),
                        opaque(logical), w, h)
        if diff:
            failures.append(f"{fmt} (window): {diff}")
        # and grab / a screenshot has the same pixels
        diff = pix.diff(pix.rgba(virgl_viewer.grab(win)), opaque(logical), w, h)
        if diff:
            failures.append(f"{fmt} (grab): {diff}")
        if fmt == "bgra":
            png = tmp_path / "bgra.png"
            assert win.save_png(png)
            diff = pix.diff(pix.rgba(QImage(str(png))), opaque(logical), w, h)
            if diff:
                failures.append(f"{fmt} (save_png): {diff}")
    assert not failures, "\n".join(failures)


# ------------------------------------------------------------------ orientation
def test_top_row_on_top_and_y_0_top_frames_flipped(virgl_viewer, guests, pix) -> None:
    w, h = 120, 90
    guests.start(virgl_viewer.path, "--size", f"{w}x{h}", "--fps", "30", "--pattern",
                 "gradient", name="upright")
    (win,) = virgl_viewer.wait_scanouts(1)
    expected = expected_image("gradient", w, h, 0, 0)
    # the gradient's green is 0 on the guest's top row and 255 on its bottom row
    got = pix.rgba(virgl_viewer.grab(win))
    assert pix.pixel(got, w, 0, 0)[1] == 0 and pix.pixel(got, w, 0, h - 1)[1] == 255
    pix.assert_equal(got, expected, w, h, "virgl's usual orientation (row 0 at the bottom)")
    # a texture flagged Y_0_TOP (first row at texture row 0 being the top) is drawn flipped
    _, _, flipped = pix.draw_rgba(win.view, lambda f: dataclasses.replace(f, y_0_top=True))
    pix.assert_equal(flipped, pix.flip_rows(expected, w, h), w, h, "Y_0_TOP")


def test_one_to_one_paints_are_blits_with_the_same_pixels(virgl_viewer, guests, pix,
                                                           monkeypatch) -> None:
    """A window showing its frame unscaled blits it (llvmpipe copies rows instead of
    shading each pixel); what it shows is what the drawn quad shows, both orientations."""
    w, h = 120, 90
    guests.start(virgl_viewer.path, "--size", f"{w}x{h}", "--fps", "30", "--pattern",
                 "gradient", name="blitted")
    (win,) = virgl_viewer.wait_scanouts(1)
    view = win.view
    view.set_mode(ScaleMode.ONE_TO_ONE)
    expected = expected_image("gradient", w, h, 0, 0)

    def shown() -> bytes:
        img = virgl_viewer.grab_window(win)
        x, y, _, _ = fit_rect(ScaleMode.ONE_TO_ONE, w, h, img.width(), img.height())
        return pix.crop(pix.rgba(img), img.width(), x, y, w, h)

    blits = view.blits
    pix.assert_equal(shown(), expected, w, h, "1:1 blit")
    assert view.blits > blits, "a 1:1 paint did not take the blit"
    # a Y_0_TOP texture (row 0 is the top): the blit must not reverse the rows
    take = view.scanout.take_latest

    def flagged():  # type: ignore[no-untyped-def]
        f = take()
        return None if f is None else dataclasses.replace(f, y_0_top=True)

    monkeypatch.setattr(view.scanout, "take_latest", flagged)
    blits = view.blits
    pix.assert_equal(shown(), pix.flip_rows(expected, w, h), w, h, "Y_0_TOP 1:1 blit")
    assert view.blits > blits
    monkeypatch.undo()
    # scaled (integer x2 would be a draw): no blit
    view.set_mode(ScaleMode.FIT)
    virgl_viewer.qtbot.waitUntil(lambda: view.width() >= w, timeout=5000)
    win.resize(win.width() + 200, win.height() + 200)
    virgl_viewer.qtbot.waitUntil(lambda: view.width() >= w + 100, timeout=5000)
    blits = view.blits
    virgl_viewer.grab_window(win)
    assert view.blits == blits, "a scaled paint took the blit"
