"""Binary wire format of the NAT-traversal messages (length-prefixed, never pickle).

Why binary and not bencode: these messages are small, typed and fixed in shape; a
``type byte + fields`` layout is unambiguous (one encoding per message, so it can be
compared and replayed-checked byte for byte) and cheap to parse.  Every decode error
becomes ``RemoteProtocolError`` naming the message type and the field that was bad, so
the driver can drop the frame and log one clear line.

Three families travel here:

* punch messages (``PunchConnect``, ``PunchSync``, ``PunchRefused``) over the relayed,
  end-to-end authenticated connection between the two peers;
* relay messages between a client and a relay over their own authenticated QUIC
  connection (reserve, connect, circuit data);
* punch probes: raw UDP datagrams on the node's socket, recognised by ``PROBE_MAGIC``
  (its first byte 0x00 clears the QUIC fixed bit and is not bencode's ``d``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from rnn_tui.errors import RemoteProtocolError
from rnn_tui.nat.model import Addr, NatType, check_addr

__all__ = [
    "PunchConnect", "PunchSync", "PunchRefused", "PunchMessage",
    "ReserveRequest", "ReserveAccepted", "ReserveRefused", "ConnectRequest",
    "ConnectAccepted", "ConnectRefused", "IncomingCircuit", "CircuitAccept", "CircuitReject",
    "CircuitData", "CircuitClosed", "RelayMessage", "NatMessage",
    "Probe", "PROBE_MAGIC", "encode_message", "decode_message", "encode_probe", "decode_probe",
    "is_probe", "ATTEMPT_ID_LEN", "NONCE_LEN", "MAX_ADDRS", "MAX_REASON", "MAX_CIRCUIT_PAYLOAD",
    "DATAGRAM_TO_RELAY", "DATAGRAM_FROM_RELAY", "CIRCUIT_DATAGRAM_HEADER",
    "encode_circuit_datagram", "decode_circuit_datagram",
]

ATTEMPT_ID_LEN = 8
NONCE_LEN = 16
PEER_ID_LEN = 32
TAG_LEN = 16
MAX_ADDRS = 8  # a peer can make us probe at most this many candidate addresses
MAX_REASON = 200
MAX_CIRCUIT_PAYLOAD = 65_535
PROBE_MAGIC = b"\x00RNP"
#: DATAGRAM-frame channels (first byte) of relayed packets: to a relay, from a relay.
#: Two channels because one connection may link a relay client and a relay both ways.
DATAGRAM_TO_RELAY = 0x21
DATAGRAM_FROM_RELAY = 0x22
#: channel (1) + circuit id (u64, as in ``CircuitData``)
CIRCUIT_DATAGRAM_HEADER = 9


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def _check_reason(reason: str) -> None:
    _require(isinstance(reason, str) and len(reason.encode()) <= MAX_REASON,
             f"reason is longer than {MAX_REASON} bytes")


# -- punch messages ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PunchConnect:
    """Our candidate addresses (observed + LAN) and NAT type, for one punch attempt."""

    attempt_id: bytes
    nonce: bytes  # half of the secret that authenticates the probes of this attempt
    addrs: tuple[Addr, ...]
    nat_type: NatType
    is_reply: bool

    def __post_init__(self) -> None:
        _require(len(self.attempt_id) == ATTEMPT_ID_LEN, "attempt_id must be 8 bytes")
        _require(len(self.nonce) == NONCE_LEN, "nonce must be 16 bytes")
        _require(len(self.addrs) <= MAX_ADDRS, f"more than {MAX_ADDRS} addresses")
        for addr in self.addrs:
            _require(check_addr(addr) == addr, f"bad address {addr!r}")


@dataclass(frozen=True, slots=True)
class PunchSync:
    """Start punching now (the initiator starts itself after RTT/2)."""

    attempt_id: bytes

    def __post_init__(self) -> None:
        _require(len(self.attempt_id) == ATTEMPT_ID_LEN, "attempt_id must be 8 bytes")


@dataclass(frozen=True, slots=True)
class PunchRefused:
    """The peer refused one of our punch messages; ``reason`` says why.

    ``aborts`` is True when the sender abandons the attempt (no strategy can work, session
    over).  A refusal of a single stray message (a replay, an unknown attempt) has it
    False and must not end an attempt that is going well: otherwise anyone able to
    trigger a refusal could cancel a punch.
    """

    attempt_id: bytes
    reason: str
    aborts: bool = False

    def __post_init__(self) -> None:
        _require(len(self.attempt_id) == ATTEMPT_ID_LEN, "attempt_id must be 8 bytes")
        _check_reason(self.reason)


PunchMessage = PunchConnect | PunchSync | PunchRefused


# -- relay messages ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReserveRequest:
    """Client → relay: keep a slot for me (the relay knows who "me" is from the TLS key)."""


@dataclass(frozen=True, slots=True)
class ReserveAccepted:
    ttl: int  # seconds until the reservation expires unless renewed
    max_circuit_bytes: int
    max_circuit_seconds: int


@dataclass(frozen=True, slots=True)
class ReserveRefused:
    reason: str

    def __post_init__(self) -> None:
        _check_reason(self.reason)


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """Dialer → relay: open a circuit to ``target`` (a reservation holder)."""

    target: bytes

    def __post_init__(self) -> None:
        _require(len(self.target) == PEER_ID_LEN, "target must be a 32-byte peer id")


@dataclass(frozen=True, slots=True)
class ConnectAccepted:
    circuit_id: int
    target: bytes


@dataclass(frozen=True, slots=True)
class ConnectRefused:
    target: bytes
    reason: str

    def __post_init__(self) -> None:
        _check_reason(self.reason)


@dataclass(frozen=True, slots=True)
class IncomingCircuit:
    """Relay → target: ``source`` (authenticated by the relay) wants a circuit."""

    circuit_id: int
    source: bytes


@dataclass(frozen=True, slots=True)
class CircuitAccept:
    circuit_id: int


@dataclass(frozen=True, slots=True)
class CircuitReject:
    circuit_id: int
    reason: str

    def __post_init__(self) -> None:
        _check_reason(self.reason)


@dataclass(frozen=True, slots=True)
class CircuitData:
    """Opaque bytes of the two ends' own end-to-end QUIC session."""

    circuit_id: int
    payload: bytes

    def __post_init__(self) -> None:
        _require(len(self.payload) <= MAX_CIRCUIT_PAYLOAD, "payload too large")


@dataclass(frozen=True, slots=True)
class CircuitClosed:
    circuit_id: int
    reason: str

    def __post_init__(self) -> None:
        _check_reason(self.reason)


RelayMessage = (ReserveRequest | ReserveAccepted | ReserveRefused | ConnectRequest
                | ConnectAccepted | ConnectRefused | IncomingCircuit | CircuitAccept
                | CircuitReject | CircuitData | CircuitClosed)
NatMessage = PunchMessage | RelayMessage


# -- encoding ------------------------------------------------------------------------
class _Writer:
    __slots__ = ("parts",)

    def __init__(self, type_code: int) -> None:
        self.parts = [bytes([type_code])]

    def raw(self, data: bytes) -> None:
        self.parts.append(data)

    def u8(self, v: int) -> None:
        self.parts.append(struct.pack("!B", v))

    def u32(self, v: int) -> None:
        self.parts.append(struct.pack("!I", v))

    def u64(self, v: int) -> None:
        self.parts.append(struct.pack("!Q", v))

    def blob(self, data: bytes) -> None:
        self.parts.append(struct.pack("!I", len(data)) + data)

    def text(self, s: str) -> None:
        self.blob(s.encode())

    def done(self) -> bytes:
        return b"".join(self.parts)


class _Reader:
    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 1, what

    def take(self, n: int, field: str) -> bytes:
        if self.pos + n > len(self.data):
            raise RemoteProtocolError(f"{self.what}: truncated at field {field!r}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self, field: str) -> int:
        return int(self.take(1, field)[0])

    def u32(self, field: str) -> int:
        return int(struct.unpack("!I", self.take(4, field))[0])

    def u64(self, field: str) -> int:
        return int(struct.unpack("!Q", self.take(8, field))[0])

    def blob(self, field: str, limit: int) -> bytes:
        n = self.u32(field)
        if n > limit:
            raise RemoteProtocolError(f"{self.what}: field {field!r} is {n} bytes (max {limit})")
        return self.take(n, field)

    def text(self, field: str, limit: int = MAX_REASON) -> str:
        try:
            return self.blob(field, limit).decode()
        except UnicodeDecodeError:
            raise RemoteProtocolError(f"{self.what}: field {field!r} is not UTF-8") from None

    def end(self) -> None:
        if self.pos != len(self.data):
            raise RemoteProtocolError(f"{self.what}: {len(self.data) - self.pos} trailing bytes")


_NAT_CODES = {t: i for i, t in enumerate(NatType)}
_NAT_BY_CODE = {i: t for t, i in _NAT_CODES.items()}

_CODES: dict[type, int] = {
    PunchConnect: 0x01, PunchSync: 0x02, PunchRefused: 0x03,
    ReserveRequest: 0x10, ReserveAccepted: 0x11, ReserveRefused: 0x12, ConnectRequest: 0x13,
    ConnectAccepted: 0x14, ConnectRefused: 0x15, IncomingCircuit: 0x16, CircuitAccept: 0x17,
    CircuitReject: 0x18, CircuitData: 0x19, CircuitClosed: 0x1A,
}
_TYPES = {code: t for t, code in _CODES.items()}


def encode_message(msg: NatMessage) -> bytes:
    w = _Writer(_CODES[type(msg)])
    match msg:
        case PunchConnect():
            w.raw(msg.attempt_id)
            w.raw(msg.nonce)
            w.u8(_NAT_CODES[msg.nat_type])
            w.u8(1 if msg.is_reply else 0)
            w.u8(len(msg.addrs))
            for host, port in msg.addrs:
                w.text(host)
                w.u32(port)
        case PunchSync():
            w.raw(msg.attempt_id)
        case PunchRefused():
            w.raw(msg.attempt_id)
            w.text(msg.reason)
            w.u8(1 if msg.aborts else 0)
        case ReserveRequest():
            pass
        case ReserveAccepted():
            w.u32(msg.ttl)
            w.u64(msg.max_circuit_bytes)
            w.u32(msg.max_circuit_seconds)
        case ReserveRefused():
            w.text(msg.reason)
        case ConnectRequest():
            w.raw(msg.target)
        case ConnectAccepted():
            w.u64(msg.circuit_id)
            w.raw(msg.target)
        case ConnectRefused():
            w.raw(msg.target)
            w.text(msg.reason)
        case IncomingCircuit():
            w.u64(msg.circuit_id)
            w.raw(msg.source)
        case CircuitAccept():
            w.u64(msg.circuit_id)
        case CircuitReject() | CircuitClosed():
            w.u64(msg.circuit_id)
            w.text(msg.reason)
        case CircuitData():
            w.u64(msg.circuit_id)
            w.blob(msg.payload)
    return w.done()


def decode_message(data: bytes) -> NatMessage:
    """Parse one message; any malformation raises ``RemoteProtocolError`` saying where."""
    if not data:
        raise RemoteProtocolError("NAT message: empty frame")
    cls = _TYPES.get(data[0])
    if cls is None:
        raise RemoteProtocolError(f"NAT message: unknown type 0x{data[0]:02x}")
    r = _Reader(data, cls.__name__)
    msg: NatMessage
    try:
        if cls is PunchConnect:
            attempt, nonce = r.take(ATTEMPT_ID_LEN, "attempt_id"), r.take(NONCE_LEN, "nonce")
            nat_code = r.u8("nat_type")
            if nat_code not in _NAT_BY_CODE:
                raise RemoteProtocolError(f"PunchConnect: unknown nat_type {nat_code}")
            is_reply = r.u8("is_reply")
            count = r.u8("addrs")
            if count > MAX_ADDRS:
                raise RemoteProtocolError(f"PunchConnect: {count} addresses (max {MAX_ADDRS})")
            addrs = tuple((r.text("addr.host", 64), r.u32("addr.port")) for _ in range(count))
            msg = PunchConnect(attempt, nonce, addrs, _NAT_BY_CODE[nat_code], is_reply == 1)
        elif cls is PunchSync:
            msg = PunchSync(r.take(ATTEMPT_ID_LEN, "attempt_id"))
        elif cls is PunchRefused:
            msg = PunchRefused(r.take(ATTEMPT_ID_LEN, "attempt_id"), r.text("reason"),
                               r.u8("aborts") == 1)
        elif cls is ReserveRequest:
            msg = ReserveRequest()
        elif cls is ReserveAccepted:
            msg = ReserveAccepted(r.u32("ttl"), r.u64("max_circuit_bytes"),
                                  r.u32("max_circuit_seconds"))
        elif cls is ReserveRefused:
            msg = ReserveRefused(r.text("reason"))
        elif cls is ConnectRequest:
            msg = ConnectRequest(r.take(PEER_ID_LEN, "target"))
        elif cls is ConnectAccepted:
            msg = ConnectAccepted(r.u64("circuit_id"), r.take(PEER_ID_LEN, "target"))
        elif cls is ConnectRefused:
            msg = ConnectRefused(r.take(PEER_ID_LEN, "target"), r.text("reason"))
        elif cls is IncomingCircuit:
            msg = IncomingCircuit(r.u64("circuit_id"), r.take(PEER_ID_LEN, "source"))
        elif cls is CircuitAccept:
            msg = CircuitAccept(r.u64("circuit_id"))
        elif cls is CircuitReject:
            msg = CircuitReject(r.u64("circuit_id"), r.text("reason"))
        elif cls is CircuitData:
            msg = CircuitData(r.u64("circuit_id"), r.blob("payload", MAX_CIRCUIT_PAYLOAD))
        else:
            msg = CircuitClosed(r.u64("circuit_id"), r.text("reason"))
    except ValueError as exc:
        raise RemoteProtocolError(f"{cls.__name__}: {exc}") from None
    r.end()
    return msg


# -- probes --------------------------------------------------------------------------
PROBE, PROBE_ACK = 1, 2
_PROBE_LEN = len(PROBE_MAGIC) + 1 + ATTEMPT_ID_LEN + 1 + 4 + TAG_LEN


@dataclass(frozen=True, slots=True)
class Probe:
    """One hole-punch datagram.  ``tag`` proves the sender knows this attempt's secret."""

    kind: int  # PROBE or PROBE_ACK
    attempt_id: bytes
    sender_is_initiator: bool
    seq: int
    tag: bytes


# -- relayed packets in DATAGRAM frames ------------------------------------------------
def encode_circuit_datagram(channel: int, circuit_id: int, packet: bytes) -> bytes:
    """One inner QUIC packet of a circuit as a DATAGRAM frame: channel, u64 id, packet."""
    return bytes((channel,)) + circuit_id.to_bytes(8, "big") + packet


def decode_circuit_datagram(data: bytes) -> tuple[int, bytes]:
    """(circuit id, packet) of a circuit datagram; RemoteProtocolError when malformed."""
    if len(data) <= CIRCUIT_DATAGRAM_HEADER:
        raise RemoteProtocolError(f"circuit datagram of {len(data)} bytes carries no packet")
    return int.from_bytes(data[1:CIRCUIT_DATAGRAM_HEADER], "big"), data[CIRCUIT_DATAGRAM_HEADER:]


def is_probe(data: bytes) -> bool:
    """Cheap demux test for the shared UDP socket."""
    return len(data) == _PROBE_LEN and data.startswith(PROBE_MAGIC)


def encode_probe(p: Probe) -> bytes:
    return (PROBE_MAGIC + bytes([p.kind]) + p.attempt_id + bytes([int(p.sender_is_initiator)])
            + struct.pack("!I", p.seq) + p.tag)


def decode_probe(data: bytes) -> Probe | None:
    """The probe in ``data``, or None when it is not a well-formed probe (dropped)."""
    if not is_probe(data):
        return None
    i = len(PROBE_MAGIC)
    kind = data[i]
    if kind not in (PROBE, PROBE_ACK) or data[i + 1 + ATTEMPT_ID_LEN] > 1:
        return None
    attempt = data[i + 1:i + 1 + ATTEMPT_ID_LEN]
    j = i + 1 + ATTEMPT_ID_LEN
    (seq,) = struct.unpack("!I", data[j + 1:j + 5])
    return Probe(kind, attempt, data[j] == 1, seq, data[j + 5:])
