"""glxgears through the viewer: its scanout opens in its own window, drawn
from the shared texture, and the frames change."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from support.mesa import mesa_env
from support.procs import stop_process
from support.screen import colour_counts, image_of

GEARS = ("red", "green", "blue")  # glxgears' three gears


@pytest.mark.mesa
@pytest.mark.skipif(shutil.which("glxgears") is None, reason="glxgears (mesa-utils) missing")
@pytest.mark.parametrize("virgl_viewer", ["shared", "process"], indirect=True)
def test_glxgears_gets_a_window_that_animates(virgl_viewer) -> None:  # type: ignore[no-untyped-def]
    proc = subprocess.Popen(["glxgears"], env=mesa_env(virgl_viewer.path, os.environ["DISPLAY"]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        (win,) = virgl_viewer.wait_scanouts(1)
        assert win.windowTitle().startswith("glxgears — scanout 1 — 300×300")
        first = virgl_viewer.grab(win)
        assert (first.width(), first.height()) == (300, 300)
        counts = colour_counts(image_of(first))
        assert all(counts[c] > 400 for c in GEARS), counts  # all three gears are visible
        # the gears turn: a later frame differs
        seq = virgl_viewer.wait_frame(win)
        virgl_viewer.wait_frame(win, after=seq + 5)
        later = virgl_viewer.grab(win)
        assert later != first
        # what the window shows (fit mode) has the gears too
        shown = virgl_viewer.grab_window(win)
        counts = colour_counts(image_of(shown))
        assert all(counts[c] > 150 for c in GEARS), counts
        # glxgears presents far faster than the screen refreshes: new frames keep
        # reaching the window, and presents in between are skipped, not queued (the
        # C path's rate limit and catch-up)
        sc = win.scanout
        presents, frames = sc.presents, sc.frames
        virgl_viewer.qtbot.waitUntil(lambda: sc.frames - frames >= 30, timeout=60_000)
        presents, frames = sc.presents - presents, sc.frames - frames
        assert presents > 2 * frames, f"glxgears: {presents} presents, {frames} frames copied"
    finally:
        stop_process(proc)
