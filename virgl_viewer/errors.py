"""Exception hierarchy of the server and the binding.

The protocol errors belong to the sans-IO codec (virgl_viewer.vtest.errors, which
imports nothing of ours) and are re-exported here: ``ProtocolError`` >
``LocalProtocolError``, ``RemoteProtocolError``, ``ClientError``. Everything else
virgl-viewer raises on purpose is a ``VirglViewerError``.
"""

from __future__ import annotations

from virgl_viewer.vtest.errors import LocalProtocolError, ProtocolError, RemoteProtocolError

__all__ = [
    "ClientError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "RendererError",
    "VirglViewerError",
]


class VirglViewerError(Exception):
    """Base class of every error virgl-viewer raises on purpose, but the protocol's."""


class ClientError(ProtocolError):
    """The client asked for something invalid (semantics, not framing)."""


class RendererError(VirglViewerError):
    """A libvirglrenderer call failed."""

    def __init__(self, call: str, errno: int) -> None:
        super().__init__(f"{call} failed: {errno}")
        self.call = call
        self.errno = errno
