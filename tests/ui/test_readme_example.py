"""The README's example test ("Testing your guest with pytest"), read from
README.md and run as written, with the ``virgl_viewer`` fixture: it must keep
working."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Testing your guest with pytest"


def readme_example() -> str:
    """The first ```python block of the README's section on testing a guest."""
    section = README.read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("\n```", 1)[0]


def test_the_readme_example_passes(virgl_viewer: Any) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(readme_example(), str(README), "exec"), namespace)
    tests: list[Callable[..., None]] = [
        fn for name, fn in namespace.items() if name.startswith("test_")]
    assert len(tests) == 1, "the README's example holds one test"
    (example,) = tests
    assert list(inspect.signature(example).parameters) == ["virgl_viewer"]
    example(virgl_viewer)
