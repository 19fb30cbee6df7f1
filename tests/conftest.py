"""The test run's X display; shared fixtures: an Xvfb display and vtest servers for tests
with real Mesa clients.

Every run gets a private Xvfb (``support.xvfb.session_display``) as soon as this file is
loaded: before the viewer's pytest plugin picks the Qt platform for it (pytest_configure
comes after the root conftest) and before Qt or PyOpenGL start. Without Xvfb the display
the run was given is used.

``VV_TEST_DISPLAY=wayland`` makes the run a Wayland session instead: a private weston
(headless, GL renderer; ``support.weston.session_compositor``) and ``QT_QPA_PLATFORM=
wayland``. A process has one Qt platform, so the tests marked ``wayland`` run in such a
session and only there, the others only in an X11 one; each session deselects the
other's tests and says so in its summary (``make test`` runs both sessions).

``vtest_server`` is our server (``python -m virgl_viewer --headless``) unless
``VV_TEST_SERVER=upstream`` picks ``virgl_test_server``: the same Mesa tests then check
the test harness itself against the reference. Every server listens on a private socket
in the test's tmp dir (never ``/tmp/.virgl_test``); its log is a file in that dir and is
printed when a test fails. Ours must still be alive after the test and exit 0 on SIGTERM.
Heavy imports stay in ``support``; this file loads for every test, Mesa or not.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from support.mesa import mesa_env
from support.servers import Server, ServerKind
from support.weston import Weston, session_compositor
from support.xvfb import Xvfb, session_display

SERVER_ENV_VAR = "VV_TEST_SERVER"
DISPLAY_ENV_VAR = "VV_TEST_DISPLAY"


def selected_display() -> str:
    kind = os.environ.get(DISPLAY_ENV_VAR, "x11")
    if kind not in ("x11", "wayland"):
        raise pytest.UsageError(f"{DISPLAY_ENV_VAR} must be 'x11' or 'wayland', not {kind!r}")
    return kind


SESSION_WESTON = session_compositor(os.environ) if selected_display() == "wayland" else None
if SESSION_WESTON is None:
    session_display(os.environ)
_OTHER_DISPLAY: list[pytest.Item] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "wayland: runs in the Wayland session only (VV_TEST_DISPLAY=wayland: a "
        "private weston); every other test runs in the X11 session only")


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = []
    if config.getoption("--venus") == "deselect":
        lines.append("venus tests: deselected (--venus=deselect: this stack has no venus)")
    if SESSION_WESTON is None:
        lines.append(f"display: X11 ({os.environ.get('DISPLAY', 'none')}); wayland tests "
                     "deselected")
        return lines
    version = ".".join(map(str, SESSION_WESTON.version))
    lines.append(f"display: Wayland, weston {version} headless with its GL renderer "
                 f"({SESSION_WESTON.socket_path}); X11-session tests deselected")
    return lines


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the tests of this session's display (see the module's docstring); last, so
    that what counts as the other session's is what ``-k``/``-m`` left. Before that, the
    venus tests go on a stack without venus (``--venus=deselect``, the Makefile's choice
    on Debian 12)."""
    if config.getoption("--venus") == "deselect":
        venus = [i for i in items if i.get_closest_marker("venus") is not None]
        if venus:
            items[:] = [i for i in items if i.get_closest_marker("venus") is None]
            config.hook.pytest_deselected(items=venus)
            config.stash[_VENUS_DESELECTED] = len(venus)
    wayland = SESSION_WESTON is not None
    keep = [i for i in items if (i.get_closest_marker("wayland") is not None) == wayland]
    other = [i for i in items if (i.get_closest_marker("wayland") is not None) != wayland]
    if other:
        _OTHER_DISPLAY[:] = other
        config.hook.pytest_deselected(items=other)
        items[:] = keep


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    n = config.stash.get(_VENUS_DESELECTED, 0)
    if n:
        terminalreporter.write_line(f"venus: {n} tests deselected by --venus=deselect (they "
                                    "run in the Debian 13 lane: make test-trixie)")
    if _OTHER_DISPLAY:
        session, other = (("X11", "Wayland") if SESSION_WESTON is None else ("Wayland", "X11"))
        terminalreporter.write_line(
            f"{len(_OTHER_DISPLAY)} tests of the {other} session deselected in this {session} "
            f"session (make test runs both; {DISPLAY_ENV_VAR}=wayland picks Wayland)")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """All selected tests belong to the other session (``-k wayland`` in the X11 one):
    nothing failed, nothing was lost; the other session runs them. (A ``-k`` that
    matches nothing in either session still ends in pytest's "no tests" status.)"""
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and _OTHER_DISPLAY:
        session.exitstatus = pytest.ExitCode.OK


@pytest.fixture(scope="session")
def weston() -> Weston:
    """The Wayland session's compositor (screenshots of what it shows)."""
    if SESSION_WESTON is None:
        pytest.fail("the weston fixture is for tests marked wayland", pytrace=False)
    return SESSION_WESTON


def selected_server_kind() -> ServerKind:
    kind = os.environ.get(SERVER_ENV_VAR, "ours")
    if kind not in ("ours", "upstream"):
        raise pytest.UsageError(f"{SERVER_ENV_VAR} must be 'ours' or 'upstream', not {kind!r}")
    return "ours" if kind == "ours" else "upstream"


# ---------------------------------------------------------------- venus selection
# The venus tests need libvirglrenderer 1.x with virgl_render_server and Mesa's venus
# ICD (Debian 13). On a stack without them they fail, never skip: the Makefile picks
# `--venus=deselect` for Debian 12 (Mesa 25's venus refuses 0.10.4, and Debian 12 ships
# no venus ICD), and the run's header and summary say that they were left out.
_VENUS_DESELECTED = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--venus", choices=("run", "deselect"), default="run",
                     help="run the tests marked venus (default), or deselect them on a "
                          "stack that has no venus (the Makefile decides per release)")


@pytest.fixture(scope="session")
def xvfb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xvfb]:
    """One Xvfb (1280x1024x24, no TCP) for the whole session."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed")
    log = tmp_path_factory.mktemp("xvfb") / "xvfb.log"
    with Xvfb(log_path=log) as x:
        yield x


def _serve(kind: ServerKind, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    if kind == "upstream" and shutil.which("virgl_test_server") is None:
        pytest.skip("virgl_test_server is not installed (apt-get install virgl-server)")
    # AF_UNIX paths are limited to 108 bytes; pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="vv-sock-") as sock_dir:
        server = Server(kind, Path(sock_dir) / "vtest.sock", tmp_path / f"{kind}-server.log")
        server.start()
        try:
            yield server
        finally:
            failed = getattr(request.node, "rep_call", None)
            if failed is not None and failed.failed:
                print(f"\n----- {kind} server log ({server.log_path}) -----\n{server.log()}")
            server.stop(check=True)


@pytest.fixture
def vtest_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    """The server under test (``VV_TEST_SERVER=ours|upstream``, default ours)."""
    yield from _serve(selected_server_kind(), tmp_path, request)


@pytest.fixture
def upstream_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    """``virgl_test_server`` forking a renderer per client (serves protocol-2 clients)."""
    yield from _serve("upstream", tmp_path, request)


@pytest.fixture
def client_env(vtest_server: Server, xvfb: Xvfb) -> dict[str, str]:
    """Environment for Mesa virpipe clients of ``vtest_server`` on ``xvfb``."""
    return mesa_env(vtest_server.socket_path, xvfb.display)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
        item: pytest.Item, call: pytest.CallInfo[None],
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so fixtures can see whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
