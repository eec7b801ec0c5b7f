"""The shared socket's demultiplexer, fed datagrams directly (no socket needed)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnn_tui.errors import LocalProtocolError
from rnn_tui.transport.endpoint import UdpEndpoint

PEER = ("127.0.0.1", 4000)
KRPC_PING = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"


class Sink:
    def __init__(self) -> None:
        self.got: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.append(data)


def make() -> tuple[UdpEndpoint, list[bytes]]:
    ep = UdpEndpoint()
    dht: list[bytes] = []
    ep.dht_handler = lambda data, addr: dht.append(data)
    return ep, dht


def test_bencoded_dict_goes_to_the_dht() -> None:
    ep, dht = make()
    ep.datagram_received(KRPC_PING, PEER)
    assert dht == [KRPC_PING] and ep.stats.dht == 1


def test_known_short_header_cid_goes_to_quic_even_if_it_looks_like_bencode() -> None:
    ep, dht = make()
    sink = Sink()
    cid = b"1:ad2:id"  # bytes 1..9 of KRPC_PING: a short header that starts with 'd'
    ep.register_cid(cid, sink)
    ep.datagram_received(KRPC_PING, PEER)
    assert sink.got == [KRPC_PING] and dht == []
    ep.unregister_cid(cid)
    ep.datagram_received(KRPC_PING, PEER)
    assert dht == [KRPC_PING]


def test_d_prefixed_non_dict_is_not_dht() -> None:
    ep, dht = make()
    for data in (b"de", b"d1:a", b"dxxxxe", b"d" + b"\x00" * 30 + b"e", b"li1ee"):
        ep.datagram_received(data, PEER)
    assert dht == [b"de"]  # the empty dict is a dict; the rest are not bencoded dicts
    assert ep.stats.handler_errors == 0


def test_raw_handlers_by_prefix() -> None:
    ep, dht = make()
    got: list[bytes] = []
    ep.register_raw(b"\x01PUNCH", lambda data, addr: got.append(data))
    ep.datagram_received(b"\x01PUNCH-probe", PEER)
    ep.datagram_received(b"\x01OTHER", PEER)
    assert got == [b"\x01PUNCH-probe"] and ep.stats.raw == 1 and ep.stats.dropped == 1
    with pytest.raises(LocalProtocolError, match="0x40"):
        ep.register_raw(b"dPUNCH", lambda d, a: None)
    with pytest.raises(LocalProtocolError, match="overlaps"):
        ep.register_raw(b"\x01PUN", lambda d, a: None)
    ep.unregister_raw(b"\x01PUNCH")
    ep.datagram_received(b"\x01PUNCH-probe", PEER)
    assert got == [b"\x01PUNCH-probe"]


def test_handler_exceptions_are_contained() -> None:
    ep = UdpEndpoint()

    def boom(data: bytes, addr: tuple[str, int]) -> None:
        raise RuntimeError("dht bug")

    ep.dht_handler = boom
    ep.datagram_received(KRPC_PING, PEER)
    assert ep.stats.handler_errors == 1


def test_ipv4_mapped_addresses_are_normalised() -> None:
    ep, _ = make()
    seen: list[tuple[str, int]] = []
    ep.dht_handler = lambda data, addr: seen.append(addr)
    ep.datagram_received(KRPC_PING, ("::ffff:10.1.2.3", 5, 0, 0))
    ep.datagram_received(KRPC_PING, ("::1", 6, 0, 0))
    assert seen == [("10.1.2.3", 5), ("::1", 6)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1500))
def test_garbage_never_raises(data: bytes) -> None:
    ep, _ = make()
    ep.on_initial = lambda header, addr, path: None
    ep.datagram_received(data, PEER)  # no socket: any reply is counted as a send error
    assert ep.stats.handler_errors == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1199, max_size=1400))
def test_garbage_long_headers_never_raise(tail: bytes) -> None:
    ep, _ = make()
    ep.on_initial = lambda header, addr, path: None
    ep.datagram_received(b"\xc0" + tail, PEER)
    ep.datagram_received(b"\xc0\x00\x00\x00\x01\x08" + tail, PEER)
    assert ep.stats.handler_errors == 0
