"""``virgl-guest``: a scripted vtest guest that presents known patterns on N scanouts.

Why: the viewer needs a guest whose every presented pixel is known in advance
(`patterns.expected_image`), with several display targets of different sizes, a chosen
frame rate, resizes and a clean exit on SIGINT/SIGTERM, against our server or upstream's
``virgl_test_server``.

How: connect with Mesa's handshake (`VtestClient.connect`), build a `GuestScene`, then per
frame render + present (SUBMIT_CMD, TRANSFER_GET2 + BUSY_WAIT(WAIT) per display target),
paced against a monotonic clock. ``--dump-dir`` writes, on exit, each scanout's last
presented frame as ``scanout-<i>.png`` (RGBA8, read from the guest's own shm) and
``dump.json`` (pattern, last frame, sizes), which is what the integration tests compare
with `expected_image`.

    virgl-guest --socket PATH --scanouts 3 --size 640x480,320x200 --fps 30 --frames 0 \
        --pattern counter [--protocol 2|3] [--name NAME] [--format bgrx|bgra|rgba|rgbx] \
        [--resize-at FRAME:WxH[,WxH...]]... [--dump-dir DIR] [-v]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import TypeVar

from virgl_viewer import __version__, signals
from virgl_viewer.errors import ProtocolError, VirglViewerError
from virgl_viewer.guest.client import VtestClient
from virgl_viewer.guest.patterns import parse_pattern
from virgl_viewer.guest.scene import FORMATS, GuestScene
from virgl_viewer.png import encode_png
from virgl_viewer.vtest.protocol import VTEST_DEFAULT_SOCKET_NAME

log = logging.getLogger(__name__)

Size = tuple[int, int]
_T = TypeVar("_T")
_MAX_DIM = 16384


def parse_sizes(text: str) -> list[Size]:
    """``"640x480,320x200"`` -> [(640, 480), (320, 200)] (ValueError if malformed)."""
    sizes = []
    for part in text.split(","):
        w, sep, h = part.strip().lower().partition("x")
        if not sep or not w.isdigit() or not h.isdigit():
            raise ValueError(f"bad size {part!r} (expected WxH)")
        size = (int(w), int(h))
        if not all(1 <= v <= _MAX_DIM for v in size):
            raise ValueError(f"size {part!r} out of range 1..{_MAX_DIM}")
        sizes.append(size)
    return sizes


def parse_resize(text: str) -> tuple[int, list[Size]]:
    """``"30:800x600"`` -> (30, [(800, 600)])."""
    frame, sep, sizes = text.partition(":")
    if not sep or not frame.isdigit():
        raise ValueError(f"bad resize {text!r} (expected FRAME:WxH[,WxH...])")
    return int(frame), parse_sizes(sizes)


def sizes_for(sizes: Sequence[Size], count: int) -> list[Size]:
    """One size per scanout: ``sizes[i]``, the last one repeated."""
    return [sizes[min(i, len(sizes) - 1)] for i in range(count)]


def _arg(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """An argparse ``type=`` whose ValueError message reaches the user."""
    def convert(text: str) -> _T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="virgl-guest",
        description="A vtest guest presenting exact test patterns on N scanouts.")
    ap.add_argument("--socket", default=VTEST_DEFAULT_SOCKET_NAME, metavar="PATH",
                    help="vtest socket path (default %(default)s)")
    ap.add_argument("--scanouts", type=int, default=1, metavar="N",
                    help="display targets (default 1)")
    ap.add_argument("--size", type=_arg(parse_sizes), default=[(640, 480)],
                    metavar="WxH[,WxH...]",
                    help="one size per scanout, the last repeated (default 640x480)")
    ap.add_argument("--fps", type=float, default=60.0, metavar="F",
                    help="frames per second; 0 = as fast as possible (default 60)")
    ap.add_argument("--frames", type=int, default=0, metavar="N",
                    help="frames to present; 0 = until SIGINT/SIGTERM (default)")
    ap.add_argument("--pattern", type=_arg(parse_pattern), default="bars",
                    help="bars (default), gradient, counter or solid:RRGGBB")
    ap.add_argument("--protocol", type=int, choices=(2, 3), default=2,
                    help="vtest protocol version to ask for (default 2, as Mesa 22)")
    ap.add_argument("--name", default="virgl-guest", help="CREATE_RENDERER name")
    ap.add_argument("--format", choices=sorted(FORMATS), default="bgrx",
                    help="display target format (default bgrx = B8G8R8X8_UNORM)")
    ap.add_argument("--resize-at", type=_arg(parse_resize), action="append", default=[],
                    metavar="FRAME:WxH[,WxH...]",
                    help="re-create the display targets at this size before FRAME")
    ap.add_argument("--dump-dir", metavar="DIR",
                    help="on exit, write each scanout's last frame here")
    ap.add_argument("-v", "--verbose", action="count", default=0,
                    help="log more: -v info, -vv debug")
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return ap


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.scanouts < 1:
        ap.error("--scanouts must be >= 1")
    if args.fps < 0 or args.frames < 0:
        ap.error("--fps and --frames must be >= 0")
    return args


def write_png(path: str, width: int, height: int, rgba: bytes) -> None:
    """Write RGBA8 rows (top first) as a PNG (fast zlib level: dumps are large)."""
    with open(path, "wb") as f:
        f.write(encode_png(width, height, rgba, level=1))


def dump(scene: GuestScene, directory: str, last_frame: int) -> None:
    """Write ``scanout-<i>.png`` per scanout and ``dump.json`` into ``directory``."""
    os.makedirs(directory, exist_ok=True)
    entries = []
    for sc in scene.scanouts:
        name = f"scanout-{sc.index}.png"
        write_png(os.path.join(directory, name), sc.width, sc.height,
                  scene.read_rgba(sc.index))
        entries.append({"index": sc.index, "width": sc.width, "height": sc.height,
                        "file": name})
    info = {"pattern": scene.pattern, "last_frame": last_frame, "scanouts": entries}
    with open(os.path.join(directory, "dump.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1)


def run(args: argparse.Namespace, stop: threading.Event) -> int:
    """Connect, present ``args.frames`` frames (or until ``stop`` is set), optionally
    dump; returns the last frame presented (-1 if none)."""
    resizes = {frame: sizes for frame, sizes in args.resize_at}
    last = -1
    with VtestClient.connect(args.socket, args.name, args.protocol) as client:
        scene = GuestScene(client, args.pattern, sizes_for(args.size, args.scanouts),
                           args.format)
        log.info("presenting %s on %d scanout(s) %s, vtest protocol %d", args.pattern,
                 args.scanouts, [(s.width, s.height) for s in scene.scanouts],
                 client.protocol_version)
        start = time.monotonic()
        frame = 0
        while not stop.is_set() and (args.frames == 0 or frame < args.frames):
            if frame in resizes:
                scene.resize(sizes_for(resizes[frame], args.scanouts))
                log.info("frame %d: resized to %s", frame,
                         [(s.width, s.height) for s in scene.scanouts])
            scene.present_frame(frame)
            log.debug("presented frame %d", frame)
            last, frame = frame, frame + 1
            if args.fps > 0:
                delay = start + frame / args.fps - time.monotonic()
                if delay > 0:
                    stop.wait(delay)
                elif delay < -1.0:  # far behind (stalled server): do not burst to catch up
                    start = time.monotonic() - frame / args.fps
        elapsed = time.monotonic() - start
        log.info("presented %d frame(s) in %.2f s", frame, elapsed)
        if args.dump_dir is not None and last >= 0:
            dump(scene, args.dump_dir, last)
        scene.close()
    return last


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (a second one acts as usual); handlers are restored
    afterwards. Outside the main thread (tests) nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = (signal.SIGINT, signal.SIGTERM)
    old = {s: signal.getsignal(s) for s in sigs}
    received: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        # No logging here: the signal may land inside the main thread's own write to
        # stderr, and a reentrant write raises (Python 3.13) before stop is set.
        stop.set()
        received.append(signum)
        for s in sigs:
            signal.signal(s, old[s])

    for s in sigs:
        signal.signal(s, handler)
    signals.unblock(frozenset(sigs))
    try:
        yield
    finally:
        for s in sigs:
            signal.signal(s, old[s])
        if received:
            log.info("stopped by signal %d", received[0])


def main(argv: Sequence[str] | None = None, stop: threading.Event | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 connection/protocol failure)."""
    args = parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                            format="virgl-guest: %(levelname)s %(message)s")
    stop = stop or threading.Event()
    with _stop_on_signals(stop):
        try:
            run(args, stop)
        except (OSError, ProtocolError, VirglViewerError) as exc:
            log.error("%s: %s", args.socket, exc)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
