"""No tearing: a guest alternating full-frame colours as fast as it can, at 1920x1080; every
frame the viewer shows or grabs is one colour, never parts of two frames."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QRect
from PySide6.QtGui import QImage

from virgl_viewer.ui.gl_view import fit_rect

pytestmark = pytest.mark.usefixtures("isolated_settings")

RED, BLUE = (0xFF, 0x00, 0x00), (0x00, 0x00, 0xFF)

# Full-frame clears, red and blue in turn, presented with no pause: argv = socket.
FLIPPER = """
import signal, sys
from virgl_viewer.guest import VtestClient
from virgl_viewer.guest.scene import GuestScene

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with VtestClient.connect(sys.argv[1], "flipper", 2) as c:
    scene = GuestScene(c, "solid:ff0000", [(1920, 1080)])
    frame = 0
    while True:
        scene.pattern = ("solid:ff0000", "solid:0000ff")[frame % 2]
        scene.present_frame(frame)
        frame += 1
"""


def single_colour(img) -> tuple[int, ...] | None:  # type: ignore[no-untyped-def]
    """The colour (r, g, b) of a QImage that has only one, else None (compares the 32-bit
    pixels as stored: no conversion of a 1920x1080 image)."""
    if img.format() not in (QImage.Format.Format_RGB32, QImage.Format.Format_ARGB32):
        img = img.convertToFormat(QImage.Format.Format_RGB32)
    assert img.bytesPerLine() == 4 * img.width()
    data = bytes(img.constBits())[:4 * img.width() * img.height()]
    first = data[:4]
    if data != first * (len(data) // 4):
        return None
    c = img.pixelColor(0, 0)
    return c.red(), c.green(), c.blue()


# process: the guest renders in a renderer process of its own and its frames cross into
# this one (shared memory objects; process-shm: the CPU readback fallback)
@pytest.mark.parametrize("virgl_viewer", ["shared", "process", "process-shm"], indirect=True)
def test_every_frame_shown_is_one_colour(virgl_viewer, guests) -> None:
    g = guests.script(FLIPPER, virgl_viewer.path)
    (win,) = virgl_viewer.wait_scanouts(1)
    assert (win.scanout.width, win.scanout.height) == (1920, 1080)
    # a window smaller than the frame: cheap repaints under Xvfb; grab() is still 1920x1080
    win.resize(640, 400)
    virgl_viewer.qtbot.waitUntil(lambda: win.view.width() <= 640, timeout=5000)
    seen: dict[tuple[int, ...], int] = {}
    torn = []
    seq = 0
    for i in range(40):
        seq = virgl_viewer.wait_frame(win, after=seq)
        if i % 4:  # the scanout's newest frame at full size
            img = virgl_viewer.grab(win)
        else:      # what the window shows (scaled to fit: one colour stays one colour)
            img = virgl_viewer.grab_window(win)
            img = img.copy(QRect(*fit_rect(win.view.mode, 1920, 1080, img.width(),
                                           img.height())))
        colour = single_colour(img)
        if colour is None:
            torn.append(f"grab {i} (frame seq {seq})")
        else:
            seen[colour] = seen.get(colour, 0) + 1
    assert not torn, f"torn frames: {torn}"
    assert set(seen) <= {RED, BLUE}, seen
    assert len(seen) == 2, f"the frames did not change: {seen}"
    assert win.scanout.frames > 40
    assert g.running(), g.log()
