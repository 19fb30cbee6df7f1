"""virgl-guest against a real server: what it reads back must equal expected_image exactly.

The guest renders with virgl commands, presents with TRANSFER_GET2 + BUSY_WAIT and dumps
its own shm (``--dump-dir``); these tests compare that dump with the pure-Python
`expected_image`, against our in-process server (fixture ``virgl_server``) and upstream's
``virgl_test_server``.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.launch import launched
from support.png import read_png_rgba
from support.procs import stop_process, wait_for
from support.servers import accepts_connections

from virgl_viewer.guest import VtestClient
from virgl_viewer.guest.cli import main, parse_args, parse_resize, parse_sizes, sizes_for
from virgl_viewer.guest.patterns import expected_image
from virgl_viewer.guest.scene import GuestScene
from virgl_viewer.testing import RunningServer

ROOT = Path(__file__).resolve().parents[2]
SIZES = [(64, 48), (33, 17), (100, 7)]


def check_dump(directory: Path, pattern: str, frame: int,
               sizes: list[tuple[int, int]]) -> None:
    info = json.loads((directory / "dump.json").read_text())
    assert info["last_frame"] == frame
    assert [(s["width"], s["height"]) for s in info["scanouts"]] == sizes
    for i, (w, h) in enumerate(sizes):
        got_w, got_h, pixels = read_png_rgba(directory / f"scanout-{i}.png")
        assert (got_w, got_h) == (w, h)
        expected = expected_image(pattern, w, h, frame, i)
        if pixels != expected:
            bad = next(j for j in range(0, len(pixels), 4)
                       if pixels[j:j + 4] != expected[j:j + 4]) // 4
            pytest.fail(f"scanout {i} {w}x{h}: first differing pixel "
                        f"({bad % w}, {bad // w}): {pixels[4 * bad:4 * bad + 4]!r} != "
                        f"{expected[4 * bad:4 * bad + 4]!r}")


def guest_args(socket: str, dump: Path, *extra: str) -> list[str]:
    return ["--socket", socket, "--fps", "0", "--dump-dir", str(dump), *extra]


@pytest.mark.parametrize("pattern", ["bars", "gradient", "counter", "solid:12ab9f"])
def test_patterns_on_three_scanouts(virgl_server: RunningServer, tmp_path: Path,
                                    pattern: str) -> None:
    size_arg = ",".join(f"{w}x{h}" for w, h in SIZES)
    assert main(guest_args(virgl_server.path, tmp_path, "--scanouts", "3", "--size",
                           size_arg, "--frames", "3", "--pattern", pattern)) == 0
    check_dump(tmp_path, pattern, 2, SIZES)


@pytest.mark.parametrize(("fmt", "protocol"),
                         [("bgra", "2"), ("rgba", "2"), ("rgbx", "2"), ("bgrx", "3")])
def test_formats_and_protocol_3(virgl_server: RunningServer, tmp_path: Path, fmt: str,
                                protocol: str) -> None:
    assert main(guest_args(virgl_server.path, tmp_path, "--format", fmt, "--protocol",
                           protocol, "--size", "40x30", "--frames", "2",
                           "--pattern", "counter")) == 0
    check_dump(tmp_path, "counter", 1, [(40, 30)])


def test_resize_at(virgl_server: RunningServer, tmp_path: Path) -> None:
    # the size list repeats its last entry; the resize gives each scanout a new size
    assert main(guest_args(virgl_server.path, tmp_path, "--scanouts", "2", "--size",
                           "32x24", "--frames", "4", "--pattern", "gradient",
                           "--resize-at", "2:20x10,50x12")) == 0
    check_dump(tmp_path, "gradient", 3, [(20, 10), (50, 12)])


def test_scene_api(virgl_guest: VtestClient) -> None:
    scene = GuestScene(virgl_guest, "counter", [(48, 36), (16, 40)])
    for frame in range(3):
        scene.present_frame(frame)
        for sc in scene.scanouts:
            assert scene.read_rgba(sc.index) == expected_image(
                "counter", sc.width, sc.height, frame, sc.index)
    scene.resize([(24, 24)])
    scene.present_frame(3)
    assert scene.read_rgba(0) == expected_image("counter", 24, 24, 3, 0)
    scene.close()


@pytest.mark.parametrize("blocked", [False, True], ids=["", "blocked-by-parent"])
def test_sigterm_exits_cleanly(virgl_server: RunningServer, tmp_path: Path,
                               blocked: bool) -> None:
    """SIGTERM ends a guest presenting forever with status 0 and a dump of its last
    frame; also when whoever started it had SIGTERM blocked (the mask survives exec:
    that guest used to present on until it was killed)."""
    cmd = [sys.executable, "-m", "virgl_viewer.guest.cli", "-vv", "--frames", "0",
           *guest_args(virgl_server.path, tmp_path, "--fps", "100", "--pattern", "counter",
                       "--scanouts", "2", "--size", "30x20,20x30")]
    mask = frozenset({signal.SIGTERM}) if blocked else frozenset()
    proc = subprocess.Popen(launched(cmd, blocked=mask), cwd=ROOT, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # wait until frame 1 is on screen
            if "presented frame 1" in line:
                break
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err[-2000:]
    finally:
        if proc.poll() is None:
            stop_process(proc, sig=signal.SIGKILL)
            proc.communicate()  # closes its pipes
    frame = json.loads((tmp_path / "dump.json").read_text())["last_frame"]
    assert frame >= 1
    check_dump(tmp_path, "counter", frame, [(30, 20), (20, 30)])


@pytest.fixture
def upstream_server(tmp_path: Path) -> Iterator[str]:
    """Upstream virgl_test_server (single client, as Mesa 22 uses it) on a tmp socket."""
    exe = shutil.which("virgl_test_server")
    if exe is None:
        pytest.skip("virgl_test_server is not installed")
    path = str(tmp_path / "upstream.sock")
    with open(tmp_path / "upstream.log", "wb") as log:
        proc = subprocess.Popen([exe, "--use-egl-surfaceless", "--no-fork",
                                 f"--socket-path={path}"], stdout=log, stderr=log)
    try:
        # the socket file exists from bind() on, but connects are refused until listen()
        assert wait_for(lambda: accepts_connections(Path(path)) or proc.poll() is not None,
                        20), "virgl_test_server did not listen"
        assert proc.poll() is None, "virgl_test_server exited"
        yield path
    finally:
        stop_process(proc, 20)


def test_against_upstream_virgl_test_server(upstream_server: str, tmp_path: Path) -> None:
    sizes = [(48, 32), (20, 30)]
    for pattern in ("bars", "gradient", "counter", "solid:804020"):
        dump = tmp_path / pattern.replace(":", "-")
        assert main(guest_args(upstream_server, dump, "--scanouts", "2", "--size",
                               "48x32,20x30", "--frames", "3", "--pattern", pattern)) == 0
        check_dump(dump, pattern, 2, sizes)


def test_unreachable_socket_fails(tmp_path: Path) -> None:
    assert main(["--socket", str(tmp_path / "nothing"), "--frames", "1"]) == 1


def test_argument_parsing() -> None:
    assert parse_sizes("640x480, 32X16") == [(640, 480), (32, 16)]
    assert parse_resize("30:800x600") == (30, [(800, 600)])
    assert sizes_for([(1, 2), (3, 4)], 3) == [(1, 2), (3, 4), (3, 4)]
    args = parse_args(["--pattern", "solid:ABCDEF", "--resize-at", "5:10x10"])
    assert (args.pattern, args.resize_at, args.format) == (
        "solid:abcdef", [(5, [(10, 10)])], "bgrx")
    for bad in (["--size", "10x"], ["--size", "0x5"], ["--pattern", "plaid"],
                ["--resize-at", "x:10x10"], ["--scanouts", "0"], ["--protocol", "1"],
                ["--fps", "-1"]):
        with pytest.raises(SystemExit) as exc:
            parse_args(bad)
        assert exc.value.code == 2
