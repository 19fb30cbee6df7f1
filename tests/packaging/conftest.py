"""Shared by the packaging tests: the repository's paths and pyproject.toml's metadata.

These tests check the artifacts a user installs (desktop entry, metainfo, icons, man
pages, the wheel, the .deb) with the tools a desktop or distribution uses on them
(desktop-file-validate, appstreamcli, man, pip, pipx, dpkg, lintian).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from support import REPO_ROOT


@pytest.fixture(scope="session")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
