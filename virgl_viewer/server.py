"""The vtest server: a Unix socket served on the render thread.

Why: virglrenderer and every GL context it uses must live on one thread, and
one slow or waiting client must never stall another. How: an asyncio loop on
the render thread watches the listening socket, each client socket and
virglrenderer's poll fd with plain reader callbacks (no per-message
coroutines). Peers are checked with SO_PEERCRED; the socket is created 0600.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import os
import resource
import socket
import stat
import struct
import sys
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from virgl_viewer.budgets import DEFAULT as DEFAULT_BUDGETS
from virgl_viewer.budgets import Budgets
from virgl_viewer.errors import VirglViewerError
from virgl_viewer.renderer import RenderHost
from virgl_viewer.session import Session
from virgl_viewer.virgl import (
    PRESENT_REPORT_INTERVAL_S,
    FastPoller,
    FastSelector,
    set_budgets,
)

if TYPE_CHECKING:
    from virgl_viewer.objects import Resource
    from virgl_viewer.virgl import GLContextProvider

log = logging.getLogger(__name__)

_UCRED = struct.Struct("3i")
RESOURCE_SYNC_S = 0.1  # how often observers catch up with the C path's resources
ACCEPT_RETRY_S = 1.0  # out of fds: try accepting again after this long at the latest


def open_fd_count() -> int:
    """How many fds this process has open."""
    return len(os.listdir("/proc/self/fd")) - 1  # listdir's own


class SocketInUseError(VirglViewerError):
    pass


class ServerObserver:
    """Hooks for the state registry / UI; all called on the render thread.

    Fences have no hook (one a submit would cost Python per submit): they are
    logged in C, read with ``Session.fast.fences()`` from any thread."""

    # Whether it wants resource_created/destroyed for the resources the C path makes
    # (Python learns of those from the C engine's event log, in batches: a cost per
    # resource that nobody need pay while no observer wants them).
    wants_resources = True

    def session_named(self, s: Session) -> None: ...
    def session_closing(self, s: Session) -> None: ...  # its objects still exist
    def session_closed(self, s: Session) -> None: ...
    def resource_created(self, s: Session, r: Resource) -> None: ...
    def resource_destroyed(self, s: Session, r: Resource) -> None: ...
    def presented(self, s: Session, r: Resource, count: int) -> None:
        """``count`` presents of display target ``r``: the last one now, the others
        skipped by the rate limit since the last report (``present_interval``)."""
    def sync_changed(self, s: Session) -> None: ...


def bind_socket(path: str) -> socket.socket:
    """Bind a 0600 listening socket at ``path``, replacing a stale one.

    Raises SocketInUseError if a live server answers there, or if the path is
    something other than a socket.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise SocketInUseError(f"{path} exists and is not a socket; not touching it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            log.info("replacing stale socket %s", path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        except OSError as exc:
            raise SocketInUseError(f"{path}: {exc.strerror}") from exc
        else:
            raise SocketInUseError(f"another server is already listening on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    return sock


class ClientListener:
    """The listening socket: accepts clients, checks each peer (SO_PEERCRED) and hands
    the allowed ones to ``adopt``; pauses accepting while fds run short. ``path``
    None: no socket (a renderer worker gets its client from the main process)."""

    sessions: set[Any]

    def __init__(self, loop: asyncio.AbstractEventLoop, path: str | None,
                 allowed_uids: Iterable[int], budgets: Budgets) -> None:
        self.loop = loop
        self.budgets = budgets
        self.path = path
        self.allowed_uids = {os.getuid(), *allowed_uids}
        self.listener: socket.socket | None = None
        self._listener_ino = 0
        if path is not None:
            self.listener = bind_socket(path)
            self._listener_ino = os.stat(path).st_ino
            loop.add_reader(self.listener.fileno(), self._on_accept)
        self._accept_paused = self._accept_failing = False
        # fds kept back for the connected clients' shm, eventfds and replies: a new
        # client is accepted only while more than this many are free
        self.fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.fd_reserve = max(self.budgets.fd_reserve, self.fd_limit // 8)
        self._resume_timer: asyncio.TimerHandle | None = None
        self.closed = False

    def adopt(self, sock: socket.socket, pid: int, uid: int) -> object:
        """Serve an accepted, allowed client (non-blocking socket)."""
        raise NotImplementedError

    def _on_accept(self) -> None:
        assert self.listener is not None
        in_use = open_fd_count()  # once a wake-up (it lists /proc), then one a socket
        for _ in range(64):
            in_use += 1
            if in_use + self.fd_reserve >= self.fd_limit:
                self._pause_accept(OSError(errno.EMFILE, f"{in_use} of {self.fd_limit} fds "
                                           f"in use, {self.fd_reserve} kept for the clients "
                                           "already connected"))
                return
            try:
                sock, _addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._pause_accept(exc)
                    return
                raise
            if self._accept_failing:
                self._accept_failing = False
                log.info("accepting clients again (%d connected)", len(self.sessions))
            sock.setblocking(False)
            pid, uid, _gid = _UCRED.unpack(
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
            if uid not in self.allowed_uids:
                log.warning("refused client pid %d: uid %d is not allowed "
                            "(use --allow-uid %d)", pid, uid, uid)
                sock.close()
                continue
            self.adopt(sock, pid, uid)

    def _pause_accept(self, exc: OSError) -> None:
        """Out of fds (or memory): stop watching the listener, which stays readable
        and would make this loop spin, until a client leaves or a second passes.
        Waiting clients stay in the backlog; one log line per pause."""
        if self._accept_paused or self.listener is None:
            return
        self._accept_paused = True
        if self._accept_failing:  # one line until an accept succeeds again
            log.debug("still cannot accept clients: %s", exc.strerror)
        else:
            self._accept_failing = True
            log.error("cannot accept clients: %s; %d connected, accepting again when one "
                      "leaves", exc.strerror, len(self.sessions))
        self.loop.remove_reader(self.listener.fileno())
        self._resume_timer = self.loop.call_later(ACCEPT_RETRY_S, self._resume_accept)

    def _resume_accept(self) -> None:
        if not self._accept_paused or self.closed or self.listener is None:
            return
        self._accept_paused = False
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None
        self.loop.add_reader(self.listener.fileno(), self._on_accept)

    def _close_listener(self) -> None:
        if self._resume_timer is not None:
            self._resume_timer.cancel()
        if self.listener is None or self.path is None:
            return
        self.loop.remove_reader(self.listener.fileno())
        self.listener.close()
        with contextlib.suppress(FileNotFoundError):
            if os.stat(self.path).st_ino == self._listener_ino:
                os.unlink(self.path)


class VtestServer(ClientListener):
    """Serves vtest clients; lives on the render thread's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: RenderHost, path: str | None,
                 allowed_uids: Iterable[int] = (), budgets: Budgets = DEFAULT_BUDGETS) -> None:
        set_budgets(budgets)
        self.host = host
        self.sessions: set[Session] = set()
        self._by_token: dict[int, Session] = {}
        self._tokens = itertools.count(1)
        self._poller = FastPoller()
        self.observers: list[ServerObserver] = []
        super().__init__(loop, path, allowed_uids, budgets)
        loop.add_reader(host.renderer.poll_fd, self._on_poll)
        # a display target's presents reach the observers at most this often
        self.present_interval = PRESENT_REPORT_INTERVAL_S
        if path is not None:
            log.info("serving vtest on %s", path)

    # ------------------------------------------------------------ events
    def adopt(self, sock: socket.socket, pid: int, uid: int) -> Session:
        token = next(self._tokens) & 0xFFFFFFFF
        s = Session(self, sock, pid, uid, token)
        self.sessions.add(s)
        self._by_token[token] = s
        return s

    def _on_poll(self) -> None:
        """Fences retired: the C poll answered the BUSY_WAITs they release and
        went on with those clients; here only what it hands back."""
        self.fences_polled()

    def fences_polled(self) -> None:
        """After a C fence poll (the global one, or a venus context's): act on what
        it handed back for Python."""
        by_token = self._by_token
        for token, status, fences in self._poller.take():
            s = by_token.get(token)
            if s is not None and not s.closed:
                s.on_poll(status, fences)

    # ------------------------------------------------------------ hooks from sessions
    def add_observer(self, ob: ServerObserver) -> None:
        """Observe this server (render thread). Presents are reported to Python
        (from the C path) only while somebody observes."""
        self.observers.append(ob)
        for s in self.sessions:
            s.fast.notify_present = 1
        if len(self.observers) == 1:
            self.loop.call_later(RESOURCE_SYNC_S, self._sync_resources)

    def set_present_interval(self, seconds: float) -> None:
        """Report each display target's presents at most every ``seconds`` (render
        thread); the GUI sets one refresh of its fastest screen: no screen shows more."""
        self.present_interval = seconds
        for s in self.sessions:
            s.fast.present_interval = seconds

    def _sync_resources(self) -> None:
        """Observers learn of the resources the C path made within RESOURCE_SYNC_S
        (it reports them in batches; one created and destroyed meanwhile never shows)."""
        if self.closed:
            return
        self.sync_resources()
        self.loop.call_later(RESOURCE_SYNC_S, self._sync_resources)

    def sync_resources(self) -> None:
        """Bring the observers up to date with every session's resources now."""
        if not any(ob.wants_resources for ob in self.observers):
            return
        for s in list(self.sessions):
            if s.fast.res_events and not s.closed:
                try:
                    s.sync_resources()
                except Exception:
                    log.exception("resource sync failed for %s", s)

    def _notify(self, name: str, *args: Any) -> None:
        for ob in self.observers:
            getattr(ob, name)(*args)

    def session_named(self, s: Session) -> None:
        if self.observers:
            self._notify("session_named", s)

    def session_closing(self, s: Session) -> None:
        if self.observers:
            self._notify("session_closing", s)

    def session_closed(self, s: Session) -> None:
        self.sessions.discard(s)
        self._by_token.pop(s.token, None)
        self._resume_accept()
        if self.observers:
            self._notify("session_closed", s)

    def resource_created(self, s: Session, r: Resource) -> None:
        if self.observers:
            self._notify("resource_created", s, r)

    def resource_destroyed(self, s: Session, r: Resource) -> None:
        if self.observers:
            self._notify("resource_destroyed", s, r)

    def presented(self, s: Session, r: Resource, count: int = 1) -> None:
        if self.observers:
            self._notify("presented", s, r, count)

    def sync_changed(self, s: Session) -> None:
        if self.observers:
            self._notify("sync_changed", s)

    # ------------------------------------------------------------ control
    def disconnect(self, pid: int) -> int:
        """Close every session of a client pid; returns how many."""
        victims = [s for s in self.sessions if s.pid == pid]
        for s in victims:
            s.close("disconnected by the server")
        return len(victims)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for s in list(self.sessions):
            s.close("server shutting down")
        self.loop.remove_reader(self.host.renderer.poll_fd)
        self._close_listener()


def name_native_thread(name: str) -> None:
    """Give the calling thread ``name`` in the OS too (``top -H``, ``/proc/*/task/*/comm``;
    Python 3.11 names only its own thread objects). Linux only; at most 15 bytes."""
    if sys.platform != "linux":
        return
    # what prctl(PR_SET_NAME) sets, without loading libc here (see proc(5))
    with contextlib.suppress(OSError), open(
            f"/proc/self/task/{threading.get_native_id()}/comm", "wb") as f:
        f.write(name.encode()[:15])


ServerT = TypeVar("ServerT")


class LoopThread(Generic[ServerT]):
    """A server's asyncio loop on a thread of its own (the render thread of the shared
    mode, the main process's loop of the process mode). ``start`` returns the server
    once ``_setup`` made it on that thread, or raises what ``_setup`` raised (after
    ``_abandon`` cleaned up); ``stop`` ends the loop, after which ``on_stop`` and
    ``_teardown`` run on the thread."""

    thread_name = "virgl-loop"
    start_error = "the server's thread did not start"

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.server: ServerT | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self.on_ready: Callable[[ServerT], None] | None = None  # its thread
        self.on_stop: Callable[[], object] | None = None  # its thread, before teardown

    def start(self, timeout: float = 30.0) -> ServerT:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise VirglViewerError(self.start_error)
        if self._error is not None:
            self._thread.join()
            raise self._error
        assert self.server is not None
        return self.server

    def _setup(self) -> ServerT:
        raise NotImplementedError

    def _abandon(self, exc: BaseException) -> BaseException:
        """``_setup`` raised ``exc``: free what it made; what ``start`` raises."""
        return exc

    def _teardown(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        name_native_thread(self.thread_name)
        asyncio.set_event_loop(self.loop)
        try:
            self.server = self._setup()
            if self.on_ready is not None:
                self.on_ready(self.server)
        except BaseException as exc:
            self._error = self._abandon(exc)
            self.loop.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            if self.on_stop is not None:
                try:
                    self.on_stop()
                except Exception:
                    log.exception("%s stop hook failed", self.thread_name)
            self._teardown()
            self.loop.close()

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run fn(*args) on the thread."""
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)


class RenderThread(LoopThread[VtestServer]):
    """The render thread: its own asyncio loop, virglrenderer and the server.

    ``provider_factory`` runs on the render thread and returns the GL-context
    provider plus a close function for it.
    """

    thread_name = "virgl-render"
    start_error = "render thread did not start"

    def __init__(self, path: str,
                 provider_factory: Callable[[], tuple[GLContextProvider, Callable[[], None]]],
                 allowed_uids: Iterable[int] = (), venus: bool = False,
                 budgets: Budgets = DEFAULT_BUDGETS) -> None:
        self.path = path
        self._budgets = budgets
        self._factory = provider_factory
        self._allowed = tuple(allowed_uids)
        self._venus = venus
        self._selector = FastSelector()
        self.host: RenderHost | None = None
        self._close_provider: Callable[[], None] | None = None
        super().__init__(asyncio.SelectorEventLoop(self._selector))

    def _setup(self) -> VtestServer:
        provider, self._close_provider = self._factory()
        self.host = RenderHost(provider, venus=self._venus)
        self._selector.poll_fd = self.host.renderer.poll_fd
        return VtestServer(self.loop, self.host, self.path, self._allowed, self._budgets)

    def _abandon(self, exc: BaseException) -> BaseException:
        if self.host is not None:
            self.host.close()
        if self._close_provider is not None:
            self._close_provider()
        return exc

    def _teardown(self) -> None:
        assert self.server is not None and self.host is not None
        self.server.close()
        self.host.close(self._close_provider)
