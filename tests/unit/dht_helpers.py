"""Helpers for socket-free DHT tests: talk to a ``DhtCore`` with raw KRPC dicts."""

from __future__ import annotations

import random
from typing import Any

from rnn_tui.dht.codec import decode, encode
from rnn_tui.dht.core import DhtConfig, DhtCore

PEER = ("203.0.113.7", 6881)


def make_core(seed: int = 1, now: float = 0.0, **config: Any) -> DhtCore:
    return DhtCore(random.Random(seed), now, DhtConfig(**config))


def query(core: DhtCore, method: bytes, args: dict[bytes, Any], *, addr: tuple[str, int] = PEER,
          now: float = 0.0, sender: bytes = b"S" * 20, tid: bytes = b"tt",
          extra: dict[bytes, Any] | None = None) -> dict[bytes, Any] | None:
    """Send one query; return the decoded reply to ``addr`` (None if the core stayed silent)."""
    msg: dict[bytes, Any] = {b"t": tid, b"y": b"q", b"q": method, b"a": {b"id": sender, **args}}
    msg.update(extra or {})
    return raw(core, encode(msg), addr=addr, now=now)


def raw(core: DhtCore, data: bytes, *, addr: tuple[str, int] = PEER,
        now: float = 0.0) -> dict[bytes, Any] | None:
    core.receive_datagram(data, addr, now)
    out = [decode(d) for d, a in core.datagrams_to_send() if a == addr]
    assert len(out) <= 1
    return out[0] if out else None


def error_code(reply: dict[bytes, Any] | None) -> int | None:
    if reply is None or reply.get(b"y") != b"e":
        return None
    code = reply[b"e"][0]
    assert isinstance(code, int)
    return code
