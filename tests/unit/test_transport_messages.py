"""Message registry and schemas: round trips, strict decoding, signed peer records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from rnn_tui.errors import LocalProtocolError, RemoteProtocolError
from rnn_tui.identity import Identity, PeerId
from rnn_tui.transport.framing import FrameError
from rnn_tui.transport.messages import (
    REGISTRY,
    ErrorReply,
    Identify,
    MessageRegistry,
    PeerExchange,
    PeerRecord,
    Ping,
    Pong,
    RawChunk,
    ServiceCatalog,
    ServiceCatalogEntry,
    ServiceCatalogRequest,
    bencode,
    format_addr,
    parse_addr,
)

SAMPLES = [
    Ping(b"\x00\x01"), Pong(b"nonce"),
    Identify(1, "rnn/0.1", ("127.0.0.1:30609", "[::1]:30609"), "10.0.0.1:4000", ("relay",)),
    ServiceCatalogRequest(), ServiceCatalog(),
    ServiceCatalog((ServiceCatalogEntry("ocr", "DOCKER", "reads text"),)),
    ErrorReply(0x104, "unknown message type 0x7777"), RawChunk(b"\x00\xff" * 100),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip_through_the_registry(msg: object) -> None:
    body = msg.encode()  # type: ignore[attr-defined]
    assert REGISTRY.decode(type(msg).TYPE, body) == msg  # type: ignore[attr-defined]


def test_raw_chunk_body_is_the_bytes_themselves() -> None:
    assert RawChunk(b"\x00binary\xff").encode() == b"\x00binary\xff"


def test_unknown_type_is_a_remote_error() -> None:
    with pytest.raises(RemoteProtocolError) as err:
        REGISTRY.decode(0x7777, b"de")
    assert err.value.code == FrameError.UNKNOWN_TYPE


@pytest.mark.parametrize("body", [b"", b"garbage", b"le", b"d1:ni01ee", b"d1:n1:xe trailing",
                                  b"d1:zi1e1:n0:e", b"d1:ni5ee"])
def test_malformed_or_non_canonical_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as err:
        Ping.decode(body)
    assert err.value.code == FrameError.BAD_BODY


def test_identify_limits_and_utf8() -> None:
    too_many = bencode({"v": 1, "a": "x", "l": ["a:1"] * 17, "o": "", "c": []})
    with pytest.raises(RemoteProtocolError, match="more than 16"):
        Identify.decode(too_many)
    bad_utf8 = bencode({"v": 1, "a": b"\xff", "l": [], "o": "", "c": []})
    with pytest.raises(RemoteProtocolError, match="UTF-8"):
        Identify.decode(bad_utf8)


def test_registry_refuses_duplicate_codes_and_bad_codes() -> None:
    reg = MessageRegistry()

    @dataclass(frozen=True, slots=True)
    class A:
        TYPE: ClassVar[int] = 0xF001

        def encode(self) -> bytes:
            return b""

        @classmethod
        def decode(cls, body: bytes) -> A:
            return cls()

    @dataclass(frozen=True, slots=True)
    class B(A):
        pass

    reg.register(A)
    reg.register(A)  # idempotent for the same class
    with pytest.raises(LocalProtocolError, match="already A"):
        reg.register(B)

    class Bad:
        TYPE = 0

    with pytest.raises(LocalProtocolError, match="TYPE"):
        reg.register(Bad)  # type: ignore[type-var]
    assert reg.codes() == [0xF001]


def test_peer_record_signature_binds_every_field() -> None:
    ident = Identity.generate()
    rec = PeerRecord.create(ident, ["127.0.0.1:1"], 1000)
    assert rec.verify()
    other = Identity.generate()
    forgeries = [
        PeerRecord(rec.peer_id, ("6.6.6.6:1",), rec.timestamp, rec.signature),
        PeerRecord(rec.peer_id, rec.addrs, 1001, rec.signature),
        PeerRecord(other.peer_id, rec.addrs, rec.timestamp, rec.signature),
        PeerRecord(rec.peer_id, rec.addrs, rec.timestamp, bytes(64)),
        PeerRecord(rec.peer_id, rec.addrs, rec.timestamp, b"short"),
    ]
    assert not any(f.verify() for f in forgeries)
    exchange = PeerExchange((rec, *forgeries, PeerRecord.create(other, [], 5)))
    decoded = PeerExchange.decode(exchange.encode())
    assert decoded == exchange
    assert [r.peer_id for r in decoded.verified()] == [ident.peer_id, other.peer_id]


def test_peer_exchange_structural_limits() -> None:
    ident = Identity.generate()
    rec = PeerRecord.create(ident, [], 1)
    with pytest.raises(RemoteProtocolError, match="at most 64"):
        PeerExchange.decode(PeerExchange((rec,) * 65).encode())
    bad_id = bencode({"r": [{"a": [], "id": b"x" * 31, "t": 1, "s": b""}]})
    with pytest.raises(RemoteProtocolError, match="32 bytes"):
        PeerExchange.decode(bad_id)
    assert PeerId(rec.peer_id.key) == ident.peer_id


@pytest.mark.parametrize("addr", [("127.0.0.1", 30609), ("::1", 1), ("example.org", 65535)])
def test_address_text_round_trip(addr: tuple[str, int]) -> None:
    assert parse_addr(format_addr(addr)) == addr


@pytest.mark.parametrize("text", ["", "host", "host:", ":1", "h:0", "h:65536", "[::1]1", "h:x"])
def test_bad_address_text_names_it(text: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        parse_addr(text)


def test_bencode_refuses_booleans() -> None:
    with pytest.raises(LocalProtocolError):
        bencode({"x": True})


def test_enum_codes_encode_as_plain_integers() -> None:
    reply = ErrorReply(FrameError.BUSY, "busy")
    assert ErrorReply.decode(reply.encode()) == ErrorReply(int(FrameError.BUSY), "busy")
