"""``make test-asan``: every Python process of the run loads the sanitized build of
``virgl_viewer._native`` (``$VV_NATIVE_MODULE``, built into build/asan/), not the normal
one beside the sources.

Why a hook and not sys.path: the suite and the servers, viewers and guests it starts run
``python -m ...`` with the checkout as working directory, so the checkout's
``virgl_viewer/`` (and the normal ``_native`` in it) comes first on sys.path. Python
imports this module at startup in every process that inherits ``PYTHONPATH`` (the
Makefile puts this directory there); the finder answers for that one module and leaves
every other import alone. A process that loads the sanitized module without the ASan
runtime preloaded fails at once ("ASan runtime does not come first"), so a child that
lost the environment cannot quietly run unsanitized.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from importlib.machinery import ModuleSpec
from types import ModuleType

MODULE = "virgl_viewer._native"


class SanitizedNativeFinder:
    """Finds ``virgl_viewer._native`` at ``path``; nothing else."""

    def __init__(self, path: str) -> None:
        self.path = path

    def find_spec(self, fullname: str, path: object = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname != MODULE:
            return None
        return importlib.util.spec_from_file_location(fullname, self.path)


_path = os.environ.get("VV_NATIVE_MODULE")
if _path:
    sys.meta_path.insert(0, SanitizedNativeFinder(_path))
