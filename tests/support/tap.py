"""A recording socket tap: a vtest proxy that keeps what each client sent.

Why: the fuzzers' seeds are real sessions of real clients (our ``virgl-guest``,
Mesa's glxgears and glmark2 through virpipe), recorded here, not copied from
elsewhere. How: the tap listens on its own path and, per client, connects to the
server and copies bytes both ways, file descriptors (SCM_RIGHTS: shm of
RESOURCE_CREATE2, blobs, sync eventfds) included, while recording the client's
bytes. ``sessions`` holds one bytes object per finished client, in order.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path
from types import TracebackType

_CHUNK = 1 << 16
_MAX_FDS = 16


class Tap:
    """``with Tap(listen, server) as tap:`` ... ``tap.sessions``."""

    def __init__(self, listen: Path, server: Path) -> None:
        self.listen = Path(listen)
        self.server = Path(server)
        self.sessions: list[bytes] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def __enter__(self) -> Tap:
        self._sock.bind(str(self.listen))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        for t in list(self._threads):
            t.join(timeout=10)
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.listen.unlink()

    def wait_sessions(self, n: int, timeout: float = 10.0) -> None:
        """Wait until ``n`` clients have hung up."""
        deadline = threading.Event()
        for _ in range(int(timeout / 0.05)):
            with self._lock:
                if len(self.sessions) >= n:
                    return
            deadline.wait(0.05)
        raise TimeoutError(f"{len(self.sessions)} of {n} sessions ended")

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            client.settimeout(None)
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(str(self.server))
            record: list[bytes] = []
            down = threading.Thread(target=_copy, args=(upstream, client, None), daemon=True)
            up = threading.Thread(target=self._up, args=(client, upstream, record, down),
                                  daemon=True)
            down.start()
            up.start()
            self._threads += [up, down]

    def _up(self, client: socket.socket, upstream: socket.socket, record: list[bytes],
            down: threading.Thread) -> None:
        _copy(client, upstream, record)
        with contextlib.suppress(OSError):
            upstream.shutdown(socket.SHUT_WR)
        down.join(timeout=10)
        client.close()
        upstream.close()
        with self._lock:
            self.sessions.append(b"".join(record))


def _copy(src: socket.socket, dst: socket.socket, record: list[bytes] | None) -> None:
    """Copy bytes and fds from src to dst until EOF or an error."""
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(src, _CHUNK, _MAX_FDS)
        except OSError:
            return
        if not data:
            return
        if record is not None:
            record.append(data)
        try:
            sent = socket.send_fds(dst, [data], fds) if fds else 0
            dst.sendall(data[sent:])
        except OSError:
            return
        finally:
            for fd in fds:
                os.close(fd)
