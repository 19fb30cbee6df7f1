"""A/B benchmarks: our server against virgl_test_server, alternating, in one run.

    python bench/run_bench.py [--rounds 5] [--only glxgears,connect] [--json OUT]

Both servers run side by side for the whole run, each on a private socket, same
environment (MESA_SHADER_CACHE_DISABLE=true on both sides); upstream forks a renderer per
client (no --multi-clients: it refuses Mesa 22.3.6's protocol 2). Each round runs every
selected bench once per server, the order of the servers flipping every round. Prints
per-server medians over the rounds and ours/upstream ratios. Benches:

  glmark2    glmark2 --size 800x600 -f glmark2-scenes.txt: score
  transfer   the same with glmark2-transfer-scenes.txt: score
  sync       the same with glmark2-sync-scenes.txt
  glxgears   one glxgears over 10 s: FPS
  glxgears2  two glxgears at once over 10 s: combined FPS
  gears2sep  diagnostic: the same two glxgears, each on a server process of its own (a
             second server of the same kind is started for the second client), to tell
             the cost of serving both clients from one process from the per-client cost
  replay     apitrace replay --benchmark of a glmark2 trace (recorded once a run, on the
             host's own GL, no server): FPS. The same calls every round, on both servers
  connect    raw client, connect -> caps reply: ms (median of 20 samples a round)
  desktop    glmark2 desktop scene (blur, as in glmark2-scenes.txt) for 10 s: the
             steady-state FPS, i.e. without the first frame (timed by an nframes=1 run),
             which carries the host's one-time shader compile; raw 10 s FPS kept too
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))
sys.path.insert(0, str(BENCH_DIR))

from support.mesa import (  # noqa: E402
    GEARS_LINE_RE,
    BackgroundClient,
    glxgears_argv,
    glxgears_fps,
    mesa_env,
    parse_glmark2,
    run_client,
)
from support.servers import Server, ServerKind  # noqa: E402
from support.xvfb import Xvfb  # noqa: E402
from vtest_probe import ProbeError, connect_samples  # noqa: E402

# shared/ sits beside the checkout
SCENES_DIR = Path(os.environ.get("VV_BENCH_SCENES",
                                 Path(__file__).resolve().parents[2] / "shared" / "bench"))
DESKTOP = "desktop:blur-radius=5:effect=blur:passes=1:separable=true:windows=4"
DEFAULT_BENCHES = ("glmark2", "transfer", "sync", "replay", "glxgears", "glxgears2",
                   "gears2sep", "connect", "desktop")
# what the replayed trace records: glmark2 scenes of every kind, 3 s each
REPLAY_SCENES = ("build:use-vbo=true", "texture:texture-filter=linear", "shading:shading=phong",
                 "refract", "jellyfish")
REPLAY_RE = re.compile(r"Rendered (\d+) frames in ([\d.]+) secs?, average of ([\d.]+) fps")
GEARS_SECONDS = 10  # glxgears reports every 5 s: two reports
CONNECT_SAMPLES = 20


class BenchError(RuntimeError):
    """A client did not produce a number."""


@dataclass
class Ctx:
    """What a bench needs: the server to measure, the display, a scratch dir."""

    server: Server
    display: str
    workdir: Path

    def env(self) -> dict[str, str]:
        return mesa_env(self.server.socket_path, self.display)


@dataclass(frozen=True)
class Bench:
    """A benchmark: a function returning named numbers; ``key`` is the headline one."""

    key: str
    unit: str
    higher_is_better: bool
    run: Callable[[Ctx], dict[str, float]]


def _glmark2(ctx: Ctx, args: list[str], timeout: float) -> tuple[int, list[float]]:
    done = run_client(["glmark2", "--size", "800x600", *args], ctx.env(), timeout)
    score, scenes = parse_glmark2(done.stdout)
    if done.returncode != 0 or score is None:
        raise BenchError(done.describe())
    return score, [s.frame_time_ms for s in scenes]


def glmark2_file(name: str) -> Callable[[Ctx], dict[str, float]]:
    def run(ctx: Ctx) -> dict[str, float]:
        path = SCENES_DIR / name
        if not path.exists():
            raise BenchError(f"{path} is missing (set VV_BENCH_SCENES)")
        score, _ = _glmark2(ctx, ["-f", str(path)], timeout=600)
        return {"score": float(score)}
    return run


def _trace(ctx: Ctx) -> Path:
    """The glmark2 trace every replay uses, recorded once a run on the host's GL."""
    path = ctx.workdir / "replay.trace"
    if path.exists():
        return path
    env = {k: v for k, v in os.environ.items()
           if k not in ("GALLIUM_DRIVER", "VTEST_SOCKET_NAME", "LD_PRELOAD")}
    env.update(DISPLAY=ctx.display, LIBGL_ALWAYS_SOFTWARE="1")
    argv = ["apitrace", "trace", "--output", str(path), "glmark2", "--size", "800x600",
            *[a for s in REPLAY_SCENES for a in ("-b", f"{s}:duration=3")]]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    if done.returncode != 0 or not path.exists():
        path.unlink(missing_ok=True)
        raise BenchError(f"recording the trace failed: {done.stderr[-2000:]}")
    return path


def replay(ctx: Ctx) -> dict[str, float]:
    done = run_client(["apitrace", "replay", "--benchmark", str(_trace(ctx))], ctx.env(),
                      600)
    m = REPLAY_RE.search(done.stdout + done.stderr)
    if done.returncode != 0 or m is None:
        raise BenchError(done.describe())
    return {"fps": float(m.group(3)), "frames": float(m.group(1)), "secs": float(m.group(2))}


def gears_fps(ctx: Ctx, count: int, envs: list[dict[str, str]] | None = None
              ) -> dict[str, float]:
    envs = envs or [ctx.env()] * count
    clients = [BackgroundClient(glxgears_argv(i * 340, 0), envs[i], ctx.workdir,
                                f"gears-{ctx.server.kind}-{i}") for i in range(count)]
    try:
        for c in clients:
            if not c.wait_for_output(GEARS_LINE_RE, GEARS_SECONDS // 5,
                                     timeout=GEARS_SECONDS + 30):
                raise BenchError(c.describe())
    finally:
        for c in clients:
            c.stop()
    fps = [glxgears_fps(c.stdout()) for c in clients]
    if count == 1:
        return {"fps": fps[0]}
    return {"fps": sum(fps), **{f"fps_client{i}": f for i, f in enumerate(fps)}}


def gears_two_processes(ctx: Ctx) -> dict[str, float]:
    """Two glxgears, the second on its own server process of the same kind."""
    kind = ctx.server.kind
    second = Server(kind, ctx.workdir / f"{kind}-second.sock",
                    ctx.server.log_path.with_name(f"{kind}-second-server.log"))
    second.start()
    try:
        return gears_fps(ctx, 2, [ctx.env(), mesa_env(second.socket_path, ctx.display)])
    finally:
        second.stop(check=False)


def connect(ctx: Ctx) -> dict[str, float]:
    samples = connect_samples(ctx.server.socket_path, CONNECT_SAMPLES)
    return {"ms": statistics.median(samples), "ms_min": min(samples),
            "ms_max": max(samples)}


def desktop(ctx: Ctx) -> dict[str, float]:
    # glmark2 only prints FPS = frames / elapsed. With nframes=1 that is the first frame's
    # time (the host's shader compile lands there: 0.1-3 s here); a duration=10 run
    # stops on the first frame past 10 s, so its elapsed time is ~10 s.
    _, (first_ms,) = _glmark2(ctx, ["-b", f"{DESKTOP}:nframes=1"], timeout=120)
    _, (ft_long,) = _glmark2(ctx, ["-b", f"{DESKTOP}:duration=10"], timeout=120)
    frames = 10_000 / ft_long
    rest_s = 10 - first_ms / 1000
    steady = (frames - 1) / rest_s if frames > 1 and rest_s > 0 else 0.0
    return {"steady_fps": steady, "fps_10s": 1000 / ft_long, "first_frame_ms": first_ms}


BENCHES: dict[str, Bench] = {
    "glmark2": Bench("score", "", True, glmark2_file("glmark2-scenes.txt")),
    "transfer": Bench("score", "", True, glmark2_file("glmark2-transfer-scenes.txt")),
    "sync": Bench("score", "", True, glmark2_file("glmark2-sync-scenes.txt")),
    "replay": Bench("fps", "FPS", True, replay),
    "glxgears": Bench("fps", "FPS", True, lambda ctx: gears_fps(ctx, 1)),
    "glxgears2": Bench("fps", "FPS", True, lambda ctx: gears_fps(ctx, 2)),
    "gears2sep": Bench("fps", "FPS", True, gears_two_processes),
    "connect": Bench("ms", "ms", False, connect),
    "desktop": Bench("steady_fps", "FPS", True, desktop),
}


def median_of(samples: list[dict[str, float]], key: str) -> float | None:
    values = [s[key] for s in samples if key in s]
    return statistics.median(values) if values else None


def _cell(value: float | None) -> str:
    return f"{value:10.1f}" if value is not None else f"{'FAIL':>10}"


def report(results: dict[str, dict[str, list[dict[str, float]]]], rounds: int) -> None:
    print(f"\nmedians over {rounds} round(s) (alternating order)")
    print(f"{'bench':<11}{'metric':<18}{'ours':>10}{'upstream':>10}{'ours/up':>9}  n")
    for name, per_server in results.items():
        bench = BENCHES[name]
        seen = {k for samples in per_server.values() for s in samples for k in s}
        keys = [bench.key, *sorted(seen - {bench.key})]
        for key in keys:
            ours = median_of(per_server.get("ours", []), key)
            up = median_of(per_server.get("upstream", []), key)
            ratio = f"{ours / up:9.2f}" if ours is not None and up else f"{'-':>9}"
            n = min(len(per_server.get("ours", [])), len(per_server.get("upstream", [])))
            unit = bench.unit if bench.unit and bench.unit.lower() != key else ""
            label = key + (f" ({unit})" if unit and key == bench.key else "")
            print(f"{name if key == bench.key else '':<11}{label:<18}{_cell(ours)}{_cell(up)}"
                  f"{ratio}  {n}")
    print("ratio > 1 is better for ours except connect (lower ms is better)")


def run_round(rnd: int, servers: dict[ServerKind, Server], names: list[str], *,
              display: str, work: Path,
              results: dict[str, dict[str, list[dict[str, float]]]],
              failures: list[str]) -> None:
    """One round: every bench once per server; the server order flips every round."""
    kinds = list(servers)
    order = kinds if rnd % 2 == 0 else kinds[::-1]
    for name in names:
        for kind in order:
            t0 = time.monotonic()
            try:
                sample = BENCHES[name].run(Ctx(servers[kind], display, work))
            except (BenchError, ProbeError, OSError) as exc:
                failures.append(f"round {rnd + 1} {name} {kind}: {exc}")
                print(f"[{rnd + 1}] {name:<10}{kind:<9} FAILED", flush=True)
                if not servers[kind].alive():
                    raise RuntimeError(f"{kind} server died:\n"
                                       f"{servers[kind].log()[-4000:]}") from exc
                continue
            results[name][kind].append(sample)
            shown = ", ".join(f"{k}={v:.1f}" for k, v in sample.items())
            print(f"[{rnd + 1}] {name:<10}{kind:<9} {shown}  "
                  f"({time.monotonic() - t0:.0f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", help=f"comma-separated benches ({', '.join(BENCHES)}); "
                                   f"default {','.join(DEFAULT_BENCHES)}")
    ap.add_argument("--servers", default="ours,upstream",
                    help="which servers to measure (default both)")
    ap.add_argument("--isolation", choices=["process", "shared"], default="process",
                    help="how ours serves clients (default process: a renderer process "
                         "per client, the headless default)")
    ap.add_argument("--json", type=Path, help="write every sample here")
    ap.add_argument("--log-dir", type=Path, help="server logs (default a temp dir)")
    args = ap.parse_args(argv)

    names = args.only.split(",") if args.only else list(DEFAULT_BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        ap.error(f"unknown bench(es) {unknown}; known: {', '.join(BENCHES)}")
    kinds: list[ServerKind] = []
    for k in args.servers.split(","):
        if k not in ("ours", "upstream"):
            ap.error(f"unknown server {k!r}")
        kinds.append("ours" if k == "ours" else "upstream")
    if shutil.which("virgl_test_server") is None and "upstream" in kinds:
        ap.error("virgl_test_server is missing (apt-get install virgl-server)")

    results: dict[str, dict[str, list[dict[str, float]]]] = {
        n: {k: [] for k in kinds} for n in names}
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="vv-bench-") as tmp:
        work = Path(tmp)
        log_dir = args.log_dir or work
        log_dir.mkdir(parents=True, exist_ok=True)
        servers = {k: Server(k, work / f"{k}.sock", log_dir / f"{k}-server.log",
                             args=("--isolation", args.isolation) if k == "ours" else ())
                   for k in kinds}
        print(f"ours: --isolation {args.isolation}", flush=True)
        with Xvfb(log_path=work / "xvfb.log") as xvfb:
            try:
                for s in servers.values():
                    s.start()
                for rnd in range(args.rounds):
                    run_round(rnd, servers, names, display=xvfb.display, work=work,
                              results=results, failures=failures)
            finally:
                for s in servers.values():
                    rc = s.stop(check=False)
                    if s.kind == "ours" and rc != 0:
                        failures.append(f"our server exited with status {rc} on SIGTERM")
    report(results, args.rounds)
    for f in failures:
        print(f"FAILED {f[:2000]}")
    if args.json:
        args.json.write_text(json.dumps({"rounds": args.rounds, "results": results,
                                         "failures": failures}, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
