"""NAT wire format: round trips, and every malformation named precisely."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnn_tui.errors import RemoteProtocolError
from rnn_tui.nat.model import NatType, check_addr, is_private_addr
from rnn_tui.nat.wire import (
    CIRCUIT_DATAGRAM_HEADER,
    DATAGRAM_FROM_RELAY,
    DATAGRAM_TO_RELAY,
    PROBE,
    CircuitAccept,
    CircuitClosed,
    CircuitData,
    CircuitReject,
    ConnectAccepted,
    ConnectRefused,
    ConnectRequest,
    IncomingCircuit,
    Probe,
    PunchConnect,
    PunchRefused,
    PunchSync,
    ReserveAccepted,
    ReserveRefused,
    ReserveRequest,
    decode_circuit_datagram,
    decode_message,
    decode_probe,
    encode_circuit_datagram,
    encode_message,
    encode_probe,
    is_probe,
)

PID = bytes(range(32))
SAMPLES = [
    PunchConnect(b"A" * 8, b"N" * 16, (("203.0.113.1", 1), ("::1", 65535)), NatType.EDM, True),
    PunchConnect(b"A" * 8, b"N" * 16, (), NatType.UNKNOWN, False),
    PunchSync(b"B" * 8),
    PunchRefused(b"C" * 8, "replayed SYNC", True),
    ReserveRequest(), ReserveAccepted(3600, 2**40, 1800), ReserveRefused("relay full"),
    ConnectRequest(PID), ConnectAccepted(7, PID), ConnectRefused(PID, "no reservation"),
    IncomingCircuit(2**63, PID), CircuitAccept(1), CircuitReject(1, "busy"),
    CircuitData(5, b"\x00" * 1500), CircuitClosed(5, "bye"),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg):
    assert decode_message(encode_message(msg)) == msg


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_truncation_and_trailing_bytes_are_refused(msg):
    data = encode_message(msg)
    with pytest.raises(RemoteProtocolError, match="trailing"):
        decode_message(data + b"\x00")
    if len(data) > 1:
        with pytest.raises(RemoteProtocolError, match="truncated"):
            decode_message(data[:-1])


def test_errors_name_the_message_and_field():
    with pytest.raises(RemoteProtocolError, match="unknown type 0x7f"):
        decode_message(b"\x7f")
    with pytest.raises(RemoteProtocolError, match="empty"):
        decode_message(b"")
    bad_addr = bytearray(encode_message(SAMPLES[0]))
    i = bad_addr.index(b"203.0.113.1")
    bad_addr[i:i + 3] = b"abc"
    with pytest.raises(RemoteProtocolError, match=r"PunchConnect: bad address"):
        decode_message(bytes(bad_addr))
    many = bytearray(encode_message(SAMPLES[1]))
    many[1 + 8 + 16 + 2] = 9
    with pytest.raises(RemoteProtocolError, match="9 addresses"):
        decode_message(bytes(many))
    bad_utf8 = encode_message(ReserveRefused("ab"))[:-2] + b"\xff\xfe"
    with pytest.raises(RemoteProtocolError, match="'reason' is not UTF-8"):
        decode_message(bad_utf8)


@given(st.binary(max_size=200))
def test_random_bytes_never_raise_anything_but_remote_protocol_error(data):
    try:
        decode_message(data)
    except RemoteProtocolError:
        pass
    assert decode_probe(data) is None or is_probe(data)


def test_probe_round_trip_and_demux():
    p = Probe(PROBE, b"\x01" * 8, True, 42, b"\x02" * 16)
    data = encode_probe(p)
    assert is_probe(data) and decode_probe(data) == p
    assert data[0] & 0x40 == 0, "the QUIC fixed bit is clear: never mistaken for QUIC"
    assert not is_probe(b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:pinge")
    assert decode_probe(data[:-1]) is None
    assert decode_probe(data[:4] + b"\x09" + data[5:]) is None


def test_address_checks():
    assert check_addr(("203.0.113.5", 80)) == ("203.0.113.5", 80)
    assert check_addr(("::ffff:1.2.3.4", 1)) == ("::ffff:102:304", 1)
    for bad in [("localhost", 1), ("1.2.3.4", 0), ("1.2.3.4", True), ("0.0.0.0", 5),
                ("255.255.255.255", 5), ["1.2.3.4", 5], ("1.2.3.4", 70000)]:
        assert check_addr(bad) is None, bad
    assert is_private_addr(("10.1.2.3", 1)) and is_private_addr(("fd00::1", 1))
    assert not is_private_addr(("203.0.113.1", 1))


def test_circuit_datagram_round_trip_and_malformed():
    data = encode_circuit_datagram(DATAGRAM_TO_RELAY, 2**40 + 7, b"packet")
    assert data[0] == DATAGRAM_TO_RELAY and len(data) == CIRCUIT_DATAGRAM_HEADER + 6
    assert decode_circuit_datagram(data) == (2**40 + 7, b"packet")
    for bad in (b"", bytes([DATAGRAM_FROM_RELAY]), data[:CIRCUIT_DATAGRAM_HEADER]):
        with pytest.raises(RemoteProtocolError, match="carries no packet"):
            decode_circuit_datagram(bad)
