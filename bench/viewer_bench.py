"""Viewer benchmarks: the GUI against headless virgl_test_server, latency, display cost.

    python bench/viewer_bench.py [--rounds 5] [--only glxgears,latency] [--json OUT]

Runs on DISPLAY, or on an Xvfb of its own without one (support.xvfb). Every
measurement starts its own server and stops it afterwards, so an idle GUI (its timers)
never runs while the other side is measured; the order of the sides flips every round;
the report shows per-side medians over the rounds and their ratio. Benches:

  glmark2            glmark2 -f glmark2-scenes.txt through the viewer GUI (every scanout
                     window on screen, inspector as the product shows it) vs
                     virgl_test_server headless: score; target ratio >= 0.95
  glxgears           one glxgears for 10 s, the same two sides: FPS; target >= 0.95
  latency            our guest presenting 640x480 at 30 fps into the GUI (in-process
                     probe): present -> frame drawn (paintGL + glFinish), median and p95
                     ms, against one screen refresh (QScreen.refreshRate())
  present            a 1920x1080 guest at full speed (in-process probe): render-thread µs
                     per present of the shared-texture path (GLPresenter.copy + fence)
                     vs a readback path (transfer_read to CPU + texture upload + finish;
                     "readback": bytes uploaded as stored, "readback_bgra": as BGRA,
                     which Mesa converts per pixel, as a QImage RGB32 upload would be)
  inspector-glxgears glxgears through the GUI with the inspector dock visible, hidden,
                     and hidden with the overview kept at its size with the dock shown
                     (hidden-fixed: hiding the dock grows the overview, whose repaints
                     cost more than the inspector on llvmpipe; overview_kpx shows it)
  inspector-glmark2  glmark2 build + texture + shading (3 s each), the same three sides;
                     loss = 1 - visible/hidden in %, target <= 3 %
  frames-glxgears    the breakdown of what the GUI costs a guest, in both isolation modes
                     in one run: glxgears through the GUI as the product runs it
                     ("process", "shared"), with every frame copied for the screen but
                     never painted ("-unpainted"), with no frame copied for the screen
                     ("-noframes"; windows, overview and inspector still up), and upstream
                     headless. Per mode: the GUI's presence = noframes/upstream, the
                     frames' transport (copies; in process mode also the slots, events and
                     the main process's copy) = unpainted/noframes, painting them =
                     full/unpainted (viewer_gui.py --frames)
  frames-glmark2     the same breakdown with glmark2 build + texture + shading (3 s each)

The GUI runs through viewer_gui.py (the product's entry point plus bench-only hooks:
windows kept on screen, the dock toggled, paints counted); the viewer side also reports
how often its busiest scanout window drew a new frame (viewer_shown_fps) and fails if
a window was ever off screen or drew nothing. Probes: viewer_probes.py. Client runners,
glmark2/glxgears parsing and the servers are run_bench.py's and tests/support's.

The machine may be shared: before each measurement the bench waits (--quiet-wait) until
other people's processes are idle, and every sample carries foreign_cores, the CPU others
used meanwhile (viewer_load.py); samples above BUSY_CORES are listed in a warning.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from run_bench import (  # noqa: E402  (run_bench puts tests/ on sys.path)
    SCENES_DIR,
    BenchError,
    Ctx,
    _glmark2,
    gears_fps,
    median_of,
)
from support import REPO_ROOT  # noqa: E402
from support.mesa import run_client  # noqa: E402
from support.servers import Server, ServerError, server_env  # noqa: E402
from support.xvfb import session_display  # noqa: E402
from viewer_load import CPU_GROUPS, CpuSplit, ForeignLoad, wait_quiet  # noqa: E402

INSPECTOR_SCENES = (":duration=3", "build:use-vbo=true", "texture:texture-filter=linear",
                    "shading:shading=phong")
PROBE_TIMEOUT_S = 150
WITHHELD_PAINTS = 10  # new frames a view may draw with frames withheld (its sizing)
MIN_RING_FRAMES = 100  # frames a ring must get with frames unpainted (~60 a second)
BUSY_CORES = 0.25  # a sample measured while others used more than this is flagged
Sample = dict[str, float]


class ViewerGui(Server):
    """The viewer GUI (viewer_gui.py) as a Server: started, waited for, SIGTERM-ed alike."""

    def __init__(self, socket_path: Path, log_path: Path, display: str, inspector: str,
                 stats_path: Path, isolation: str = "shared", frames: str = "shown") -> None:
        super().__init__("ours", socket_path, log_path, env={"DISPLAY": display},
                         args=("--isolation", isolation))
        self.inspector = inspector
        self.stats_path = stats_path
        self.frames = frames

    @property
    def argv(self) -> list[str]:
        return [self.python, str(BENCH_DIR / "viewer_gui.py"), "--inspector", self.inspector,
                "--frames", self.frames, "--stats-out", str(self.stats_path), "--", "--socket",
                str(self.socket_path), "--log-level", self.log_level, *self.extra_args]


@dataclass
class Env:
    """What every measurement shares: the display, a scratch dir, where logs go."""

    display: str
    work: Path
    log_dir: Path
    failures: list[str]
    serial: count[int]
    quiet_wait: float
    isolation: str = "shared"

    def name(self, stem: str) -> Path:
        return self.work / f"{stem}-{next(self.serial)}"


def paint_metrics(stats_path: Path, failures: list[str], what: str,
                  frames: str = "shown") -> Sample:
    """Check the GUI's paint counts (viewer_gui.py --stats-out) and summarise them; with
    frames withheld (``frames`` not "shown") no view may have drawn a stream of them."""
    try:
        stats = json.loads(stats_path.read_text())
    except (OSError, ValueError) as exc:
        raise BenchError(f"{what}: no paint stats from the GUI ({exc})") from exc
    scanouts = list(stats["scanouts"].values())
    if frames == "none" and not scanouts:  # its views had no frame to draw
        if not stats.get("windows"):
            raise BenchError(f"{what}: the viewer opened no scanout window")
        return {"inspector_visible": float(bool(stats["inspector_visible"]))}
    if not scanouts:
        raise BenchError(f"{what}: the viewer drew no frame")
    for sc in scanouts:
        if sc["off_screen_paints"]:
            failures.append(f"{what}: {sc['name']} was off screen for "
                            f"{sc['off_screen_paints']} of {sc['paints']} paints")
    top = max(scanouts, key=lambda sc: sc["new_frames"])
    if frames != "shown":
        # a window paints the frame that sized it (and its exposures): a few, not a stream
        if top["new_frames"] > WITHHELD_PAINTS:
            failures.append(f"{what}: frames were to be withheld ({frames}) but "
                            f"{top['name']} drew {top['new_frames']} new ones")
        if frames == "unpainted" and stats.get("ring_frames", 0) < MIN_RING_FRAMES:
            failures.append(f"{what}: only {stats.get('ring_frames', 0)} frames reached a "
                            f"ring (unpainted: they must still flow)")
        return {"inspector_visible": float(bool(stats["inspector_visible"])),
                "ring_frames": float(stats.get("ring_frames", 0))}
    span = top["last_new"] - top["first_new"]
    ov = stats.get("overview_size") or [0, 0]
    return {"viewer_shown_fps": (top["new_frames"] - 1) / span if span > 0 else 0.0,
            "inspector_visible": float(bool(stats["inspector_visible"])),
            "overview_kpx": ov[0] * ov[1] / 1000}


def code_version() -> str:
    """The commit of the code under test, with a digest of uncommitted changes to it: the
    GUI is started afresh for every sample, so a commit landing mid-run splits the run.
    "unknown" without git (the Debian lanes' roots run a `git archive` and have no git)."""
    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True,
                                  text=True, check=False)
        except FileNotFoundError:
            return ""
        return done.stdout if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    diff = git("diff", "HEAD", "--", "virgl_viewer", "native")
    return head + (f"+{hashlib.sha1(diff.encode()).hexdigest()[:8]}" if diff else "")


def settle(env: Env) -> None:
    """Before a measurement: wait (bounded) until other people's processes are idle."""
    if env.quiet_wait > 0:
        waited = wait_quiet(env.display, BUSY_CORES / 2, env.quiet_wait)
        if waited > 1.5:
            print(f"    (waited {waited:.0f} s for other processes to go idle)", flush=True)


def gui_side(env: Env, side: str) -> tuple[str, str, str]:
    """The GUI of ``side``: (isolation, frames, inspector state)."""
    if side in FRAME_SIDES:
        isolation, dash, withheld = side.partition("-")
        return isolation, WITHHELD[dash + withheld], "default"
    return env.isolation, "shown", side if side in INSPECTOR else "default"


def with_server(env: Env, side: str, run: Callable[[Ctx], Sample]) -> Sample:
    """Start the server of ``side``, run one client bench against it, stop it."""
    stem = env.name(side)
    sock, log = stem.with_suffix(".sock"), env.log_dir / f"{stem.name}-server.log"
    frames = "shown"
    if side == "upstream":
        server: Server = Server("upstream", sock, log)
    else:
        isolation, frames, inspector = gui_side(env, side)
        server = ViewerGui(sock, log, env.display, inspector, stem.with_suffix(".stats"),
                           isolation, frames)
    settle(env)
    server.start()
    load = ForeignLoad(env.display, track_pgid=server.pid if side == "upstream" else None,
                       started=(server.pid,) if server.pid else ())
    split = CpuSplit(server.pid, env.display) if isinstance(server, ViewerGui) else None
    with load:
        try:
            with split if split is not None else contextlib.nullcontext():
                sample = run(Ctx(server, env.display, env.work))
        finally:
            rc = server.stop(check=False)
    sample["foreign_cores"] = load.cores
    if split is not None:
        sample.update({f"cores_{g}": c for g, c in split.cores.items()})
    if isinstance(server, ViewerGui):
        if rc != 0:
            env.failures.append(f"{side}: the GUI exited with status {rc} ({log})")
        problems = server.log_problems()
        if problems:
            env.failures.append(f"{side}: GUI log problems ({log}): {problems[:3]}")
        sample.update(paint_metrics(server.stats_path, env.failures, side, frames))
        if side in INSPECTOR and sample["inspector_visible"] != (side == "visible"):
            raise BenchError(f"the inspector dock was not {side}")
    return sample


def glmark2_scenes(env: Env, side: str) -> Sample:
    path = SCENES_DIR / "glmark2-scenes.txt"
    if not path.exists():
        raise BenchError(f"{path} is missing (set VV_BENCH_SCENES)")
    return with_server(env, side, lambda ctx: {
        "score": float(_glmark2(ctx, ["-f", str(path)], timeout=600)[0])})


def glmark2_short(env: Env, side: str) -> Sample:
    path = env.work / "inspector-scenes.txt"
    path.write_text("\n".join(INSPECTOR_SCENES) + "\n")
    return with_server(env, side, lambda ctx: {
        "score": float(_glmark2(ctx, ["-f", str(path)], timeout=300)[0])})


def glxgears(env: Env, side: str) -> Sample:
    return with_server(env, side, lambda ctx: gears_fps(ctx, 1))


def probe(mode: str, *extra: str) -> Callable[[Env, str], Sample]:
    def run(env: Env, side: str) -> Sample:
        stem = env.name(mode)
        out = stem.with_suffix(".json")
        argv = [sys.executable, str(BENCH_DIR / "viewer_probes.py"), mode, "--socket",
                str(stem.with_suffix(".sock")), "--out", str(out), *extra]
        settle(env)
        with ForeignLoad(env.display) as load:
            done = run_client(argv, server_env({"DISPLAY": env.display}), PROBE_TIMEOUT_S)
        if done.returncode != 0 or not out.exists():
            raise BenchError(done.describe())
        result = json.loads(out.read_text())
        (env.log_dir / f"{stem.name}.json").write_text(json.dumps(result))
        metrics: Sample = result["metrics"]
        metrics["foreign_cores"] = load.cores
        return metrics
    return run


@dataclass(frozen=True)
class Bench:
    """``run(env, side)`` -> named numbers; ``key`` is the headline; sides alternate."""

    key: str
    unit: str
    sides: tuple[str, ...]
    run: Callable[[Env, str], Sample]


AB = ("viewer", "upstream")
INSPECTOR = ("visible", "hidden", "hidden-fixed")
MODES = ("process", "shared")
# a frames-* side's suffix -> viewer_gui.py --frames (see frames-glxgears in the docstring)
WITHHELD = {"": "shown", "-unpainted": "unpainted", "-noframes": "none"}
FRAME_SIDES = tuple(m + w for m in MODES for w in WITHHELD)
BENCHES: dict[str, Bench] = {
    "glmark2": Bench("score", "", AB, glmark2_scenes),
    "glxgears": Bench("fps", "FPS", AB, glxgears),
    "latency": Bench("median_ms", "ms", ("viewer",), probe("latency")),
    "present": Bench("shared_us", "µs", ("viewer",), probe("present")),
    "inspector-glxgears": Bench("fps", "FPS", INSPECTOR, glxgears),
    "inspector-glmark2": Bench("score", "", INSPECTOR, glmark2_short),
    "frames-glxgears": Bench("fps", "FPS", (*FRAME_SIDES, "upstream"), glxgears),
    "frames-glmark2": Bench("score", "", (*FRAME_SIDES, "upstream"), glmark2_short),
}
Results = dict[str, dict[str, list[Sample]]]


def _cell(value: float | None) -> str:
    if value is None:
        return f"{'':>10}"
    return f"{value:10.1f}" if abs(value) >= 10 else f"{value:10.2f}"


def report(results: Results, rounds: int) -> list[str]:
    """Print the table (per-side medians; ratios of side A to the others); return the
    headline lines (also printed)."""
    print(f"\nmedians over {rounds} round(s), sides alternating")
    print(f"{'bench':<19}{'metric':<26}{'side A':>10}{'side B':>10}{'side C':>10}"
          f"{'A/B':>8}{'A/C':>8}  n  sides")
    for name, per_side in results.items():
        bench = BENCHES[name]
        if len(bench.sides) > 3:
            _report_sides(name, bench, per_side)
            continue
        seen = {k for samples in per_side.values() for s in samples for k in s}
        keys = [bench.key, *sorted(seen - {bench.key})]
        for key in keys:
            vals = [median_of(per_side[side], key) for side in bench.sides]
            vals += [None] * (3 - len(vals))
            a = vals[0]
            ratios = "".join(f"{a / v:8.3f}" if a is not None and v else f"{'':>8}"
                             for v in vals[1:])
            n = min(len(per_side[s]) for s in bench.sides)
            label = key + (f" ({bench.unit})" if bench.unit and key == bench.key else "")
            print(f"{name if key == bench.key else '':<19}{label:<26}"
                  f"{''.join(_cell(v) for v in vals)}{ratios}  {n:<2} "
                  f"{'/'.join(bench.sides) if key == bench.key else ''}")
    lines = headlines(results)
    print("\n" + "\n".join(lines))
    return lines


def _report_sides(name: str, bench: Bench, per_side: dict[str, list[Sample]]) -> None:
    """A bench of many sides: a row per side, its headline metric against the last side."""
    last = median_of(per_side[bench.sides[-1]], bench.key)
    for side in bench.sides:
        v = median_of(per_side[side], bench.key)
        ratio = f"{v / last:8.3f}" if v is not None and last else f"{'':>8}"
        samples = " ".join(f"{s[bench.key]:.0f}" for s in per_side[side])
        print(f"{name if side == bench.sides[0] else '':<19}{side:<26}{_cell(v)}{ratio}  "
              f"{len(per_side[side]):<2} /{bench.sides[-1]}: {samples}")


def breakdown(results: Results) -> list[str]:
    """What showing frames costs a guest, per mode (the frames-* benches)."""
    out = []
    for name in ("frames-glxgears", "frames-glmark2"):
        key = BENCHES[name].key

        def med(side: str, name: str = name, key: str = key) -> float | None:
            return median_of(results.get(name, {}).get(side, []), key)

        up = med("upstream")
        for mode in MODES:
            full, unpainted, none = (med(mode + w) for w in WITHHELD)
            if not (up and full and unpainted and none):
                continue
            out.append(
                f"{name} {mode}: GUI / upstream headless {full / up:.3f}; without frames "
                f"{none / up:.3f} (the GUI's presence {100 * (none / up - 1):+.1f} %), frames "
                f"copied but unpainted {unpainted / up:.3f} (their transport "
                f"{100 * (unpainted / none - 1):+.1f} %), painted (painting them "
                f"{100 * (full / unpainted - 1):+.1f} %)")
            cores = [[med(mode + w, key=f"cores_{g}") for g in CPU_GROUPS] for w in WITHHELD]
            if all(c is not None for row in cores for c in row):
                cols = ", ".join(
                    f"{g} {cores[2][i]:.3f} -> {cores[1][i]:.3f} -> {cores[0][i]:.3f}"
                    for i, g in enumerate(CPU_GROUPS))
                out.append(f"  {name} {mode}: cores used, without frames -> unpainted -> "
                           f"shown: {cols}")
    return out


def headlines(results: Results) -> list[str]:
    def med(name: str, side: str, key: str) -> float | None:
        return median_of(results.get(name, {}).get(side, []), key)

    out = []
    for name in ("glmark2", "glxgears"):
        v, u = med(name, "viewer", BENCHES[name].key), med(name, "upstream", BENCHES[name].key)
        if v is not None and u:
            out.append(f"{name}: viewer GUI / upstream headless = {v / u:.3f} "
                       f"({'meets' if v / u >= 0.95 else 'MISSES'} >= 0.95)")
    m, p, r = (med("latency", "viewer", k) for k in ("median_ms", "p95_ms", "refresh_ms"))
    if m is not None and p is not None and r:
        out.append(f"latency present -> drawn: median {m:.1f} ms, p95 {p:.1f} ms; one refresh "
                   f"{r:.1f} ms (median = {m / r:.2f} refreshes)")
    for name in ("glmark2", "glxgears"):
        shown = med(name, "viewer", "viewer_shown_fps")
        if shown is not None:
            out.append(f"{name}: its scanout window showed {shown:.1f} new frames a second"
                       + (f" (the screen refreshes {1000 / r:.0f} times a second)" if r else ""))
    s, b, q = (med("present", "viewer", k) for k in ("shared_us", "readback_us",
                                                      "readback_bgra_us"))
    if s and b is not None and q is not None:
        out.append(f"per present at 1920x1080: shared texture {s:.0f} µs; readback + upload "
                   f"{b:.0f} µs ({b / s:.1f}x), with a BGRA upload {q:.0f} µs ({q / s:.1f}x)")
    for name in ("inspector-glxgears", "inspector-glmark2"):
        key = BENCHES[name].key
        vis = med(name, "visible", key)
        for hidden, what in (("hidden", "as toggled, overview grows when hidden"),
                             ("hidden-fixed", "overview size kept")):
            hid = med(name, hidden, key)
            if vis is not None and hid:
                loss = 100 * (1 - vis / hid)
                out.append(f"{name}: inspector visible vs {hidden} ({what}): loss "
                           f"{loss:.1f} % ({'meets' if loss <= 3 else 'MISSES'} <= 3 %)")
    out += breakdown(results)
    busy = [f"{name} {side} #{i + 1} ({s['foreign_cores']:.2f})"
            for name, per in results.items() for side, samples in per.items()
            for i, s in enumerate(samples) if s.get("foreign_cores", 0) > BUSY_CORES]
    if busy:
        out.append(f"WARNING: other processes used > {BUSY_CORES} cores during "
                   f"{len(busy)} sample(s): {', '.join(busy)}")
    return out


def run_round(rnd: int, env: Env, names: list[str], results: Results) -> None:
    for name in names:
        bench = BENCHES[name]
        order = bench.sides if rnd % 2 == 0 else bench.sides[::-1]
        for side in order:
            t0 = time.monotonic()
            try:
                sample = bench.run(env, side)
            except (BenchError, ServerError, OSError, ValueError, KeyError) as exc:
                env.failures.append(f"round {rnd + 1} {name} {side}: {exc}")
                print(f"[{rnd + 1}] {name:<19}{side:<17} FAILED", flush=True)
                continue
            results[name][side].append(sample)
            shown = ", ".join(f"{k}={v:.1f}" if abs(v) >= 10 else f"{k}={v:.3f}"
                              for k, v in sample.items())
            print(f"[{rnd + 1}] {name:<19}{side:<17} {shown}  ({time.monotonic() - t0:.0f} s)",
                  flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", help=f"comma-separated benches (default all: {', '.join(BENCHES)})")
    ap.add_argument("--json", type=Path, help="write every sample and the headlines here")
    ap.add_argument("--log-dir", type=Path, help="GUI logs and probe results (default temp)")
    ap.add_argument("--quiet-wait", type=float, default=60.0, metavar="S",
                    help="before each measurement wait up to S s for other processes to "
                         "go idle (shared machines; 0: do not wait; default %(default)s)")
    ap.add_argument("--isolation", choices=["shared", "process"], default="shared",
                    help="the GUI's --isolation (default shared, the GUI's default)")
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        ap.error(f"unknown bench(es) {unknown}; known: {', '.join(BENCHES)}")
    if not os.environ.get("DISPLAY") and session_display(os.environ) is None:
        ap.error("DISPLAY is not set and Xvfb is not installed (apt-get install xvfb)")
    display = os.environ["DISPLAY"]
    if any("upstream" in BENCHES[n].sides for n in names) and not shutil.which(
            "virgl_test_server"):
        ap.error("virgl_test_server is missing (apt-get install virgl-server)")

    results: Results = {n: {s: [] for s in BENCHES[n].sides} for n in names}
    failures: list[str] = []
    version = code_version()
    print(f"code under test: {version} ({REPO_ROOT})", flush=True)
    with tempfile.TemporaryDirectory(prefix="vv-viewer-bench-") as tmp:
        log_dir = args.log_dir or Path(tmp)
        log_dir.mkdir(parents=True, exist_ok=True)
        env = Env(display, Path(tmp), log_dir, failures, count(1), args.quiet_wait,
                  args.isolation)
        print(f"the GUI runs --isolation {args.isolation}", flush=True)
        for rnd in range(args.rounds):
            run_round(rnd, env, names, results)
    lines = report(results, args.rounds)
    if code_version() != version:
        lines.append(f"WARNING: the code changed during the run ({version} -> "
                     f"{code_version()}): the samples mix versions")
        print(lines[-1])
    for f in failures:
        print(f"FAILED {f[:2000]}")
    if args.json:
        doc: dict[str, Any] = {"rounds": args.rounds, "code": version, "results": results,
                               "headlines": lines, "failures": failures,
                               "medians": {n: {s: {k: statistics.median(
                                   [x[k] for x in v if k in x]) for k in v[0]} for s, v in
                                   per.items() if v} for n, per in results.items()}}
        args.json.write_text(json.dumps(doc, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
