"""Exception hierarchy shared by the codec, the server and the binding."""

from __future__ import annotations


class VirglViewerError(Exception):
    """Base class of every error virgl-viewer raises on purpose."""


class ProtocolError(VirglViewerError):
    """A vtest protocol violation.

    ``command`` names the vtest command being handled (e.g. ``"SUBMIT_CMD"``)
    or ``None`` when the header itself was bad.
    """

    def __init__(self, reason: str, command: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.command = command

    def __str__(self) -> str:
        if self.command:
            return f"{self.command}: {self.reason}"
        return self.reason


class RemoteProtocolError(ProtocolError):
    """The peer sent something invalid; the connection must be dropped."""


class LocalProtocolError(ProtocolError):
    """We were asked to send something the protocol does not allow."""


class RendererError(VirglViewerError):
    """A libvirglrenderer call failed."""

    def __init__(self, call: str, errno: int) -> None:
        super().__init__(f"{call} failed: {errno}")
        self.call = call
        self.errno = errno
