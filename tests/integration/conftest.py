"""Both isolation modes through the in-process server's tests: ``virgl_server`` here is
the plugin's server in each mode (``--isolation shared``: every client on one render
thread; ``process``: a renderer process per client). A test that reaches into the
render thread's sessions (only shared mode has them) says so with
``@pytest.mark.isolation("shared")``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from virgl_viewer.testing import ISOLATION_MODES, RunningServer, private_server


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "virgl_server" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("isolation")
        modes = marker.args if marker is not None else ISOLATION_MODES
        metafunc.parametrize("isolation", modes)


@pytest.fixture
def virgl_server(isolation: str) -> Iterator[RunningServer]:
    """A headless server on a private socket in ``isolation`` mode, stopped afterwards."""
    with private_server(isolation) as running:
        yield running
