"""In-process probes of the viewer GUI: present-to-screen latency, per-present cost.

    python bench/viewer_probes.py latency --socket S --out F [--fps 30] [--seconds 8]
    python bench/viewer_probes.py present --socket S --out F [--size 1920x1080] [--presents 150]

Why: neither number is visible from outside the viewer, so each probe runs the GUI in its
own process (``viewer_gui.start_viewer``: the real ViewerController, windows on screen),
points our test guest (``virgl-guest``, a subprocess) at it and instruments the viewer by
wrapping methods; nothing in virgl_viewer is edited. Results go to ``--out`` as JSON
(``metrics``: numbers; ``samples``: raw values), read by viewer_bench.py.

latency: a guest presents at ``--fps``. Every frame in a scanout's ring carries the time
of the present it was copied for (``Frame.presented_at``: the C path's clock reading when
the guest's TRANSFER_GET2 was served; a present the rate limit held back is dated by its
own time): that is t0, read when ``Scanout.take_latest`` hands the frame to a view.
``ScanoutView.paintGL`` is wrapped: when it drew a new seq, glFinish, then t1 ("drawn");
the widget's ``frameSwapped`` right after gives t2 ("swapped": the window's buffer swap
returned). Latency = t1 - t0 (and t2 - t0) per frame shown, after a warm-up. Frames
replaced before they were shown are counted (the scanouts' ``frames``), not timed.

present: a guest presents ``--size`` frames as fast as it can. The probe keeps every
present on the Python path (``ScanoutManager._attach`` does nothing, so the C fast path
never copies one itself; its copy is the same ``vv_ring_copy``) so that each can be
timed. On the render thread, ``FrameRing.copy`` (the shared-texture path: GPU copy into
the ring + fence + publish) is timed as called and until the copy finished (glFinish);
``handoff_us`` is the whole ``ScanoutManager.presented`` (context switches, ring
bookkeeping, the copy, the signal to the GUI) without that wait, for the presents it
copied. Around every present the probe
also does what a readback viewer would do, timed the same way: virgl transfer_read of the
display target into a CPU buffer, glTexSubImage2D of it into a texture and glFinish, in
two variants (UPLOADS: bytes as stored, or as BGRA like a QImage RGB32, which Mesa
converts). The order of the three paths rotates from present to present.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.procs import stop_process
from viewer_gui import install, pump, start_viewer

GUEST = [sys.executable, "-m", "virgl_viewer.guest.cli"]
WARMUP_S = 2.0
WARMUP_PRESENTS = 20
# GL enums (GL/gl.h, GL/glext.h)
GL_TEXTURE_2D, GL_RGBA8, GL_UNSIGNED_BYTE = 0x0DE1, 0x8058, 0x1401
GL_RGBA, GL_BGRA = 0x1908, 0x80E1
# readback variants: how the CPU copy of a B8G8R8X8 target is uploaded into a GL_RGBA8
# texture. "readback": as GL_RGBA, bytes as stored (a memcpy; the viewer swaps R and B
# when it draws, e.g. with a texture swizzle); "readback_bgra": as GL_BGRA, i.e. uploading
# a QImage RGB32 (Mesa converts every pixel on the CPU).
UPLOADS = {"readback": GL_RGBA, "readback_bgra": GL_BGRA}
GL_UNPACK_ALIGNMENT = 0x0CF5


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``, linear between closest ranks."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def start_guest(socket: str, size: str, fps: float, frames: int, name: str,
                log: Path) -> subprocess.Popen[bytes]:
    argv = [*GUEST, "--socket", socket, "--size", size, "--fps", str(fps), "--frames",
            str(frames), "--pattern", "counter", "--name", name]
    with open(log, "wb") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)


def shutdown(controller: Any) -> None:
    controller.stop()
    controller.main_window.close()
    controller.main_window.deleteLater()
    pump(0.1)


# ---------------------------------------------------------------- latency
@dataclass
class LatencyRecorder:
    presented_at: dict[tuple[int, int], float] = field(default_factory=dict)
    drawn_at: dict[tuple[int, int], float] = field(default_factory=dict)
    swapped_at: dict[tuple[int, int], float] = field(default_factory=dict)
    local: threading.local = field(default_factory=threading.local)


def install_latency_hooks(rec: LatencyRecorder) -> None:
    from OpenGL import GL

    from virgl_viewer.scanout import Scanout
    from virgl_viewer.ui.gl_view import ScanoutView

    take, paint = Scanout.take_latest, ScanoutView.paintGL

    def on_take(self: Any) -> Any:
        frame = take(self)
        if frame is not None:
            rec.presented_at.setdefault((self.id, frame.seq), frame.presented_at)
        return frame

    def on_swapped(view: Any) -> None:
        key = getattr(view, "_vv_pending", None)
        if key is not None:
            rec.swapped_at[key] = time.monotonic()
            view._vv_pending = None

    def on_paint(self: Any) -> None:
        if not getattr(self, "_vv_hooked", False):
            self._vv_hooked = True
            self.frameSwapped.connect(lambda v=self: on_swapped(v))
        before = self.painted_seq
        paint(self)
        if self.painted_seq != before:
            GL.glFinish()
            key = (self.scanout.id, self.painted_seq)
            rec.drawn_at[key] = time.monotonic()
            self._vv_pending = key

    Scanout.take_latest = on_take  # type: ignore[method-assign]
    ScanoutView.paintGL = on_paint  # type: ignore[method-assign]


def run_latency(args: argparse.Namespace) -> dict[str, Any]:
    rec = LatencyRecorder()
    install_latency_hooks(rec)
    _app, controller = start_viewer(args.socket)
    screen = controller.main_window.screen()
    refresh_hz = float(screen.refreshRate()) if screen else 60.0
    guest = start_guest(args.socket, args.size, args.fps, 0, "latency-guest",
                        args.out.with_suffix(".guest.log"))
    start = time.monotonic()
    copied = lambda: sum(sc.frames for sc in controller.scanouts.values())  # noqa: E731
    try:
        pump(WARMUP_S, until=lambda: guest.poll() is not None)
        first = copied()
        pump(args.seconds, until=lambda: guest.poll() is not None)
        frames = copied() - first
    finally:
        rc = stop_process(guest)
        shutdown(controller)
    if rc not in (0, -15) or time.monotonic() - start < WARMUP_S + args.seconds - 0.5:
        raise SystemExit(f"the guest ended early (status {rc})")
    cutoff = start + WARMUP_S
    end = start + WARMUP_S + args.seconds - 0.5  # frames presented at the very end may be unshown
    keys = [k for k, t in rec.presented_at.items() if cutoff <= t <= end]
    drawn = [(rec.drawn_at[k] - rec.presented_at[k]) * 1e3 for k in keys if k in rec.drawn_at]
    swapped = [(rec.swapped_at[k] - rec.presented_at[k]) * 1e3 for k in keys
               if k in rec.swapped_at]
    if not drawn:
        raise SystemExit("no frame was drawn")
    refresh_ms = 1e3 / refresh_hz
    med = statistics.median(drawn)
    return {
        "metrics": {
            "median_ms": med, "p95_ms": pct(drawn, 0.95), "max_ms": max(drawn),
            "swap_median_ms": statistics.median(swapped) if swapped else float("nan"),
            "swap_p95_ms": pct(swapped, 0.95), "refresh_ms": refresh_ms,
            "median_per_refresh": med / refresh_ms, "presents": float(frames),
            "shown_pct": 100.0 * len(drawn) / max(1, frames)},
        "samples": {"drawn_ms": drawn, "swapped_ms": swapped},
    }


# ---------------------------------------------------------------- present cost
@dataclass
class CostRecorder:
    size: tuple[int, int]
    shared: list[tuple[float, float]] = field(default_factory=list)  # call, done (µs)
    # per UPLOADS variant: (read, upload, total) µs
    readback: dict[str, list[tuple[float, float, float]]] = field(
        default_factory=lambda: {name: [] for name in UPLOADS})
    handoff: list[float] = field(default_factory=list)  # whole presented() hook (µs)
    presents: int = 0
    waited: float = 0.0  # the probe's own fence wait inside the last copy (s)
    ring_size: dict[int, tuple[int, int]] = field(default_factory=dict)
    textures: dict[str, int] = field(default_factory=dict)


def _gl() -> Any:
    gl = ctypes.CDLL("libOpenGL.so.0")
    args: list[Any] = [ctypes.c_uint, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p]
    gl.glTexSubImage2D.argtypes = args
    gl.glTexImage2D.argtypes = args
    gl.glClientWaitSync.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint64]
    gl.glClientWaitSync.restype = ctypes.c_uint
    return gl


def install_cost_hooks(rec: CostRecorder) -> None:
    from virgl_viewer.scanout import ScanoutManager
    from virgl_viewer.virgl import FrameRing

    gl = _gl()
    copy, presented = FrameRing.copy, ScanoutManager.presented
    configure_ring = FrameRing.configure
    w, h = rec.size
    buf = bytearray(w * h * 4)  # one buffer for every present, as a viewer would keep
    pixels = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))

    def timed_copy(self: Any, src: int) -> bool:
        t0 = time.perf_counter()
        copied = copy(self, src)
        t1 = time.perf_counter()
        gl.glFinish()  # the presenter context is current: the copy is done after this
        t2 = time.perf_counter()
        rec.waited = t2 - t1
        if copied and rec.ring_size.get(id(self)) == rec.size:
            rec.shared.append(((t1 - t0) * 1e6, (t2 - t0) * 1e6))
        return copied

    def configure(self: Any, width: int, height: int, *rest: Any) -> bool:
        rec.ring_size[id(self)] = (width, height)
        return bool(configure_ring(self, width, height, *rest))

    def handoff(mgr: Any, s: Any, r: Any) -> None:
        rec.waited = -1.0
        t0 = time.perf_counter()
        presented(mgr, s, r)
        if rec.waited >= 0:  # it copied (a rate limit may defer the copy of a present)
            rec.handoff.append((time.perf_counter() - t0 - rec.waited) * 1e6)

    def texture(name: str) -> int:  # presenter context current; allocated once
        if name not in rec.textures:
            tex = ctypes.c_uint(0)
            gl.glGenTextures(1, ctypes.byref(tex))
            gl.glBindTexture(GL_TEXTURE_2D, tex.value)
            gl.glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA8, w, h, 0, UPLOADS[name],
                            GL_UNSIGNED_BYTE, None)
            rec.textures[name] = tex.value
        return rec.textures[name]

    def readback(name: str, mgr: Any, s: Any, r: Any) -> None:
        mgr.gl.make_current()
        try:
            tex = texture(name)
        finally:
            mgr.renderer.force_ctx_0()
        t0 = time.perf_counter()
        mgr.renderer.transfer_read(r.server_handle, s.ctx_id, 0, w * 4, 0, (0, 0, 0, w, h, 1),
                                   0, buf)
        t1 = time.perf_counter()
        mgr.gl.make_current()
        try:
            gl.glBindTexture(GL_TEXTURE_2D, tex)
            gl.glPixelStorei(GL_UNPACK_ALIGNMENT, 4)
            gl.glTexSubImage2D(GL_TEXTURE_2D, 0, 0, 0, w, h, UPLOADS[name], GL_UNSIGNED_BYTE,
                               pixels)
            gl.glBindTexture(GL_TEXTURE_2D, 0)
            gl.glFinish()
            t2 = time.perf_counter()
        finally:
            mgr.renderer.force_ctx_0()
        rec.readback[name].append(((t1 - t0) * 1e6, (t2 - t1) * 1e6, (t2 - t0) * 1e6))

    def on_presented(self: Any, s: Any, r: Any, count: int = 1,
                     when: float | None = None) -> None:
        if (r.width, r.height) != rec.size:
            presented(self, s, r, count, when)
            return
        steps: list[Any] = [lambda: handoff(self, s, r)]
        steps += [lambda n=name: readback(n, self, s, r) for name in UPLOADS]
        k = rec.presents % len(steps)  # the order rotates: no path always goes first
        rec.presents += 1
        for step in steps[k:] + steps[:k]:
            step()

    FrameRing.copy = timed_copy  # type: ignore[method-assign]
    FrameRing.configure = configure  # type: ignore[method-assign]
    ScanoutManager.presented = on_presented  # type: ignore[method-assign]
    ScanoutManager._attach = staticmethod(lambda *a: None)  # type: ignore[method-assign]


def run_present(args: argparse.Namespace) -> dict[str, Any]:
    w, _, h = args.size.partition("x")
    rec = CostRecorder((int(w), int(h)))
    install_cost_hooks(rec)
    _app, controller = start_viewer(args.socket)
    guest = start_guest(args.socket, args.size, 0, WARMUP_PRESENTS + args.presents,
                        "present-guest", args.out.with_suffix(".guest.log"))
    try:
        pump(args.timeout, until=lambda: guest.poll() is not None)
    finally:
        rc = stop_process(guest)
        shutdown(controller)
    if rc != 0:
        raise SystemExit(f"the guest did not finish its frames (status {rc})")
    shared = rec.shared[WARMUP_PRESENTS:]  # every present runs every path
    backs = {name: v[WARMUP_PRESENTS:] for name, v in rec.readback.items()}
    if not shared or not all(backs.values()):
        raise SystemExit(f"too few samples: {len(shared)} copies, "
                         f"{ {k: len(v) for k, v in backs.items()} } readbacks")
    done = statistics.median(d for _, d in shared)
    metrics = {"shared_us": done, "shared_call_us": statistics.median(c for c, _ in shared),
               "handoff_us": statistics.median(rec.handoff[WARMUP_PRESENTS:]),
               "copies": float(len(shared))}
    for name, back in backs.items():
        total = statistics.median(t for _, _, t in back)
        metrics.update({f"{name}_us": total,
                        f"{name}_read_us": statistics.median(r for r, _, _ in back),
                        f"{name}_upload_us": statistics.median(u for _, u, _ in back),
                        f"{name}_per_shared": total / done if done else float("nan")})
    return {"metrics": metrics,
            "samples": {"shared_done_us": [d for _, d in shared],
                        **{f"{n}_us": [t for _, _, t in b] for n, b in backs.items()}}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("probe", choices=("latency", "present"))
    ap.add_argument("--socket", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--size", help="guest size (latency 640x480, present 1920x1080)")
    ap.add_argument("--fps", type=float, default=30.0, help="latency: guest FPS")
    ap.add_argument("--seconds", type=float, default=8.0, help="latency: measured time")
    ap.add_argument("--presents", type=int, default=150, help="present: measured presents")
    ap.add_argument("--timeout", type=float, default=90.0, help="present: time limit (s)")
    args = ap.parse_args(argv)
    install()  # first: it picks the GL platform before PyOpenGL is imported
    if args.probe == "latency":
        args.size = args.size or "640x480"
        result = run_latency(args)
    else:
        args.size = args.size or "1920x1080"
        result = run_present(args)
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
