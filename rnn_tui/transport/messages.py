"""The one registry of message types carried by the transport (sans-IO).

Why one registry: a frame names its body by a 16-bit type code; the receiver needs one
place that maps codes to classes and rejects the rest with an error reply.  Other
packages add their own types with :func:`register_message` (no edit here needed) and
pick codes from their range:

======  ===========================================
range   owner
======  ===========================================
0x00xx  transport (this module)
0x01xx  gossip
0x02xx  services (catalog entries, invocations)
0x03xx  workflows / jobs
0x04xx  NAT traversal and relay
0x05xx  transfers (file and data chunks)
0xF0xx  tests and experiments
======  ===========================================

Every message is a frozen, slotted dataclass with a ``TYPE`` code, ``encode() -> bytes``
and ``decode(body) -> message``.  Bodies are canonical bencode (sorted keys, checked on
decode), except :class:`RawChunk` whose body is the raw bytes: binary stays binary.
A body that does not decode raises :class:`RemoteProtocolError` with code
``FrameError.BAD_BODY``; the session turns it into an error reply.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from rnn_tui.dht import codec
from rnn_tui.errors import LocalProtocolError, RemoteProtocolError
from rnn_tui.identity import Identity, PeerId, verify_signature
from rnn_tui.transport.framing import FrameError

__all__ = [
    "Message",
    "MessageRegistry",
    "REGISTRY",
    "register_message",
    "bencode",
    "bdecode_dict",
    "format_addr",
    "parse_addr",
    "Ping",
    "Pong",
    "Identify",
    "PeerRecord",
    "PeerExchange",
    "ServiceCatalogRequest",
    "ServiceCatalogEntry",
    "ServiceCatalog",
    "ErrorReply",
    "RawChunk",
    "PROTOCOL_VERSION",
    "MAX_PEER_RECORDS",
]

PROTOCOL_VERSION = 1
MAX_PEER_RECORDS = 64
MAX_ADDRS = 16
PEER_RECORD_DOMAIN = b"rnn-peer-record-v1"
Addr = tuple[str, int]


@runtime_checkable
class Message(Protocol):
    """What every registered message type provides."""

    TYPE: ClassVar[int]

    def encode(self) -> bytes: ...

    @classmethod
    def decode(cls, body: bytes) -> Message: ...


M = TypeVar("M", bound=type[Message])


class MessageRegistry:
    """Type code ↔ class.  Registering a code twice is a programming error."""

    __slots__ = ("_by_code",)

    def __init__(self) -> None:
        self._by_code: dict[int, type[Message]] = {}

    def register(self, cls: M) -> M:
        code = getattr(cls, "TYPE", None)
        if not isinstance(code, int) or not 0 < code <= 0xFFFF:
            raise LocalProtocolError(f"{cls.__name__}.TYPE must be an int in 1..65535, got {code!r}")
        other = self._by_code.get(code)
        if other is not None and other is not cls:
            raise LocalProtocolError(
                f"message type {code:#06x} is already {other.__name__}; cannot register {cls.__name__}")
        self._by_code[code] = cls
        return cls

    def get(self, code: int) -> type[Message] | None:
        return self._by_code.get(code)

    def decode(self, code: int, body: bytes) -> Message:
        """Decode a body of type ``code``; unknown codes raise RemoteProtocolError(UNKNOWN_TYPE)."""
        cls = self._by_code.get(code)
        if cls is None:
            raise RemoteProtocolError(f"unknown message type {code:#06x}", FrameError.UNKNOWN_TYPE)
        return cls.decode(body)

    def codes(self) -> list[int]:
        return sorted(self._by_code)


REGISTRY = MessageRegistry()


def register_message(cls: M) -> M:
    """Class decorator: add a message type to the process-wide registry."""
    return REGISTRY.register(cls)


# --------------------------------------------------------------------------- bencode
# The DHT's strict codec (canonical by construction); we add str -> UTF-8 for convenience.

def _sorted(obj: Any) -> Any:
    if isinstance(obj, dict):
        items = [(k.encode() if isinstance(k, str) else k, v) for k, v in obj.items()]
        return {k: _sorted(v) for k, v in sorted(items)}
    if isinstance(obj, list | tuple):
        return [_sorted(v) for v in obj]
    if isinstance(obj, bool):
        raise LocalProtocolError("bencode has no booleans; use 0/1")
    if isinstance(obj, str):
        return obj.encode()
    if isinstance(obj, int):
        return int(obj)  # IntEnum codes become plain integers
    return obj


def bencode(obj: Any) -> bytes:
    """Canonical bencode: keys sorted, str encoded as UTF-8, no booleans."""
    try:
        return codec.encode(_sorted(obj))
    except RemoteProtocolError as exc:  # the codec reports unencodable values this way
        raise LocalProtocolError(f"cannot bencode: {exc}") from None


def bdecode_dict(body: bytes, what: str) -> dict[bytes, Any]:
    """Decode a canonical bencoded dict or raise RemoteProtocolError(BAD_BODY) naming ``what``."""
    try:
        value = codec.decode(body, max_size=max(len(body), 1))
    except RemoteProtocolError as exc:  # strict: non-canonical input is refused too
        raise RemoteProtocolError(f"{what}: body is not canonical bencode ({exc})",
                                  FrameError.BAD_BODY) from None
    if not isinstance(value, dict):
        raise RemoteProtocolError(f"{what}: body is not a bencoded dict", FrameError.BAD_BODY)
    return value


def _field(d: dict[bytes, Any], key: str, kind: type, what: str) -> Any:
    value = d.get(key.encode())
    if not isinstance(value, kind):
        raise RemoteProtocolError(f"{what}: field {key!r} missing or not {kind.__name__}",
                                  FrameError.BAD_BODY)
    return value


def _text(d: dict[bytes, Any], key: str, what: str, limit: int = 1024) -> str:
    raw = _field(d, key, bytes, what)
    if len(raw) > limit:
        raise RemoteProtocolError(f"{what}: field {key!r} longer than {limit}", FrameError.BAD_BODY)
    try:
        return str(raw.decode())
    except UnicodeDecodeError:
        raise RemoteProtocolError(f"{what}: field {key!r} is not UTF-8", FrameError.BAD_BODY) from None


def _text_list(d: dict[bytes, Any], key: str, what: str, limit: int) -> tuple[str, ...]:
    raw = _field(d, key, list, what)
    if len(raw) > limit:
        raise RemoteProtocolError(f"{what}: field {key!r} has more than {limit} items",
                                  FrameError.BAD_BODY)
    return tuple(_text({b"x": item}, "x", f"{what}.{key}", 256) for item in raw)


def format_addr(addr: Addr) -> str:
    """``host:port``, with IPv6 hosts in brackets."""
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_addr(text: str) -> Addr:
    """Inverse of :func:`format_addr`; ValueError names the bad text."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]:")
    else:
        host, sep, rest = text.rpartition(":")
    if not sep or not host or not rest.isdigit() or not 0 < int(rest) < 65536:
        raise ValueError(f"not a host:port address: {text!r}")
    return host, int(rest)


# --------------------------------------------------------------------------- messages

@register_message
@dataclass(frozen=True, slots=True)
class Ping:
    """Liveness and RTT probe; answered by :class:`Pong` with the same nonce."""

    TYPE: ClassVar[int] = 0x0001
    nonce: bytes = b""

    def encode(self) -> bytes:
        return bencode({"n": self.nonce})

    @classmethod
    def decode(cls, body: bytes) -> Ping:
        d = bdecode_dict(body, "ping")
        return cls(_field(d, "n", bytes, "ping")[:64])


@register_message
@dataclass(frozen=True, slots=True)
class Pong:
    TYPE: ClassVar[int] = 0x0002
    nonce: bytes = b""

    def encode(self) -> bytes:
        return bencode({"n": self.nonce})

    @classmethod
    def decode(cls, body: bytes) -> Pong:
        d = bdecode_dict(body, "pong")
        return cls(_field(d, "n", bytes, "pong")[:64])


@register_message
@dataclass(frozen=True, slots=True)
class Identify:
    """What a node says about itself, and the address it sees the other side at.

    Sent as a request (our view) and answered with the same type (their view).  The
    peer id is not in here: the TLS handshake already proved it.
    """

    TYPE: ClassVar[int] = 0x0003
    protocol_version: int
    agent: str
    listen_addrs: tuple[str, ...]
    observed_addr: str
    capabilities: tuple[str, ...]

    def encode(self) -> bytes:
        return bencode({"v": self.protocol_version, "a": self.agent,
                        "l": list(self.listen_addrs), "o": self.observed_addr,
                        "c": list(self.capabilities)})

    @classmethod
    def decode(cls, body: bytes) -> Identify:
        d = bdecode_dict(body, "identify")
        return cls(_field(d, "v", int, "identify"), _text(d, "a", "identify", 128),
                   _text_list(d, "l", "identify", MAX_ADDRS), _text(d, "o", "identify", 256),
                   _text_list(d, "c", "identify", 64))


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """A signed statement "peer X listens at these addresses, as of time T".

    The signature covers ``PEER_RECORD_DOMAIN`` plus the canonical bencode of
    ``{"a": addrs, "id": key, "t": timestamp}`` so that it cannot be replayed as any
    other signed object of ours.
    """

    peer_id: PeerId
    addrs: tuple[str, ...]
    timestamp: int
    signature: bytes

    @staticmethod
    def signed_bytes(peer_id: PeerId, addrs: Iterable[str], timestamp: int) -> bytes:
        return PEER_RECORD_DOMAIN + bencode({"a": list(addrs), "id": peer_id.key, "t": timestamp})

    @classmethod
    def create(cls, identity: Identity, addrs: Iterable[str], timestamp: int) -> PeerRecord:
        addrs = tuple(addrs)
        sig = identity.sign(cls.signed_bytes(identity.peer_id, addrs, timestamp))
        return cls(identity.peer_id, addrs, timestamp, sig)

    def verify(self) -> bool:
        return verify_signature(self.peer_id.key,
                                self.signed_bytes(self.peer_id, self.addrs, self.timestamp),
                                self.signature)

    def to_obj(self) -> dict[str, Any]:
        return {"a": list(self.addrs), "id": self.peer_id.key, "t": self.timestamp,
                "s": self.signature}

    @classmethod
    def from_obj(cls, obj: Any) -> PeerRecord:
        what = "peer record"
        if not isinstance(obj, dict):
            raise RemoteProtocolError(f"{what}: not a dict", FrameError.BAD_BODY)
        key = _field(obj, "id", bytes, what)
        if len(key) != 32:
            raise RemoteProtocolError(f"{what}: id is not 32 bytes", FrameError.BAD_BODY)
        return cls(PeerId(key), _text_list(obj, "a", what, MAX_ADDRS),
                   _field(obj, "t", int, what), _field(obj, "s", bytes, what))


@register_message
@dataclass(frozen=True, slots=True)
class PeerExchange:
    """Peers we know, as signed records; the reply carries the other side's.

    Receivers keep only :meth:`verified` records: a forged record costs the sender a
    signature check on our side and nothing more.
    """

    TYPE: ClassVar[int] = 0x0004
    records: tuple[PeerRecord, ...]

    def encode(self) -> bytes:
        return bencode({"r": [r.to_obj() for r in self.records]})

    @classmethod
    def decode(cls, body: bytes) -> PeerExchange:
        d = bdecode_dict(body, "peer_exchange")
        raw = _field(d, "r", list, "peer_exchange")
        if len(raw) > MAX_PEER_RECORDS:
            raise RemoteProtocolError(
                f"peer_exchange: {len(raw)} records, at most {MAX_PEER_RECORDS}", FrameError.BAD_BODY)
        return cls(tuple(PeerRecord.from_obj(r) for r in raw))

    def verified(self) -> tuple[PeerRecord, ...]:
        """Records whose signature checks out; forged ones are dropped."""
        return tuple(r for r in self.records if r.verify())


@register_message
@dataclass(frozen=True, slots=True)
class ServiceCatalogRequest:
    TYPE: ClassVar[int] = 0x0005

    def encode(self) -> bytes:
        return bencode({})

    @classmethod
    def decode(cls, body: bytes) -> ServiceCatalogRequest:
        bdecode_dict(body, "service_catalog_request")
        return cls()


@dataclass(frozen=True, slots=True)
class ServiceCatalogEntry:
    """A summary line for one offered service (the services issue fills these in)."""

    name: str
    kind: str
    summary: str


@register_message
@dataclass(frozen=True, slots=True)
class ServiceCatalog:
    TYPE: ClassVar[int] = 0x0006
    entries: tuple[ServiceCatalogEntry, ...] = ()

    def encode(self) -> bytes:
        return bencode({"e": [{"n": e.name, "k": e.kind, "s": e.summary} for e in self.entries]})

    @classmethod
    def decode(cls, body: bytes) -> ServiceCatalog:
        what = "service_catalog"
        d = bdecode_dict(body, what)
        out = []
        for item in _field(d, "e", list, what):
            if not isinstance(item, dict):
                raise RemoteProtocolError(f"{what}: entry is not a dict", FrameError.BAD_BODY)
            out.append(ServiceCatalogEntry(_text(item, "n", what, 256), _text(item, "k", what, 64),
                                           _text(item, "s", what, 1024)))
        return cls(tuple(out))


@register_message
@dataclass(frozen=True, slots=True)
class ErrorReply:
    """The answer to a request that failed; ``code`` is a :class:`FrameError` or handler code."""

    TYPE: ClassVar[int] = 0x0007
    code: int
    message: str

    def encode(self) -> bytes:
        return bencode({"c": self.code, "m": self.message[:1024]})

    @classmethod
    def decode(cls, body: bytes) -> ErrorReply:
        d = bdecode_dict(body, "error")
        return cls(_field(d, "c", int, "error"), _text(d, "m", "error", 1024))


@register_message
@dataclass(frozen=True, slots=True)
class RawChunk:
    """Opaque binary payload (log output, file data): the body *is* the data."""

    TYPE: ClassVar[int] = 0x0008
    data: bytes

    def encode(self) -> bytes:
        return self.data

    @classmethod
    def decode(cls, body: bytes) -> RawChunk:
        return cls(body)

