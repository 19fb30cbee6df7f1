"""Render the application icon's PNG sizes from its SVG (``make icons``).

Why: desktops and AppStream catalogues want PNGs at fixed sizes, and Qt loads a PNG
window icon without the SVG image plugin; the SVG stays the one source. The PNGs are
committed so that building a wheel or a .deb needs no renderer, and a test renders the
SVG again and compares, so a PNG that was not regenerated after an SVG edit fails it.

    python packaging/render_icons.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ICONS = ROOT / "resources" / "icons"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def svg_path() -> Path:
    (svg,) = ICONS.glob("*.svg")
    return svg


def png_path(size: int) -> Path:
    return ICONS / f"{size}x{size}" / (svg_path().stem + ".png")


def render(size: int):  # type: ignore[no-untyped-def]
    """The SVG drawn into a transparent size x size QImage (ARGB32, premultiplied)."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg_path()))
    if not renderer.isValid():
        raise SystemExit(f"{svg_path()}: not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    return image


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.parse_args(argv)
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(["render_icons", "-platform", "offscreen"])
    for size in SIZES:
        path = png_path(size)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not render(size).save(str(path), "PNG"):
            raise SystemExit(f"cannot write {path}")
        print(path.relative_to(ROOT))
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
