"""Stand-in for the cffi module that native/build_native.py compiles.

The compiled ``_native.cpython-*.so`` beside this file is what ``import
virgl_viewer._native`` loads: in a directory, Python tries extension modules before
source files. This file is read only by the tools (mypy sees ``ffi`` and ``lib`` as
Any, import-linter sees who imports the module: the binding, virgl_viewer.virgl,
alone), and by an import when the extension was never built.
"""

from typing import Any

ffi: Any
lib: Any

raise ImportError("virgl_viewer._native is not built: run `make setup`")
