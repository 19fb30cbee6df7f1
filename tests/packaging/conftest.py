"""Shared by the packaging tests: the repository's paths and pyproject.toml's metadata.

These tests check the artifacts a user installs (desktop entry, metainfo, icons, man
pages, the wheel, the .deb) with the tools a desktop or distribution uses on them
(desktop-file-validate, appstreamcli, man, pip, pipx, dpkg, lintian).
"""

from __future__ import annotations

import os
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


# test_deb.py builds a Debian 13 root and the .deb in it (root, network, minutes): it is
# collected only by `make test-deb` (VV_TEST_DEB=1), which CI can choose to run.
collect_ignore = [] if os.environ.get("VV_TEST_DEB") == "1" else ["test_deb.py"]
