"""Wire format of the local control API: one JSON object per line (UTF-8).

Why JSON lines: the socket is local and owner-only (mode 0600), so the peer is the
operator's own CLI or script; JSON is what scripts speak (``rnn ... --json``), and
``socat`` can drive it by hand.  Nothing on this socket crosses a P2P trust boundary.

Request:   {"id": 7, "method": "peers", "params": {...}}
Reply:     {"id": 7, "result": ...}   or   {"id": 7, "error": {"code": "...", "message": "..."}}
Streaming: a method registered as a stream sends any number of
           {"id": 7, "item": ...} lines, then {"id": 7, "end": true} (or an error).
"""

from __future__ import annotations

import json
from typing import Any

MAX_LINE = 4 * 1024 * 1024


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=_default).encode() + b"\n"


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(value)
    return str(value)
