"""Stop signals reach us even when whoever started us blocked them.

A process inherits its parent's signal mask across fork and exec, and Python
installs handlers without unblocking anything: started by a runner that blocks
SIGTERM (some CI harnesses and chroot launchers do), the viewer or the test
guest never sees it and runs on until it is killed; that is the "guest kept
presenting after SIGTERM" hang seen on a fresh Debian 12 root. Call this in the
main thread before any other thread starts (threads inherit the mask)."""

from __future__ import annotations

import signal

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


def unblock(signals: frozenset[signal.Signals] = STOP_SIGNALS) -> None:
    """Unblock ``signals`` in the calling thread (the main thread: new threads
    inherit its mask)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
