"""cffi build script (out-of-line API mode) for virgl_viewer._native.

Why: one compiled module owns every C-level contact with libvirglrenderer and
EGL. The declarations cffi sees live in *_cdef.h files (plain C, parsed by
cffi); the implementation is the .c files beside this script.
"""
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _rel(path: Path) -> str:
    # setuptools wants sources relative to setup.py
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _pkg_config(*args: str) -> str:
    return subprocess.run(["pkg-config", *args, "virglrenderer"], check=True,
                          capture_output=True, text=True).stdout.strip()


def _virgl_version() -> int:
    """The installed libvirglrenderer's version, major * 10000 + minor * 100 + micro
    (its header only says so itself since 1.1: virgl-version.h)."""
    parts = [int(p) for p in _pkg_config("--modversion").split(".")[:3]]
    parts += [0] * (3 - len(parts))
    return parts[0] * 10000 + parts[1] * 100 + parts[2]


CDEFS = ["virgl_cdef.h", "glue_cdef.h", "glue_api.h", "rewrite_cdef.h", "present_cdef.h",
         "ring_cdef.h", "fast_cdef.h", "fast_api.h", "vv_limits.h", "memobj_cdef.h"]
SOURCES = ["vv_glue.c", "vv_rewrite.c", "vv_present.c", "vv_ring.c", "vv_fast.c", "vv_memobj.c"]
HEADERS = ["vv_glue.h", "vv_rewrite.h", "vv_present.h", "vv_ring.h", "vv_fast.h", "vv_memobj.h"]


def _generate() -> None:
    """vv_protocol.h from protocol.py (the numbers are written there only)."""
    subprocess.run([sys.executable, str(HERE / "gen_protocol.py")], check=True)


def make_builder(cflags: Sequence[str] = ("-O2",), ldflags: Sequence[str] = (),
                 for_setuptools: bool = False) -> FFI:
    """The cffi builder of virgl_viewer._native; tests rebuild it with other flags
    (sanitizers). setuptools wants the sources relative to setup.py."""
    _generate()
    ffi = FFI()
    ffi.cdef("\n".join((HERE / name).read_text() for name in CDEFS))
    ffi.set_source(
        "virgl_viewer._native",
        "".join(f'#include "{h}"\n' for h in HEADERS),
        sources=[_rel(HERE / s) if for_setuptools else str(HERE / s) for s in SOURCES],
        include_dirs=[str(HERE)],
        define_macros=[("VV_VIRGL_VERSION", str(_virgl_version()))],
        libraries=["EGL", "OpenGL"],
        extra_compile_args=[*cflags, "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11",
                            *shlex.split(_pkg_config("--cflags"))],
        extra_link_args=[*ldflags, *shlex.split(_pkg_config("--libs"))],
    )
    return ffi


ffibuilder = make_builder(for_setuptools=True)



def main(argv: Sequence[str] | None = None) -> None:
    """``python native/build_native.py [--out DIR] [--cflags FLAGS] [--ldflags FLAGS]``:
    builds the module into DIR (``make test-asan`` builds its sanitized one into
    build/asan this way, beside and not over the normal build) and prints its path."""
    import argparse
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--out", default=str(ROOT / "build" / "cffi"))
    ap.add_argument("--cflags", default="-O2", help="compiler flags (one string)")
    ap.add_argument("--ldflags", default="", help="linker flags (one string)")
    args = ap.parse_args(argv)
    ffi = make_builder(cflags=shlex.split(args.cflags), ldflags=shlex.split(args.ldflags))
    print(ffi.compile(tmpdir=args.out, verbose=True))


if __name__ == "__main__":
    main()
