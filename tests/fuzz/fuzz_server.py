"""Whole-server fuzzer: mutated recorded sessions against a real ``virgl-viewer --headless``.

Why: the libFuzzer targets fuzz the C engine against a stand-in renderer; this one sends
the mutants to the real thing (the Python session, the C engine, real libvirglrenderer on
llvmpipe) over a real socket, as a hostile guest would.

How: the server runs on a private socket (``support.servers.Server``). A bystander guest
(``virgl_viewer.guest``: protocol 2, one 32x32 display target) stays connected. Each
input is a seed from ``tests/fuzz/corpus/server`` (recorded sessions, see record_seeds.py)
with a few mutations (bit flips, dwords set to edge values, whole messages dropped,
repeated, swapped or spliced from another session, header lengths changed, truncation),
sent by a new client (a message at a time waiting briefly for replies, or in random
chunks), which reads whatever comes back, then hangs up or just closes; a quarter of the
inputs are two such clients at once (saved together in one file). After each input the
server must be alive, must not have logged a Python traceback or an internal error, and
the bystander must still render: a solid frame of a new colour presented and read back
within 30 s; within 3 s of the client's leaving, the server's fds and shm mappings
must be back to what they were with the bystander alone (a leak otherwise). Otherwise
the input is saved as ``crash-<sha1>`` (with the server's log beside it), the server
restarted, and the run fails. A frame slower than 5 s keeps the input as ``slow-<sha1>``
without failing (like libFuzzer's slow units): llvmpipe is shared, so a client's heavy
draw delays everyone's fences; these are leads for budgets.
Not coverage-guided: the server is another process; its coverage proxy is the number
of distinct reasons for which it dropped a client (``cov:``).

``--isolation shared`` (make fuzz's target ``server``) serves every client on one
render thread: a hang or a libvirglrenderer crash reaches the bystander, and the leak
check counts that process's fds and mappings. ``--isolation process`` (target
``server-process``, the ``--headless`` default) gives each client a renderer process of
its own, so the same inputs are judged by what the main process sees: a renderer process
that ends while its client is served ("its renderer process N killed by SIGSEGV") is a
crash of libvirglrenderer or of our worker code, kept like any other; and within 10 s of
the client's leaving the main process's fds and the server's processes (the zygote, the
warm pool, the bystander's renderer) must be back to the baseline: a renderer that
outlives its client (stuck in a draw, leaked) is a leak.

Run: ``python tests/fuzz/fuzz_server.py [--isolation MODE] --seconds N --out DIR
[FILE...]``; with files (``tests/fuzz/regressions/server``) each is sent once instead.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import re
import select
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from support.servers import Server  # noqa: E402

from virgl_viewer.guest.client import VtestClient  # noqa: E402
from virgl_viewer.guest.scene import GuestScene  # noqa: E402
from virgl_viewer.vtest import codec  # noqa: E402

CORPUS = HERE / "corpus" / "server"
INPUT_SECONDS = 2.0  # one input's client gives up after this
BYSTANDER_SLOW = 5.0  # a bystander frame slower than this: the input is kept as slow-*
HANG_TIMEOUT = 30.0  # no bystander frame within this: a hang, a failure
START_WAIT = 30.0  # process isolation: the warm pool fills within this at start
LEAK_WAIT = 3.0  # the server's fds and mappings must be back to the baseline by then
# process isolation: the renderers of the input's clients end and the warm pool refills
# (worker start-up, seconds on a loaded machine)
PROCESS_LEAK_WAIT = 10.0
EDGES = (0, 1, 2, 3, 4, 7, 8, 10, 11, 12, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFFFFFF,
         0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)
_DROP_RE = re.compile(r"dropped: (\S+): (.*)$")
# a renderer process that ended while serving its client (isolation.py logs it) is a
# crash as much as a traceback is
_BUG_RE = re.compile(r"Traceback|internal error|Fatal Python error|its renderer process \d+ ")
COLOURS = ("ff0000", "00ff00", "0000ff", "ffff00")


def message_spans(stream: bytes) -> list[tuple[int, int]]:
    """Where the codec sees each message begin and end (the valid prefix)."""
    conn = codec.ServerConnection()
    conn.receive_data(stream)
    spans, pos = [], 0
    try:
        while True:
            ev = conn.next_event()
            if ev is codec.NEED_DATA or ev is codec.CLOSED:
                break
            end = len(stream) - conn.buffered_bytes
            spans.append((pos, end))
            pos = end
    except codec.RemoteProtocolError:
        pass
    return spans


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, theirs, ...), from /proc."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            parent[int(d.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        found += kids
        todo += kids
    return found


def mutate(seed: bytes, other: bytes, rng: random.Random) -> bytes:
    data = bytearray(seed)
    spans = message_spans(seed)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        if op == 0 and data:  # bit flips
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(len(data))
                data[i] ^= 1 << rng.randrange(8)
        elif op == 1 and len(data) >= 4:  # a dword to an edge value
            i = rng.randrange(len(data) // 4) * 4
            data[i : i + 4] = rng.choice(EDGES).to_bytes(4, "little")
        elif op == 2 and spans:  # a header length
            start, _ = rng.choice(spans)
            data[start : start + 4] = rng.choice(EDGES).to_bytes(4, "little")
        elif op == 3 and len(spans) > 1:  # drop a message
            start, end = rng.choice(spans[1:])
            data = bytearray(seed[:start] + seed[end:])
            spans = []
        elif op == 4 and spans:  # repeat a message
            start, end = rng.choice(spans)
            data = bytearray(seed[:end] + seed[start:end] * rng.randint(1, 50) + seed[end:])
            spans = []
        elif op == 5 and len(spans) > 2:  # swap two messages
            (a0, a1), (b0, b1) = sorted(rng.sample(spans[1:], 2))
            data = bytearray(seed[:a0] + seed[b0:b1] + seed[a1:b0] + seed[a0:a1] + seed[b1:])
            spans = []
        elif op == 6 and spans:  # splice: our head, another session's tail
            other_spans = message_spans(other)
            if other_spans:
                cut = rng.choice(spans)[1]
                data = bytearray(seed[:cut] + other[rng.choice(other_spans)[0]:])
                spans = []
        elif op == 7 and data:  # truncate
            data = data[: rng.randrange(len(data))]
    return bytes(data)


def _read(sock: socket.socket, timeout: float) -> bool:
    """Read (and close the fds of) what the server sent; False once it hung up."""
    r, _, _ = select.select([sock], [], [], timeout)
    if not r:
        return True
    try:
        got, fds, _, _ = socket.recv_fds(sock, 1 << 16, 16)
    except (BlockingIOError, InterruptedError):
        return True
    except OSError:
        return False
    for fd in fds:
        socket.close(fd)
    return bool(got)


def send_input(path: Path, data: bytes, rng: random.Random) -> None:
    """One hostile client: send ``data`` and read what comes back. Half the time a
    message at a time, waiting a little for replies as Mesa does (the server's answers
    then shape what follows); else in random chunks without waiting. Then it hangs up
    or just closes."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
        sock.setblocking(False)
        deadline = time.monotonic() + INPUT_SECONDS
        if rng.random() < 0.5:
            cuts = [end for _, end in message_spans(data)]
        else:
            cuts, pos = [], 0
            while pos < len(data):
                pos += rng.choice((1, 7, 64, 4096, 1 << 16))
                cuts.append(min(pos, len(data)))
        if not cuts or cuts[-1] < len(data):
            cuts.append(len(data))
        pos = 0
        for cut in cuts:
            while pos < cut and time.monotonic() < deadline:
                _, w, _ = select.select([], [sock], [], 0.05)
                if w:
                    try:
                        pos += sock.send(data[pos:cut])
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        return
                if not _read(sock, 0):
                    return
            if not _read(sock, 0.005):
                return
        if rng.random() < 0.5:
            sock.shutdown(socket.SHUT_WR)
            while time.monotonic() < deadline and _read(sock, 0.05):
                pass
    finally:
        sock.close()


def send_inputs(path: Path, data: list[bytes], rng: random.Random) -> None:
    """Several hostile clients at once (their own threads)."""
    threads = [threading.Thread(target=send_input, args=(path, d, random.Random(rng.random())))
               for d in data]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class Target:
    """The server under test and its bystander."""

    def __init__(self, tmp: Path, isolation: str = "shared") -> None:
        self.tmp = tmp
        self.isolation = isolation
        self.sock = tmp / "server.sock"
        self.log = tmp / "server.log"
        self.server: Server | None = None
        self.client: VtestClient | None = None
        self.scene: GuestScene | None = None
        self.frame = 0
        self.log_seen = 0
        self.last_frame = 0.0
        self.baseline: tuple[int, int, int] | None = None

    def start(self) -> None:
        self.log.write_text("")
        self.log_seen = 0
        self.baseline = None
        self.server = Server("ours", self.sock, self.log,
                             args=("--isolation", self.isolation)).start()
        self.client = VtestClient.connect(str(self.sock), name="bystander", protocol_version=2,
                                          timeout=HANG_TIMEOUT)
        self.scene = GuestScene(self.client, "solid:ff0000", [(32, 32)])
        self.check()  # its steady state ...
        if self.isolation == "process":  # ... once the warm pool is full again ...
            from virgl_viewer.worker_pool import POOL_SIZE

            # the zygote, the warm workers and the bystander's renderer
            want = 1 + POOL_SIZE + 1
            deadline = time.monotonic() + START_WAIT
            while self._usage()[2] < want and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)  # their channels settle
        self.baseline = self._usage()  # ... is the baseline

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.server is not None:
            self.server.stop(check=False)
        self.client = self.scene = self.server = None

    def new_log(self) -> str:
        text = self.log.read_text(errors="replace")
        new, self.log_seen = text[self.log_seen :], len(text)
        return new

    def _usage(self) -> tuple[int, int, int]:
        """The server's open fds, its mappings of resource shm (memfd vtest-*) and its
        processes (itself and every descendant: the zygote and the renderers)."""
        assert self.server is not None and self.server.pid is not None
        proc = Path(f"/proc/{self.server.pid}")
        try:
            fds = len(list((proc / "fd").iterdir()))
            maps = (proc / "maps").read_text().count("memfd:vtest-")
        except OSError:
            return 0, 0, 0
        return fds, maps, len(descendants(self.server.pid)) + 1

    def leaked(self) -> str | None:
        """None once fds, mappings and processes are back to the baseline (waits up to
        LEAK_WAIT, PROCESS_LEAK_WAIT in process isolation)."""
        assert self.baseline is not None
        wait = PROCESS_LEAK_WAIT if self.isolation == "process" else LEAK_WAIT
        deadline = time.monotonic() + wait
        while True:
            now = self._usage()
            if all(n <= b for n, b in zip(now, self.baseline, strict=True)):
                return None
            if time.monotonic() > deadline:
                return ("leak: {} fds, {} shm mappings and {} processes, {} and {} and {} "
                        "with the bystander alone".format(*now, *self.baseline))
            time.sleep(0.05)

    def check(self) -> str | None:
        """None if all is well, else what went wrong. ``last_frame``: how long the
        bystander's frame took (s)."""
        assert self.server is not None and self.scene is not None
        if not self.server.alive():
            return "the server died"
        colour = COLOURS[self.frame % len(COLOURS)]
        self.frame += 1
        self.scene.pattern = f"solid:{colour}"
        start = time.monotonic()
        try:
            self.scene.present_frame(self.frame)
            pixel = self.scene.read_rgba(0)[:4]
        except (OSError, codec.RemoteProtocolError) as exc:
            return f"the bystander failed: {exc!r}"
        finally:
            self.last_frame = time.monotonic() - start
        if pixel != bytes.fromhex(colour) + b"\xff":
            return f"the bystander read {pixel.hex()}, not {colour}ff"
        return None


PAIR_MAGIC = b"VVFUZZ2\0"


def _pair(a: bytes, b: bytes) -> bytes:
    """Two inputs sent at once, saved as one file (see _unpair)."""
    return PAIR_MAGIC + len(a).to_bytes(4, "little") + a + b


def _unpair(data: bytes) -> list[bytes]:
    if not data.startswith(PAIR_MAGIC) or len(data) < 12:
        return [data]
    n = int.from_bytes(data[8:12], "little")
    return [data[12 : 12 + n], data[12 + n :]]


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    replay = [Path(f) for f in args.inputs]
    seeds = [f.read_bytes() for f in sorted(CORPUS.iterdir())] if not replay else []
    rng = random.Random(args.seed)
    reasons: set[str] = set()
    execs = crashes = slow = 0
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vv-fuzz-server-") as tmp:
        target = Target(Path(tmp), args.isolation)
        target.start()
        try:
            while True:
                if replay:
                    if execs == len(replay):
                        break
                    data = replay[execs].read_bytes()
                    send_inputs(target.sock, _unpair(data), rng)
                elif time.monotonic() - start >= args.seconds:
                    break
                else:
                    data = mutate(rng.choice(seeds), rng.choice(seeds), rng)
                if replay:
                    pass
                elif rng.random() < 0.25:  # two at once: their handles collide
                    data2 = mutate(rng.choice(seeds), rng.choice(seeds), rng)
                    send_inputs(target.sock, [data, data2], rng)
                    data = _pair(data, data2)
                else:
                    send_input(target.sock, data, rng)
                execs += 1
                problem = target.check() or target.leaked()
                log = target.new_log()
                for line in log.splitlines():
                    m = _DROP_RE.search(line)
                    if m:
                        reasons.add(m[1] + ": " + re.sub(r"\d+", "N", m[2]))
                    if problem is None and _BUG_RE.search(line):
                        problem = f"the server logged: {line.strip()}"
                if problem is None and target.last_frame > BYSTANDER_SLOW:
                    slow += 1
                    name = "slow-" + hashlib.sha1(data).hexdigest()
                    (out / name).write_bytes(data)
                    print(f"#{execs} SLOW the bystander's frame took {target.last_frame:.1f} s: "
                          f"saved {out / name}", flush=True)
                if problem is not None:
                    crashes += 1
                    name = "crash-" + hashlib.sha1(data).hexdigest()
                    (out / name).write_bytes(data)
                    (out / f"{name}.log").write_text(f"{problem}\n\n{log[-20000:]}")
                    print(f"#{execs} CRASH {problem}: saved {out / name}", flush=True)
                    target.stop()
                    target.start()
                if execs & (execs - 1) == 0:
                    print(f"#{execs} pulse cov: {len(reasons)} crashes: {crashes} slow: {slow} "
                          f"exec/s: {execs / (time.monotonic() - start):.1f}", flush=True)
        finally:
            target.stop()
    print(f"#{execs} DONE cov: {len(reasons)} crashes: {crashes} slow: {slow} "
          f"exec/s: {execs / max(time.monotonic() - start, 1e-9):.1f}", flush=True)
    return 1 if crashes else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--out", default="fuzz-out/server", help="where crash files go")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--isolation", choices=("shared", "process"), default="shared",
                    help="how the server under test serves its clients")
    ap.add_argument("inputs", nargs="*", help="replay these inputs instead of fuzzing")
    sys.exit(run(ap.parse_args()))


if __name__ == "__main__":
    main()
