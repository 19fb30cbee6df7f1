"""The wheel as a user gets it: ``python -m build`` makes an sdist and, from it, a wheel
carrying the compiled binding; installed into a fresh venv (no access to this checkout)
it serves a Mesa glxgears headless (the frames it snapshots show the gears) and opens
the guest's scanout in the GUI; ``pipx install .`` gives working commands. pip gets
setuptools, cffi, PySide6 and the rest from the wheels ``make setup`` keeps (the
Makefile's WHEELHOUSE), never from an index: ``make test`` may run with loopback only."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import REPO_ROOT
from support.mesa import GEARS_LINE_RE, BackgroundClient, glxgears_argv, mesa_env
from support.png import png_image
from support.procs import start_serving, stop_process, wait_for
from support.screen import colour_counts
from support.xvfb import Xvfb

pytestmark = [pytest.mark.slow, pytest.mark.mesa, pytest.mark.timeout(600)]

# what the binding may link against: the runtime libraries a user installs
RUNTIME_LIBS = {"libvirglrenderer.so.1", "libEGL.so.1", "libOpenGL.so.0", "libc.so.6",
                "ld-linux-x86-64.so.2"}

WHEELHOUSE = REPO_ROOT / "build" / "wheelhouse"


def _run(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None,
         timeout: float = 300) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env,
                       timeout=timeout, check=False)
    assert r.returncode == 0, f"$ {' '.join(argv)}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment minus anything pointing at this checkout or its venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    env.update(extra)
    return env


def _pip_offline(env: dict[str, str]) -> dict[str, str]:
    """env for pip (and the pip that build and pipx run) to install from WHEELHOUSE only."""
    assert (WHEELHOUSE / ".stamp").exists(), f"{WHEELHOUSE} is missing: `make setup` fills it"
    return dict(env, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(WHEELHOUSE))


@pytest.fixture(scope="module")
def wheel(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(dist), str(repo_root)],
         env=_pip_offline(dict(os.environ)), timeout=600)
    (whl,) = dist.glob("virgl_viewer-*.whl")
    assert len(list(dist.glob("virgl_viewer-*.tar.gz"))) == 1
    return whl


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("venv") / "venv"
    # the interpreter the wheel was built for, without this checkout's venv around it
    base_python = Path(sys.base_prefix) / "bin" / "python3"
    _run([str(base_python), "-m", "venv", str(where)], env=_clean_env())
    _run([str(where / "bin" / "pip"), "install", "-q", str(wheel)],
         env=_pip_offline(_clean_env()))
    return where


def test_wheel_carries_the_binding_and_resources(wheel: Path, tmp_path: Path,
                                                 pyproject: dict[str, Any]) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    (binding,) = [n for n in names if re.fullmatch(r"virgl_viewer/_native\..*so", n)]
    for want in ("virgl_viewer/resources/io.github.virglviewer.VirglViewer.desktop",
                 "virgl_viewer/resources/io.github.virglviewer.VirglViewer.metainfo.xml",
                 "virgl_viewer/resources/icons/io.github.virglviewer.VirglViewer.svg",
                 "virgl_viewer/resources/icons/48x48/io.github.virglviewer.VirglViewer.png"):
        assert want in names
    assert wheel.name.startswith(f"virgl_viewer-{pyproject['project']['version']}-")
    so = tmp_path / "binding.so"
    so.write_bytes(zipfile.ZipFile(wheel).read(binding))
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]",
                            _run(["readelf", "-d", str(so)])))
    assert needed and needed <= RUNTIME_LIBS, needed




@pytest.fixture
def sock_dir(tmp_path: Path) -> Iterator[Path]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="vv-whl-") as d:  # short AF_UNIX path
        yield Path(d)


def test_venv_serves_glxgears_headless(venv: Path, xvfb: Xvfb, tmp_path: Path,
                                       sock_dir: Path) -> None:
    sock, snaps = sock_dir / "vtest.sock", tmp_path / "snaps"
    env = _clean_env()
    app, log = start_serving([str(venv / "bin" / "virgl-viewer"), "--headless", "--socket",
                              str(sock), "--snapshot-dir", str(snaps)],
                             tmp_path / "viewer.log", env)
    try:
        assert str(venv) in _run([str(venv / "bin" / "python"), "-c",
                                  "import virgl_viewer._native as n; print(n.__file__)"],
                                 cwd=tmp_path, env=env)
        with BackgroundClient(glxgears_argv(0, 0, 300), mesa_env(sock, xvfb.display),
                              tmp_path, "glxgears") as gears:
            assert gears.wait_for_output(GEARS_LINE_RE, 1, timeout=30), gears.describe()
            frames = int(GEARS_LINE_RE.search(gears.stdout()).group(1))  # type: ignore[union-attr]
            assert frames > 0, gears.describe()
            app.send_signal(signal.SIGUSR1)
            assert wait_for(lambda: any(snaps.glob("*.png")), 15), log()
    finally:
        stop_process(app)
    assert app.returncode == 0, log()
    (png, *_) = sorted(snaps.glob("*.png"))
    counts = colour_counts(png_image(png))
    assert all(counts[c] > 200 for c in ("red", "green", "blue")), (png, counts)


def test_venv_gui_shows_the_scanout(venv: Path, xvfb: Xvfb, tmp_path: Path,
                                    sock_dir: Path) -> None:
    sock = sock_dir / "vtest.sock"
    env = _clean_env(DISPLAY=xvfb.display, XDG_CONFIG_HOME=str(tmp_path))
    app, log = start_serving([str(venv / "bin" / "virgl-viewer"), "--socket", str(sock),
                              "--log-level", "info"], tmp_path / "viewer.log", env)
    try:
        with BackgroundClient(glxgears_argv(0, 0, 300), mesa_env(sock, xvfb.display),
                              tmp_path, "glxgears") as gears:
            assert wait_for(lambda: "scanout 1 (resource" in log(), 60), log()
            assert gears.wait_for_output(GEARS_LINE_RE, 1, timeout=30), gears.describe()
    finally:
        app.send_signal(signal.SIGTERM)
        app.wait(30)
    assert app.returncode == 0, log()
    for bad in ("Traceback", "ERROR", "Fatal Python error"):
        assert bad not in log(), log()


def test_pipx_install_from_the_checkout(repo_root: Path, tmp_path: Path) -> None:
    env = _clean_env(PIPX_HOME=str(tmp_path / "pipx"), PIPX_BIN_DIR=str(tmp_path / "bin"),
                     PIPX_MAN_DIR=str(tmp_path / "man"))
    _run(["pipx", "install", str(repo_root)], env=_pip_offline(env), timeout=600)
    for prog in ("virgl-viewer", "virgl-guest"):
        out = _run([str(tmp_path / "bin" / prog), "--version"], env=env)
        assert out.startswith(f"{prog} "), out
    # its --install-desktop-entry names the pipx command
    data = tmp_path / "data"
    _run([str(tmp_path / "bin" / "virgl-viewer"), "--install-desktop-entry"],
         env=dict(env, XDG_DATA_HOME=str(data)))
    (entry,) = (data / "applications").glob("*.desktop")
    (exec_line,) = [ln for ln in entry.read_text().splitlines() if ln.startswith("Exec=")]
    command = Path(exec_line.removeprefix("Exec="))
    assert command.resolve() == (tmp_path / "bin" / "virgl-viewer").resolve(), exec_line
