"""resources/: the desktop entry and metainfo pass the validators desktops and app
stores use, they agree with each other and with pyproject.toml, and the PNG icons are the
SVG rendered (so an SVG edit without `make icons` fails here)."""

from __future__ import annotations

import configparser
import importlib.util
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from support.procs import tool_env

from virgl_viewer import __version__
from virgl_viewer.desktop import APP_ID, desktop_entry, icon_pngs, icon_svg, metainfo
from virgl_viewer.manpage import PROGRAMS


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                          env=tool_env())


def _desktop_keys() -> dict[str, str]:
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(desktop_entry().read_text())
    return dict(cp["Desktop Entry"])


def test_desktop_entry_passes_desktop_file_validate() -> None:
    r = _run(["desktop-file-validate", str(desktop_entry())])
    # not even a hint: the validator prints nothing for a clean file
    assert (r.returncode, r.stdout + r.stderr) == (0, "")


def test_metainfo_passes_appstreamcli_validate() -> None:
    r = _run(["appstreamcli", "validate", "--no-net", "--explain", str(metainfo())])
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "Validation was successful" in out, out
    # infos are allowed (appstream 0.16 does not know <developer> yet); warnings are not
    assert not any(line.startswith(("W:", "E:")) for line in out.splitlines()), out


def test_desktop_entry_and_metainfo_agree(pyproject: dict[str, Any], repo_root: Path) -> None:
    keys = _desktop_keys()
    assert Path(str(desktop_entry())).name == f"{APP_ID}.desktop"
    assert keys["Icon"] == APP_ID
    assert keys["Exec"] == "virgl-viewer"
    assert keys["StartupWMClass"] == "virgl-viewer"  # Qt's WM_CLASS: the app's name
    root = ET.parse(str(metainfo())).getroot()
    assert root.findtext("id") == APP_ID
    assert root.findtext("launchable") == f"{APP_ID}.desktop"
    assert root.findtext("project_license") == pyproject["project"]["license"]
    binaries = [b.text for b in root.iter("binary")]
    assert sorted(binaries) == sorted(pyproject["project"]["scripts"]) == sorted(PROGRAMS)
    newest = root.find("releases/release")
    assert newest is not None
    assert newest.get("version") == pyproject["project"]["version"] == __version__
    # screenshots: the files in docs/ (as the repository's raw URL serves them)
    images = [i.text or "" for i in root.iter("image")]
    assert images, "no screenshots"
    for url in images:
        path = url.split("/main/", 1)[1]
        assert path.startswith("docs/") and (repo_root / path).is_file(), url
    assert root.find("content_rating").get("type") == "oars-1.1"  # type: ignore[union-attr]


def _render_icons_module(repo_root: Path) -> Any:
    spec = importlib.util.spec_from_file_location(
        "render_icons", repo_root / "packaging" / "render_icons.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _premultiplied_rgba(image: Any) -> bytes:
    """The pixels as bytes (premultiplied: the colour of a transparent pixel is noise)."""
    from PySide6.QtGui import QImage

    converted = image.convertToFormat(QImage.Format.Format_RGBA8888_Premultiplied)
    return bytes(converted.constBits())  # while `converted` still owns the memory


def test_png_icons_are_the_svg_rendered(qapp: Any, repo_root: Path) -> None:
    from PySide6.QtGui import QImage

    render_icons = _render_icons_module(repo_root)
    assert icon_svg().read_bytes() == render_icons.svg_path().read_bytes()
    shipped = dict(icon_pngs())
    assert sorted(shipped) == sorted(render_icons.SIZES)
    for size, png in shipped.items():
        image = QImage()
        assert image.loadFromData(png.read_bytes(), "PNG"), png
        assert (image.width(), image.height()) == (size, size), png
        got, want = _premultiplied_rgba(image), _premultiplied_rgba(render_icons.render(size))
        worst = max(abs(a - b) for a, b in zip(got, want, strict=True))
        # another Qt's rasteriser may round an edge pixel differently; a changed SVG
        # changes whole areas
        assert worst <= 8, f"{png} is not {icon_svg()} at {size}px (run `make icons`)"
    # the 48 px icon is the picture: mostly opaque, the blue of the background inside
    image = QImage()
    image.loadFromData(shipped[48].read_bytes(), "PNG")
    centre_top = image.pixelColor(24, 6)
    assert centre_top.alpha() == 255 and centre_top.blue() > centre_top.red(), centre_top.name()


def test_pyproject_lists_every_package() -> None:
    """pyproject.toml lists the packages (a search would walk build/roots/): a new
    subpackage must be added there, or the wheel would lack it."""
    import tomllib

    root = Path(__file__).resolve().parents[2]
    listed = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]
    top = root / "virgl_viewer"
    # one level of subpackages; glob follows the resources symlink, rglob would not
    on_disk = sorted(["virgl_viewer", *(f"virgl_viewer.{p.parent.name}"
                                        for p in top.glob("*/__init__.py"))])
    assert not list(top.glob("*/*/__init__.py")), "a deeper package: list it and walk deeper"
    assert sorted(listed) == on_disk
