"""The codec's errors: what it raises on bad input, defined here so the sans-IO
codec imports nothing of ours (like h11's own ``ProtocolError``).
virgl_viewer.errors re-exports them beside the app's own errors."""

from __future__ import annotations


class ProtocolError(Exception):
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
