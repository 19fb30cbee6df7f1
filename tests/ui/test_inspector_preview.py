"""The inspector in the running viewer: a guest's display target is previewed from the
scanout's shared texture, any other 2D texture from a GPU copy, whichever isolation runs
(in process isolation the copy comes from the client's renderer process through the frame
slots); what cannot be copied says so, and a preview whose client goes leaves nothing."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import pytest

from virgl_viewer.guest import VtestClient
from virgl_viewer.guest.scene import GuestScene
from virgl_viewer.state import StateRegistry
from virgl_viewer.ui.gl_view import ScaleMode, fit_rect
from virgl_viewer.ui.inspector import Inspector
from virgl_viewer.ui.preview import NOT_PREVIEWABLE
from virgl_viewer.vtest import protocol as P

MODES = pytest.mark.parametrize("virgl_viewer", ["shared", "process", "process-shm"],
                                indirect=True)
PROCESS = pytest.mark.parametrize("virgl_viewer", ["process"], indirect=True)
B8G8R8A8 = 1
R16G16B16A16_FLOAT = 94
# the texture the previews copy: four quadrants, B G R A bytes each (top-left, top-right,
# bottom-left, bottom-right as the guest writes its rows, first row first)
QUADRANTS = ((0, 0, 255, 255), (0, 255, 0, 255), (255, 0, 0, 255), (255, 255, 255, 255))


def attach(viewer: Any, registry: StateRegistry) -> None:
    rt = viewer.controller.render
    done = threading.Event()
    rt.call(lambda: (registry.attach(rt.server), done.set()))
    assert done.wait(10)


@MODES
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


def quadrants(w: int, h: int) -> bytes:
    rows = []
    for y in range(h):
        left, right = (QUADRANTS[0], QUADRANTS[1]) if y < h // 2 else (QUADRANTS[2],
                                                                       QUADRANTS[3])
        rows.append(bytes(left) * (w // 2) + bytes(right) * (w - w // 2))
    return b"".join(rows)


def upload(g: VtestClient, w: int, h: int, data: bytes, fmt: int = B8G8R8A8,
           target: int = P.TARGET_2D, bpp: int = 4) -> Any:
    """A texture the guest filled through TRANSFER_PUT2: sampler-view bind only, never
    presented."""
    res = g.resource_create(target=target, format=fmt, bind=P.BIND_SAMPLER_VIEW, width=w,
                            height=h, data_size=w * h * bpp)
    assert res.shm is not None
    res.shm[:len(data)] = data
    g.transfer_put2(res, width=w, height=h)
    g.busy_wait(res, wait=True)
    return res


def preview_of(qtbot: Any, virgl_viewer: Any, handle: int) -> Any:
    ctl = virgl_viewer.controller
    w = ctl.main_window.inspector
    ctl.main_window.inspector_dock.show()
    qtbot.waitUntil(lambda: w.show_resource(os.getpid(), handle), timeout=5000)
    return w


def slots_left(virgl_viewer: Any) -> int:
    """Frame slots and previews the main process holds for texture previews."""
    manager = virgl_viewer.controller.render.manager
    if virgl_viewer.controller.isolation != "process":
        return 0
    return sum(1 for k in manager._slots if k[2]) + len(manager._previews)


@MODES
def test_any_2d_texture_is_previewed_from_a_gpu_copy(qtbot: Any, virgl_viewer: Any) -> None:
    """A texture that is not a scanout (a guest upload) shows in the preview, copied on
    the GPU (in process isolation by the client's renderer process, into a slot the
    main process copies out of): the uploaded pixels appear, where the guest put them."""
    with VtestClient.connect(virgl_viewer.path, "texture-guest", 2) as g:
        res = upload(g, 32, 16, quadrants(32, 16))
        w = preview_of(qtbot, virgl_viewer, res.handle)
        assert not w.selected_record().display_target
        qtbot.waitUntil(lambda: w.preview.painted_seq > 0, timeout=5000)
        assert w.preview_label.text() == "texture copy"
        img = w.preview.grabFramebuffer()
        x, y, fw, fh = fit_rect(ScaleMode.FIT, 32, 16, img.width(), img.height())
        seen = []
        for qy in (0, 1):
            for qx in (0, 1):
                c = img.pixelColor(x + fw * (1 + 2 * qx) // 4, y + fh * (1 + 2 * qy) // 4)
                seen.append((c.blue(), c.green(), c.red(), 255))
        assert seen == list(QUADRANTS)  # the guest's first row at the top
        # the guest draws again: the preview follows (the inspector asks for new copies)
        seq = w.preview.painted_seq
        res.shm[:] = bytes((0, 255, 255, 255)) * (32 * 16)  # yellow
        g.transfer_put2(res, width=32, height=16)
        g.busy_wait(res, wait=True)

        def yellow() -> bool:
            img = w.preview.grabFramebuffer()
            c = img.pixelColor(img.width() // 2, img.height() // 2)
            return w.preview.painted_seq > seq and (c.red(), c.green(), c.blue()) == (
                255, 255, 0)

        qtbot.waitUntil(yellow, timeout=5000)
        # another row selected: the copy is closed, its slots freed
        other = upload(g, 8, 8, bytes(8 * 8 * 4))
        preview_of(qtbot, virgl_viewer, other.handle)
        qtbot.waitUntil(lambda: w.preview.painted_seq > 0, timeout=5000)
        one = 2 if virgl_viewer.controller.isolation == "process" else 0  # slot + preview
        qtbot.waitUntil(lambda: slots_left(virgl_viewer) == one, timeout=5000)
        assert w.show_resource(os.getpid(), res.handle)
        qtbot.waitUntil(lambda: w.preview.painted_seq > 0, timeout=5000)


def assert_not_previewable(qtbot: Any, viewer: Any, handle: int) -> None:
    """The preview of ``handle`` says it cannot be shown, shows nothing, and nothing
    (slots, previews) is left for it."""
    w = preview_of(qtbot, viewer, handle)
    qtbot.waitUntil(lambda: w.preview_label.text() == NOT_PREVIEWABLE, timeout=5000)
    assert w.preview.painted_seq == 0
    qtbot.waitUntil(lambda: slots_left(viewer) == 0, timeout=5000)


@MODES
def test_a_3d_texture_is_not_previewable(qtbot: Any, virgl_viewer: Any) -> None:
    with VtestClient.connect(virgl_viewer.path, "volume-guest", 2) as g:
        res = g.resource_create(target=P.TARGET_3D, format=B8G8R8A8,
                                bind=P.BIND_SAMPLER_VIEW, width=8, height=8, depth=4,
                                data_size=8 * 8 * 4 * 4)
        g.busy_wait(res, wait=True)
        assert_not_previewable(qtbot, virgl_viewer, res.handle)


@PROCESS
def test_a_texel_too_wide_for_a_slot_is_not_previewable(qtbot: Any, virgl_viewer: Any
                                                        ) -> None:
    """8-byte texels do not fit the frame slots: the main process refuses the worker's
    slot request and the preview says so (nothing is made for it)."""
    with VtestClient.connect(virgl_viewer.path, "half-float-guest", 2) as g:
        res = upload(g, 16, 16, bytes(16 * 16 * 8), fmt=R16G16B16A16_FLOAT, bpp=8)
        assert_not_previewable(qtbot, virgl_viewer, res.handle)


@MODES
def test_preview_of_a_client_that_disconnects_goes_away(qtbot: Any, virgl_viewer: Any
                                                        ) -> None:
    g = VtestClient.connect(virgl_viewer.path, "leaving-guest", 2)
    res = upload(g, 24, 24, quadrants(24, 24))
    w = preview_of(qtbot, virgl_viewer, res.handle)
    qtbot.waitUntil(lambda: w.preview.painted_seq > 0, timeout=5000)
    if virgl_viewer.controller.isolation == "process":
        assert slots_left(virgl_viewer) == 2  # its slot and the preview
    g.close()
    qtbot.waitUntil(lambda: w.preview.source is None, timeout=5000)
    assert w.preview_label.text() == "select a texture resource to preview it"
    qtbot.waitUntil(lambda: slots_left(virgl_viewer) == 0, timeout=5000)


@PROCESS
def test_preview_of_a_crashed_renderer_goes_away(qtbot: Any, virgl_viewer: Any) -> None:
    """The worker serving the previewed texture dies mid-preview: the preview ends,
    its slots are freed, the viewer goes on previewing other clients' textures."""
    with VtestClient.connect(virgl_viewer.path, "doomed-guest", 2) as g:
        res = upload(g, 24, 24, quadrants(24, 24))
        w = preview_of(qtbot, virgl_viewer, res.handle)
        qtbot.waitUntil(lambda: w.preview.painted_seq > 0, timeout=5000)
        server = virgl_viewer.controller.render.server
        (doomed,) = [s for s in server.sessions if s.name == "doomed-guest"]
        os.kill(doomed.renderer_pid, signal.SIGKILL)
        qtbot.waitUntil(lambda: w.preview.source is None, timeout=10000)
        qtbot.waitUntil(lambda: slots_left(virgl_viewer) == 0, timeout=5000)
    with VtestClient.connect(virgl_viewer.path, "next-guest", 2) as g:
        res = upload(g, 8, 8, bytes((0, 0, 255, 255)) * 64)
        w = preview_of(qtbot, virgl_viewer, res.handle)
        qtbot.waitUntil(lambda: w.preview.painted_seq > 0, timeout=5000)
