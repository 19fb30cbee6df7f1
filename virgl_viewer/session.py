"""One vtest client: its socket, its virgl context, its resources and syncs.

Why: every client is isolated. Its resource handles (client-chosen in
protocol 0-2, server-chosen in 3) map to global server handles; every handle
in its command stream is rewritten in C (HandleMap) and a handle it does not
own ends the session. Waits (BUSY_WAIT, SYNC_WAIT) never block the render
thread: a waiting session just stops reading until its fences retire.
How: the per-frame commands (SUBMIT_CMD, TRANSFER_GET2/PUT2,
RESOURCE_BUSY_WAIT) are read, run and answered in C (``FastConn``,
native/vv_fast.c) without entering Python. Any other message, and anything
the C checks do not accept as it is, comes back here: from that message on
the input goes bytes -> ServerConnection (sans-IO) -> events ->
``_on_<Event>`` handlers -> replies queued on the socket, until the codec has
consumed all of it, and then C reads again. Any ProtocolError or
RendererError drops this client only, with one log line naming client,
command and reason.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from virgl_viewer.errors import ClientError, ProtocolError, RemoteProtocolError, RendererError
from virgl_viewer.objects import Resource, Sync, SyncWaiter
from virgl_viewer.session_parts import SessionServer
from virgl_viewer.session_resources import ResourceCommands
from virgl_viewer.session_sync import SyncCommands
from virgl_viewer.session_venus import VenusCommands
from virgl_viewer.virgl import (
    FAST_EOF,
    FAST_ERROR,
    FAST_NEED_DATA,
    FAST_PARKED,
    FAST_PAUSE,
    FAST_PRESENT,
    FAST_SLOW,
    FAST_SOCKERR,
    FAST_YIELD,
    FastConn,
    HandleMap,
)
from virgl_viewer.vtest import codec
from virgl_viewer.vtest import protocol as P

if TYPE_CHECKING:
    from virgl_viewer.renderer import RenderHost

log = logging.getLogger(__name__)

RECV_SIZE = 1 << 18



MAX_NAME_CHARS = 64


def client_name(raw: bytes) -> str:
    """The name a client gave in CREATE_RENDERER, safe to put in a log line, a window
    title or a table: up to the first NUL, UTF-8 (invalid bytes replaced), every
    character that is not printable (newlines, escape sequences, bidi overrides)
    written as a Python escape, at most MAX_NAME_CHARS characters. A client cannot
    forge a log line or repaint the terminal with its name."""
    text = raw.split(b"\0", 1)[0].decode("utf-8", errors="replace").strip()
    text = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    if len(text) > MAX_NAME_CHARS:
        text = text[:MAX_NAME_CHARS - 1] + "\u2026"
    return text or "unnamed"


class Session(ResourceCommands, SyncCommands, VenusCommands):
    """A connected vtest client."""

    def __init__(self, server: SessionServer, sock: socket.socket, pid: int, uid: int,
                 token: int = 0) -> None:
        self.server = server
        self.host: RenderHost = server.host
        self.loop = server.loop
        self.sock = sock
        self.fd = sock.fileno()
        self.pid = pid
        self.uid = uid
        self.name = "?"
        self.budgets = server.budgets
        self.conn = codec.ServerConnection(self.budgets.message_bytes)
        self.protocol_version = 0
        self.capset_id = 0
        self.ctx_id = 0  # 0 until the virgl context exists
        self.map = HandleMap()
        self.token = token
        self.fast = FastConn(self.fd, self.map, token)
        self.fast.notify_present = 1 if server.observers else 0
        self.fast.present_interval = server.present_interval
        self._py_mode = False  # the codec holds input the C path gave back
        self.resources: dict[int, Resource] = {}
        self.syncs: dict[int, Sync] = {}
        self._next_sync = 1
        self.sync_waiters: list[SyncWaiter] = []
        self._waiting: dict[int, set[SyncWaiter]] = {}  # sync id -> the waiters on it
        # fences: counted in C (fence_submitted/completed), all on virgl ring 0
        self._timeline: deque[tuple[int, list[tuple[Sync, int]]]] = deque()
        # venus queues (rings > 0): session_venus.py
        self.venus_rings: dict[int, deque[tuple[int, list[tuple[Sync, int]]]]] = {}
        self.venus_timelines: dict[int, tuple[int, int]] = {}
        self._venus_poll_fd = -1
        # bytes (a memoryview once partly sent: slicing it copies nothing), or an fd
        self._out: deque[bytes | memoryview | int] = deque()
        self._out_bytes = 0  # bytes (not fds) in _out
        self._held_for_output = False
        self._writing = False
        self.closed = False
        # A send failed while a handler ran: the handler finishes (what it made is
        # registered, so close() frees it), then the session closes with this reason.
        self._dispatching = False
        self._send_broken: str | None = None
        self.close_reason = ""
        self.connected_at = time.monotonic()
        self.log = logging.LoggerAdapter(log, {})
        self._command = "?"
        self._handlers: dict[type, Callable[[Any], None]] = {
            P.CreateRenderer: self._on_create_renderer,
            P.GetCaps: self._on_get_caps,
            P.GetCaps2: self._on_get_caps2,
            P.PingProtocolVersion: self._on_ping,
            P.ProtocolVersion: self._on_protocol_version,
            P.ResourceCreate: self._on_resource_create,
            P.ResourceCreate2: self._on_resource_create,
            P.ResourceUnref: self._on_resource_unref,
            P.TransferGet: self._on_transfer_get,
            P.TransferPut: self._on_transfer_put,
            P.TransferGet2: self._on_transfer_get2,
            P.TransferPut2: self._on_transfer_put2,
            P.ResourceBusyWait: self._on_busy_wait,
            P.SubmitCmd: self._on_submit_cmd,
            P.GetParam: self._on_get_param,
            P.GetCapset: self._on_get_capset,
            P.ContextInit: self._on_context_init,
            P.ResourceCreateBlob: self._on_create_blob,
            P.SyncCreate: self._on_sync_create,
            P.SyncUnref: self._on_sync_unref,
            P.SyncRead: self._on_sync_read,
            P.SyncWrite: self._on_sync_write,
            P.SyncWait: self._on_sync_wait,
            P.SubmitCmd2: self._on_submit_cmd2,
        }
        self.loop.add_reader(self.fd, self._on_readable)

    def __str__(self) -> str:
        return f"{self.name} (pid {self.pid})"

    # counters kept by the C path
    @property
    def fence_submitted(self) -> int:
        return int(self.fast.fence_submitted)

    @property
    def fence_completed(self) -> int:
        return int(self.fast.fence_completed)

    @property
    def submits(self) -> int:
        return int(self.fast.submits)

    @property
    def presents(self) -> int:
        """Presents of display targets (counted in C while the server is observed)."""
        return int(self.fast.presents)

    @property
    def bytes_submitted(self) -> int:
        return int(self.fast.bytes_submitted)

    @property
    def present_interval(self) -> float:
        """Presents of a display target are reported at most this often (seconds)."""
        return float(self.fast.present_interval)

    # ------------------------------------------------------------ input
    def _on_readable(self) -> None:
        c = self.fast
        if c.pending_status >= 0:  # the selector pumped already and stopped here
            st = c.pending_status
            c.pending_status = -1
            if not self._after_pump(st):
                return
        if not self._py_mode:
            self._pump()
            return
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionResetError:
            data = b""  # the client went away without a clean close
        except OSError as exc:
            self.close(f"socket error: {exc.strerror}")
            return
        if self.fast.parked:
            # Parked in a BUSY_WAIT: keep reading (a well-behaved client sends
            # nothing until it gets the reply), but stop watching the socket
            # if it piles up data, and go at once if it hangs up.
            if not data:
                self.close("disconnected while waiting")
                return
            self.conn.receive_data(data)
            if (self.conn.buffered_bytes > self.budgets.parked_input_bytes
                    and not self.fast.reader_paused):
                self.fast.reader_paused = 1
                self.loop.remove_reader(self.fd)
            return
        self.conn.receive_data(data)
        self._process()

    def _pump(self) -> None:
        """Let the C path handle what the socket has; act on where it stopped."""
        c = self.fast
        pump = self.fast.pump
        while not self.closed:
            st = pump()
            if c.out_len:
                self._take_output()
                if self.closed:
                    return
            if not self._after_pump(st):
                return

    def _after_pump(self, st: int) -> bool:
        """Act on a status of the C path; True: pump again."""
        if st in (FAST_NEED_DATA, FAST_PARKED):
            return False
        if st == FAST_PRESENT:
            handle = int(self.fast.present_handle)
            res = self.resources.get(handle)
            if res is None and self.fast.res_events:  # made by the C path since the last sync
                self.sync_resources()
                res = self.resources.get(handle)
            if res is not None:
                self.server.presented(self, res, int(self.fast.present_count))
            return True
        if st in (FAST_SLOW, FAST_EOF):
            if st == FAST_EOF and self.fast.parked:
                self.close("disconnected while waiting")
                return False
            self._to_python(eof=st == FAST_EOF)
            return not self._py_mode and not self.closed
        if st == FAST_YIELD:
            self.loop.call_soon(self.resume)
            return False
        if st == FAST_ERROR:
            cmd, reason = self.fast.error()
            self.drop(codec.command_name(cmd), reason)
            return False
        if st == FAST_PAUSE:
            self.loop.remove_reader(self.fd)
            return False
        if st == FAST_SOCKERR:
            err = int(self.fast.err_errno)
            self.close("disconnected" if err in (errno.EPIPE, errno.ECONNRESET)
                       else f"socket error: {os.strerror(err)}")
            return False
        raise AssertionError(f"fast path status {st}")

    def sync_resources(self) -> None:
        """Bring ``resources`` (and the observers) up to date with the
        resources the C path created and destroyed. Render thread."""
        server = self.server
        for e in self.fast.take_resource_events():
            if e.created:
                res = Resource(e.client, e.server, e.target, e.format, e.bind, e.width,
                               e.height, e.depth, e.array_size, e.last_level, e.nr_samples,
                               shm=e.shm, created=e.created_at, native=True)
                self.resources[e.client] = res
                server.resource_created(self, res)
            else:
                gone = self.resources.pop(e.client, None)
                if gone is not None:
                    server.resource_destroyed(self, gone)

    def _to_python(self, eof: bool) -> None:
        """The C path stopped at a message it does not take: the codec goes on
        with that message alone (C then reads again) or with all input."""
        if self.fast.res_events:
            self.sync_resources()
        data = self.fast.take_input(0 if eof else int(self.fast.slow_len))
        if data:
            self.conn.receive_data(data)
        if eof:
            self.conn.receive_data(b"")
        self._py_mode = True
        self.fast.py_mode = 1
        self._process()

    def resume(self) -> None:
        """Go on after a BUSY_WAIT was answered or the C path yielded."""
        if self.closed:
            return
        if self.fast.reader_paused:
            self.fast.reader_paused = 0
            self.loop.add_reader(self.fd, self._on_readable)
        if self._py_mode:
            self._process()  # it hands back to C when the codec is at rest...
        if not self._py_mode and not self.closed:
            self._pump()  # ...and C may hold input already read: nothing else pumps it

    def on_poll(self, status: int, fences: bool) -> None:
        """From the server's fence poll: fences retired (``fences``: this
        session keeps timelines) and/or the C path stopped with ``status``."""
        if fences:
            self.on_fence()
        if self.closed:
            return
        if self.fast.out_len:
            self._take_output()
            if self.closed:
                return
        if status >= 0 and self._after_pump(status):
            self._pump()

    def _process(self) -> None:
        conn = self.conn
        handlers = self._handlers
        c = self.fast
        try:
            while not c.parked and not self.closed:
                # GET_CAPS2 answers 8 bytes with 1.4 KiB: a client that does not
                # read is not read from past its reply queue's budget
                if self._out_bytes > self.budgets.reply_queue_bytes:
                    self._hold_for_output()
                    return
                ev = conn.next_event()
                if ev is codec.NEED_DATA:
                    break
                if ev is codec.CLOSED:
                    self.close("disconnected")
                    return
                self._dispatching = True
                try:
                    handlers[type(ev)](ev)
                finally:
                    self._dispatching = False
                if self._send_broken is not None:
                    self.close(self._send_broken)
                    return
                if conn.at_rest:
                    break
            if conn.at_rest and not self.closed:
                # Everything given back is consumed: C reads from here on.
                self._py_mode = False
                c.py_mode = 0
        except RemoteProtocolError as exc:
            # From the codec; no command means the header itself was cut short.
            self.drop(exc.command or "header", exc.reason)
        except ProtocolError as exc:
            self.drop(exc.command or self._command, exc.reason)
        except RendererError as exc:
            self.drop(self._command, f"{exc.call} failed (errno {exc.errno})")
        except Exception as exc:  # a bug of ours: still only this client goes
            self.log.exception("internal error while serving %s", self)
            self.drop(self._command, f"internal error: {exc!r}")

    # ------------------------------------------------------------ output
    def _take_output(self) -> None:
        """Queue what the C path could not send, ahead of anything newer."""
        data = self.fast.take_output()
        if data:
            self._out.append(data)
            self._out_bytes += len(data)
            self.fast.py_out_busy = 1
            self._flush()

    def _send(self, data: bytes) -> None:
        if self.closed or self._send_broken is not None:
            return
        if self.fast.out_len:
            self._take_output()
        if self._out or self._writing:
            self._out.append(data)
            self._out_bytes += len(data)
            self._flush()
            return
        try:
            n = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except (BrokenPipeError, ConnectionResetError):
            self._broken("disconnected")
            return
        except OSError as exc:
            self._broken(f"socket error: {exc.strerror}")
            return
        if n < len(data):
            self._out.append(memoryview(data)[n:])
            self._out_bytes += len(data) - n
            self._flush()

    def _send_fd(self, fd: int) -> None:
        """Queue an fd (owned by the queue from now on, closed once sent)."""
        if self.closed or self._send_broken is not None:
            os.close(fd)
            return
        self._out.append(fd)
        self._flush()

    def _hold_for_output(self) -> None:
        """The client does not read its replies: read and answer nothing more from it
        until it has read half of them (``_flush`` resumes it)."""
        self._held_for_output = True
        self.log.debug("client %s: %d bytes of replies unread: not reading its requests "
                       "until it reads them", self, self._out_bytes)
        if not self.fast.reader_paused:
            self.fast.reader_paused = 1
            self.loop.remove_reader(self.fd)

    def _broken(self, why: str) -> None:
        """A send failed: close now, or once the running handler is done."""
        if not self._dispatching:
            self.close(why)
            return
        if self._send_broken is None:
            self._send_broken = why
            self._drop_output()

    def _drop_output(self) -> None:
        for item in self._out:
            if isinstance(item, int):
                os.close(item)
        self._out.clear()
        self._out_bytes = 0

    def _flush(self) -> None:
        out = self._out
        while out:
            item = out[0]
            try:
                if isinstance(item, int):
                    socket.send_fds(self.sock, [b"\0"], [item])
                    os.close(item)
                    out.popleft()
                    continue
                n = self.sock.send(item)
            except (BlockingIOError, InterruptedError):
                break
            except (BrokenPipeError, ConnectionResetError):
                self._broken("disconnected")
                return
            except OSError as exc:
                self._broken(f"socket error: {exc.strerror}")
                return
            self._out_bytes -= n
            if n == len(item):
                out.popleft()
            else:
                out[0] = memoryview(item)[n:]
                break
        self.fast.py_out_busy = 1 if out else 0
        if self._held_for_output and self._out_bytes <= self.budgets.reply_queue_bytes // 2:
            self._held_for_output = False
            self.loop.call_soon(self.resume)
        if out and not self._writing:
            self._writing = True
            self.loop.add_writer(self.fd, self._flush)
        elif not out and self._writing:
            self._writing = False
            self.loop.remove_writer(self.fd)

    # ------------------------------------------------------------ teardown
    def drop(self, command: str, reason: str) -> None:
        self.log.warning("client %s dropped: %s: %s", self, command, reason)
        self.close(f"dropped ({command}: {reason})", quiet=True)

    def close(self, why: str = "closed", quiet: bool = False) -> None:
        if self.closed:
            return
        try:
            if self.fast.res_events:
                self.sync_resources()  # the observers see every resource it has
            self.server.session_closing(self)
        except Exception:
            log.exception("session_closing observer failed for %s", self)
        self.closed = True
        loop = self.loop
        if not self.fast.reader_paused:
            loop.remove_reader(self.fd)
        if self._writing:
            loop.remove_writer(self.fd)
        self._drop_output()
        for w in self.sync_waiters:
            self._end_waiter(w, signal=False)
        self.sync_waiters.clear()
        self._waiting.clear()
        host = self.host
        submitted, completed = self.fence_submitted, self.fence_completed
        if self.capset_id == P.CAPSET_VENUS:
            # its fences are the render server's: no vrend fence thread to outlive
            self._venus_stop()
            completed = submitted
        self.fast.close()  # no more fences routed here; the fence log stays
        for res in self.resources.values():
            self._destroy_resource(res)
        self.resources.clear()
        if self.ctx_id:
            try:
                host.renderer.context_retire(self.ctx_id, submitted, completed)
            except RendererError as exc:
                log.error("destroying context of %s: %s", self, exc)
        self.syncs.clear()
        self._timeline.clear()
        self.map.free()
        self.sock.close()
        if not quiet:
            self.log.info("client %s disconnected: %s (%d submits, %.1f s)", self, why,
                          self.submits, time.monotonic() - self.connected_at)
        self.close_reason = why
        self.server.session_closed(self)

    def _destroy_resource(self, res: Resource) -> None:
        """Unref a resource Python created (the C path destroys its own)."""
        if res.native:
            return
        renderer = self.host.renderer
        try:
            renderer.resource_unref(res.server_handle)
        finally:
            self.host.release_resource_id(res.server_handle)
            if res.shm is not None:
                res.shm.release()
                res.shm = None

    # ------------------------------------------------------------ context
    def _ensure_context(self) -> int:
        if not self.ctx_id:
            ctx_id = self.host.new_context_id()
            self.host.renderer.context_create(ctx_id, self.name.encode(errors="replace"),
                                              self.capset_id)
            self.ctx_id = ctx_id
            self.fast.set_context(ctx_id)
            if self.capset_id == P.CAPSET_VENUS:
                self._venus_started()
        return self.ctx_id

    # ------------------------------------------------------------ handshake
    def _on_create_renderer(self, ev: P.CreateRenderer) -> None:
        self._command = "CREATE_RENDERER"
        self.name = client_name(ev.name)
        self.log.info("client %s connected (uid %d)", self, self.uid)
        self.server.session_named(self)

    def _on_get_caps(self, ev: P.GetCaps) -> None:
        self._command = "GET_CAPS"
        self._send(self.conn.send(P.CapsReply(1, self.host.caps_v1)))

    def _on_get_caps2(self, ev: P.GetCaps2) -> None:
        self._command = "GET_CAPS2"
        self._send(self.conn.send(P.CapsReply(2, self.host.caps_v2)))

    def _on_ping(self, ev: P.PingProtocolVersion) -> None:
        self._command = "PING_PROTOCOL_VERSION"
        self._send(self.conn.send(P.PingProtocolVersionReply()))

    def _on_protocol_version(self, ev: P.ProtocolVersion) -> None:
        self._command = "PROTOCOL_VERSION"
        if self.syncs or self.ctx_id:
            # handles mean client ids before 3 and server ids from 3 on: the
            # resources, syncs and context made under one version stay in it
            # (every resource is made in the client's context: ctx_id covers them)
            raise ClientError("the protocol version cannot change once resources, syncs "
                              "or a context exist", "PROTOCOL_VERSION")
        self.protocol_version = codec.negotiate_version(ev.version)
        self.fast.protocol_version = self.protocol_version
        self._send(self.conn.send(P.ProtocolVersionReply(self.protocol_version)))

    def _on_get_param(self, ev: P.GetParam) -> None:
        self._command = "GET_PARAM"
        if ev.param == P.PARAM_MAX_TIMELINE_COUNT:
            reply = P.GetParamReply(1, P.MAX_TIMELINE_COUNT)
        else:
            reply = P.GetParamReply(0, 0)
        self._send(self.conn.send(reply))

    def _on_get_capset(self, ev: P.GetCapset) -> None:
        self._command = "GET_CAPSET"
        caps = self.host.capset(ev.capset_id, ev.version)
        reply = P.GetCapsetReply(1, caps) if caps is not None else P.GetCapsetReply(0, b"")
        self._send(self.conn.send(reply))

    def _on_context_init(self, ev: P.ContextInit) -> None:
        self._command = "CONTEXT_INIT"
        if ev.capset_id == 0:
            raise ClientError("capset 0", "CONTEXT_INIT")
        if self.ctx_id or self.capset_id:
            if self.capset_id != ev.capset_id:
                raise ClientError("context already initialised", "CONTEXT_INIT")
            return
        self.capset_id = ev.capset_id
        self._ensure_context()
