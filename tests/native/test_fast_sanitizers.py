"""The C fast path (native/vv_fast.c) under ASan/UBSan, serving real clients.

vv_fast.c parses what hostile clients send and owns their resources' memory,
so the binding is rebuilt here with -fsanitize=address,undefined and the
server tests that feed it (well-formed traffic, every hostile-input case,
client churn, the C/Python hand-offs, and the scanout ring of native/vv_ring.c)
run against that build in a child
pytest: any out-of-bounds access or undefined behaviour in the C path ends
the child with the sanitizer's report. Leak checking is off: CPython itself
does not free everything at exit; fd and memory return is asserted by the
tests themselves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "native"
CC = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
SERVER_TESTS = ["test_server_fast_path.py", "test_server_basic.py", "test_server_bad_input.py",
                "test_server_isolation.py", "test_server_churn.py", "test_frame_ring.py"]

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler")


def test_vv_fast_compiles_warning_clean(tmp_path: Path) -> None:
    res = subprocess.run(
        [CC, "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wshadow", "-Werror", f"-I{NATIVE}",
         "-I/usr/include/virgl", "-c", str(NATIVE / "vv_fast.c"), "-o", str(tmp_path / "f.o")],
        check=False, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def _runtime(name: str) -> str:
    path = subprocess.run([CC, f"-print-file-name={name}"], check=True, capture_output=True,
                          text=True).stdout.strip()
    if not os.path.isabs(path):
        pytest.skip(f"{name} not found")
    return path


@pytest.mark.timeout(900)
def test_server_tests_pass_under_asan_ubsan(tmp_path: Path) -> None:
    sys.path.insert(0, str(NATIVE))
    try:
        import build_native as b
    finally:
        sys.path.remove(str(NATIVE))
    sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    ffi = b.make_builder(cflags=["-O1", "-g", "-fno-omit-frame-pointer", *sanitize],
                         ldflags=sanitize)
    built = Path(ffi.compile(tmpdir=str(tmp_path / "build")))
    # A copy of the package whose _native is the sanitized build (the
    # interpreter-specific suffix wins over the regular .abi3.so).
    pkg = tmp_path / "site" / "virgl_viewer"
    shutil.copytree(ROOT / "virgl_viewer", pkg,
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    shutil.copy(built, pkg / built.name)
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path / "site"),
        "LD_PRELOAD": f"{_runtime('libasan.so')}:{_runtime('libubsan.so')}",
        # reports go to files: the child pytest captures fd 2 and loses it on abort
        "ASAN_OPTIONS": f"detect_leaks=0:halt_on_error=1:log_path={tmp_path}/asan",
        "UBSAN_OPTIONS": f"print_stacktrace=1:halt_on_error=1:log_path={tmp_path}/ubsan",
    }
    which = subprocess.run(
        [sys.executable, "-c", "import virgl_viewer._native as n; print(n.__file__)"],
        check=True, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert which.stdout.strip() == str(pkg / built.name)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         # Peak-RSS budgets measure ASan's shadow and quarantine here, not us (18 MiB
         # on Debian 13's GCC 14); they run in the normal suite.
         # The shared mode's variants: the process mode's run the same C path in worker
         # processes (make test-asan covers those); here they would double the time.
         "-k", "not allocate_nothing and not allocates_nothing and not process",
         *(str(ROOT / "tests" / "integration" / t) for t in SERVER_TESTS)],
        check=False, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=840)
    reports = [p.read_text(errors="replace")
               for p in sorted([*tmp_path.glob("asan.*"), *tmp_path.glob("ubsan.*")])]
    report = "\n".join(r[:4000] for r in reports) + run.stdout[-4000:] + run.stderr[-4000:]
    assert not reports, report
    assert run.returncode == 0, report
    assert " passed" in run.stdout, report
