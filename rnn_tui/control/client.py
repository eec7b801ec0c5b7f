"""Control API client for the CLI: blocking, one request per connection.

``call(socket_path, method, params)`` returns the result or raises ``RnnError`` with the
node's message; ``stream(...)`` yields items.  When no node listens, ``NodeNotRunning``
says so in one line.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rnn_tui.control.protocol import MAX_LINE, encode
from rnn_tui.errors import NodeNotRunning, RequestTimeout, RnnError


class RemoteCallError(RnnError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _connect(path: Path, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        raise NodeNotRunning(f"no node is running (no control socket at {path}); start one with 'rnn start'") from None
    except PermissionError:
        sock.close()
        raise NodeNotRunning(f"{path}: permission denied (the node runs as another user)") from None
    except OSError as exc:
        sock.close()
        raise NodeNotRunning(f"{path}: cannot reach the node: {exc.strerror}") from None
    return sock


def _lines(sock: socket.socket) -> Iterator[dict[str, Any]]:
    buf = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise RequestTimeout("the node did not answer in time") from None
        if not chunk:
            if buf.strip():
                yield json.loads(buf)
            return
        buf += chunk
        if len(buf) > MAX_LINE:
            raise RnnError("control reply too large")
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)


def call(path: Path, method: str, params: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
    with _connect(path, timeout) as sock:
        sock.sendall(encode({"id": 1, "method": method, "params": params or {}}))
        for msg in _lines(sock):
            if "error" in msg:
                err = msg["error"]
                raise RemoteCallError(err.get("code", "error"), err.get("message", "error"))
            if "result" in msg:
                return msg["result"]
    raise RnnError("the node closed the control connection without answering")


def stream(path: Path, method: str, params: dict[str, Any] | None = None,
           timeout: float | None = None) -> Iterator[Any]:
    with _connect(path, 30.0) as sock:
        sock.settimeout(timeout)
        sock.sendall(encode({"id": 1, "method": method, "params": params or {}}))
        for msg in _lines(sock):
            if "error" in msg:
                err = msg["error"]
                raise RemoteCallError(err.get("code", "error"), err.get("message", "error"))
            if msg.get("end"):
                return
            if "item" in msg:
                yield msg["item"]
