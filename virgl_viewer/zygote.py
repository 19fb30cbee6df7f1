"""The zygote: forks renderer workers that start fast.

Why: a worker must start in milliseconds, and forking is only safe from a process with
one thread and no GL state. How: ``python -m virgl_viewer.zygote --fd N`` (started once
by worker_pool.WorkerPool) imports everything a worker runs and loads Mesa's driver
(virgl.preload_gl_driver) but initialises nothing; its channel's first datagram is the
WorkerConfig. For each "spawn" datagram (one end of a new socketpair riding along) it
forks; the child becomes a worker (worker.run_worker_child). It reaps its children and
reports ["spawned", pid] and ["exited", pid, waitpid status]; at EOF (the main process is
gone) it SIGKILLs the workers left and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import selectors
import signal
import socket
import sys

from virgl_viewer.worker import WorkerConfig, run_worker_child
from virgl_viewer.worker_events import encode


def run_zygote(chan: socket.socket, cfg: WorkerConfig) -> int:
    """Fork a worker for each ["spawn"] + fd; report ["spawned", pid] and
    ["exited", pid, status] (waitpid status) on ``chan``. Ends at EOF."""
    from virgl_viewer import session  # noqa: F401  # imported once, for every worker
    from virgl_viewer.egl import SurfacelessProvider  # noqa: F401
    from virgl_viewer.renderer import RenderHost  # noqa: F401
    from virgl_viewer.snapshots import SnapshotWriter  # noqa: F401
    from virgl_viewer.virgl import preload_gl_driver
    from virgl_viewer.worker_frames import FrameExporter  # noqa: F401

    preload_gl_driver()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wfd)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sel = selectors.DefaultSelector()
    sel.register(chan, selectors.EVENT_READ)
    sel.register(rfd, selectors.EVENT_READ)
    children: set[int] = set()
    while True:
        for key, _ in sel.select():
            if key.fileobj == rfd:
                with contextlib.suppress(BlockingIOError):
                    os.read(rfd, 4096)
                _reap(chan, children)
                continue
            try:
                data, fds, _f, _a = socket.recv_fds(chan, 4096, 1)
            except InterruptedError:
                continue
            if not data:
                for fd in fds:
                    os.close(fd)
                for pid in children:  # the main process is gone: so are they
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                return 0
            if len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                continue
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    signal.set_wakeup_fd(-1)
                    sel.close()
                    os.close(rfd)
                    os.close(wfd)
                    chan.close()
                    code = run_worker_child(socket.socket(fileno=fds[0]), cfg)
                finally:
                    logging.shutdown()
                    os._exit(code)
            os.close(fds[0])
            children.add(pid)
            chan.send(encode([["spawned", pid]]))


def _reap(chan: socket.socket, children: set[int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        with contextlib.suppress(OSError):
            chan.send(encode([["exited", pid, status]]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="virgl_viewer.zygote",
                                description="virgl-viewer's renderer zygote (internal)")
    p.add_argument("--fd", type=int, required=True,
                   help="the channel to the main process; its first datagram is the config")
    args = p.parse_args(argv)
    chan = socket.socket(fileno=args.fd)
    cfg = WorkerConfig.from_json(chan.recv(1 << 16).decode())
    logging.basicConfig(level=getattr(logging, cfg.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    return run_zygote(chan, cfg)


if __name__ == "__main__":
    sys.exit(main())
