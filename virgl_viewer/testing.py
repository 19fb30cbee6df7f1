"""pytest plugin (entry point ``pytest11``): fixtures for testing virgl guests.

``virgl_server`` runs a headless virgl-viewer server in this process (its own
render thread, a surfaceless EGL display, a private socket) and
``virgl_guest`` connects our vtest client to it. Heavy imports happen inside
the fixtures, so loading the plugin costs nothing.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from virgl_viewer.guest import VtestClient
    from virgl_viewer.server import RenderThread, VtestServer


@dataclass
class RunningServer:
    """A server started by the ``virgl_server`` fixture."""

    path: str
    thread: RenderThread

    @property
    def server(self) -> VtestServer:
        assert self.thread.server is not None
        return self.thread.server

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the render thread and return its result."""
        import concurrent.futures

        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:
                fut.set_exception(exc)

        self.thread.call(run)
        return fut.result(timeout=30)

    def session_count(self) -> int:
        return int(self.call(lambda: len(self.server.sessions)))


def start_server(path: str) -> RunningServer:
    """Start an in-process headless server on ``path``."""
    from virgl_viewer.egl import SurfacelessProvider
    from virgl_viewer.server import RenderThread

    def factory() -> Any:
        p = SurfacelessProvider()
        return p, p.close

    rt = RenderThread(path, factory)
    rt.start()
    return RunningServer(path, rt)


@pytest.fixture
def virgl_server() -> Iterator[RunningServer]:
    """A headless virgl-viewer server on a private socket, stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="vv-") as d:
        running = start_server(os.path.join(d, "vtest.sock"))
        try:
            yield running
        finally:
            running.thread.stop()


@pytest.fixture
def virgl_guest(virgl_server: RunningServer) -> Iterator[VtestClient]:
    """Our vtest client, connected to ``virgl_server`` with protocol 2 (as
    Mesa 22's virpipe)."""
    from virgl_viewer.guest import VtestClient

    client = VtestClient.connect(virgl_server.path, "pytest-guest", 2)
    try:
        yield client
    finally:
        client.close()
