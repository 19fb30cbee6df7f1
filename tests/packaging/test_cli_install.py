"""``--version`` and ``--install-desktop-entry`` as a user runs them: the installed
console scripts, a private ``$XDG_DATA_HOME``, and the files checked with the tools a
desktop uses (desktop-file-validate, man)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.procs import tool_env

from virgl_viewer.desktop import APP_ID

BIN = Path(sys.executable).parent


def _run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env,
                          check=False)


@pytest.mark.parametrize("prog", ["virgl-viewer", "virgl-guest"])
def test_version_is_the_package_version(prog: str, pyproject: dict[str, Any]) -> None:
    r = _run([str(BIN / prog), "--version"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{prog} {pyproject['project']['version']}\n"


def _exec_argv(desktop_file: Path) -> list[str]:
    (line,) = [ln for ln in desktop_file.read_text().splitlines() if ln.startswith("Exec=")]
    return shlex.split(line.removeprefix("Exec="))


def test_install_desktop_entry_into_user_data_dirs(tmp_path: Path) -> None:
    home = tmp_path / "data"
    # PATH without our venv: the entry must then name this virgl-viewer by its full path
    env = dict(os.environ, XDG_DATA_HOME=str(home), PATH="/usr/bin:/bin")
    r = _run([str(BIN / "virgl-viewer"), "--install-desktop-entry"], env)
    assert r.returncode == 0, r.stderr
    desktop = home / "applications" / f"{APP_ID}.desktop"
    check = _run(["desktop-file-validate", str(desktop)])
    assert (check.returncode, check.stdout) == (0, ""), check.stdout
    argv = _exec_argv(desktop)
    assert Path(argv[0]).resolve() == (BIN / "virgl-viewer").resolve()
    menu_run = _run([*argv, "--version"], env)  # what the menu entry starts, runs
    assert menu_run.returncode == 0 and menu_run.stdout.startswith("virgl-viewer "), menu_run
    assert (home / "metainfo" / f"{APP_ID}.metainfo.xml").is_file()
    icons = home / "icons" / "hicolor"
    assert (icons / "scalable" / "apps" / f"{APP_ID}.svg").is_file()
    for size in (16, 32, 48, 64, 128, 256):
        png = icons / f"{size}x{size}" / "apps" / f"{APP_ID}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    for prog in ("virgl-viewer", "virgl-guest"):
        page = home / "man" / "man1" / f"{prog}.1"
        man = _run(["man", "-l", str(page)], tool_env(dict(env, MANWIDTH="100")))
        assert man.returncode == 0 and "--socket" in man.stdout.replace("\u2010", "-"), man
    # ... and every line of the log names a file it wrote
    written = sorted(p for p in home.rglob("*") if p.is_file())
    for path in written:
        assert str(path) in r.stderr
    again = _run([str(BIN / "virgl-viewer"), "--uninstall-desktop-entry"], env)
    assert again.returncode == 0, again.stderr
    assert [p for p in home.rglob("*") if p.is_file()] == []


def test_entry_says_virgl_viewer_when_path_finds_us(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path),
               PATH=f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    assert shutil.which("virgl-viewer", path=env["PATH"]) == str(BIN / "virgl-viewer")
    r = _run([str(BIN / "virgl-viewer"), "--install-desktop-entry"], env)
    assert r.returncode == 0, r.stderr
    assert _exec_argv(tmp_path / "applications" / f"{APP_ID}.desktop") == ["virgl-viewer"]
