"""Start a child the way a hostile or careless parent would: with signals blocked
(some CI runners and chroot launchers do; the mask survives exec) or with a small
fd limit. The settings are applied by a short Python trampoline that then execs
the real command, so the test process never forks with a preexec_fn."""

from __future__ import annotations

import signal
import sys

_TRAMPOLINE = (
    "import os, resource, signal, sys\n"
    "blocked, nofile = sys.argv[1], int(sys.argv[2])\n"
    "if blocked:\n"
    "    signal.pthread_sigmask(signal.SIG_BLOCK, [int(s) for s in blocked.split(',')])\n"
    "if nofile:\n"
    "    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)


def launched(argv: list[str], *, blocked: frozenset[signal.Signals] = frozenset(),
             nofile: int | None = None) -> list[str]:
    """``argv`` (its first item an absolute path) started with ``blocked`` signals
    blocked and at most ``nofile`` open files; unchanged when neither is asked."""
    if not blocked and nofile is None:
        return argv
    sigs = ",".join(str(int(s)) for s in sorted(blocked))
    return [sys.executable, "-c", _TRAMPOLINE, sigs, str(nofile or 0), *argv]
