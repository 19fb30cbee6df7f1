"""The README's example test, verbatim: it must keep working."""

import subprocess
import sys

from virgl_viewer.guest.patterns import expected_image


def rgba(img):
    from PySide6.QtGui import QImage
    converted = img.convertToFormat(QImage.Format.Format_RGBA8888)
    return bytes(converted.constBits())


def test_my_guest_shows_bars(virgl_viewer):
    guest = subprocess.Popen([sys.executable, "-m", "virgl_viewer.guest.cli",
                              "--socket", virgl_viewer.path, "--size", "320x240",
                              "--pattern", "bars", "--fps", "30"])
    try:
        (window,) = virgl_viewer.wait_scanouts(1)
        virgl_viewer.wait_frame(window)
        assert rgba(virgl_viewer.grab(window)) == expected_image("bars", 320, 240, 0, 0)
    finally:
        guest.terminate()
        guest.wait()
