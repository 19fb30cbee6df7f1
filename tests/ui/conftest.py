"""Helpers for the scanout window tests: guest processes, settings isolation and pixels.

Guests run as subprocesses (``python -m virgl_viewer.guest.cli`` or a small script given as
source), so their CPU time and GIL stay out of the viewer's process, as with a real guest.
Pixels are compared as RGBA8 bytes, rows top-first, which is what
`virgl_viewer.guest.patterns.expected_image` returns.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.procs import stop_process


# ---------------------------------------------------------------- guest processes
class GuestProcess:
    """A guest subprocess; its stderr goes to a log file (``log()``, for failure messages)."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.argv = argv
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_exit(self, qtbot: Any, timeout: float = 30.0) -> int:
        """Wait (processing Qt events) until the guest exits; returns its status."""
        def gone() -> None:
            assert self.proc.poll() is not None, "the guest is still running"

        qtbot.waitUntil(gone, timeout=int(timeout * 1000))
        return int(self.proc.returncode)

    def stop(self) -> None:
        stop_process(self.proc, 10)


class Guests:
    """Starts guests against a socket and stops whatever is still running at teardown."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[GuestProcess] = []

    def _spawn(self, argv: list[str]) -> GuestProcess:
        g = GuestProcess(argv, self.log_dir / f"guest-{len(self.started)}.log")
        self.started.append(g)
        return g

    def start(self, socket: str, *args: str, name: str = "virgl-guest") -> GuestProcess:
        """``virgl-guest --socket SOCKET --name NAME ARGS...``."""
        return self._spawn([sys.executable, "-m", "virgl_viewer.guest.cli", "--socket",
                            socket, "--name", name, *args])

    def script(self, source: str, *args: str) -> GuestProcess:
        """``python -c SOURCE ARGS...`` (``sys.argv[1:]`` = ARGS)."""
        return self._spawn([sys.executable, "-c", source, *args])

    def stop_all(self) -> None:
        for g in self.started:
            g.stop()


@pytest.fixture
def guests(tmp_path: Path) -> Iterator[Guests]:
    g = Guests(tmp_path)
    try:
        yield g
    finally:
        g.stop_all()


# ---------------------------------------------------------------- Qt garbage
@pytest.fixture(autouse=True)
def _collect_qt_garbage_on_the_gui_thread() -> Iterator[None]:
    """After each test (autouse: torn down after ``virgl_viewer``), run the cyclic garbage
    collector here, on the GUI thread.

    The viewer fixture leaves its ``ViewerController`` and ``MainWindow`` in a reference
    cycle (``MainWindow.controller``). Left to itself, Python's collector frees that cycle
    on whichever thread happens to allocate next, often the *next* test's render thread,
    and deleting a QMainWindow holding a QOpenGLWidget there aborts or segfaults the run.
    """
    import gc

    yield
    gc.collect()


# ---------------------------------------------------------------- settings isolation
@pytest.fixture
def isolated_settings() -> Iterator[Path]:
    """Point the default ``QSettings()`` at a fresh INI file in a temporary directory
    (unique organisation name, INI format, user scope redirected), so that tests never
    read or write the user's real layout; everything is restored afterwards."""
    from PySide6.QtCore import QCoreApplication, QSettings

    old_org = QCoreApplication.organizationName()
    old_app = QCoreApplication.applicationName()
    old_format = QSettings.defaultFormat()
    with tempfile.TemporaryDirectory(prefix="vv-settings-") as d:
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, d)
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.SystemScope, d)
        QSettings.setDefaultFormat(QSettings.Format.IniFormat)
        QCoreApplication.setOrganizationName(f"vv-test-{uuid.uuid4().hex}")
        QCoreApplication.setApplicationName("virgl-viewer")
        try:
            yield Path(d)
        finally:
            QCoreApplication.setOrganizationName(old_org)
            QCoreApplication.setApplicationName(old_app)
            QSettings.setDefaultFormat(old_format)
            # Qt's defaults on Unix (there is no getter to save them with)
            user = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
            system = (os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":")[0]
            QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, user)
            QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.SystemScope, system)


# ---------------------------------------------------------------- pixels
# Test modules get these through the ``pix`` fixture: ``import conftest`` would be
# ambiguous next to tests/conftest.py.
def rgba_bytes(img: Any) -> bytes:
    """A QImage as RGBA8 bytes, rows top-first, no padding."""
    from PySide6.QtGui import QImage

    img = img.convertToFormat(QImage.Format.Format_RGBA8888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    data = bytes(img.constBits())
    if bpl == 4 * w:
        return data[:4 * w * h]
    return b"".join(data[y * bpl:y * bpl + 4 * w] for y in range(h))


def flip_rows(data: bytes, w: int, h: int) -> bytes:
    stride = 4 * w
    return b"".join(data[y * stride:(y + 1) * stride] for y in reversed(range(h)))


def crop(data: bytes, w: int, x: int, y: int, cw: int, ch: int) -> bytes:
    """The ``cw`` x ``ch`` sub-image at (x, y) of an RGBA8 image ``w`` pixels wide."""
    stride = 4 * w
    return b"".join(data[r * stride + 4 * x:r * stride + 4 * (x + cw)]
                    for r in range(y, y + ch))


def pixel(data: bytes, w: int, x: int, y: int) -> tuple[int, int, int, int]:
    i = 4 * (y * w + x)
    return tuple(data[i:i + 4])  # type: ignore[return-value]


def pixel_diff(got: bytes, expected: bytes, w: int, h: int) -> str | None:
    """None if equal, else a description of the differences."""
    if len(got) != len(expected):
        return f"{len(got)} bytes, expected {len(expected)} ({w}x{h})"
    if got == expected:
        return None
    bad = [i // 4 for i in range(0, len(got), 4) if got[i:i + 4] != expected[i:i + 4]]
    first = bad[0]
    return (f"{len(bad)} of {w * h} pixels differ; first at ({first % w}, {first // w}): "
            f"{tuple(got[4 * first:4 * first + 4])} != "
            f"{tuple(expected[4 * first:4 * first + 4])}")


def assert_pixels(got: bytes, expected: bytes, w: int, h: int, what: str = "") -> None:
    diff = pixel_diff(got, expected, w, h)
    assert diff is None, f"{what}: {diff}"


def bounding_box(data: bytes, w: int, h: int,
                 keep: Callable[[tuple[int, int, int, int]], bool]) -> tuple[int, int, int, int]:
    """x, y, width, height of the pixels for which ``keep(rgba)`` is true."""
    xs: list[int] = []
    ys: list[int] = []
    stride = 4 * w
    for y in range(h):
        row = data[y * stride:(y + 1) * stride]
        hits = [x for x in range(w) if keep(tuple(row[4 * x:4 * x + 4]))]  # type: ignore[arg-type]
        if hits:
            xs += (hits[0], hits[-1])
            ys.append(y)
    if not ys:
        return 0, 0, 0, 0
    return min(xs), ys[0], max(xs) - min(xs) + 1, ys[-1] - ys[0] + 1


def draw_scanout_rgba(view: Any, transform: Callable[[Any], Any] | None = None
                      ) -> tuple[int, int, bytes]:
    """Like ``render_scanout_image``, but returns the raw RGBA8 the viewer's shader wrote
    (alpha included, rows top-first) and lets the test alter the leased frame first
    (``transform(frame) -> frame``, e.g. ``dataclasses.replace(f, y_0_top=True)``)."""
    from OpenGL import GL
    from PySide6.QtOpenGL import QOpenGLFramebufferObject

    from virgl_viewer.ui.gl_view import draw_frame

    sc = view.scanout
    view.makeCurrent()
    try:
        frame = sc.take_latest()
        assert frame is not None, "the scanout has no frame"
        fence = 0
        try:
            w, h = frame.width, frame.height
            fbo = QOpenGLFramebufferObject(w, h)
            fbo.bind()
            GL.glViewport(0, 0, w, h)
            drawn = transform(frame) if transform is not None else frame
            fence = draw_frame(view._prog, drawn, (0, 0, w, h), w, h, nearest=True)
            buf = (ctypes.c_ubyte * (4 * w * h))()
            GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 4)
            GL.glReadPixels(0, 0, w, h, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE, buf)
            fbo.release()
        finally:
            sc.drawn(frame, fence)
        return w, h, flip_rows(bytes(buf), w, h)  # GL rows are bottom-first
    finally:
        view.doneCurrent()


class Pix:
    """The pixel helpers above, as the ``pix`` fixture hands them to tests."""

    rgba = staticmethod(rgba_bytes)
    flip_rows = staticmethod(flip_rows)
    crop = staticmethod(crop)
    pixel = staticmethod(pixel)
    diff = staticmethod(pixel_diff)
    assert_equal = staticmethod(assert_pixels)
    bounding_box = staticmethod(bounding_box)
    draw_rgba = staticmethod(draw_scanout_rgba)


@pytest.fixture
def pix() -> type[Pix]:
    return Pix
