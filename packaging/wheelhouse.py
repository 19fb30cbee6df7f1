"""Fill a wheelhouse with what building and installing virgl-viewer needs from PyPI
(``make setup`` runs it when pyproject.toml changes).

Why: tests/packaging/test_wheel.py builds the wheel in an isolated environment and
installs it into fresh venvs and pipx, as a user does; pip fetches setuptools, cffi,
PySide6 and the rest for each of those. The Debian lanes run ``make test`` with loopback
only, so the tests point pip at these wheels instead (``--no-index --find-links``). How:
``pip wheel`` of pyproject.toml's build-system requires and project dependencies (the
same specifiers: nothing here pins a version), and of pip, which pipx reinstalls in its
shared venv, into DIR.new, which then replaces DIR.

    python packaging/wheelhouse.py build/wheelhouse
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def requirements() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [*pyproject["build-system"]["requires"], *pyproject["project"]["dependencies"],
            "pip"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="the wheelhouse (replaced)")
    where: Path = parser.parse_args().dir
    new = where.with_name(where.name + ".new")
    shutil.rmtree(new, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(new),
                    *requirements()], check=True)
    shutil.rmtree(where, ignore_errors=True)
    new.rename(where)


if __name__ == "__main__":
    main()
