"""Build native/vv_rewrite.c standalone: warning-clean, and under ASan/UBSan.

rewrite_fuzz.c (beside this file) stresses the map (against a plain array,
through growth, shrinking and a hash-flooding attack) and feeds random
command buffers to the rewriter, checking invariants that hold for any
input. Built with -fsanitize=address,undefined, any out-of-bounds access,
undefined behaviour or leak fails the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "native"
DRIVER = Path(__file__).resolve().parent / "rewrite_fuzz.c"
CC = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler")

WARNINGS = ["-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-Werror"]


def _compile(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CC, *args], check=False, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("std", ["c11", "gnu11"])
def test_vv_rewrite_compiles_warning_clean(tmp_path, std):
    out = tmp_path / "vv_rewrite.o"
    src = str(NATIVE / "vv_rewrite.c")
    res = _compile([f"-std={std}", "-O2", *WARNINGS, "-c", src, "-o", str(out)])
    assert res.returncode == 0, res.stderr


@pytest.mark.timeout(600)
def test_stress_and_fuzz_under_asan_ubsan(tmp_path):
    exe = tmp_path / "rewrite_fuzz"
    res = _compile(
        [
            "-std=c11",
            "-O1",
            "-g",
            "-fno-omit-frame-pointer",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            *WARNINGS,
            f"-I{NATIVE}",
            str(DRIVER),
            "-o",
            str(exe),
        ]
    )
    if res.returncode != 0 and "sanitize" in res.stderr:
        pytest.skip(f"sanitizers unavailable: {res.stderr.strip()[:200]}")
    assert res.returncode == 0, res.stderr
    env = {
        **os.environ,
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:halt_on_error=1",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    }
    for seed in ("1", "0x5eed"):
        run = subprocess.run(
            [str(exe), "4000", seed],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            timeout=540,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert run.stdout.strip().endswith("ok"), run.stdout
