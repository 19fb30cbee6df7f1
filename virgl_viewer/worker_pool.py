"""The renderer workers of ``--isolation process``, seen from the main process.

Why: the main process must start workers fast, give each client to one, hear their
events and learn how each ended. How: ``WorkerPool`` starts the zygote once
(worker.py, ``python -m virgl_viewer.worker``) and asks it for workers over a
SOCK_SEQPACKET channel; keeps ``size`` of them initialised and idle; reads each worker's
channel (events checked by worker_events.decode_events, log records logged here) and the
zygote's reports of exit statuses; a worker is finished once its channel ended and its
status is known. ``on_event`` and ``on_finished`` go to the ProcessServer (isolation.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from virgl_viewer.errors import VirglViewerError
from virgl_viewer.worker import WorkerConfig
from virgl_viewer.worker_events import MAX_DATAGRAM, StreamError, decode_events, encode

log = logging.getLogger(__name__)

POOL_SIZE = 4  # warm workers kept ready (each 14 MiB of private memory, measured here)
STOP_TIMEOUT_S = 10.0
MAX_BOOT_FAILURES = 3  # workers in a row that die before serving: stop respawning
REFILL_DELAY_S = 0.05
MAX_STARTING = 64  # workers starting at once (see top_up)


def describe_status(status: int) -> str:
    """A waitpid status in words: "killed by SIGSEGV", "exited with status 3"."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by {name}"
    return f"exited with status {os.WEXITSTATUS(status)}"


class ServedClient(Protocol):
    """What the pool knows of the client a worker serves (isolation.RemoteSession)."""

    closed: bool
    renderer_pid: int


class WorkerLink:
    """One worker process, seen from the main process."""

    def __init__(self, chan: socket.socket) -> None:
        self.chan = chan
        self.pid = 0
        self.ready = False
        self.session: ServedClient | None = None
        self.eof = False
        self.status: int | None = None  # waitpid status, from the zygote
        self.finished = False

    def send(self, msg: list[Any], fds: list[int] | None = None) -> bool:
        try:
            if fds:
                socket.send_fds(self.chan, [encode(msg)], fds)
            else:
                self.chan.send(encode(msg))
        except OSError:
            return False
        return True


class WorkerPool:
    """The zygote and the workers it forked, on the main process's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, cfg: WorkerConfig,
                 size: int = POOL_SIZE) -> None:
        self.loop = loop
        self.cfg = cfg
        self.size = max(1, size)
        self.links: list[WorkerLink] = []
        self._unpid: deque[WorkerLink] = deque()  # spawn requests awaiting "spawned"
        self._by_pid: dict[int, WorkerLink] = {}
        self._statuses: dict[int, int] = {}  # exits reported before their link knew its pid
        self.boot_failures = 0
        self.on_event: Callable[[WorkerLink, tuple[Any, ...]], None] = lambda link, ev: None
        self.on_finished: Callable[[WorkerLink], None] = lambda link: None
        self._ready_waiters: list[asyncio.Future[None]] = []
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.zchan = ours
        ours.send(cfg.to_json().encode())  # the zygote's first datagram: its config
        self.zygote = subprocess.Popen(
            [sys.executable, "-m", "virgl_viewer.zygote", "--fd", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, start_new_session=True)
        theirs.close()
        ours.setblocking(False)
        loop.add_reader(ours.fileno(), self._on_zygote)
        self.closed = False
        self._refill: asyncio.TimerHandle | None = None
        self.top_up()

    # ------------------------------------------------------------ workers
    def at_rest(self) -> bool:
        """Exactly the warm workers wait, all ready; no worker is starting or finishing."""
        idle = self.idle()
        return (len(idle) == self.size and all(w.ready for w in idle) and not self._unpid
                and not any(w.eof or (w.session is not None and w.session.closed)
                            for w in self.links))

    def idle(self) -> list[WorkerLink]:
        return [w for w in self.links if w.session is None and not w.eof]

    def top_up(self) -> None:
        if self.closed or self.boot_failures >= MAX_BOOT_FAILURES:
            return
        try:
            idle = self.idle()
            starting = sum(1 for w in idle if not w.ready)
            # all at once: measured here, one at a time made the median connect of a
            # burst 3x slower (50 against 16 ms): starting ones use every core
            while len(idle) < self.size and starting < MAX_STARTING:
                idle.append(self.spawn())
                starting += 1
        except VirglViewerError as exc:
            log.error("%s", exc)

    def top_up_soon(self) -> None:
        """Top up after REFILL_DELAY_S, or now when no worker is left: a worker's
        start (fork, EGL, virglrenderer: ~30 ms of CPU) would otherwise compete with
        the handshake of the client just handed over, on the same cores."""
        if not self.idle():
            self.top_up()
        elif self._refill is None:
            self._refill = self.loop.call_later(REFILL_DELAY_S, self._refill_now)

    def _refill_now(self) -> None:
        self._refill = None
        self.top_up()

    def spawn(self) -> WorkerLink:
        """A new worker (VirglViewerError if the zygote is gone)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            socket.send_fds(self.zchan, [b"spawn"], [theirs.fileno()])
        except OSError as exc:
            ours.close()
            self.boot_failures = MAX_BOOT_FAILURES
            raise VirglViewerError(f"cannot start a renderer process: {exc}") from exc
        finally:
            theirs.close()
        ours.setblocking(False)
        link = WorkerLink(ours)
        self.links.append(link)
        self._unpid.append(link)
        self.loop.add_reader(ours.fileno(), self._on_worker, link)
        return link

    def take(self) -> WorkerLink:
        """The worker to give the next client: a ready one, else the one booting
        longest (the client waits in its socket until it is up). The pool does not
        grow in a burst: on a machine of few cores more workers starting at once
        only slow each other and the clients being served (measured: 16 warm on 2
        cores put the median connect at 40 ms, 4 warm at 7-10 ms)."""
        idle = self.idle()
        ready = [w for w in idle if w.ready]
        return (ready or idle or [self.spawn()])[0]

    async def wait_ready(self) -> None:
        if any(w.ready for w in self.links):
            return
        fut: asyncio.Future[None] = self.loop.create_future()
        self._ready_waiters.append(fut)
        await fut

    # ------------------------------------------------------------ channels
    def _on_zygote(self) -> None:
        while True:
            try:
                data = self.zchan.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self.loop.remove_reader(self.zchan.fileno())
                if not self.closed:
                    log.error("the renderer zygote (pid %d) is gone: no new clients can be "
                              "served", self.zygote.pid)
                    self.boot_failures = MAX_BOOT_FAILURES
                    self._fail_waiters(VirglViewerError("the renderer zygote exited"))
                return
            for ev in _decode_zygote(data):
                if ev[0] == "spawned" and self._unpid:
                    link = self._unpid.popleft()
                    link.pid = ev[1]
                    self._by_pid[link.pid] = link
                    if link.session is not None:  # given a client while it started
                        link.session.renderer_pid = link.pid
                    if link.pid in self._statuses:
                        self._exited(link, self._statuses.pop(link.pid))
                elif ev[0] == "exited":
                    found = self._by_pid.get(ev[1])
                    if found is None:
                        self._statuses[ev[1]] = ev[2]
                    else:
                        self._exited(found, ev[2])

    def _on_worker(self, link: WorkerLink, most: int = 64) -> None:
        for _ in range(most):
            try:
                data = link.chan.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._eof(link)
                return
            try:
                events = decode_events(data)
            except StreamError as exc:
                log.error("renderer worker %d sent a bad event (%s): ending it", link.pid, exc)
                self._kill(link)
                self._eof(link)
                return
            for ev in events:
                if ev[0] == "ready":
                    link.ready = True
                    self.boot_failures = 0
                    for fut in self._ready_waiters:
                        if not fut.done():
                            fut.set_result(None)
                    self._ready_waiters.clear()
                    if self._refill is None:  # else the refill timer tops up
                        self.top_up()
                elif ev[0] == "log":
                    _relog(link, ev)
                elif ev[0] != "hello":
                    self.on_event(link, ev)

    def _kill(self, link: WorkerLink) -> None:
        if link.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(link.pid, signal.SIGKILL)

    def _eof(self, link: WorkerLink) -> None:
        if link.eof:
            return
        link.eof = True
        self.loop.remove_reader(link.chan.fileno())
        self._maybe_finished(link)
        self.top_up()

    def _exited(self, link: WorkerLink, status: int) -> None:
        link.status = status
        self._by_pid.pop(link.pid, None)
        if not link.eof:  # what it sent before it exited is still to be read
            self._on_worker(link, most=1 << 30)
        if not link.eof:
            self._eof(link)
        else:
            self._maybe_finished(link)

    def _maybe_finished(self, link: WorkerLink) -> None:
        if link.finished or not link.eof or link.status is None:
            return
        link.finished = True
        link.chan.close()
        with contextlib.suppress(ValueError):
            self.links.remove(link)
        if link.session is None and not self.closed:
            self.boot_failures += 1
            log.error("renderer worker %d %s before serving a client", link.pid,
                      describe_status(link.status))
            if self.boot_failures >= MAX_BOOT_FAILURES:
                log.error("%d renderer workers in a row failed to start: not starting more",
                          self.boot_failures)
                self._fail_waiters(VirglViewerError("renderer workers fail to start"))
        self.on_finished(link)
        self.top_up()

    def _fail_waiters(self, exc: BaseException) -> None:
        for fut in self._ready_waiters:
            if not fut.done():
                fut.set_exception(exc)
        self._ready_waiters.clear()

    # ------------------------------------------------------------ shutdown
    def close(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop every worker (a final snapshot first, if configured), wait for them and
        the zygote, close every fd (blocking; on the loop thread)."""
        if self.closed:
            return
        self.closed = True
        if self._refill is not None:
            self._refill.cancel()
        for link in self.links:
            if not link.eof:
                link.send(["stop"])
        self.zchan.setblocking(True)
        end = time.monotonic() + timeout
        while any(not w.finished for w in self.links) and time.monotonic() < end:
            self.zchan.settimeout(max(0.01, end - time.monotonic()))
            try:
                data = self.zchan.recv(4096)
            except TimeoutError:
                break
            except OSError:
                break
            if not data:
                break
            for ev in _decode_zygote(data):
                gone = self._by_pid.get(ev[1]) if ev[0] == "exited" else None
                if gone is not None:
                    gone.eof = True
                    gone.status = ev[2]
                    self._by_pid.pop(gone.pid, None)
                    with contextlib.suppress(ValueError, OSError):
                        self.loop.remove_reader(gone.chan.fileno())
                    # the closing events were sent before it exited: read them
                    self._drain(gone)
                    gone.finished = True
                    self.on_finished(gone)
        for link in self.links:
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(link.chan.fileno())
            link.chan.close()
        self.links.clear()
        with contextlib.suppress(ValueError, OSError):
            self.loop.remove_reader(self.zchan.fileno())
        self.zchan.close()  # EOF: the zygote SIGKILLs any worker left, then exits
        try:
            self.zygote.wait(timeout)
        except subprocess.TimeoutExpired:
            self.zygote.kill()
            self.zygote.wait()

    def _drain(self, link: WorkerLink) -> None:
        link.chan.setblocking(False)
        while True:
            try:
                data = link.chan.recv(MAX_DATAGRAM)
            except OSError:
                return
            if not data:
                return
            try:
                for ev in decode_events(data):
                    if ev[0] == "log":
                        _relog(link, ev)
                    elif ev[0] not in ("hello", "ready"):
                        self.on_event(link, ev)
            except StreamError:
                return


def _relog(link: WorkerLink, ev: tuple[Any, ...]) -> None:
    """A worker's log record, logged here under its logger's name (one of ours, else
    this module's); the message was made safe by decode_events."""
    _kind, level, name, message = ev
    if not (name.startswith("virgl_viewer.") and name.replace(".", "_").isidentifier()):
        name = __name__
    logging.getLogger(name).log(min(max(level, logging.DEBUG), logging.CRITICAL), "%s",
                                message)


def _decode_zygote(data: bytes) -> list[tuple[str, int, int]]:
    """The zygote's reports (it never sees guest bytes, but checked all the same)."""
    out = []
    try:
        batch = json.loads(data)
    except ValueError:
        return []
    for ev in batch if isinstance(batch, list) else []:
        if (isinstance(ev, list) and len(ev) in (2, 3) and ev[0] in ("spawned", "exited")
                and all(type(v) is int for v in ev[1:])):
            out.append((ev[0], ev[1], ev[2] if len(ev) == 3 else 0))
    return out
