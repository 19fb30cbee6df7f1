"""Venus A/B: Vulkan guests through our server against virgl_test_server --venus.

    python bench/venus_bench.py [--rounds 5] [--iterations 10] [--json OUT]

Both servers run with --venus for the whole run, each on a private socket, in the same
environment; the guests are Mesa's venus (tests/support/venus.py: venus_env) running

  vkcheck     build/vk_check --iterations N: its own rate, iterations/s (an iteration is
              a render, a dispatch, their read-back through 7168 occlusion queries and
              the checks; every one must pass)
  vkstart     build/vk_check --iterations 1 as a whole process: seconds (instance,
              device, pipelines: hundreds of venus round trips through the server)
  vulkaninfo  vulkaninfo --summary as a whole process: seconds

Each round runs every bench once per server, the servers' order flipping every round.
Prints per-server medians and the ratio ours/upstream (for rates above 1 is better for
us, for seconds below 1 is). Needs the Debian 13 stack (libvirglrenderer 1.1 with
virgl_render_server, Mesa's venus ICD) and `make setup` (build/vk_check).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))

from support.servers import Server, ServerKind  # noqa: E402
from support.venus import run_vk_check, venus_env  # noqa: E402

KINDS: tuple[ServerKind, ServerKind] = ("ours", "upstream")
Bench = Callable[[Server, int], float]


def vkcheck(server: Server, iterations: int) -> float:
    result = run_vk_check(venus_env(server.socket_path), iterations=iterations)
    result.assert_passed()
    return result.rate


def vkstart(server: Server, _iterations: int) -> float:
    t0 = time.monotonic()
    result = run_vk_check(venus_env(server.socket_path), iterations=1)
    dt = time.monotonic() - t0
    result.assert_passed()
    return dt


def vulkaninfo(server: Server, _iterations: int) -> float:
    t0 = time.monotonic()
    subprocess.run(["vulkaninfo", "--summary"], env=venus_env(server.socket_path),
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True, timeout=120)
    return time.monotonic() - t0


BENCHES: dict[str, tuple[Bench, str]] = {
    "vkcheck": (vkcheck, "iterations/s"),
    "vkstart": (vkstart, "s"),
    "vulkaninfo": (vulkaninfo, "s"),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=10, help="vk_check's, in vkcheck")
    ap.add_argument("--json", metavar="OUT", help="also write every sample as JSON")
    args = ap.parse_args(argv)
    samples: dict[str, dict[str, list[float]]] = {b: {k: [] for k in KINDS} for b in BENCHES}
    with tempfile.TemporaryDirectory(prefix="vv-venus-bench-") as d:
        servers = {k: Server(k, Path(d) / f"{k}.sock", Path(d) / f"{k}.log", venus=True)
                   for k in KINDS}
        for s in servers.values():
            s.start()
        try:
            for rnd in range(args.rounds):
                order = KINDS if rnd % 2 == 0 else KINDS[::-1]
                for name, (fn, unit) in BENCHES.items():
                    for kind in order:
                        value = fn(servers[kind], args.iterations)
                        samples[name][kind].append(value)
                        print(f"round {rnd + 1} {name:10s} {kind:8s} {value:9.3f} {unit}",
                              flush=True)
        finally:
            for s in servers.values():
                s.stop(check=False)
    print(f"\nmedians over {args.rounds} rounds (alternating), ours/upstream:")
    for name, (_fn, unit) in BENCHES.items():
        ours = statistics.median(samples[name]["ours"])
        up = statistics.median(samples[name]["upstream"])
        print(f"  {name:10s} ours {ours:9.3f}  upstream {up:9.3f} {unit:13s} "
              f"ratio {ours / up:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(samples, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
