"""The node's metadata record, published as a BEP 44 mutable item under its own key.

Why BEP 44: the record is signed by the node's identity key and stored at the K DHT nodes
closest to ``sha1(pubkey + salt)``, so anyone who knows a peer id can find where that peer
is and how to reach it — with no server of ours — and no one else can forge it.

Salt: ``b"rnn-meta/1"`` (documented in docs/DHT.md).  The value is a bencoded dict with
short keys, at most 1000 bytes once encoded (BEP 44's limit)::

    v   protocol version (int)
    t   timestamp, seconds since the epoch (int)
    l   listen addresses, "host:port" (list, <= 4)
    o   observed (external) addresses (list, <= 2)
    n   LAN addresses (list, <= 2)
    r   reachability: "public" | "private" | "unknown"
    x   NAT type: "none" | "eim" | "edm" | "unknown"
    y   relays: "peerid_zbase32@host:port" (list, <= 2)
    s   service summary: number of public services and up to 8 names (dict {c, n})

``encode`` drops optional detail (LAN, then names, then observed) until the record fits,
so a node with many addresses still publishes a valid record.  ``decode`` checks every
field's type and length and raises ``RemoteProtocolError`` on anything else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from rnn_tui.dht.codec import BencodeError
from rnn_tui.dht.codec import decode as bdecode
from rnn_tui.dht.codec import encode as bencode
from rnn_tui.errors import RemoteProtocolError

METADATA_SALT = b"rnn-meta/1"
MAX_VALUE_BYTES = 1000
PROTOCOL_VERSION = 1
REACHABILITY = ("public", "private", "unknown")
NAT_TYPES = ("none", "eim", "edm", "unknown")
MAX_ADDR = 64
MAX_NAME = 32


@dataclass(frozen=True, slots=True)
class PeerMetadata:
    timestamp: int
    listen: tuple[str, ...] = ()
    observed: tuple[str, ...] = ()
    lan: tuple[str, ...] = ()
    reachability: str = "unknown"
    nat_type: str = "unknown"
    relays: tuple[str, ...] = ()
    service_count: int = 0
    service_names: tuple[str, ...] = ()
    version: int = PROTOCOL_VERSION
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_value(self) -> dict[bytes, Any]:
        return {
            b"v": self.version,
            b"t": self.timestamp,
            b"l": [a.encode() for a in self.listen[:4]],
            b"o": [a.encode() for a in self.observed[:2]],
            b"n": [a.encode() for a in self.lan[:2]],
            b"r": self.reachability.encode(),
            b"x": self.nat_type.encode(),
            b"y": [a.encode() for a in self.relays[:2]],
            b"s": {b"c": self.service_count, b"n": [n.encode() for n in self.service_names[:8]]},
        }

    def encode(self) -> bytes:
        """Bencoded value, shrunk to fit ``MAX_VALUE_BYTES`` by dropping optional detail."""
        candidate = self
        shrinks: list[Callable[[PeerMetadata], PeerMetadata]] = [
            lambda m: m,
            lambda m: replace(m, lan=()),
            lambda m: replace(m, service_names=m.service_names[:2]),
            lambda m: replace(m, service_names=()),
            lambda m: replace(m, observed=m.observed[:1]),
            lambda m: replace(m, listen=m.listen[:2]),
            lambda m: replace(m, relays=m.relays[:1]),
        ]
        for shrink in shrinks:
            candidate = shrink(candidate)
            data = bencode(candidate.to_value())
            if len(data) <= MAX_VALUE_BYTES:
                return data
        raise ValueError("peer metadata does not fit in 1000 bytes")  # unreachable with field caps

    @classmethod
    def from_value(cls, value: Any) -> PeerMetadata:
        if not isinstance(value, dict):
            raise RemoteProtocolError("peer metadata: value is not a dict")
        try:
            version = _int(value, b"v")
            timestamp = _int(value, b"t")
            services = value.get(b"s", {})
            if not isinstance(services, dict):
                raise RemoteProtocolError("peer metadata: 's' is not a dict")
            reach = _text(value, b"r", 16) or "unknown"
            nat = _text(value, b"x", 16) or "unknown"
            return cls(
                version=version,
                timestamp=timestamp,
                listen=_texts(value, b"l", 4),
                observed=_texts(value, b"o", 2),
                lan=_texts(value, b"n", 2),
                reachability=reach if reach in REACHABILITY else "unknown",
                nat_type=nat if nat in NAT_TYPES else "unknown",
                relays=_texts(value, b"y", 2, limit=MAX_ADDR + 64),
                service_count=_int(services, b"c") if b"c" in services else 0,
                service_names=_texts(services, b"n", 8, limit=MAX_NAME),
            )
        except (UnicodeDecodeError, TypeError) as exc:
            raise RemoteProtocolError(f"peer metadata: {exc}") from None

    @classmethod
    def decode(cls, data: bytes) -> PeerMetadata:
        if len(data) > MAX_VALUE_BYTES:
            raise RemoteProtocolError(f"peer metadata: {len(data)} bytes is over {MAX_VALUE_BYTES}")
        try:
            return cls.from_value(bdecode(data))
        except BencodeError as exc:
            raise RemoteProtocolError(f"peer metadata: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version, "timestamp": self.timestamp, "listen": list(self.listen),
            "observed": list(self.observed), "lan": list(self.lan),
            "reachability": self.reachability, "nat_type": self.nat_type,
            "relays": list(self.relays), "service_count": self.service_count,
            "service_names": list(self.service_names),
        }


def _int(d: dict[bytes, Any], key: bytes) -> int:
    value = d.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > 2**53:
        raise RemoteProtocolError(f"peer metadata: {key.decode()!r} is not a small integer")
    return value


def _text(d: dict[bytes, Any], key: bytes, limit: int) -> str:
    value = d.get(key, b"")
    if not isinstance(value, bytes) or len(value) > limit:
        raise RemoteProtocolError(f"peer metadata: {key.decode()!r} is not a short string")
    return value.decode()


def _texts(d: dict[bytes, Any], key: bytes, count: int, limit: int = MAX_ADDR) -> tuple[str, ...]:
    value = d.get(key, [])
    if not isinstance(value, list) or len(value) > count:
        raise RemoteProtocolError(f"peer metadata: {key.decode()!r} is not a list of <= {count}")
    out = []
    for item in value:
        if not isinstance(item, bytes) or len(item) > limit:
            raise RemoteProtocolError(f"peer metadata: bad entry in {key.decode()!r}")
        out.append(item.decode())
    return tuple(out)
