"""Gossip wire format: one bencoded frame per transport message, strictly parsed.

Why one module: the encoding is the only place that knows bytes.  The core deals in
``Frame`` and ``SignedMessage`` values; bencode itself is the DHT's strict codec
(``rnn_tui.dht.codec``), wrapped by ``_bencode``/``_bdecode`` below and used nowhere else.

A frame is a dict whose keys are all optional (a frame may carry several kinds at once,
so the core can coalesce everything it owes one peer into a single transport message)::

    v      1                                   protocol version
    sub    [[topic, 0|1], ...]                 subscription changes
    msg    [{a, d, g, h, q, t, ts}, ...]       full messages (see below)
    ihave  [[topic, [id, ...]], ...]           ids of recent messages we can serve
    iwant  [id, ...]                           ids we are missing
    graft  [topic, ...]                        "add me to your mesh for topic"
    prune  [[topic, backoff_seconds], ...]     "I removed you from my mesh"

A message carries ``a`` author (32-byte Ed25519 key), ``q`` per-author sequence, ``t``
topic, ``d`` payload, ``ts`` timestamp in milliseconds, ``g`` signature and ``h`` hop
count.  The signature covers ``SIGNING_PREFIX || bencode({a, d, q, t, ts})``: everything
but ``h``, which each hop increments.  The message id is a 20-byte BLAKE2b digest of the
signed bytes *and* the signature, so a forged copy never shares an id with the real one
and cannot poison the seen-cache.

Decoding is strict: non-canonical bencode (unsorted keys, ``i03e``, trailing bytes),
unknown types, wrong lengths and out-of-range values raise ``MalformedFrame`` naming the
field, which the core turns into a drop plus a penalty for the sending peer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from rnn_tui.dht import codec
from rnn_tui.errors import RemoteProtocolError

__all__ = [
    "PROTOCOL_VERSION",
    "SIGNING_PREFIX",
    "MESSAGE_ID_LEN",
    "WireLimits",
    "SignedMessage",
    "Frame",
    "MalformedFrame",
    "signing_bytes",
    "make_message_id",
    "encode_frame",
    "frame_as_dict",
    "decode_frame",
]

PROTOCOL_VERSION = 1
SIGNING_PREFIX = b"rnn-gossip/1\x00"
MESSAGE_ID_LEN = 20
_KEY_LEN = 32
_SIG_LEN = 64
_MAX_INT = 2**63 - 1


class MalformedFrame(RemoteProtocolError):
    """A peer sent bytes that are not a valid gossip frame; the text names the field."""


@dataclass(frozen=True, slots=True)
class WireLimits:
    """Bounds applied while parsing, so a hostile frame cannot make us allocate much."""

    max_frame_bytes: int = 256 * 1024
    max_payload_bytes: int = 64 * 1024   # network-wide: peers refuse larger payloads
    max_topic_bytes: int = 128
    max_messages: int = 64
    max_subscriptions: int = 64
    max_ihave_topics: int = 16
    max_ids: int = 1024
    max_graft_prune: int = 64


@dataclass(frozen=True, slots=True)
class SignedMessage:
    """One authored, signed message.  ``msg_id`` and ``signed`` are derived, not sent."""

    author: bytes
    seq: int
    topic: str
    payload: bytes
    timestamp_ms: int
    signature: bytes
    msg_id: bytes = field(compare=False, repr=False)
    signed: bytes = field(compare=False, repr=False)

    @classmethod
    def build(cls, author: bytes, seq: int, topic: str, payload: bytes, timestamp_ms: int,
              signature: bytes) -> SignedMessage:
        """Assemble a message and derive its signed bytes and id."""
        signed = signing_bytes(author, seq, topic, payload, timestamp_ms)
        return cls(author, seq, topic, payload, timestamp_ms, signature,
                   make_message_id(signed, signature), signed)


def signing_bytes(author: bytes, seq: int, topic: str, payload: bytes, timestamp_ms: int) -> bytes:
    """The exact bytes an author signs (domain-separated, canonical bencode)."""
    # == SIGNING_PREFIX + bencode({a, d, q, t, ts}), assembled by hand because every
    # received copy (duplicates included) needs it to compute the id; tested against codec.
    return b"%sd1:a%d:%s1:d%d:%s1:qi%de1:t%s2:tsi%dee" % (
        SIGNING_PREFIX, len(author), author, len(payload), payload, seq, _s(topic.encode()), timestamp_ms)


def make_message_id(signed: bytes, signature: bytes) -> bytes:
    return hashlib.blake2b(signed + signature, digest_size=MESSAGE_ID_LEN).digest()


@dataclass(frozen=True, slots=True)
class Frame:
    """Everything one peer sends another in one transport message."""

    subscriptions: tuple[tuple[str, bool], ...] = ()
    messages: tuple[tuple[SignedMessage, int], ...] = ()  # (message, hops)
    ihave: tuple[tuple[str, tuple[bytes, ...]], ...] = ()
    iwant: tuple[bytes, ...] = ()
    graft: tuple[str, ...] = ()
    prune: tuple[tuple[str, int], ...] = ()

    def is_empty(self) -> bool:
        return not (self.subscriptions or self.messages or self.ihave or self.iwant
                    or self.graft or self.prune)


# --------------------------------------------------------------------------- encoding


def frame_as_dict(frame: Frame) -> dict[bytes, Any]:
    """The frame as a bencode-able dict: the reference form ``encode_frame`` must match."""
    out: dict[bytes, Any] = {b"v": PROTOCOL_VERSION}
    if frame.subscriptions:
        out[b"sub"] = [[t.encode(), 1 if on else 0] for t, on in frame.subscriptions]
    if frame.messages:
        out[b"msg"] = [
            {b"a": m.author, b"d": m.payload, b"g": m.signature, b"h": hops, b"q": m.seq,
             b"t": m.topic.encode(), b"ts": m.timestamp_ms}
            for m, hops in frame.messages
        ]
    if frame.ihave:
        out[b"ihave"] = [[t.encode(), list(ids)] for t, ids in frame.ihave]
    if frame.iwant:
        out[b"iwant"] = list(frame.iwant)
    if frame.graft:
        out[b"graft"] = [t.encode() for t in frame.graft]
    if frame.prune:
        out[b"prune"] = [[t.encode(), backoff] for t, backoff in frame.prune]
    return out


def _s(value: bytes) -> bytes:
    return b"%d:%s" % (len(value), value)


def encode_frame(frame: Frame) -> bytes:
    """Canonical bytes of ``frame``; empty sections are omitted.

    Why hand-assembled: encoding is half the CPU of a simulated node, and the layout is
    fixed (keys in sorted order: graft, ihave, iwant, msg, prune, sub, v).  The unit tests
    check it byte for byte against ``codec.encode(frame_as_dict(frame))``.
    """
    parts: list[bytes] = [b"d"]
    if frame.graft:
        parts.append(b"5:graftl")
        parts.extend(_s(t.encode()) for t in frame.graft)
        parts.append(b"e")
    if frame.ihave:
        parts.append(b"5:ihavel")
        for topic, ids in frame.ihave:
            parts.append(b"l" + _s(topic.encode()) + b"l")
            parts.extend(_s(i) for i in ids)
            parts.append(b"ee")
        parts.append(b"e")
    if frame.iwant:
        parts.append(b"5:iwantl")
        parts.extend(_s(i) for i in frame.iwant)
        parts.append(b"e")
    if frame.messages:
        parts.append(b"3:msgl")
        for m, hops in frame.messages:
            parts.append(b"d1:a%s1:d%s1:g%s1:hi%de1:qi%de1:t%s2:tsi%dee" % (
                _s(m.author), _s(m.payload), _s(m.signature), hops, m.seq, _s(m.topic.encode()),
                m.timestamp_ms))
        parts.append(b"e")
    if frame.prune:
        parts.append(b"5:prunel")
        parts.extend(b"l%si%dee" % (_s(t.encode()), backoff) for t, backoff in frame.prune)
        parts.append(b"e")
    if frame.subscriptions:
        parts.append(b"3:subl")
        parts.extend(b"l%si%dee" % (_s(t.encode()), 1 if on else 0) for t, on in frame.subscriptions)
        parts.append(b"e")
    parts.append(b"1:vi%dee" % PROTOCOL_VERSION)
    return b"".join(parts)


def _bencode(obj: Any) -> bytes:
    return codec.encode(obj)


def _bdecode(data: bytes) -> Any:
    # The DHT's codec is strict and canonical by construction (sorted unique keys, no
    # ``i03e``, no trailing bytes), so a frame has exactly one encoding.
    try:
        return codec.decode(data, max_size=len(data) or 1, max_depth=8)
    except codec.BencodeError as exc:
        raise MalformedFrame(f"gossip frame: not canonical bencode: {exc}") from None


# --------------------------------------------------------------------------- decoding


def decode_frame(data: bytes, limits: WireLimits) -> Frame:
    """Parse and validate one frame; raises ``MalformedFrame`` naming the bad field."""
    if len(data) > limits.max_frame_bytes:
        raise MalformedFrame(f"gossip frame: {len(data)} bytes exceeds {limits.max_frame_bytes}")
    raw = _bdecode(data)
    if not isinstance(raw, dict):
        raise MalformedFrame("gossip frame: top level is not a dict")
    version = raw.get(b"v")
    if version != PROTOCOL_VERSION:
        raise MalformedFrame(f"gossip frame: unsupported version {version!r}")
    unknown = set(raw) - {b"v", b"sub", b"msg", b"ihave", b"iwant", b"graft", b"prune"}
    if unknown:
        raise MalformedFrame(f"gossip frame: unknown keys {sorted(unknown)!r}")
    return Frame(
        subscriptions=_parse_subscriptions(raw.get(b"sub", []), limits),
        messages=_parse_messages(raw.get(b"msg", []), limits),
        ihave=_parse_ihave(raw.get(b"ihave", []), limits),
        iwant=_parse_ids(raw.get(b"iwant", []), "iwant", limits.max_ids),
        graft=tuple(_topic(t, "graft", limits)
                    for t in _list(raw.get(b"graft", []), "graft", limits.max_graft_prune)),
        prune=tuple(_parse_prune(p, limits)
                    for p in _list(raw.get(b"prune", []), "prune", limits.max_graft_prune)),
    )


def _list(value: Any, where: str, max_len: int) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedFrame(f"gossip frame: {where} is not a list")
    if len(value) > max_len:
        raise MalformedFrame(f"gossip frame: {where} has {len(value)} entries (max {max_len})")
    return value


def _topic(value: Any, where: str, limits: WireLimits) -> str:
    if not isinstance(value, bytes) or not value or len(value) > limits.max_topic_bytes:
        raise MalformedFrame(f"gossip frame: {where}: topic must be 1..{limits.max_topic_bytes} bytes")
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise MalformedFrame(f"gossip frame: {where}: topic is not UTF-8") from None


def _int(value: Any, where: str, low: int = 0, high: int = _MAX_INT) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise MalformedFrame(f"gossip frame: {where} must be an integer in [{low}, {high}]")
    return value


def _bytes(value: Any, where: str, length: int) -> bytes:
    if not isinstance(value, bytes) or len(value) != length:
        raise MalformedFrame(f"gossip frame: {where} must be {length} bytes")
    return value


def _parse_subscriptions(value: Any, limits: WireLimits) -> tuple[tuple[str, bool], ...]:
    out = []
    for i, entry in enumerate(_list(value, "sub", limits.max_subscriptions)):
        if not isinstance(entry, list) or len(entry) != 2:
            raise MalformedFrame(f"gossip frame: sub[{i}] must be [topic, 0|1]")
        out.append((_topic(entry[0], f"sub[{i}]", limits), bool(_int(entry[1], f"sub[{i}] flag", 0, 1))))
    return tuple(out)


def _parse_messages(value: Any, limits: WireLimits) -> tuple[tuple[SignedMessage, int], ...]:
    out = []
    for i, entry in enumerate(_list(value, "msg", limits.max_messages)):
        where = f"msg[{i}]"
        if not isinstance(entry, dict) or set(entry) != {b"a", b"d", b"g", b"h", b"q", b"t", b"ts"}:
            raise MalformedFrame(f"gossip frame: {where} must have exactly keys a d g h q t ts")
        payload = entry[b"d"]
        if not isinstance(payload, bytes):
            raise MalformedFrame(f"gossip frame: {where}.d (payload) must be bytes")
        if len(payload) > limits.max_payload_bytes:
            raise MalformedFrame(
                f"gossip frame: {where}.d payload of {len(payload)} bytes exceeds {limits.max_payload_bytes}")
        message = SignedMessage.build(
            author=_bytes(entry[b"a"], f"{where}.a (author)", _KEY_LEN),
            seq=_int(entry[b"q"], f"{where}.q (seq)"),
            topic=_topic(entry[b"t"], f"{where}.t", limits),
            payload=payload,
            timestamp_ms=_int(entry[b"ts"], f"{where}.ts (timestamp)"),
            signature=_bytes(entry[b"g"], f"{where}.g (signature)", _SIG_LEN),
        )
        out.append((message, _int(entry[b"h"], f"{where}.h (hops)", 0, 255)))
    return tuple(out)


def _parse_ids(value: Any, where: str, max_ids: int) -> tuple[bytes, ...]:
    return tuple(_bytes(v, f"{where}[{i}] (message id)", MESSAGE_ID_LEN)
                 for i, v in enumerate(_list(value, where, max_ids)))


def _parse_ihave(value: Any, limits: WireLimits) -> tuple[tuple[str, tuple[bytes, ...]], ...]:
    out = []
    for i, entry in enumerate(_list(value, "ihave", limits.max_ihave_topics)):
        if not isinstance(entry, list) or len(entry) != 2:
            raise MalformedFrame(f"gossip frame: ihave[{i}] must be [topic, [ids]]")
        out.append((_topic(entry[0], f"ihave[{i}]", limits),
                    _parse_ids(entry[1], f"ihave[{i}]", limits.max_ids)))
    return tuple(out)


def _parse_prune(entry: Any, limits: WireLimits) -> tuple[str, int]:
    if not isinstance(entry, list) or len(entry) != 2:
        raise MalformedFrame("gossip frame: prune entry must be [topic, backoff]")
    return _topic(entry[0], "prune", limits), _int(entry[1], "prune backoff", 0, 86_400)
