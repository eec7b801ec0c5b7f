"""Errors the transport raises to its callers (all ``RnnError``s)."""

from __future__ import annotations

from rnn_tui.errors import RnnError

__all__ = ["ConnectionClosed", "RemoteError"]


class ConnectionClosed(RnnError):
    """The QUIC connection is closed (or closed before the request could finish)."""


class RemoteError(RnnError):
    """The peer answered a request with an error reply.

    ``code`` is a ``FrameError`` value or a handler-specific code.
    """

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
