"""The inspector in the running viewer: a guest's display target is previewed from the
scanout's shared texture, and the rows carry the scanout marker."""

from __future__ import annotations

import os
import threading
from typing import Any

from virgl_viewer.guest import VtestClient
from virgl_viewer.guest.scene import GuestScene
from virgl_viewer.state import StateRegistry
from virgl_viewer.ui.gl_view import ScaleMode, fit_rect
from virgl_viewer.ui.inspector import Inspector


def attach(viewer: Any, registry: StateRegistry) -> None:
    rt = viewer.controller.render
    done = threading.Event()
    rt.call(lambda: (registry.attach(rt.server), done.set()))
    assert done.wait(10)


def test_display_target_preview_is_the_scanout(qtbot: Any, virgl_viewer: Any) -> None:
    registry = StateRegistry()
    attach(virgl_viewer, registry)
    ctl = virgl_viewer.controller
    w = Inspector(registry, scanouts=lambda: list(ctl.scanouts.values()))
    qtbot.addWidget(w)
    w.resize(900, 500)
    w.show()
    with VtestClient.connect(virgl_viewer.path, "preview-guest", 2) as g:
        scene = GuestScene(g, "solid:ff0000", [(64, 48)])
        scene.present_frame(0)
        virgl_viewer.wait_scanouts(1)
        handle = scene.scanouts[0].handle
        assert w.show_resource(os.getpid(), handle)
        rec = w.selected_record()
        assert rec.scanout and rec.display_target
        assert w.preview.source is ctl.scanouts[next(iter(ctl.scanouts))]
        assert w.preview_label.text() == "scanout 1 of preview-guest"
        qtbot.waitUntil(lambda: w.preview.painted_seq > 0, timeout=5000)
        img = w.preview.grabFramebuffer()
        c = img.pixelColor(img.width() // 2, img.height() // 2)
        assert (c.red(), c.green(), c.blue()) == (255, 0, 0)
        # fitted, aspect kept: what lies outside the image is background
        x, y, _, _ = fit_rect(ScaleMode.FIT, 64, 48, img.width(), img.height())
        if x > 1 or y > 1:
            bg = img.pixelColor(x // 2, y // 2)
            assert bg.red() < 100, bg.name()
        scene.close()


def test_any_2d_texture_is_previewed_from_a_gpu_copy(qtbot: Any, virgl_viewer: Any) -> None:
    """A texture that is not a scanout (a guest upload) shows in the preview,
    copied on the GPU by the render thread: the uploaded pixels appear."""
    ctl = virgl_viewer.controller
    w = ctl.main_window.inspector
    ctl.main_window.inspector_dock.show()
    with VtestClient.connect(virgl_viewer.path, "texture-guest", 2) as g:
        # 2D B8G8R8A8 texture, sampler-view bind only: never presented
        res = g.resource_create(target=2, format=1, bind=1 << 3, width=32, height=16,
                                data_size=32 * 16 * 4)
        assert res.shm is not None
        res.shm[:] = bytes((0, 255, 0, 255)) * (32 * 16)  # BGRA: green
        g.transfer_put2(res, width=32, height=16)
        g.busy_wait(res, wait=True)
        qtbot.waitUntil(lambda: w.show_resource(os.getpid(), res.handle), timeout=5000)
        rec = w.selected_record()
        assert not rec.display_target
        qtbot.waitUntil(lambda: w.preview.painted_seq > 0, timeout=5000)
        assert w.preview_label.text() == "texture copy"
        img = w.preview.grabFramebuffer()
        c = img.pixelColor(img.width() // 2, img.height() // 2)
        assert (c.red(), c.green(), c.blue()) == (0, 255, 0)
