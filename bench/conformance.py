"""piglit conformance through our server and/or virgl_test_server, against the reference.

    python bench/conformance.py [--slice full|ci] [--server ours|upstream|both] [--json OUT]

Runs ``piglit run -p mixed_glx_egl -c --timeout 60 --test-list LIST quick OUT`` (see
/work/shared/conformance/README.md) with Mesa's virpipe client pointed at a private
socket through ``build/vtest_redirect.so``, one Xvfb for the whole run. Prints pass/fail/
skip/crash and wall time per server, and the regressions: tests whose reference result
through virgl_test_server (the ``virgl`` column) is ``pass`` but which did not pass here.
Exits 1 on any regression, crash, or a server that died or did not stop cleanly. With
``--server both`` ours is held against upstream's results in the same run instead (tests
it passes that ours does not, crashes it does not have): on another Debian release the
reference file, Debian 12's, is not that release's reference.

``--slice full`` is piglit-dev.txt (300 tests, ~70 s a server); ``--slice ci`` is
``bench/piglit-ci.tsv``: a fixed subset with its reference rows, so CI needs no
/work/shared. It was picked once from the full list's piglit timings through upstream
(every family kept, slow tests left out; see docs/testing.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))

from support import piglit  # noqa: E402
from support.mesa import mesa_env  # noqa: E402
from support.servers import Server, ServerError, ServerKind  # noqa: E402
from support.xvfb import Xvfb  # noqa: E402

CI_SLICE = BENCH_DIR / "piglit-ci.tsv"


@dataclass
class ServerRun:
    """One server's pass over the list."""

    kind: ServerKind
    results: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("pass", "fail", "skip", "crash"), 0)
        for r in self.results.values():
            counts[r] = counts.get(r, 0) + 1
        return counts


def load_slice(name: str, list_path: Path | None,
               ref_path: Path | None) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The test names and the reference table for ``--slice``."""
    if name == "ci":
        table = piglit.read_reference(list_path or CI_SLICE)
        return list(table), table
    names = piglit.read_list(list_path or piglit.DEV_LIST)
    return names, piglit.read_reference(ref_path or piglit.DEV_REFERENCE)


def run_server(kind: ServerKind, names: list[str], xvfb: Xvfb, outdir: Path, *,
               jobs: int | None, timeout: int) -> ServerRun:
    run = ServerRun(kind)
    sock_dir = Path(tempfile.mkdtemp(prefix=f"vv-conf-{kind}-"))
    server = Server(kind, sock_dir / "vtest.sock", outdir / f"{kind}-server.log")
    print(f"== {kind}: {len(names)} tests (server log {server.log_path})", flush=True)
    server.start()
    try:
        env = mesa_env(server.socket_path, xvfb.display)
        done = piglit.run_list(names, outdir / kind, env, jobs=jobs, timeout=timeout)
        run.results, run.seconds = done.results, done.seconds
        if not server.alive():
            run.problems.append(f"{kind} server died during the run")
    finally:
        try:
            server.stop(check=True)
        except ServerError as exc:
            run.problems.append(str(exc).splitlines()[0])
        shutil.rmtree(sock_dir, ignore_errors=True)
    return run


def regressions(run: ServerRun, reference: dict[str, dict[str, str]]) -> list[str]:
    """Tests that pass in the reference's ``virgl`` column but not in ``run``."""
    return sorted(n for n, r in run.results.items()
                  if reference.get(n, {}).get("virgl") == "pass" and r != "pass")


def lost(run: ServerRun, upstream: ServerRun) -> list[str]:
    """Tests the same run's virgl_test_server passes that ``run`` does not."""
    return sorted(n for n, r in run.results.items()
                  if upstream.results.get(n) == "pass" and r != "pass")


def report(runs: list[ServerRun], reference: dict[str, dict[str, str]]) -> bool:
    """Print the summary; True when everything is acceptable. With both servers, ours is
    held against upstream's results in this run (the release's own, as the reference
    file is one stack's); alone, against the reference."""
    ok = True
    ref_counts = dict.fromkeys(("pass", "fail", "skip", "crash"), 0)
    for n in runs[0].results if runs else []:
        r = reference.get(n, {}).get("virgl", "?")
        ref_counts[r] = ref_counts.get(r, 0) + 1
    print(f"\n{'server':<10}{'pass':>6}{'fail':>6}{'skip':>6}{'crash':>7}{'other':>7}"
          f"{'wall s':>9}")
    for label, counts, secs in ([("reference", ref_counts, None)]
                                + [(r.kind, r.counts(), r.seconds) for r in runs]):
        other = sum(v for k, v in counts.items() if k not in ("pass", "fail", "skip", "crash"))
        wall = f"{secs:9.1f}" if secs is not None else f"{'-':>9}"
        print(f"{label:<10}{counts['pass']:>6}{counts['fail']:>6}{counts['skip']:>6}"
              f"{counts['crash']:>7}{other:>7}{wall}")
    by_kind = {r.kind: r for r in runs}
    if "ours" in by_kind and "upstream" in by_kind and by_kind["upstream"].seconds:
        print(f"wall time ours/upstream: "
              f"{by_kind['ours'].seconds / by_kind['upstream'].seconds:.2f}")
    same_run = by_kind.get("upstream") if "ours" in by_kind else None
    for run in runs:
        regs = regressions(run, reference)
        crashes = sorted(n for n, r in run.results.items() if r in ("crash", "timeout"))
        if same_run is not None:
            losses = lost(run, same_run) if run is not same_run else []
            upstream_crashes = {n for n, r in same_run.results.items()
                                if r in ("crash", "timeout")}
            print(f"\n{run.kind}: {len(losses)} lost against virgl_test_server in this run "
                  f"({len(regs)} against the reference file)")
            for n in losses:
                print(f"  LOST {n}: {run.results[n]} (virgl_test_server: pass)")
            ours_crashes = [n for n in crashes if n not in upstream_crashes]
            for n in crashes:
                print(f"  CRASH {n}: {run.results[n]}")
            for p in run.problems:
                print(f"  PROBLEM {p}")
            ok = ok and not losses and not run.problems and (
                run is same_run or not ours_crashes)
            continue
        gains = sorted(n for n, r in run.results.items()
                       if r == "pass" and reference.get(n, {}).get("virgl") != "pass")
        print(f"\n{run.kind}: {len(regs)} regression(s) against the reference")
        for n in regs:
            print(f"  REGRESSION {n}: {run.results[n]} (reference pass)")
        for n in crashes:
            print(f"  CRASH {n}: {run.results[n]}")
        for n in gains:
            print(f"  better than reference: {n} ({reference.get(n, {}).get('virgl', '?')})")
        for p in run.problems:
            print(f"  PROBLEM {p}")
        ok = ok and not regs and not crashes and not run.problems
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slice", choices=["full", "ci"], default="full")
    ap.add_argument("--server", choices=["ours", "upstream", "both"], default="ours")
    ap.add_argument("--list", type=Path, help="test list (ci: a reference-style .tsv)")
    ap.add_argument("--reference", type=Path, help="reference .tsv (full slice)")
    ap.add_argument("--jobs", type=int, help="piglit -j (default: number of CPUs)")
    ap.add_argument("--timeout", type=int, default=60, help="per-test timeout, s")
    ap.add_argument("--out", type=Path, help="output dir (default bench/results/...)")
    ap.add_argument("--json", type=Path, help="also write results as JSON here")
    args = ap.parse_args(argv)

    names, reference = load_slice(args.slice, args.list, args.reference)
    outdir = args.out or BENCH_DIR / "results" / time.strftime(f"conformance-{args.slice}-"
                                                              "%Y%m%d-%H%M%S")
    outdir.mkdir(parents=True, exist_ok=True)
    kinds: list[ServerKind] = (["upstream", "ours"] if args.server == "both"
                               else ["ours" if args.server == "ours" else "upstream"])
    runs: list[ServerRun] = []
    with Xvfb(log_path=outdir / "xvfb.log") as xvfb:
        for kind in kinds:
            runs.append(run_server(kind, names, xvfb, outdir, jobs=args.jobs,
                                   timeout=args.timeout))
    ok = report(runs, reference)
    if args.json:
        args.json.write_text(json.dumps(
            {r.kind: {"seconds": r.seconds, "counts": r.counts(), "results": r.results,
                      "regressions": regressions(r, reference), "problems": r.problems,
                      **({"lost": lost(r, runs[0])} if len(runs) == 2 and r is runs[1] else {})}
             for r in runs}, indent=1))
    print(f"\nresults in {outdir}: {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
