"""Help > About and the window icon, as a user sees them: the menu opens a box showing
the application icon, the version and the Qt versions; every window carries the icon."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QMessageBox
from support.screen import colour_counts, image_of

from virgl_viewer import __version__
from virgl_viewer.desktop import APP_ID
from virgl_viewer.ui.about import ABOUT_ICON_SIZE, add_help_menu, apply_identity


def test_help_about_shows_icon_and_version(qtbot: Any) -> None:
    app = QApplication.instance()
    assert app is not None
    apply_identity()
    assert app.desktopFileName() == APP_ID  # type: ignore[attr-defined]
    sizes = {s.width() for s in app.windowIcon().availableSizes()}  # type: ignore[attr-defined]
    assert {16, 32, 48, 256} <= sizes
    window = QMainWindow()
    qtbot.addWidget(window)
    action = add_help_menu(window)
    window.show()
    qtbot.waitExposed(window)
    (help_menu,) = [a.menu() for a in window.menuBar().actions() if a.text() == "&Help"]
    assert action in help_menu.actions()
    assert not window.windowIcon().isNull()  # the app's icon, as every window gets it

    seen: dict[str, Any] = {}

    def look_and_close() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox) or not box.isVisible():
            QTimer.singleShot(50, look_and_close)
            return
        seen["title"] = box.windowTitle()
        seen["text"] = " ".join(lbl.text() for lbl in box.findChildren(QLabel))
        seen["grab"] = box.grab().toImage()
        icon_label = next(lbl for lbl in box.findChildren(QLabel)
                          if lbl.pixmap() is not None and not lbl.pixmap().isNull())
        seen["icon"] = icon_label.grab().toImage()
        box.accept()

    QTimer.singleShot(50, look_and_close)
    action.trigger()  # exec(): returns when look_and_close accepts
    assert seen["title"] == "About virgl-viewer"
    assert f"virgl-viewer {__version__}" in seen["text"]
    assert "Qt " in seen["text"] and "PySide6 " in seen["text"]
    icon = seen["icon"]
    assert icon.width() >= ABOUT_ICON_SIZE and icon.height() >= ABOUT_ICON_SIZE
    counts = colour_counts(image_of(icon))
    # the three scanouts of the icon: red, green and blue areas, each clearly there
    assert all(counts[c] > 200 for c in ("red", "green", "blue")), counts
    assert colour_counts(image_of(seen["grab"]))["red"] >= counts["red"]
