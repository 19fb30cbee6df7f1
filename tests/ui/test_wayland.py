"""The viewer on a Wayland compositor: weston's headless backend with its GL renderer
(the Wayland session, ``VV_TEST_DISPLAY=wayland``: tests/conftest.py starts the weston).

What a user sees is read back from the compositor, not from Qt: ``weston-screenshooter``
captures weston's output, and each check finds the window's pixels in it. Weston's
desktop shell places new windows itself (a Wayland client cannot position a toplevel), so
the tests search the screenshot for the content instead of expecting it somewhere; a
window is brought to the front by mapping it anew (hide, show): a Wayland client cannot
raise its own window (only with an activation token the compositor hands out).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QGuiApplication
from support.procs import start_guest_cli, start_serving, stop_process, wait_for
from support.screen import Box, Image, find_image, image_of, rgb_of_rgba
from support.weston import Weston

from virgl_viewer.guest import VtestClient
from virgl_viewer.guest.patterns import expected_image
from virgl_viewer.guest.scene import DISPLAY_TARGET_BIND, GuestScene
from virgl_viewer.ui.inspector import TABLES
from virgl_viewer.vtest import protocol as P

pytestmark = [pytest.mark.wayland, pytest.mark.usefixtures("isolated_settings")]

SIZES = [(320, 240), (200, 150), (128, 96)]
SCREEN_TIMEOUT_MS = 30_000


def on_screen(viewer: Any, weston: Weston, needle: Image, what: str) -> tuple[Box, Image]:
    """Screenshots of weston's output until one shows ``needle`` pixel for pixel: where,
    and that screenshot."""
    found: list[Any] = []

    def shown() -> None:
        shot = image_of(weston.screenshot())
        box = find_image(shot, needle)
        assert box is not None, f"{what} is not on weston's screen"
        found[:] = [box, shot]

    viewer.qtbot.waitUntil(shown, timeout=SCREEN_TIMEOUT_MS)
    return found[0], found[1]


def to_front(viewer: Any, window: Any) -> None:
    """Map ``window`` anew: weston's shell puts a newly mapped window on top."""
    window.hide()
    window.show()
    viewer.qtbot.waitExposed(window)


def test_qt_runs_on_wayland_and_weston_renders_with_gl(qapp: Any, weston: Weston) -> None:
    assert QGuiApplication.platformName() == "wayland"
    assert "DISPLAY" not in os.environ
    log = weston.log()
    assert "gl-renderer.so" in log and "GL renderer:" in log, log


def test_a_window_per_scanout_shows_the_guest_pixels(virgl_viewer: Any, guests: Any,
                                                     weston: Weston, pix: Any) -> None:
    guests.start(virgl_viewer.path, "--scanouts", "3",
                 "--size", ",".join(f"{w}x{h}" for w, h in SIZES),
                 "--fps", "30", "--pattern", "gradient", name="wayland-heads")
    wins = virgl_viewer.wait_scanouts(3)
    # only the scanout windows on the output: what is found is theirs, not an overview tile
    virgl_viewer.controller.main_window.hide()
    boxes = []
    for n, (win, (w, h)) in enumerate(zip(wins, SIZES, strict=True), start=1):
        assert win.windowTitle() == f"wayland-heads — scanout {n} — {w}×{h}"
        expected = expected_image("gradient", w, h, 0, n - 1)  # blue = 85 * scanout
        pix.assert_equal(pix.rgba(virgl_viewer.grab(win)), expected, w, h, f"scanout {n}")
        assert (win.view.width(), win.view.height()) == (w, h)  # shown 1:1
        to_front(virgl_viewer, win)
        box, shot = on_screen(virgl_viewer, weston, rgb_of_rgba(w, h, expected),
                              f"scanout {n}'s {w}x{h} gradient")
        assert box.x + w <= shot.width and box.y + h <= shot.height
        boxes.append(box)
    # three windows, each where weston's shell put it: all on the output, own places
    assert len({(b.x, b.y) for b in boxes}) == 3, boxes


def test_a_guest_alpha_does_not_make_the_window_translucent(virgl_viewer: Any,
                                                            weston: Weston) -> None:
    """A B8G8R8A8 scanout whose alpha is 0x40 shows its stored colour, as on X11. On
    Wayland Qt's GL windows have an alpha channel (ARGB buffers, unlike X11's), and a
    compositor blends a surface by it unless told the surface is opaque (Qt sets its
    opaque region): were it not, what lies under the window would show through."""
    w, h, colour = 96, 72, (0x20, 0x80, 0xE0)
    with VtestClient.connect(virgl_viewer.path, "translucent", 2) as g:
        res = g.resource_create(P.TARGET_2D, 1, DISPLAY_TARGET_BIND, w, h,  # B8G8R8A8
                                data_size=4 * w * h)
        res.shm[:] = bytes((colour[2], colour[1], colour[0], 0x40)) * (w * h)
        g.transfer_put2(res, width=w, height=h, data_size=4 * w * h)
        g.transfer_get2(res, width=w, height=h, data_size=4 * w * h)  # present
        g.busy_wait(res, wait=True)
        (win,) = virgl_viewer.wait_scanouts(1)
        virgl_viewer.controller.main_window.hide()
        assert (win.view.width(), win.view.height()) == (w, h)
        to_front(virgl_viewer, win)
        on_screen(virgl_viewer, weston, Image(w, h, bytes(colour) * (w * h)),
                  "the scanout's stored colour, opaque")


def test_the_overview_composes_the_scanouts(virgl_viewer: Any, guests: Any,
                                           weston: Weston, pix: Any) -> None:
    guests.start(virgl_viewer.path, "--size", "320x240", "--fps", "30",
                 "--pattern", "gradient", name="left")
    virgl_viewer.wait_scanouts(1)
    guests.start(virgl_viewer.path, "--size", "200x150", "--fps", "30",
                 "--pattern", "gradient", name="right")
    left, right = (w.scanout for w in virgl_viewer.wait_scanouts(2))
    main = virgl_viewer.controller.main_window
    ov = main.overview
    to_front(virgl_viewer, main)
    virgl_viewer.qtbot.waitUntil(lambda: set(ov.scanouts) == {left.id, right.id})
    grab = ov.grabFramebuffer()
    data, width = pix.rgba(grab), grab.width()
    tiles = []
    for sc, (gw, gh), name in ((left, (320, 240), "left"), (right, (200, 150), "right")):
        r = ov.tile_rect(sc.id).toAlignedRect().adjusted(2, 2, -2, -2)  # inside the border
        assert r.width() > 20 and r.height() > 20, r
        tile = rgb_of_rgba(r.width(), r.height(),
                           pix.crop(data, width, r.x(), r.y(), r.width(), r.height()))
        # the tile is the guest's frame scaled: its middle is the frame's middle
        want = pix.pixel(expected_image("gradient", gw, gh, 0, 0), gw, gw // 2, gh // 2)
        got = tile.pixel(tile.width // 2, tile.height // 2)
        assert all(abs(g - c) <= 12 for g, c in zip(got, want[:3], strict=False)), \
            f"{name} tile's middle is {got}, the frame's {want}"
        box, _ = on_screen(virgl_viewer, weston, tile, f"the overview's {name} tile")
        tiles.append((box.x - r.x(), box.y - r.y()))
    # both where the overview drew them: the overview's origin on screen is one place
    assert tiles[0] == tiles[1], tiles


def test_the_inspector_shows_the_guest(virgl_viewer: Any, weston: Weston, pix: Any) -> None:
    ctl = virgl_viewer.controller
    main, ins = ctl.main_window, ctl.main_window.inspector
    main.inspector_dock.show()
    with VtestClient.connect(virgl_viewer.path, "wayland-inspected", 2) as g:
        scene = GuestScene(g, "gradient", [(96, 72)])
        scene.present_frame(0)
        virgl_viewer.wait_scanouts(1)
        to_front(virgl_viewer, main)

        # the clients tab has the guest's row, and the compositor shows that row
        def listed() -> None:
            ins.tabs.setCurrentIndex(TABLES.index("clients"))
            proxy = ins.proxies["clients"]
            names = [proxy.index(i, 1).data() for i in range(proxy.rowCount())]
            assert "wayland-inspected" in names, names

        virgl_viewer.qtbot.waitUntil(listed, timeout=10_000)
        view = ins.views["clients"]
        proxy = ins.proxies["clients"]
        row = next(i for i in range(proxy.rowCount())
                   if proxy.index(i, 1).data() == "wayland-inspected")
        cell = view.visualRect(proxy.index(row, 1))
        shown = image_of(view.viewport().grab(cell).toImage())
        on_screen(virgl_viewer, weston, shown, "the inspector's wayland-inspected row")

        # the display target previewed from the scanout's texture, on screen too
        assert ins.show_resource(os.getpid(), scene.scanouts[0].handle)
        virgl_viewer.qtbot.waitUntil(lambda: ins.preview.painted_seq > 0, timeout=10_000)
        img = ins.preview.grabFramebuffer()
        c = img.pixelColor(img.width() // 2, img.height() // 2)
        want = pix.pixel(expected_image("gradient", 96, 72, 0, 0), 96, 48, 36)
        assert all(abs(a - b) <= 12 for a, b in zip((c.red(), c.green(), c.blue()), want,
                                                   strict=False)), (c.name(), want)
        middle = img.copy(img.width() // 2 - 16, img.height() // 2 - 16, 32, 32)
        on_screen(virgl_viewer, weston, image_of(middle), "the preview of the display target")
        scene.close()


PLUGIN_TEST = '''
from PySide6.QtGui import QGuiApplication


def test_the_plugin_picked_wayland(virgl_viewer):
    assert QGuiApplication.platformName() == "wayland"
'''


def test_the_pytest_plugin_on_a_wayland_desktop(tmp_path: Path, weston: Weston) -> None:
    """A user's own pytest run on a Wayland desktop (WAYLAND_DISPLAY, no DISPLAY, no Qt
    variables): the plugin picks Qt's wayland platform, and the README's example passes."""
    readme = Path(__file__).resolve().parents[2] / "README.md"
    section = readme.read_text().split("## Testing your guest with pytest", 1)[1]
    example = section.split("```python\n", 1)[1].split("\n```", 1)[0]
    (tmp_path / "test_readme.py").write_text(example + "\n")
    (tmp_path / "test_platform.py").write_text(PLUGIN_TEST)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("QT_", "VV_", "PYTEST_", "PYOPENGL_")) and k != "DISPLAY"}
    env.update(weston.env)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tmp_path)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout, done.stdout


def test_an_output_scale_of_2_shows_one_guest_pixel_per_device_pixel() -> None:
    """HiDPI on Wayland comes from the compositor: an output of scale 2 (a weston of its
    own; Qt's scale is fixed when it starts, so the app runs as a process, as a user
    starts it) gets buffers of twice the window's size, and the scanout window shows the
    guest's pixels 1:1 on the output's pixels, exactly."""
    w, h = 240, 160  # 120 x 80 logical
    with tempfile.TemporaryDirectory(prefix="vv-scale2-") as d, \
            Weston(size=(1280, 1024), scale=2, log_path=Path(d, "weston.log")) as hidpi:
        sock = str(Path(d, "vtest.sock"))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("QT_", "PYOPENGL_")) and k != "DISPLAY"}
        env.update(hidpi.env, XDG_CONFIG_HOME=d)
        app, log = start_serving([sys.executable, "-m", "virgl_viewer", "--socket", sock],
                                 Path(d, "viewer.log"), env)
        guest = start_guest_cli(sock, "hidpi", ["--size", f"{w}x{h}", "--fps", "30",
                                                "--pattern", "gradient"], env)
        try:
            needle = rgb_of_rgba(w, h, expected_image("gradient", w, h, 0, 0))
            found: list[Box | None] = [None]

            def shown() -> bool:
                found[0] = find_image(image_of(hidpi.screenshot()), needle)
                return found[0] is not None

            assert wait_for(shown, 60, step=0.2), log()
        finally:
            stop_process(guest)
            assert stop_process(app) == 0, log()
