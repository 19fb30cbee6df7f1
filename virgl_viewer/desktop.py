"""The application's identity on a desktop: its id, icon, desktop entry, metainfo.

Why: one module knows where the resources are (``virgl_viewer.resources``, package
data in wheels and .debs) and what the desktop expects of them, so the GUI's icon,
``--install-desktop-entry`` and the packaging recipes agree.

How: ``install_desktop_entry`` copies the desktop entry, the AppStream metainfo, the
icons and generated man pages into the freedesktop user directories
(``$XDG_DATA_HOME``, by default ``~/.local/share``); the desktop entry's ``Exec`` names
the running ``virgl-viewer`` by absolute path when ``virgl-viewer`` on ``PATH`` is
another one (or none), so a venv install starts from the menu too.
``uninstall_desktop_entry`` removes exactly those files.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

APP_ID = "io.github.virglviewer.VirglViewer"


def resources() -> Traversable:
    return files("virgl_viewer.resources")


def desktop_entry() -> Traversable:
    return resources() / f"{APP_ID}.desktop"


def metainfo() -> Traversable:
    return resources() / f"{APP_ID}.metainfo.xml"


def icon_svg() -> Traversable:
    return resources() / "icons" / f"{APP_ID}.svg"


def icon_pngs() -> Iterator[tuple[int, Traversable]]:
    """(size, PNG) for every rendered size, smallest first."""
    found = []
    for d in (resources() / "icons").iterdir():
        w, sep, h = d.name.partition("x")
        if d.is_dir() and sep and w == h and w.isdigit():
            found.append((int(w), d / f"{APP_ID}.png"))
    return iter(sorted(found, key=lambda e: e[0]))


def data_home(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    return Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def _exec_command() -> list[str]:
    """What the menu entry runs: ``virgl-viewer`` when that is us, else our full path."""
    me = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    on_path = shutil.which("virgl-viewer")
    if me is not None and me.name == "virgl-viewer" and me.is_file():
        if on_path is not None and Path(on_path).resolve() == me:
            return ["virgl-viewer"]
        return [str(me)]
    return [sys.executable, "-m", "virgl_viewer"]


def _desktop_entry_text(argv: list[str]) -> str:
    exec_line = "Exec=" + " ".join(_quote(a) for a in argv)
    lines = [exec_line if line.startswith("Exec=") else line
             for line in desktop_entry().read_text(encoding="utf-8").splitlines()]
    return "\n".join(lines) + "\n"


def _quote(arg: str) -> str:
    """Quote one Exec argument as the Desktop Entry spec wants."""
    if not any(c in arg for c in " \t\n\"'\\><~|&;$*?#()`"):
        return arg
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    return f'"{escaped}"'


def installed_paths(home: Path) -> list[Path]:
    """Every file ``install_desktop_entry`` writes under ``home``."""
    paths = [home / "applications" / f"{APP_ID}.desktop",
             home / "metainfo" / f"{APP_ID}.metainfo.xml",
             home / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg"]
    paths += [home / "icons" / "hicolor" / f"{s}x{s}" / "apps" / f"{APP_ID}.png"
              for s, _ in icon_pngs()]
    paths += [home / "man" / "man1" / f"{prog}.1" for prog in _man_programs()]
    return paths


def _man_programs() -> list[str]:
    from virgl_viewer.manpage import PROGRAMS

    return list(PROGRAMS)


def install_desktop_entry(home: Path, exec_argv: list[str] | None = None) -> list[Path]:
    """Write the desktop entry, metainfo, icons and man pages under ``home``."""
    from virgl_viewer import __version__
    from virgl_viewer.manpage import render

    contents: dict[str, bytes] = {
        "desktop": _desktop_entry_text(exec_argv or _exec_command()).encode(),
        "metainfo": metainfo().read_bytes(),
        "svg": icon_svg().read_bytes(),
    }
    written = []
    pngs = dict(icon_pngs())
    for path in installed_paths(home):
        if path.suffix == ".desktop":
            data = contents["desktop"]
        elif path.suffix == ".xml":
            data = contents["metainfo"]
        elif path.suffix == ".svg":
            data = contents["svg"]
        elif path.suffix == ".png":
            data = pngs[int(path.parent.parent.name.partition("x")[0])].read_bytes()
        else:
            data = render(path.stem, __version__).encode()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        written.append(path)
    return written


def uninstall_desktop_entry(home: Path) -> list[Path]:
    """Remove what ``install_desktop_entry`` wrote; returns the files removed."""
    removed = []
    for path in installed_paths(home):
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed
