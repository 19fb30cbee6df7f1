"""When a guest leaves, its scanout window says so, dims its last frame, and closes about
three seconds later, unless the user pinned it with "Keep open"; a closed window is
destroyed, not kept hidden."""

from __future__ import annotations

import time

import pytest
import shiboken6

from virgl_viewer.ui.windows import CLOSE_AFTER_GONE_MS, ScanoutWindow

pytestmark = pytest.mark.usefixtures("isolated_settings")

COLOUR = (0xC0, 0x80, 0x40)


def test_disconnected_window_dims_then_closes_unless_kept_open(virgl_viewer, guests, pix,
                                                               monkeypatch) -> None:
    gone_at: dict[int, float] = {}
    closed_at: dict[int, float] = {}
    original = ScanoutWindow.on_client_gone

    def on_client_gone(self: ScanoutWindow) -> None:  # the moment the close timer starts
        gone_at[self.scanout.id] = time.monotonic()
        original(self)

    monkeypatch.setattr(ScanoutWindow, "on_client_gone", on_client_gone)
    args = ("--size", "160x120", "--fps", "30", "--frames", "30", "--pattern", "solid:c08040")
    leaver = guests.start(virgl_viewer.path, *args, name="leaver")
    stayer = guests.start(virgl_viewer.path, *args, name="stayer")
    wins = virgl_viewer.wait_scanouts(2)
    by_name = {w.scanout.client_name: w for w in wins}
    leaving, pinned = by_name["leaver"], by_name["stayer"]
    leaving_id, pinned_id = leaving.scanout.id, pinned.scanout.id
    for w in wins:  # a lambda that holds no window: no reference cycle through Qt
        w.closed_by_user.connect(lambda sid: closed_at.setdefault(sid, time.monotonic()))
    # pin one (stops its close timer even if the client already left)
    pinned.keep_open_action.trigger()
    assert pinned.keep_open_action.isChecked()
    destroyed: list[bool] = []
    leaving.destroyed.connect(lambda *_: destroyed.append(True))

    assert leaver.wait_exit(virgl_viewer.qtbot) == 0, leaver.log()
    assert stayer.wait_exit(virgl_viewer.qtbot) == 0, stayer.log()

    def both_disconnected() -> None:
        assert set(gone_at) == {leaving_id, pinned_id}
        for w in (leaving, pinned):
            assert w.windowTitle().endswith(" — 160×120 (disconnected)"), w.windowTitle()

    virgl_viewer.qtbot.waitUntil(both_disconnected, timeout=10000)
    assert not closed_at, "a window closed at once"

    # the last frame stays, dimmed, with "client disconnected" over it
    for w in (leaving, pinned):
        img = virgl_viewer.grab_window(w)
        data, vw, vh = pix.rgba(img), img.width(), img.height()
        corner = pix.pixel(data, vw, 2, 2)[:3]
        assert all(0.3 * c < d < 0.6 * c for c, d in zip(COLOUR, corner, strict=True)), \
            f"{w.windowTitle()}: {corner} is not a dimmed {COLOUR}"
        centre = pix.crop(data, vw, vw // 4, vh // 3, vw // 2, vh // 3)
        assert any(min(centre[i:i + 3]) > 200 for i in range(0, len(centre), 4)), \
            "no white overlay text in the middle"

    # the unpinned window closes CLOSE_AFTER_GONE_MS later (coarse timers may fire up to 5%
    # early) and is destroyed; the pinned one stays
    assert CLOSE_AFTER_GONE_MS == 3000
    virgl_viewer.qtbot.waitUntil(lambda: leaving_id in closed_at, timeout=15000)
    waited = closed_at[leaving_id] - gone_at[leaving_id]
    assert 2.8 <= waited < 10, f"closed {waited:.2f} s after the client left"
    assert leaving_id not in virgl_viewer.controller.windows
    virgl_viewer.qtbot.waitUntil(lambda: bool(destroyed), timeout=5000)
    assert not shiboken6.isValid(leaving), "the closed window was kept (leaked)"

    left = gone_at[pinned_id] + CLOSE_AFTER_GONE_MS / 1000 + 0.5 - time.monotonic()
    if left > 0:
        virgl_viewer.qtbot.wait(int(left * 1000))
    assert pinned_id not in closed_at
    assert pinned.isVisible()
    assert virgl_viewer.windows == [pinned]
