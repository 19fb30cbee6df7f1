"""Build and run every fuzz target: ``make fuzz FUZZ_SECONDS=N``.

Why: one command that fuzzes all of the attack surface for a time budget and fails on
any crash, leak or hang, for developers and CI alike.

How: the libFuzzer targets (``fuzz_engine``: native/vv_fast.c against fake_virgl.c;
``fuzz_rewrite``: native/vv_rewrite.c) are built with clang -fsanitize=fuzzer,address,
undefined into build/fuzz/. The budget is split among them, the codec's atheris target
and the whole-server fuzzer (in both isolation modes: ``server``, ``server-process``) by
``SHARES``. Each libFuzzer run starts from the committed
seeds (tests/fuzz/corpus/<target>) plus what earlier runs found (fuzz-out/corpus/
<target>), with -timeout (a hang), -rss_limit_mb and LeakSanitizer (a leak) on; any of
them, a sanitizer report or a failed check ends the run non-zero and leaves the input in
fuzz-out/<target>/. Per target it prints the executions and libFuzzer's final cov/ft
(the server fuzzer's cov: distinct reasons it dropped a client). A crashing input goes
to tests/fuzz/regressions/<target>/, replayed by test_fuzz.py.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NATIVE = ROOT / "native"
BUILD = ROOT / "build" / "fuzz"
OUT = ROOT / "fuzz-out"
# the clang the Makefile installs: 14 on Debian 12, 19 on Debian 13 (CLANG_VERSION there)
CLANG_VERSION = os.environ.get("CLANG_VERSION", "")
SANITIZE = "-fsanitize=fuzzer,address,undefined"
LIBFUZZER_FLAGS = ["-timeout=10", "-rss_limit_mb=2048", "-max_len=65536",
                   "-print_final_stats=1", "-detect_leaks=1"]
# what each libFuzzer target is made of (beside tests/fuzz/<name>.c)
SOURCES = {
    "fuzz_engine": [HERE / "fake_virgl.c", NATIVE / "vv_fast.c", NATIVE / "vv_rewrite.c",
                    NATIVE / "vv_glue.c"],
    "fuzz_rewrite": [NATIVE / "vv_rewrite.c"],
}
LIBS = {"fuzz_engine": ["-lEGL", "-lpthread"], "fuzz_rewrite": []}
TARGETS = ("engine", "rewrite", "codec", "server", "server-process")
SHARES = {"engine": 0.35, "rewrite": 0.15, "codec": 0.2, "server": 0.15,
          "server-process": 0.15}
# the whole-server fuzzer's isolation mode per target (one corpus, one regressions dir)
SERVER_ISOLATION = {"server": "shared", "server-process": "process"}
MIN_SECONDS = 3


def clang() -> str:
    names = [f"clang-{CLANG_VERSION}"] if CLANG_VERSION else [f"clang-{v}" for v in (19, 14)]
    for name in (*names, "clang"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit(f"{names[0]} is missing: `make setup` installs it")


def build(name: str) -> Path:
    """Build build/fuzz/<name> if a source is newer; its path."""
    exe = BUILD / name
    src = [HERE / f"{name}.c", *SOURCES[name]]
    headers = [*NATIVE.glob("*.h"), HERE / "fake_virgl.h", HERE / "check.h"]
    if exe.exists() and all(exe.stat().st_mtime >= f.stat().st_mtime for f in src + headers):
        return exe
    BUILD.mkdir(parents=True, exist_ok=True)
    cmd = [clang(), "-std=gnu11", "-g", "-O1", "-fno-omit-frame-pointer", SANITIZE,
           "-fno-sanitize-recover=undefined", f"-I{NATIVE}", f"-I{HERE}",
           "-I/usr/include/virgl", *map(str, src), *LIBS[name], "-o", str(exe)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode:
        raise SystemExit(f"building {name} failed:\n{' '.join(cmd)}\n{res.stderr}")
    return exe


def inputs_dir(target: str) -> str:
    """The name of ``target``'s directories under corpus/ and regressions/."""
    return "server" if target in SERVER_ISOLATION else target


def command(target: str, seconds: float, inputs: list[Path] | None = None,
            out: Path = OUT, seed: int | None = None) -> list[str]:
    """The command that fuzzes ``target`` for ``seconds`` (or replays ``inputs``); crash
    files go to ``out``/<target>, the corpus grows in ``out``/corpus/<target>. A ``seed``
    makes the mutations repeat (random by default)."""
    artifacts = out / target
    artifacts.mkdir(parents=True, exist_ok=True)
    if target in SERVER_ISOLATION:
        argv = [sys.executable, str(HERE / "fuzz_server.py"), "--out", str(artifacts),
                "--isolation", SERVER_ISOLATION[target]]
        if seed is not None:
            argv += ["--seed", str(seed)]
        return argv + ([str(p) for p in inputs] if inputs is not None
                       else ["--seconds", str(seconds)])
    if target == "codec":
        argv = [sys.executable, str(HERE / "fuzz_codec.py")]
    else:
        argv = [str(build(f"fuzz_{target}"))]
    argv += [*LIBFUZZER_FLAGS, f"-artifact_prefix={artifacts}/"]
    if seed is not None:
        argv.append(f"-seed={seed}")
    if inputs is not None:
        return [*argv, "-runs=1", *map(str, inputs)]
    work = out / "corpus" / target
    work.mkdir(parents=True, exist_ok=True)
    return [*argv, f"-max_total_time={max(1, round(seconds))}", str(work),
            str(HERE / "corpus" / target)]


@dataclass
class Result:
    target: str
    returncode: int
    execs: int
    cov: int
    ft: int
    seconds: float
    tail: str

    def line(self) -> str:
        verdict = "ok" if self.returncode == 0 else f"FAILED (status {self.returncode})"
        return (f"{self.target:14} {self.execs:>10} execs {self.cov:>6} cov {self.ft:>7} ft "
                f"{self.seconds:6.0f} s  {verdict}")


_DONE_RE = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+)(?: ft: (\d+))?")  # the last report
_STAT_RE = re.compile(r"stat::number_of_executed_units: (\d+)")


def _env(target: str) -> dict[str, str]:
    """The environment of ``target``'s process. The server target (a real server, the
    binding in it) runs in the suite's: under ``make test-asan`` that is the sanitized
    binding with its runtime preloaded. The others get no preloaded runtime: the
    libFuzzer targets have clang's linked in (two ASan runtimes refuse to start), and
    atheris' libFuzzer (the codec, pure Python) takes its coverage callbacks from the
    first library that defines them, which a preloaded ASan runtime would be."""
    if target in SERVER_ISOLATION:
        return dict(os.environ)
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


def run_target(target: str, seconds: float, inputs: list[Path] | None = None,
               out: Path = OUT, seed: int | None = None) -> Result:
    start = time.monotonic()
    proc = subprocess.run(command(target, seconds, inputs, out, seed), cwd=ROOT, env=_env(target),
                          capture_output=True, text=True, errors="replace", check=False,
                          timeout=seconds + 300)
    out = proc.stdout + proc.stderr
    done = _DONE_RE.findall(out)
    stat = _STAT_RE.findall(out)
    execs = int(stat[-1]) if stat else int(done[-1][0]) if done else 0
    cov = int(done[-1][1]) if done else 0
    ft = int(done[-1][2]) if done and done[-1][2] else 0
    return Result(target, proc.returncode, execs, cov, ft, time.monotonic() - start,
                  out[-6000:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="in total, for all targets")
    ap.add_argument("targets", nargs="*", help=f"some of {', '.join(TARGETS)} (default: all)")
    args = ap.parse_args()
    targets = args.targets or list(TARGETS)
    if unknown := set(targets) - set(TARGETS):
        ap.error(f"unknown targets: {', '.join(sorted(unknown))}")
    total = sum(SHARES[t] for t in targets)
    results = []
    for t in targets:
        seconds = max(MIN_SECONDS, args.seconds * SHARES[t] / total)
        print(f"fuzzing {t} for {seconds:.0f} s ...", flush=True)
        r = run_target(t, seconds)
        if r.returncode:
            print(r.tail, flush=True)
        results.append(r)
        print(r.line(), flush=True)
    print("\nmake fuzz summary")
    for r in results:
        print(r.line())
    failed = [r.target for r in results if r.returncode]
    if failed:
        print(f"fuzzing found problems in: {', '.join(failed)}; inputs in {OUT}/")
        sys.exit(1)


if __name__ == "__main__":
    main()
