"""The budgets: overrides as the CLI gives them, and the README's table, which must
name every budget with its real default (so it never drifts from budgets.py)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from virgl_viewer.budgets import DEFAULT, Budgets, parse_size

README = Path(__file__).resolve().parents[2] / "README.md"


def test_overrides_take_sizes_and_dashes() -> None:
    b = DEFAULT.with_overrides(["shm_bytes=2G", "reply-queue-bytes=64K", "sync_waits=8"])
    assert (b.shm_bytes, b.reply_queue_bytes, b.sync_waits) == (2 << 30, 64 << 10, 8)
    assert b.resources == DEFAULT.resources


@pytest.mark.parametrize("spec", ["gpu_hours=3", "shm_bytes", "shm_bytes=lots", "=5"])
def test_bad_overrides_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="--budget"):
        DEFAULT.with_overrides([spec])


def test_server_mappings_default_to_half_the_kernels_limit() -> None:
    limit = int(Path("/proc/sys/vm/max_map_count").read_text())
    assert DEFAULT.mappings() == limit // 2
    assert Budgets(server_mappings=10).mappings() == 10


def _readme_table() -> dict[str, str]:
    text = README.read_text()
    start = text.index("| budget | default | over it |")
    rows: dict[str, str] = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        name, default = (cell.strip() for cell in line.strip("|").split("|")[:2])
        rows[name.strip("`")] = default
    return rows


def test_readme_lists_every_budget_with_its_default() -> None:
    rows = _readme_table()
    fields = [f.name for f in dataclasses.fields(Budgets)]
    assert list(rows) == fields
    for name in fields:
        value = getattr(DEFAULT, name)
        if value is None:
            assert ("max_map_count" if name == "server_mappings" else "memory") in rows[name]
            continue
        shown = re.sub(r"\s*([KMG])iB", r"\1", rows[name])
        assert parse_size(shown) == value, f"README says {rows[name]} for {name}, code {value}"
