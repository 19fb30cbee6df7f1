"""--isolation process in the GUI: a guest whose renderer process crashes keeps its last
frame on screen, dimmed and marked "renderer crashed"; the other guest's window goes on
showing new frames; the viewer lives and serves a new client."""

from __future__ import annotations

import os
import signal

import pytest

from virgl_viewer.guest.patterns import expected_image

pytestmark = pytest.mark.usefixtures("isolated_settings")

COLOUR = (0xC0, 0x80, 0x40)


@pytest.mark.parametrize("virgl_viewer", ["process"], indirect=True)
def test_crashed_renderer_marks_its_window_and_spares_the_others(virgl_viewer, guests,
                                                                 pix) -> None:
    crash = guests.start(virgl_viewer.path, "--size", "160x120", "--fps", "30",
                         "--pattern", "solid:c08040", name="doomed")
    other = guests.start(virgl_viewer.path, "--size", "160x120", "--fps", "30",
                         "--pattern", "counter", name="survivor")
    wins = {w.scanout.client_name: w for w in virgl_viewer.wait_scanouts(2)}
    doomed, survivor = wins["doomed"], wins["survivor"]
    server = virgl_viewer.controller.render.server
    (pid,) = [s.renderer_pid for s in list(server.sessions) if s.name == "doomed"]
    assert pid != os.getpid()
    os.kill(pid, signal.SIGSEGV)

    def marked() -> None:
        assert doomed.windowTitle().endswith("(renderer crashed)"), doomed.windowTitle()

    virgl_viewer.qtbot.waitUntil(marked, timeout=15000)
    # the last frame stays, dimmed, with the overlay text over it
    img = virgl_viewer.grab_window(doomed)
    data, vw, vh = pix.rgba(img), img.width(), img.height()
    corner = pix.pixel(data, vw, 2, 2)[:3]
    assert all(0.3 * c < d < 0.6 * c for c, d in zip(COLOUR, corner, strict=True)), corner
    centre = pix.crop(data, vw, vw // 4, vh // 3, vw // 2, vh // 3)
    assert any(min(centre[i:i + 3]) > 200 for i in range(0, len(centre), 4))
    # the survivor's window keeps showing the survivor's new frames
    seen = survivor.scanout.frames
    virgl_viewer.wait_frame(survivor, after=survivor.view.painted_seq)
    virgl_viewer.qtbot.waitUntil(lambda: survivor.scanout.frames > seen + 5, timeout=10000)
    assert survivor.scanout.alive and other.running(), other.log()
    crash.wait_exit(virgl_viewer.qtbot)  # its guest saw the hang-up and left
    # a new client is served, its window shows its own pixels
    guests.start(virgl_viewer.path, "--size", "96x64", "--fps", "30", "--pattern", "bars",
                 name="newcomer")

    def newcomer() -> None:
        ws = [w for w in virgl_viewer.windows if w.scanout.client_name == "newcomer"]
        assert ws and ws[0].view.painted_seq > 0

    virgl_viewer.qtbot.waitUntil(newcomer, timeout=20000)
    (win,) = [w for w in virgl_viewer.windows if w.scanout.client_name == "newcomer"]
    pix.assert_equal(pix.rgba(virgl_viewer.grab(win)), expected_image("bars", 96, 64, 0, 0),
                     96, 64, win.windowTitle())


@pytest.mark.parametrize("virgl_viewer", ["process"], indirect=True)
def test_inspector_names_each_clients_renderer_and_the_frame_path(virgl_viewer,
                                                                  guests) -> None:
    for name in ("left", "right"):
        guests.start(virgl_viewer.path, "--size", "64x48", "--fps", "30", name=name)
    virgl_viewer.wait_scanouts(2)
    inspector = virgl_viewer.controller.main_window.inspector
    model = inspector.models["clients"]
    col = [c.title for c in model.columns].index("Renderer PID")

    def listed() -> dict[str, str]:
        inspector.tick()
        shown = {}
        for row in range(model.rowCount()):
            rec = model.record(row)
            shown[rec.name] = model.index(row, col).data()
        return shown

    def two() -> None:
        assert set(listed()) >= {"left", "right"}

    virgl_viewer.qtbot.waitUntil(two, timeout=10000)
    pids = listed()
    assert len({pids["left"], pids["right"], str(os.getpid())}) == 3, pids
    assert inspector.frame_path_label.text() == (
        "frames: GPU copies into shared memory objects (GL_EXT_memory_object_fd)")
