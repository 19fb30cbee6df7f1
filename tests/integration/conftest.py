"""Both isolation modes through the in-process server's tests: ``virgl_server`` here is
the plugin's server in each mode (``--isolation shared``: every client on one render
thread; ``process``: a renderer process per client). A test that reaches into the
render thread's sessions (only shared mode has them) says so with
``@pytest.mark.isolation("shared")``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

from virgl_viewer.testing import ISOLATION_MODES, RunningServer, start_server


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "virgl_server" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("isolation")
        modes = marker.args if marker is not None else ISOLATION_MODES
        metafunc.parametrize("isolation", modes)


@pytest.fixture
def virgl_server(isolation: str) -> Iterator[RunningServer]:
    """A headless server on a private socket in ``isolation`` mode, stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="vv-") as d:
        running = start_server(os.path.join(d, "vtest.sock"), isolation)
        try:
            yield running
        finally:
            running.thread.stop()
