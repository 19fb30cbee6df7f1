"""piglit: test lists, the reference results, single test binaries and whole runs.

A whole run is ``piglit run -p mixed_glx_egl -c --timeout 60 --test-list LIST quick OUT``
(conformance/README.md), read back from ``OUT/results.json.bz2``. A single test runs its
binary directly, with the command ``piglit print-cmd`` gives for the ``quick`` profile;
the binary reports ``PIGLIT: {"result": ...}`` on stdout.
"""

from __future__ import annotations

import bz2
import functools
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from support.mesa import ClientResult, run_client

PIGLIT_ROOT = Path("/usr/lib/x86_64-linux-gnu/piglit")
# shared/ sits beside the checkout (CI clones main next to it)
CONFORMANCE_DIR = Path(os.environ.get(
    "VV_CONFORMANCE_DIR", Path(__file__).resolve().parents[3] / "shared" / "conformance"))
DEV_LIST = CONFORMANCE_DIR / "piglit-dev.txt"
DEV_REFERENCE = CONFORMANCE_DIR / "piglit-dev.reference.tsv"
PLATFORM = "mixed_glx_egl"
RESULTS = ("pass", "fail", "skip", "crash", "timeout", "warn", "incomplete", "notrun")
_RESULT_RE = re.compile(r"^PIGLIT: (\{.*\})\s*$", re.MULTILINE)


def read_list(path: Path) -> list[str]:
    """Test names, one a line; ``#`` lines and blank lines dropped."""
    return [line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def read_reference(path: Path) -> dict[str, dict[str, str]]:
    """``test -> {column: result}`` from a tab-separated file with a ``test`` header.

    ``#`` lines are comments.
    """
    lines = [line for line in path.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    header = lines[0].split("\t")
    table: dict[str, dict[str, str]] = {}
    for line in lines[1:]:
        cells = line.split("\t")
        table[cells[0]] = dict(zip(header[1:], cells[1:], strict=False))
    return table


def piglit_env(env: dict[str, str], fast_skip: bool = False) -> dict[str, str]:
    """A Mesa client environment plus what piglit binaries need.

    Without ``fast_skip``, ``piglit run`` starts every test binary instead of skipping
    some from wflinfo's extension lists: wflinfo reports GL_EXT_gpu_shader4 only for
    compat and piglit checks GLSL 1.10 parser tests against core, so two tests that pass
    in the reference would be skipped. Running the binaries also exercises the server more.
    """
    out = dict(env, PIGLIT_PLATFORM=PLATFORM, PIGLIT_SOURCE_DIR=str(PIGLIT_ROOT))
    if not fast_skip:
        out["PIGLIT_NO_FAST_SKIP"] = "1"
    return out


@functools.cache
def _all_commands() -> dict[str, list[str]]:
    done = subprocess.run(["piglit", "print-cmd", "--format", "{name} ::: {command}", "quick"],
                          capture_output=True, text=True, check=True, timeout=120)
    commands: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        name, sep, command = line.partition(" ::: ")
        if not sep:
            continue
        argv = command.split(" ")
        # print-cmd prints binaries relative to /usr/bin (piglit's own location)
        if argv[0].startswith("../"):
            argv[0] = str((Path("/usr/bin") / argv[0]).resolve())
        commands[name] = argv
    return commands


def command_for(name: str) -> list[str]:
    """The argv piglit would run for test ``name`` (KeyError if it has none)."""
    return list(_all_commands()[name])


@dataclass
class SingleResult:
    """One piglit binary's outcome."""

    name: str
    result: str
    client: ClientResult


def result_of(client: ClientResult) -> str:
    """piglit's verdict from a binary's output, like piglit's own runner decides it."""
    if client.timed_out:
        return "timeout"
    verdicts: list[str] = []
    for line in _RESULT_RE.findall(client.stdout):
        verdict = json.loads(line).get("result")
        if isinstance(verdict, str):
            verdicts.append(verdict)
    if client.returncode is not None and client.returncode < 0:
        return "crash"
    if not verdicts:
        return "crash" if client.returncode else "fail"
    return verdicts[-1]


def run_single(name: str, env: dict[str, str], timeout: float = 60.0) -> SingleResult:
    """Run one test's binary from the piglit root (shader_runner needs that cwd)."""
    client = run_client(command_for(name), piglit_env(env), timeout, cwd=PIGLIT_ROOT)
    return SingleResult(name, result_of(client), client)


@dataclass
class RunResults:
    """A finished ``piglit run``."""

    results: dict[str, str]
    seconds: float
    output: str

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("pass", "fail", "skip", "crash"), 0)
        for r in self.results.values():
            counts[r] = counts.get(r, 0) + 1
        return counts


def load_results(outdir: Path) -> dict[str, dict[str, object]]:
    """piglit's per-test records from ``OUT/results.json.bz2`` (or ``results.json``)."""
    packed = outdir / "results.json.bz2"
    if packed.exists():
        with bz2.open(packed, "rt") as f:
            data = json.load(f)
    else:
        data = json.loads((outdir / "results.json").read_text())
    tests: dict[str, dict[str, object]] = data["tests"]
    return tests


def run_list(names: list[str], outdir: Path, env: dict[str, str], *, jobs: int | None = None,
             timeout: int = 60, wall_timeout: float = 3600.0,
             fast_skip: bool = False) -> RunResults:
    """``piglit run`` over ``names``; tests piglit did not report count as ``notrun``,
    and so do tests the installed piglit does not have (its --test-list refuses the
    whole run for one unknown name; piglit 2025 dropped some of 2022's)."""
    outdir.mkdir(parents=True, exist_ok=True)
    test_list = outdir.parent / f"{outdir.name}.list"
    known = _all_commands()
    test_list.write_text("".join(f"{n}\n" for n in names if n in known))
    argv = ["piglit", "run", "-p", PLATFORM, "-c", "--timeout", str(timeout),
            "-l", "dummy", "--test-list", str(test_list)]
    if jobs:
        argv += ["-j", str(jobs)]
    argv += ["quick", str(outdir)]
    start = time.monotonic()
    client = run_client(argv, piglit_env(env, fast_skip), wall_timeout)
    seconds = time.monotonic() - start
    if client.timed_out or not any(outdir.glob("results.json*")):
        raise RuntimeError(f"piglit run produced no results:\n{client.describe()}")
    records = load_results(outdir)
    results = {n: str(records[n]["result"]) if n in records else "notrun" for n in names}
    return RunResults(results, seconds, client.stdout + client.stderr)
