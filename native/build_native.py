"""cffi build script (out-of-line API mode) for virgl_viewer._native.

Why: one compiled module owns every C-level contact with libvirglrenderer and
EGL. The declarations cffi sees live in *_cdef.h files (plain C, parsed by
cffi); the implementation is the .c files beside this script.
"""
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


CDEFS = ["virgl_cdef.h", "glue_cdef.h", "rewrite_cdef.h", "present_cdef.h", "ring_cdef.h", "fast_cdef.h"]
SOURCES = ["vv_glue.c", "vv_rewrite.c", "vv_present.c", "vv_ring.c", "vv_fast.c"]

ffibuilder = FFI()
ffibuilder.cdef("\n".join((HERE / name).read_text() for name in CDEFS))
ffibuilder.set_source(
    "virgl_viewer._native",
    '#include "vv_glue.h"\n#include "vv_rewrite.h"\n#include "vv_present.h"\n#include "vv_ring.h"\n#include "vv_fast.h"\n',
    sources=[_rel(HERE / s) for s in SOURCES],
    include_dirs=[str(HERE), "/usr/include/virgl"],
    libraries=["virglrenderer", "EGL", "OpenGL"],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(ROOT / "build" / "cffi"), verbose=True)
