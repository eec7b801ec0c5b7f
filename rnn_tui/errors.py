"""One error root for the whole node.

Why: callers (CLI, TUI, control API) catch ``RnnError`` at their boundary and turn it into
one clear line for the operator; anything else that escapes is a bug.  Protocol errors
come in two kinds, as in h11: ``LocalProtocolError`` means *we* misused a protocol (a bug
or a bad argument on our side), ``RemoteProtocolError`` means a *peer* misbehaved.  Peer
misbehaviour never crashes the node: cores turn it into an error reply, a drop or an event.
"""

from __future__ import annotations

__all__ = [
    "RnnError",
    "ConfigError",
    "KeystoreError",
    "StoreError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "PeerIdMismatch",
    "RequestTimeout",
    "NodeNotRunning",
    "ServiceError",
    "WorkflowError",
    "ValidationError",
]


class RnnError(Exception):
    """Root of every error the node raises on purpose."""


class ConfigError(RnnError):
    """A configuration value is missing, unknown or of the wrong type.

    The message names the key and, where known, the file and line it came from.
    """

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None,
                 line: int | None = None) -> None:
        where = ""
        if source is not None:
            where = f"{source}:{line}: " if line is not None else f"{source}: "
        super().__init__(f"{where}{message}")
        self.key = key
        self.source = source
        self.line = line


class KeystoreError(RnnError):
    """The keystore is missing, corrupted, or the passphrase is wrong."""


class StoreError(RnnError):
    """The SQLite store cannot be opened, migrated or written."""


class LocalProtocolError(RnnError):
    """We tried to do something the protocol does not allow (our bug or bad arguments)."""


class RemoteProtocolError(RnnError):
    """A peer sent something the protocol does not allow.

    ``code`` is a protocol-specific error code (a KRPC error code, a frame error, ...).
    """

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class PeerIdMismatch(RemoteProtocolError):
    """The peer proved a key other than the one we expected to reach."""


class RequestTimeout(RnnError):
    """A request got no answer within its deadline."""


class NodeNotRunning(RnnError):
    """No node answers on the local control socket."""


class ServiceError(RnnError):
    """A service cannot be created, found or run."""


class WorkflowError(RnnError):
    """A workflow cannot be run as asked."""


class ValidationError(RnnError):
    """Input failed validation; ``problems`` lists every problem with its location."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []
