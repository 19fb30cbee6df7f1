"""Qt table models over the state registry's records, and their sort/filter proxy.

Why: the inspector's tables change many times a second (glxgears turns over ~200
resources and ~600 fences a second) and must never stutter. How: a model holds immutable
records (virgl_viewer.state) in arrival order and applies a registry ``TableDelta`` with
the narrowest signals: removals as runs of contiguous rows (beginRemoveRows, from the
bottom up), changes as runs of dataChanged, additions as one beginInsertRows at the end.
Never a reset per tick. Time columns ("age") are computed from ``model.now`` when painted,
so the clock moving changes no data; sorting them uses the fixed creation time.
``RecordFilterProxy`` sorts on SORT_ROLE and filters by client, kind and text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QColor

from virgl_viewer.state import ClientInfo, ResourceInfo, SyncPointInfo, TableDelta

SORT_ROLE = int(Qt.ItemDataRole.UserRole) + 1
RECORD_ROLE = int(Qt.ItemDataRole.UserRole) + 2
_DISPLAY = Qt.ItemDataRole.DisplayRole
_ALIGN = Qt.ItemDataRole.TextAlignmentRole
_FOREGROUND = Qt.ItemDataRole.ForegroundRole
_TOOLTIP = Qt.ItemDataRole.ToolTipRole
# Views ask for ~8 roles a cell each paint; the others are answered before any work.
_ROLES = frozenset(int(r) for r in (_DISPLAY, SORT_ROLE, RECORD_ROLE, _ALIGN, _FOREGROUND,
                                    _TOOLTIP))
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
_GREY = QColor(128, 128, 128)
_RED = QColor(200, 40, 40)
_MANY_RUNS = 32  # more changed runs than this: one dataChanged over their span

Index = QModelIndex | QPersistentModelIndex


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def human_rate(n: float) -> str:
    return f"{human_bytes(n)}/s"


def age(now: float, t: float | None) -> str:
    if t is None:
        return ""
    s = max(0.0, now - t)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


@dataclass(frozen=True)
class Column:
    title: str
    text: Callable[[Any, float], str]
    sort: Callable[[Any], Any]
    numeric: bool = False
    searchable: bool = True  # time columns are not: their text changes by itself


def _col(title: str, attr: str, numeric: bool = True) -> Column:
    return Column(title, lambda r, _n: str(getattr(r, attr)), lambda r: getattr(r, attr),
                  numeric)


class RecordTableModel(QAbstractTableModel):
    """Rows of immutable records with a unique ``key``, in arrival order."""

    columns: Sequence[Column] = ()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[Any] = []
        self._row_of: dict[int, int] = {}
        self._search: dict[int, tuple[Any, str]] = {}
        self.now = 0.0

    # ------------------------------------------------------------ Qt API
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = _DISPLAY) -> Any:
        if (orientation == Qt.Orientation.Horizontal and role == _DISPLAY
                and 0 <= section < len(self.columns)):
            return self.columns[section].title
        return None

    def data(self, index: Index, role: int = _DISPLAY) -> Any:
        if role not in _ROLES or not index.isValid():
            return None
        row, col = index.row(), index.column()
        if row >= len(self._rows) or col >= len(self.columns):
            return None
        rec, column = self._rows[row], self.columns[col]
        if role == _DISPLAY:
            return column.text(rec, self.now)
        if role == SORT_ROLE:
            return column.sort(rec)
        if role == _ALIGN:
            return _RIGHT if column.numeric else None
        if role == _FOREGROUND:
            return self.foreground(rec)
        if role == RECORD_ROLE:
            return rec
        return self.tooltip(rec)

    def foreground(self, rec: Any) -> QColor | None:
        return None

    def tooltip(self, rec: Any) -> str | None:
        return None

    # ------------------------------------------------------------ records
    def record(self, row: int) -> Any:
        return self._rows[row]

    def records(self) -> list[Any]:
        return list(self._rows)

    def row_of(self, key: int) -> int | None:
        return self._row_of.get(key)

    def search_text(self, row: int) -> str:
        """Lower-case text of the searchable columns (cached per record)."""
        rec = self._rows[row]
        hit = self._search.get(rec.key)
        if hit is None or hit[0] is not rec:
            text = " ".join(c.text(rec, self.now) for c in self.columns if c.searchable)
            hit = self._search[rec.key] = (rec, text.lower())
        return hit[1]

    def set_records(self, records: Iterable[Any]) -> None:
        """Replace everything (once, when a view attaches; ticks use ``apply``)."""
        self.beginResetModel()
        self._rows = list(records)
        self._row_of = {r.key: i for i, r in enumerate(self._rows)}
        self._search.clear()
        self.endResetModel()

    def apply(self, delta: TableDelta[Any]) -> None:
        root = QModelIndex()
        if delta.removed:
            rows = sorted((self._row_of[k] for k in delta.removed if k in self._row_of),
                          reverse=True)
            for lo, hi in _runs_descending(rows):
                self.beginRemoveRows(root, lo, hi)
                del self._rows[lo:hi + 1]
                self.endRemoveRows()
            for k in delta.removed:
                self._row_of.pop(k, None)
                self._search.pop(k, None)
            if rows:
                for i in range(rows[-1], len(self._rows)):
                    self._row_of[self._rows[i].key] = i
        if delta.changed:
            changed = []
            for rec in delta.changed:
                row = self._row_of.get(rec.key)
                if row is not None:
                    self._rows[row] = rec
                    changed.append(row)
            changed.sort()
            runs = list(_runs_ascending(changed))
            if len(runs) > _MANY_RUNS:
                runs = [(runs[0][0], runs[-1][1])]
            last = len(self.columns) - 1
            for lo, hi in runs:
                self.dataChanged.emit(self.index(lo, 0), self.index(hi, last))
        added = [r for r in delta.added if r.key not in self._row_of]
        if added:
            n = len(self._rows)
            self.beginInsertRows(root, n, n + len(added) - 1)
            self._rows.extend(added)
            for i, rec in enumerate(added, n):
                self._row_of[rec.key] = i
            self.endInsertRows()


def _runs_descending(rows: list[int]) -> Iterable[tuple[int, int]]:
    i = 0
    while i < len(rows):
        hi = lo = rows[i]
        i += 1
        while i < len(rows) and rows[i] == lo - 1:
            lo = rows[i]
            i += 1
        yield lo, hi


def _runs_ascending(rows: list[int]) -> Iterable[tuple[int, int]]:
    i = 0
    while i < len(rows):
        lo = hi = rows[i]
        i += 1
        while i < len(rows) and rows[i] <= hi + 1:
            hi = rows[i]
            i += 1
        yield lo, hi


def _owner(r: Any, _now: float) -> str:
    return f"{r.client_name} ({r.client_pid})"


class ClientTableModel(RecordTableModel):
    columns = (
        _col("Context", "ctx_id"),
        Column("Client", lambda c, _n: c.name, lambda c: c.name.lower()),
        _col("PID", "pid"),
        _col("Renderer PID", "renderer_pid"),
        _col("Protocol", "protocol_version"),
        Column("Capset", lambda c, _n: c.capset, lambda c: c.capset),
        Column("Age", lambda c, n: age(c.closed_at or n, c.connected_at),
               lambda c: -c.connected_at, True, searchable=False),
        _col("Submits", "submits"),
        Column("Submits/s", lambda c, _n: f"{c.submits_per_s:.0f}",
               lambda c: c.submits_per_s, True),
        Column("Bytes", lambda c, _n: human_bytes(c.bytes_submitted),
               lambda c: c.bytes_submitted, True),
        Column("Bytes/s", lambda c, _n: human_rate(c.bytes_per_s), lambda c: c.bytes_per_s,
               True),
        Column("FPS", lambda c, _n: f"{c.fps:.0f}", lambda c: c.fps, True),
        _col("Resources", "resources"),
        Column("Memory", lambda c, _n: human_bytes(c.resource_bytes),
               lambda c: c.resource_bytes, True),
        _col("Fences pending", "fences_pending"),
        _col("Syncs", "syncs"),
        Column("State", lambda c, _n: c.state, lambda c: c.state),
    )

    def foreground(self, rec: ClientInfo) -> QColor | None:
        return _RED if rec.state == "error" else _GREY if rec.state != "active" else None

    def tooltip(self, rec: ClientInfo) -> str | None:
        return rec.close_reason or None


def _size(r: ResourceInfo) -> str:
    if r.target == 0:
        return f"{r.width} B"
    s = f"{r.width}×{r.height}"
    if r.depth > 1:
        s += f"×{r.depth}"
    if r.array_size > 1:
        s += f" [{r.array_size}]"
    return s


class ResourceTableModel(RecordTableModel):
    columns = (
        _col("Client id", "client_handle"),
        _col("Server id", "server_handle"),
        Column("Owner", _owner, lambda r: (r.client_name.lower(), r.client_pid)),
        Column("Target", lambda r, _n: r.target_name, lambda r: r.target),
        Column("Format", lambda r, _n: r.format_name, lambda r: r.format_name),
        Column("Size", lambda r, _n: _size(r),
               lambda r: r.width * r.height * r.depth * r.array_size, True),
        Column("Levels", lambda r, _n: str(r.last_level + 1), lambda r: r.last_level, True),
        _col("Samples", "nr_samples"),
        Column("Bind", lambda r, _n: "|".join(r.bind_names), lambda r: r.bind),
        Column("Est. bytes", lambda r, _n: human_bytes(r.est_bytes), lambda r: r.est_bytes,
               True),
        Column("Backing", lambda r, _n: r.backing, lambda r: r.backing),
        Column("Scanout", lambda r, _n: "● scanout" if r.scanout else
               ("display target" if r.display_target else ""),
               lambda r: 2 if r.scanout else 1 if r.display_target else 0),
        Column("Age", lambda r, n: age(n, r.created), lambda r: -r.created, True,
               searchable=False),
    )

    def tooltip(self, rec: ResourceInfo) -> str | None:
        return f"bind 0x{rec.bind:x}: {', '.join(rec.bind_names) or 'none'}"


_NEVER = float("inf")


class SyncPointTableModel(RecordTableModel):
    columns = (
        Column("Kind", lambda f, _n: f.kind, lambda f: f.kind),
        _col("ID", "id"),
        Column("Client", _owner, lambda f: (f.client_name.lower(), f.client_pid)),
        _col("Context", "ctx_id"),
        Column("Created", lambda f, n: age(n, f.created), lambda f: -f.created, True,
               searchable=False),
        Column("Signalled", lambda f, n: age(n, f.signalled) if f.signalled is not None
               else ("pending" if f.kind == "fence" else "never"),
               lambda f: -(f.signalled if f.signalled is not None else _NEVER), True,
               searchable=False),
        Column("Latency", lambda f, _n: "" if f.latency_ms is None else f"{f.latency_ms:.3f} ms",
               lambda f: f.latency_ms if f.latency_ms is not None else -1.0, True),
        _col("Pending", "pending"),
        Column("Value", lambda f, _n: "" if f.value is None else str(f.value),
               lambda f: -1 if f.value is None else f.value, True),
    )

    def foreground(self, rec: SyncPointInfo) -> QColor | None:
        return _GREY if rec.kind == "fence" and rec.signalled is not None else None


_KEEP: Any = object()


class RecordFilterProxy(QSortFilterProxyModel):
    """Sorts on SORT_ROLE; keeps rows of one client (key), one kind and containing a
    text (case-insensitive, in any searchable column)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)
        self.client_key: int | None = None
        self.kind: str | None = None
        self.text = ""

    def set_filter(self, *, client_key: int | None = _KEEP, kind: str | None = _KEEP,
                   text: str | None = None) -> None:
        """Change some filters (leave an argument out to keep that one)."""
        self.beginFilterChange()
        if client_key is not _KEEP:
            self.client_key = client_key
        if kind is not _KEEP:
            self.kind = kind or None
        if text is not None:
            self.text = text.strip().lower()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:  # noqa: N802
        model = self.sourceModel()
        if not isinstance(model, RecordTableModel) or source_row >= model.rowCount():
            return True
        rec = model.record(source_row)
        if self.client_key is not None and rec.client_key != self.client_key:
            return False
        if self.kind is not None and rec.kind != self.kind:
            return False
        return not self.text or self.text in model.search_text(source_row)

    def record_at(self, proxy_row: int) -> Any:
        src = self.mapToSource(self.index(proxy_row, 0))
        model = self.sourceModel()
        assert isinstance(model, RecordTableModel)
        return model.record(src.row())

    def proxy_row_of(self, key: int) -> int | None:
        model = self.sourceModel()
        assert isinstance(model, RecordTableModel)
        row = model.row_of(key)
        if row is None:
            return None
        idx = self.mapFromSource(model.index(row, 0))
        return idx.row() if idx.isValid() else None
