"""Fixtures of the venus tests: servers with ``--venus``, ours and upstream's.

Every test here is marked ``venus`` (pytest_collection_modifyitems below): they need
libvirglrenderer 1.x with virgl_render_server and Mesa's venus ICD, and on a stack
without them they fail. tests/conftest.py leaves them out, saying so, when the Makefile
passes ``--venus=deselect`` (Debian 12).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.servers import Server, ServerKind
from support.venus import VENUS_ICD, VK_CHECK

from virgl_viewer.testing import ISOLATION_MODES, RunningServer, private_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.venus)


@pytest.fixture(scope="session", autouse=True)
def venus_stack() -> None:
    """What every venus test needs; missing, they fail (never skip) and say what."""
    assert VENUS_ICD.exists(), f"{VENUS_ICD} is missing: mesa-vulkan-drivers with venus " \
                               "(Debian 13) is needed"
    assert VK_CHECK.exists(), f"{VK_CHECK} is missing: `make setup` builds it"


def _serve(kind: ServerKind, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="vv-sock-") as sock_dir:
        server = Server(kind, Path(sock_dir) / "vtest.sock", tmp_path / f"{kind}-venus.log",
                        venus=True)
        server.start()
        try:
            yield server
        finally:
            rep = getattr(request.node, "rep_call", None)
            if rep is not None and rep.failed:
                print(f"\n----- {kind} server log -----\n{server.log()}")
            server.stop(check=True)


@pytest.fixture
def ours_venus(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    """``virgl-viewer --headless --venus`` on a private socket."""
    yield from _serve("ours", tmp_path, request)


@pytest.fixture
def upstream_venus(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    """``virgl_test_server --venus`` on a private socket."""
    yield from _serve("upstream", tmp_path, request)


@pytest.fixture(params=ISOLATION_MODES)
def venus_server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """A server with venus whose registry can be looked at, in each isolation mode: its
    clients served in this process, or each by a renderer process (whose events reach
    this one)."""
    with private_server(request.param, venus=True) as running:
        yield running
