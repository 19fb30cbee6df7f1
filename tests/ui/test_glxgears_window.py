"""glxgears through the viewer: its scanout opens in its own window, drawn
from the shared texture, and the frames change."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from support.mesa import mesa_env

from virgl_viewer.ui.controller import present_interval


def colour_counts(img) -> dict[str, int]:  # type: ignore[no-untyped-def]
    counts = {"red": 0, "green": 0, "blue": 0}
    for y in range(0, img.height(), 3):
        for x in range(0, img.width(), 3):
            c = img.pixelColor(x, y)
            r, g, b = c.red(), c.green(), c.blue()
            if r > 150 and g < 60 and b < 60:
                counts["red"] += 1
            elif g > 150 and r < 60 and b < 60:
                counts["green"] += 1
            elif b > 150 and r < 90 and g < 90:
                counts["blue"] += 1
    return counts


@pytest.mark.mesa
@pytest.mark.skipif(shutil.which("glxgears") is None, reason="glxgears (mesa-utils) missing")
def test_glxgears_gets_a_window_that_animates(virgl_viewer) -> None:  # type: ignore[no-untyped-def]
    proc = subprocess.Popen(["glxgears"], env=mesa_env(virgl_viewer.path, os.environ["DISPLAY"]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        (win,) = virgl_viewer.wait_scanouts(1)
        assert win.windowTitle().startswith("glxgears — scanout 1 — 300×300")
        first = virgl_viewer.grab(win)
        assert (first.width(), first.height()) == (300, 300)
        counts = colour_counts(first)
        assert min(counts.values()) > 50, counts  # all three gears are visible
        # the gears turn: a later frame differs
        seq = virgl_viewer.wait_frame(win)
        virgl_viewer.wait_frame(win, after=seq + 5)
        later = virgl_viewer.grab(win)
        assert later != first
        # what the window shows (fit mode) has the gears too
        shown = virgl_viewer.grab_window(win)
        assert min(colour_counts(shown).values()) > 20
        # glxgears presents far faster than the screen refreshes: the window still gets
        # a new frame about every refresh (the C path's rate limit and catch-up)
        sc = win.scanout
        presents, frames, t0 = sc.presents, sc.frames, time.monotonic()
        virgl_viewer.qtbot.wait(2000)
        refreshes = (time.monotonic() - t0) / present_interval()
        presents, frames = sc.presents - presents, sc.frames - frames
        assert presents > 2 * refreshes, f"glxgears: {presents} presents in 2 s"
        assert frames >= 0.5 * refreshes, f"{frames} frames for {refreshes:.0f} refreshes"
    finally:
        proc.terminate()
        proc.wait(10)
