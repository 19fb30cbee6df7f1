"""The application icon on every window, and the Help > About box.

Why: a desktop shows the window icon in task bars and switchers, and users look in the
About box for what they run (version, Qt, licence). The icon comes from
``virgl_viewer.desktop`` (the PNGs rendered from the SVG), so Qt needs no SVG plugin.
"""

from __future__ import annotations

from typing import Any

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import QCoreApplication, qVersion
from PySide6.QtGui import QGuiApplication, QIcon, QPixmap
from PySide6.QtWidgets import QMainWindow, QMessageBox, QWidget

from virgl_viewer import __version__
from virgl_viewer.desktop import APP_ID, icon_pngs

ABOUT_ICON_SIZE = 128


def app_icon() -> QIcon:
    """The application icon at every rendered size."""
    icon = QIcon()
    for _size, png in icon_pngs():
        pixmap = QPixmap()
        pixmap.loadFromData(png.read_bytes(), "PNG")
        icon.addPixmap(pixmap)
    return icon


def apply_identity() -> None:
    """Icon, version and desktop file name of the running application, before any window
    is shown."""
    QCoreApplication.setApplicationVersion(__version__)
    QGuiApplication.setDesktopFileName(APP_ID)  # Wayland's app_id: menu entry and icon
    QGuiApplication.setWindowIcon(app_icon())


def about_text() -> str:
    return (f"<h3>virgl-viewer {__version__}</h3>"
            "<p>A vtest server on libvirglrenderer that shows what virgl guests render: "
            "a window per guest scanout, an overview and a live inspector.</p>"
            f"<p>Qt {qVersion()}, PySide6 {pyside_version}</p>"
            "<p>MIT licence</p>")


def about_box(parent: QWidget | None) -> QMessageBox:
    box = QMessageBox(parent)
    box.setWindowTitle("About virgl-viewer")
    box.setIconPixmap(app_icon().pixmap(ABOUT_ICON_SIZE, ABOUT_ICON_SIZE))
    box.setText(about_text())
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    return box


def add_help_menu(window: QMainWindow) -> Any:
    """Help > About virgl-viewer on ``window``'s menu bar; returns the action."""
    menu = window.menuBar().addMenu("&Help")
    action = menu.addAction("&About virgl-viewer")
    action.triggered.connect(lambda: about_box(window).exec())
    return action
