"""Record the fuzzers' seed corpora from real sessions of real clients.

Why: mutations of what real guests send reach deep into the engine at once; random
bytes rarely get past CREATE_RENDERER. How: our server (``virgl-viewer --headless``)
runs on a private socket behind a recording tap (``support.tap``); our guest
(``virgl-guest``: protocol 2 and 3, two scanouts, a resize) and, when an X display is
there, Mesa's glxgears and glmark2 through virpipe talk to it. What each sent becomes
seeds in ``tests/fuzz/corpus/<target>/`` (kept small: the head of each session):

- ``engine``: the 8-byte control prefix of fuzz_engine.c + the session's head;
- ``codec``: the session's head (fuzz_codec.py);
- ``rewrite``: SUBMIT_CMD payloads with the handles the client had made (fuzz_rewrite.c);
- ``server``: a longer head, replayed and mutated by fuzz_server.py.

Usage: ``xvfb-run -a .venv/bin/python tests/fuzz/record_seeds.py`` (without a display,
only our guest is recorded). The corpora are committed; run it again after a
protocol change.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from support.mesa import BackgroundClient, glxgears_argv, mesa_env  # noqa: E402
from support.servers import Server  # noqa: E402
from support.tap import Tap  # noqa: E402

from virgl_viewer.vtest import codec  # noqa: E402
from virgl_viewer.vtest import protocol as p  # noqa: E402

CORPUS = HERE / "corpus"
HEAD = 16 << 10  # bytes of a session in the engine and codec seeds
SERVER_HEAD = 96 << 10
MAX_SUBMITS = 3  # rewrite seeds per session
GUEST_RUNS = {
    "guest-p2": ["--frames", "6", "--size", "32x32"],
    "guest-p3": ["--frames", "6", "--size", "32x32", "--protocol", "3"],
    "guest-2scanouts-resize": ["--frames", "6", "--scanouts", "2", "--size", "32x32,16x8",
                               "--resize-at", "3:24x24"],
}
# fuzz_engine.c control prefix: flags, fault mask, fault start, chunk seed, fences
# (low nibble: how many retire, high nibble: every how many turns - 1), ring result
ENGINE_CONTROLS = {
    "plain": bytes([0, 0, 0, 0, 0x21, 0, 0, 0]),
    "observed": bytes([1 | 2 | 4 | 16, 0, 0, 7, 0x12, 1, 0, 0]),
    "bystander": bytes([2, 0, 0, 0, 0x3F, 0, 0, 0]),
    "chunked": bytes([32, 0, 0, 3, 0, 0, 0, 0]),
    "stalled": bytes([8 | 2, 0, 0, 0, 0x0F, 0, 0, 0]),  # the client never reads
    "faults": bytes([0, 0x1F, 6, 0, 0x0F, 0, 0, 0]),  # renderer calls fail from the 6th
}


def requests(stream: bytes) -> list[p.Request]:
    conn = codec.ServerConnection()
    conn.receive_data(stream)
    conn.receive_data(b"")
    out: list[p.Request] = []
    try:
        while True:
            ev = conn.next_event()
            if ev is codec.NEED_DATA or ev is codec.CLOSED:
                return out
            out.append(ev)
    except codec.RemoteProtocolError:
        return out


def rewrite_seeds(stream: bytes) -> list[bytes]:
    """SUBMIT_CMD payloads (the largest few up to 16 KiB) with the handles then live."""
    handles: list[int] = []
    seeds: list[tuple[int, bytes]] = []
    for ev in requests(stream):
        if isinstance(ev, p.ResourceCreate | p.ResourceCreate2) and ev.handle:
            handles.append(ev.handle)
        elif isinstance(ev, p.ResourceUnref) and ev.handle in handles:
            handles.remove(ev.handle)
        elif isinstance(ev, p.SubmitCmd) and 0 < len(ev.commands) <= 16 << 10:
            live = handles[-63:]
            head = bytes([len(live)]) + struct.pack(f"<{len(live)}I", *live)
            seeds.append((len(ev.commands), head + bytes(ev.commands)))
    seeds.sort(key=lambda s: -s[0])
    return [s for _, s in seeds[:MAX_SUBMITS]]


def write(target: str, name: str, data: bytes) -> None:
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(data).hexdigest()[:10]
    (d / f"{name}-{digest}").write_bytes(data)


def record(tmp: Path) -> dict[str, bytes]:
    sessions: dict[str, bytes] = {}
    server_sock, tap_sock = tmp / "server.sock", tmp / "tap.sock"
    guest = shutil.which("virgl-guest") or str(Path(sys.executable).parent / "virgl-guest")
    with Server("ours", server_sock, tmp / "server.log"), Tap(tap_sock, server_sock) as tap:
        for name, args in GUEST_RUNS.items():
            subprocess.run([guest, "--socket", str(tap_sock), "--fps", "0", *args],
                           check=True, timeout=60, stdout=subprocess.DEVNULL)
            tap.wait_sessions(len(sessions) + 1)
            sessions[name] = tap.sessions[-1]
        display = os.environ.get("DISPLAY")
        if display:
            env = mesa_env(tap_sock, display)
            mesa = {"glxgears": glxgears_argv(size=64),
                    "glmark2": ["glmark2", "--size", "64x64", "-b",
                                "shading:shading=phong:duration=0.3"]}
            for name, argv in mesa.items():
                if not shutil.which(argv[0]):
                    continue
                with BackgroundClient(argv, env, tmp, name) as client:
                    time.sleep(1.5)
                    client.stop()
                tap.wait_sessions(len(sessions) + 1)
                sessions[name] = tap.sessions[-1]
    return sessions


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="vv-seeds-") as tmp:
        sessions = record(Path(tmp))
    for target in ("engine", "codec", "rewrite", "server"):
        shutil.rmtree(CORPUS / target, ignore_errors=True)
    for name, stream in sessions.items():
        for ctl_name, ctl in ENGINE_CONTROLS.items():
            write("engine", f"{name}-{ctl_name}", ctl + stream[:HEAD])
        write("codec", name, bytes([0, 0, 0xFF, 0xFF]) + stream[:HEAD])  # all requests
        for seed in dict.fromkeys(rewrite_seeds(stream)):
            write("rewrite", name, seed)
        write("server", name, stream[:SERVER_HEAD])
        print(f"{name}: {len(stream)} bytes, {len(requests(stream))} requests")


if __name__ == "__main__":
    main()
