"""Reading a stats JSON file until it says what a test waits for."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.procs import wait_for


def wait_json(path: Path, cond: Callable[[dict[str, Any]], bool],
              timeout: float = 30.0) -> dict[str, Any]:
    """Read ``path`` until ``cond(doc)``; every read must parse (atomic replace)."""
    doc: dict[str, Any] = {}

    def holds() -> bool:
        nonlocal doc
        if not path.exists():
            return False
        doc = json.loads(path.read_text())
        return cond(doc)

    assert wait_for(holds, timeout), f"timed out; last document: {json.dumps(doc)[:3000]}"
    return doc
