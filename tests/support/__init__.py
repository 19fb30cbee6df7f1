"""Helpers for tests and benchmarks that drive real Mesa virpipe clients.

Why: integration tests and ``bench/`` both need an X server, a vtest server (ours or
upstream's ``virgl_test_server``) on a private socket, and Mesa clients pointed at that
socket. How: ``xvfb`` starts Xvfb, ``servers`` starts and stops either server, ``mesa``
builds the client environment and runs glxgears/glmark2/piglit with timeouts, ``screen``
grabs the X root window, and ``piglit`` reads piglit commands and results. Nothing here
imports ``virgl_viewer``: the server under test runs as a subprocess, like a user's.

pytest puts ``tests/`` on ``sys.path`` (rootdir conftest, no ``__init__`` above it), so
this package is ``support``; ``bench/`` scripts add ``tests/`` to ``sys.path`` themselves.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

__all__ = ["REPO_ROOT"]
