"""When a guest leaves, its scanout window says so, dims its last frame, and closes about
three seconds later, unless the user pinned it with "Keep open"; a closed window is
destroyed, not kept hidden."""

from __future__ import annotations

import pytest
import shiboken6
from PySide6.QtCore import QTimer

from virgl_viewer.ui.windows import CLOSE_AFTER_GONE_MS, ScanoutWindow

pytestmark = pytest.mark.usefixtures("isolated_settings")

COLOUR = (0xC0, 0x80, 0x40)


def close_timers(w: ScanoutWindow) -> list[QTimer]:
    """The window's pending close: a running single-shot timer of CLOSE_AFTER_GONE_MS."""
    return [t for t in w.findChildren(QTimer)
            if t.isActive() and t.isSingleShot() and t.interval() == CLOSE_AFTER_GONE_MS]


@pytest.mark.parametrize("virgl_viewer", ["shared", "process"], indirect=True)
def test_disconnected_window_dims_then_closes_unless_kept_open(virgl_viewer, guests, pix,
                                                               monkeypatch) -> None:
    gone_at: set[int] = set()
    closed_at: set[int] = set()
    original = ScanoutWindow.on_client_gone

    def on_client_gone(self: ScanoutWindow) -> None:  # the moment the close timer starts
        gone_at.add(self.scanout.id)
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
        w.closed_by_user.connect(closed_at.add)
    # pin one (stops its close timer even if the client already left)
    pinned.keep_open_action.trigger()
    assert pinned.keep_open_action.isChecked()
    destroyed: list[bool] = []
    leaving.destroyed.connect(lambda *_: destroyed.append(True))

    assert leaver.wait_exit(virgl_viewer.qtbot) == 0, leaver.log()
    assert stayer.wait_exit(virgl_viewer.qtbot) == 0, stayer.log()

    def both_disconnected() -> None:
        assert gone_at == {leaving_id, pinned_id}
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

    # the unpinned window closes when its CLOSE_AFTER_GONE_MS timer fires, and is
    # destroyed; the pinned one has no such timer and stays
    assert len(close_timers(leaving)) == 1 and close_timers(pinned) == []
    virgl_viewer.qtbot.waitUntil(lambda: leaving_id in closed_at, timeout=15000)
    assert leaving_id not in virgl_viewer.controller.windows
    virgl_viewer.qtbot.waitUntil(lambda: bool(destroyed), timeout=5000)
    assert not shiboken6.isValid(leaving), "the closed window was kept (leaked)"
    assert close_timers(pinned) == []
    assert pinned_id not in closed_at
    assert pinned.isVisible()
    assert virgl_viewer.windows == [pinned]
