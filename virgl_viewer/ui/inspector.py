"""The inspector: live tables of clients, resources, fences and syncs, a detail pane
with a texture preview, plots, filters, "disconnect client" and CSV/JSON export.

Why this shape: the render thread only queues events into a ``StateRegistry``; a GUI
timer (TICK_MS; HIDDEN_TICK_MS while hidden, so the queue never overflows) pulls a delta
and applies it to the table models with row-level signals, so a change shows within one
tick and churn never resets a table. Slow things (plots, "age" columns, the detail pane)
refresh every SLOW_MS. The preview (virgl_viewer.ui.preview) draws a shared texture the way
scanout windows do, never a CPU readback: a scanout's ring for display targets, or any
texture through a ``TexturePreviews`` service the app provides.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, QPoint, Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from virgl_viewer.state import ResourceInfo, StateRegistry, TableDelta
from virgl_viewer.stats_json import snapshot_dict
from virgl_viewer.ui.models import (
    ClientTableModel,
    RecordFilterProxy,
    RecordTableModel,
    ResourceTableModel,
    SyncPointTableModel,
)
from virgl_viewer.ui.plots import LatencyHistogram, RatePlot
from virgl_viewer.ui.preview import PreviewPane, TexturePreviews

if TYPE_CHECKING:
    from virgl_viewer.frames import Scanout

log = logging.getLogger(__name__)

TICK_MS = 120
HIDDEN_TICK_MS = 1000
SLOW_MS = 500
TABLES = ("clients", "resources", "fences")
KINDS = {"clients": ("active", "error", "disconnected"),
         "resources": ("buffer", "texture", "display target", "blob"),
         "fences": ("fence", "sync", "timeline")}


def describe(rec: Any) -> str:
    """``field: value`` lines of a record, names included."""
    lines = [f"{name}: {value}" for name, value in zip(rec._fields, rec, strict=True)]
    if isinstance(rec, ResourceInfo):
        lines += [f"target_name: {rec.target_name}", f"format_name: {rec.format_name}",
                  f"bind_names: {' | '.join(rec.bind_names)}", f"backing: {rec.backing}",
                  f"display_target: {rec.display_target}"]
    elif hasattr(rec, "latency_ms"):
        lines.append(f"latency_ms: {rec.latency_ms}")
    elif hasattr(rec, "capset"):
        lines += [f"capset: {rec.capset}", f"fences_pending: {rec.fences_pending}"]
    return "\n".join(lines)


class Inspector(QWidget):
    """The inspector panel. ``disconnect(pid)`` is called for "Disconnect client";
    ``scanouts()`` lists the live scanouts (for previews of display targets)."""

    def __init__(self, registry: StateRegistry, *,
                 disconnect: Callable[[int], None] | None = None,
                 scanouts: Callable[[], Iterable[Scanout]] | None = None,
                 texture_previews: TexturePreviews | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.registry = registry
        self.disconnect_client = disconnect
        self.preview_pane = PreviewPane(scanouts, texture_previews)
        self.preview, self.preview_label = self.preview_pane.view, self.preview_pane.label
        self.models: dict[str, RecordTableModel] = {
            "clients": ClientTableModel(self), "resources": ResourceTableModel(self),
            "fences": SyncPointTableModel(self)}
        self.proxies: dict[str, RecordFilterProxy] = {}
        self.views: dict[str, QTableView] = {}
        self._selected: tuple[str, int] | None = None
        self._stale = True  # the tables lag the registry (hidden so far)
        # tables behind tabs not shown: they lag too, and catch up when shown (glxgears
        # alone retires ~1400 fences a second, a table nobody looks at need not follow)
        self._stale_tables: set[str] = set()
        self._last_slow = float("-inf")
        self._build()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.tick)
        self.timer.start(HIDDEN_TICK_MS)

    def set_frame_path(self, text: str) -> None:
        """Show how guests' frames reach the screen (told by the render side)."""
        self.frame_path_label.setText(f"frames: {text}")
        self.frame_path_label.setToolTip(text)
        self.frame_path_label.setVisible(bool(text))

    # ------------------------------------------------------------ layout
    def _build(self) -> None:
        bar = QHBoxLayout()
        self.client_combo = QComboBox()
        self.client_combo.addItem("All clients", None)
        self.client_combo.currentIndexChanged.connect(self._client_filter_changed)
        self.kind_combo = QComboBox()
        self.kind_combo.currentIndexChanged.connect(self._kind_filter_changed)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self._text_filter_changed)
        self.disconnect_button = QPushButton("Disconnect client")
        self.disconnect_button.clicked.connect(self.disconnect_selected)
        self.disconnect_button.setEnabled(self.disconnect_client is not None)
        export = QToolButton()
        export.setText("Export")
        export.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(export)
        menu.addAction("Table as CSV…", self._export_csv_dialog)
        menu.addAction("Everything as JSON…", self._export_json_dialog)
        export.setMenu(menu)
        self.frame_path_label = QLabel()  # how frames reach the screen (set_frame_path)
        self.frame_path_label.setVisible(False)
        for w in (self.client_combo, self.kind_combo, self.filter_edit,
                  self.disconnect_button, export, self.frame_path_label):
            bar.addWidget(w)
        bar.setStretchFactor(self.filter_edit, 1)
        self.tabs = QTabWidget()
        for name in TABLES:
            proxy = RecordFilterProxy(self)
            proxy.setSourceModel(self.models[name])
            view = QTableView()
            view.setModel(proxy)
            view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
            view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
            view.verticalHeader().hide()
            view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
            view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 6)
            view.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
            view.setSortingEnabled(True)
            view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
            view.customContextMenuRequested.connect(
                lambda pos, n=name: self._context_menu(n, pos))
            view.selectionModel().currentRowChanged.connect(
                lambda cur, _prev, n=name: self._row_selected(n, cur))
            self.proxies[name], self.views[name] = proxy, view
        self.histogram = LatencyHistogram()
        self.fps_plot = RatePlot("Presents per second")
        self.submit_plot = RatePlot("Submits per second")
        plots = QWidget()
        row = QHBoxLayout(plots)
        row.setContentsMargins(0, 0, 0, 0)
        for plot in (self.histogram, self.fps_plot, self.submit_plot):
            row.addWidget(plot)
        fences = QSplitter(Qt.Orientation.Vertical)
        fences.addWidget(self.views["fences"])
        fences.addWidget(plots)
        self.tabs.addTab(self.views["clients"], "Clients")
        self.tabs.addTab(self.views["resources"], "Resources")
        self.tabs.addTab(fences, "Fences && syncs")
        self.tabs.currentChanged.connect(self._tab_changed)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        side = QSplitter(Qt.Orientation.Vertical)
        side.addWidget(self.details)
        side.addWidget(self.preview_pane)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.tabs)
        split.addWidget(side)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(split)
        self._tab_changed(0)

    def current_table(self) -> str:
        return TABLES[self.tabs.currentIndex()]

    # ------------------------------------------------------------ live updates
    def showEvent(self, event: Any) -> None:  # noqa: N802
        super().showEvent(event)
        self.timer.setInterval(TICK_MS)
        self.tick()

    def hideEvent(self, event: Any) -> None:  # noqa: N802
        super().hideEvent(event)
        self.timer.setInterval(HIDDEN_TICK_MS)

    def tick(self, force: bool = False) -> None:
        """Pull the registry and apply what changed (the timer calls this). While the
        panel is hidden only the registry is pulled; the tables catch up with one reset
        when it shows again (or when ``force`` is set). Likewise only the table of the
        current tab follows (all with ``force``); another catches up when its tab is
        shown."""
        delta = self.registry.pull()
        if not (force or self.isVisible()):
            self._stale = True
            return
        now = delta.time
        for model in self.models.values():
            model.now = now
        if self._stale or (force and self._stale_tables):
            self._reload()
        else:
            parts: dict[str, TableDelta[Any]] = {
                "clients": delta.clients, "resources": delta.resources, "fences": delta.fences}
            current = self.current_table()
            for name, part in parts.items():
                if not part or name in self._stale_tables:
                    continue
                if name == current or force:
                    self.models[name].apply(part)
                else:
                    self._stale_tables.add(name)
            if delta.clients:
                self._update_client_combo(delta.clients)
            if self._selected is not None:
                table, key = self._selected
                part = parts[table]
                if key in part.removed or any(r.key == key for r in part.changed):
                    self._show_details()
        if now - self._last_slow >= SLOW_MS / 1000:
            self._last_slow = now
            self._slow_refresh(now)

    def _reload(self) -> None:
        snap = self.registry.snapshot()
        selected = self._selected
        for name, recs in zip(TABLES, (snap.clients, snap.resources, snap.fences),
                              strict=True):
            self.models[name].set_records(recs)
        keys = {c.key for c in snap.clients}
        gone = tuple(k for k in map(self.client_combo.itemData,
                                    range(1, self.client_combo.count())) if k not in keys)
        self._update_client_combo(TableDelta(added=snap.clients, removed=gone))
        self._stale = False
        self._stale_tables.clear()
        if selected is not None and self.select(*selected):
            return
        self._selected = None
        self._show_details()

    def select(self, table: str, key: int) -> bool:
        """Make record ``key`` of ``table`` the current row, if the filters show it."""
        proxy, view = self.proxies[table], self.views[table]
        row = proxy.proxy_row_of(key)
        if row is None:
            return False
        view.setCurrentIndex(proxy.index(row, 0))
        view.scrollTo(proxy.index(row, 0))
        return True

    def _slow_refresh(self, now: float) -> None:
        self.views[self.current_table()].viewport().update()  # "age" columns
        client = self.proxies["fences"].client_key
        self.histogram.set_counts(self.registry.histogram(client))
        names = {c.key: f"{c.name} ({c.pid})" for c in self.models["clients"].records()}
        series = {k: v for k, v in self.registry.series().items()
                  if k in names and (client is None or k == client)}
        self.fps_plot.set_series({names[k]: [(s.t, s.fps) for s in v]
                                  for k, v in series.items()}, now)
        self.submit_plot.set_series({names[k]: [(s.t, s.submits_per_s) for s in v]
                                     for k, v in series.items()}, now)
        self.preview_pane.refresh()

    def _update_client_combo(self, delta: TableDelta[Any]) -> None:
        combo = self.client_combo
        combo.blockSignals(True)
        try:
            for key in delta.removed:
                i = combo.findData(key)
                if i > 0:
                    if combo.currentIndex() == i:
                        combo.setCurrentIndex(0)
                        self._client_filter_changed()
                    combo.removeItem(i)
            for c in (*delta.added, *delta.changed):
                label = f"{c.name} ({c.pid}) ctx {c.ctx_id}"
                i = combo.findData(c.key)
                if i < 0:
                    combo.addItem(label, c.key)
                elif combo.itemText(i) != label:
                    combo.setItemText(i, label)
        finally:
            combo.blockSignals(False)

    # ------------------------------------------------------------ filters
    def set_client_filter(self, client_key: int | None) -> None:
        i = self.client_combo.findData(client_key) if client_key is not None else 0
        self.client_combo.setCurrentIndex(max(0, i))

    def _client_filter_changed(self, *_args: Any) -> None:
        key = self.client_combo.currentData()
        for proxy in self.proxies.values():
            proxy.set_filter(client_key=key)
        self._last_slow = float("-inf")

    def _kind_filter_changed(self, *_args: Any) -> None:
        self.proxies[self.current_table()].set_filter(kind=self.kind_combo.currentData())

    def _text_filter_changed(self, text: str) -> None:
        for proxy in self.proxies.values():
            proxy.set_filter(text=text)

    def _catch_up_table(self, table: str) -> None:
        """Bring a table that lagged behind its tab up to date (its current row kept)."""
        if table not in self._stale_tables or self._stale:
            return
        self._stale_tables.discard(table)
        view, proxy = self.views[table], self.proxies[table]
        index = view.currentIndex()
        current = proxy.record_at(index.row()) if index.isValid() else None
        snap = self.registry.snapshot()
        recs = dict(zip(TABLES, (snap.clients, snap.resources, snap.fences), strict=True))
        self.models[table].set_records(recs[table])
        if current is not None:
            self.select(table, current.key)

    def _tab_changed(self, _index: int) -> None:
        table = self.current_table()
        self._catch_up_table(table)
        combo = self.kind_combo
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("All kinds", None)
        for kind in KINDS[table]:
            combo.addItem(kind, kind)
        combo.setCurrentIndex(max(0, combo.findData(self.proxies[table].kind)))
        combo.blockSignals(False)
        view = self.views[table]
        self._row_selected(table, view.currentIndex())

    # ------------------------------------------------------------ selection and details
    def _row_selected(self, table: str, index: QModelIndex) -> None:
        if table != self.current_table():
            return
        rec = self.proxies[table].record_at(index.row()) if index.isValid() else None
        self._selected = None if rec is None else (table, rec.key)
        self._show_details()

    def selected_record(self) -> Any:
        if self._selected is None:
            return None
        table, key = self._selected
        model = self.models[table]
        row = model.row_of(key)
        return None if row is None else model.record(row)

    def _show_details(self) -> None:
        rec = self.selected_record()
        self.details.setPlainText("" if rec is None else describe(rec))
        self.preview_pane.show_resource(rec if isinstance(rec, ResourceInfo) else None)

    # ------------------------------------------------------------ actions
    def show_resource(self, client_pid: int, client_handle: int) -> bool:
        """Select the live resource ``client_handle`` of client ``client_pid`` (the newest
        if the pid has several sessions), clearing filters that hide it."""
        self.tick(force=True)
        found = [r for r in self.models["resources"].records()
                 if r.client_pid == client_pid and r.client_handle == client_handle]
        if not found:
            return False
        rec = max(found, key=lambda r: r.key)
        self.tabs.setCurrentIndex(TABLES.index("resources"))
        if not self.select("resources", rec.key):
            self.filter_edit.clear()
            self.set_client_filter(None)
            self.kind_combo.setCurrentIndex(0)
            if not self.select("resources", rec.key):
                return False
        dock = self.parentWidget()
        if isinstance(dock, QDockWidget):
            dock.show()
            dock.raise_()
        return True

    def _client_pid_of(self, rec: Any) -> int | None:
        if rec is None:
            return None
        return int(getattr(rec, "client_pid", getattr(rec, "pid", 0))) or None

    def disconnect_selected(self) -> bool:
        """Disconnect the client of the selected row (or of the client filter)."""
        pid = self._client_pid_of(self.selected_record())
        if pid is None and self.client_combo.currentData() is not None:
            pid = self._client_pid_of(self.registry.client(self.client_combo.currentData()))
        if pid is None or self.disconnect_client is None:
            return False
        log.info("inspector: disconnecting client pid %d", pid)
        self.disconnect_client(pid)
        return True

    def _context_menu(self, table: str, pos: QPoint) -> None:
        view = self.views[table]
        index = view.indexAt(pos)
        if not index.isValid():
            return
        rec = self.proxies[table].record_at(index.row())
        menu = QMenu(view)
        only = QAction("Only this client", menu)
        only.triggered.connect(lambda: self.set_client_filter(rec.client_key))
        menu.addAction(only)
        disconnect, pid = self.disconnect_client, self._client_pid_of(rec)
        if disconnect is not None and pid is not None:
            act = QAction(f"Disconnect client (pid {pid})", menu)
            act.triggered.connect(lambda: disconnect(pid))
            menu.addAction(act)
        menu.exec(view.viewport().mapToGlobal(pos))

    def export_csv(self, path: str, table: str | None = None) -> int:
        """Write the rows of ``table`` (default: the current one) as shown: filtered,
        sorted, formatted. Returns the number of rows."""
        table = table or self.current_table()
        self._catch_up_table(table)
        proxy, model = self.proxies[table], self.models[table]
        with open(path, "w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow([c.title for c in model.columns])
            for row in range(proxy.rowCount()):
                out.writerow([proxy.index(row, col).data() for col in range(len(model.columns))])
        return proxy.rowCount()

    def export_json(self, path: str) -> None:
        """Write every table (unfiltered, raw values) as the --stats-json document."""
        doc = snapshot_dict(self.registry.snapshot(), fences_per_client=None)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)

    def _export_csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export table",
                                              f"{self.current_table()}.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def _export_json_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export inspector state",
                                              "virgl-viewer-state.json", "JSON (*.json)")
        if path:
            self.export_json(path)


class InspectorDock(QDockWidget):
    """The inspector as a dock widget of the main window (``.inspector``)."""

    def __init__(self, registry: StateRegistry, parent: QWidget | None = None,
                 **kwargs: Any) -> None:
        super().__init__("Inspector", parent)
        self.setObjectName("inspector-dock")
        self.inspector = Inspector(registry, **kwargs)
        self.setWidget(self.inspector)
