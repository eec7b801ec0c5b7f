"""Relayed packets in QUIC DATAGRAM frames: negotiation, fallback, bounded queues, limits.

Real loopback transports.  What must hold: between peers that advertise DATAGRAM support
every relayed packet is a datagram (no ``CircuitData`` message); a peer that does not
advertise it still gets a working relayed connection over messages; a link never queues
datagrams without bound; the relay's per-circuit byte limit and per-peer byte rate
apply to datagrams exactly as to messages.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator

import pytest
from transport_helpers import Probe, eventually, running, settings

from rnn_tui.errors import LocalProtocolError, RnnError
from rnn_tui.identity import Identity
from rnn_tui.nat.relay_core import CircuitEnded, RelayEvent, RelayLimits
from rnn_tui.nat.relay_driver import RELAYED_PACKET_SIZE, RelayClient, RelayService
from rnn_tui.nat.wire import (
    CIRCUIT_DATAGRAM_HEADER,
    DATAGRAM_TO_RELAY,
    CircuitData,
    RelayMessage,
    encode_circuit_datagram,
)
from rnn_tui.transport import PeerConnection, Transport, manager
from rnn_tui.transport.connection import MAX_PENDING_DATAGRAMS
from rnn_tui.transport.tls import make_configuration

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TEST_CHANNEL = 0xF1  # a datagram channel no package uses


class CountingRelay(RelayService):
    """Counts how relayed packets leave: datagram-path calls and ``CircuitData`` messages."""

    packets = 0
    messages = 0

    def deliver(self, conn: PeerConnection, msg: RelayMessage) -> None:
        if isinstance(msg, CircuitData):
            self.messages += 1
        super().deliver(conn, msg)

    def deliver_packet(self, conn: PeerConnection, circuit_id: int, packet: bytes) -> None:
        self.packets += 1
        super().deliver_packet(conn, circuit_id, packet)


@contextlib.asynccontextmanager
async def without_datagrams(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Transport]:
    """A transport that does not advertise DATAGRAM support (like an older peer)."""
    with monkeypatch.context() as m:
        m.setattr(manager, "make_configuration",
                  functools.partial(make_configuration, max_datagram_frame_size=None))
        node = Transport(Identity.generate(), settings=settings())
        await node.start("127.0.0.1", 0)
    try:
        yield node
    finally:
        await node.close()


def echo(t: Transport) -> None:
    async def on_probe(conn: PeerConnection, msg: Probe) -> Probe:
        return Probe(msg.data[::-1])
    t.handlers.on_request(Probe, on_probe)


async def relayed_pair(a: Transport, relay: Transport, b: Transport
                       ) -> tuple[PeerConnection, PeerConnection]:
    """(A's relayed connection to B, A's connection to the relay)."""
    b_conn = await b.dial(relay.endpoint.local_addr, expected_peer_id=relay.identity.peer_id)
    await RelayClient(b).reserve(b_conn)
    to_relay = await a.dial(relay.endpoint.local_addr, expected_peer_id=relay.identity.peer_id)
    return await RelayClient(a).dial_via(to_relay, b.identity.peer_id), to_relay


async def test_relayed_packets_travel_as_datagrams_between_supporting_peers() -> None:
    async with running(3) as (a, relay, b):
        service = CountingRelay(relay, RelayLimits())
        try:
            echo(b)
            conn, to_relay = await relayed_pair(a, relay, b)
            assert to_relay.datagram_capacity >= RELAYED_PACKET_SIZE + CIRCUIT_DATAGRAM_HEADER
            payload = bytes(range(256)) * 800  # 200 KiB each way: ~300 inner packets
            assert await conn.request(Probe(payload), timeout=20) == Probe(payload[::-1])
            assert service.packets > 2 * len(payload) // RELAYED_PACKET_SIZE
            assert service.messages == 0, "no relayed packet went as a CircuitData message"
            assert service.core.bytes_relayed > 2 * len(payload)
        finally:
            service.close()


async def test_a_peer_without_datagram_support_is_relayed_over_messages(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async with running(2) as (a, relay), without_datagrams(monkeypatch) as old:
        service = CountingRelay(relay, RelayLimits())
        try:
            echo(old)
            conn, to_relay = await relayed_pair(a, relay, old)
            old_link = relay.connection_to(old.identity.peer_id)
            assert old_link is not None and old_link.datagram_capacity == 0
            assert to_relay.datagram_capacity > 0
            payload = b"\x01\x02\x03" * 40_000
            assert await conn.request(Probe(payload), timeout=20) == Probe(payload[::-1])
            assert service.packets > 0, "A's packets still arrive as datagrams"
            assert service.messages > 0, "the old peer is served over CircuitData messages"
            with pytest.raises(LocalProtocolError, match="exceeds"):
                old_link.send_datagram(b"x")
        finally:
            service.close()


async def test_a_link_drops_datagrams_beyond_its_queue_and_refuses_oversize() -> None:
    async with running(2) as (a, b):
        got: list[bytes] = []
        b.handlers.on_datagram(TEST_CHANNEL, lambda conn, data: got.append(data))
        conn = await a.dial(b.endpoint.local_addr, expected_peer_id=b.identity.peer_id)
        with pytest.raises(LocalProtocolError, match="exceeds"):
            conn.send_datagram(bytes([TEST_CHANNEL]) + b"x" * conn.datagram_capacity)
        sent = [conn.send_datagram(bytes([TEST_CHANNEL, i]) + b"y" * 50)
                for i in range(MAX_PENDING_DATAGRAMS + 5)]  # one loop iteration: all queued
        assert sent == [True] * MAX_PENDING_DATAGRAMS + [False] * 5
        assert conn.datagrams_dropped == 5
        await eventually(lambda: len(got) == MAX_PENDING_DATAGRAMS)
        assert {d[1] for d in got} == set(range(MAX_PENDING_DATAGRAMS))


async def test_the_circuit_byte_limit_holds_on_the_datagram_path() -> None:
    async with running(3) as (a, relay, b):
        events: list[RelayEvent] = []
        service = RelayService(relay, RelayLimits(max_circuit_bytes=300_000),
                               on_event=events.append)
        try:
            echo(b)
            conn, _ = await relayed_pair(a, relay, b)
            with pytest.raises(RnnError):
                await conn.request(Probe(b"z" * 600_000), timeout=15)
            ended = [e for e in events if isinstance(e, CircuitEnded)]
            assert ended and "byte limit" in ended[0].reason
            assert ended[0].bytes_relayed <= 300_000
            await eventually(lambda: conn.closed.is_set(), within=15)
        finally:
            service.close()


async def test_the_per_peer_byte_rate_drops_datagrams_and_the_ends_recover() -> None:
    async with running(3) as (a, relay, b):
        limits = RelayLimits(peer_bytes_per_second=500_000, peer_bytes_burst=60_000)
        service = RelayService(relay, limits)
        try:
            echo(b)
            conn, _ = await relayed_pair(a, relay, b)
            payload = b"r" * 400_000
            assert await conn.request(Probe(payload), timeout=40) == Probe(payload[::-1])
            assert service.core.dropped_over_rate > 0, "the burst was exceeded and dropped"
        finally:
            service.close()


async def test_a_third_party_cannot_inject_datagrams_into_a_circuit() -> None:
    async with running(4) as (a, relay, b, c):
        service = CountingRelay(relay, RelayLimits())
        try:
            echo(b)
            conn, _ = await relayed_pair(a, relay, b)
            intruder = await c.dial(relay.endpoint.local_addr,
                                    expected_peer_id=relay.identity.peer_id)
            for circuit_id in (1, 2, 99):  # the relay numbers circuits from 1
                intruder.send_datagram(
                    encode_circuit_datagram(DATAGRAM_TO_RELAY, circuit_id, b"\x40" * 200))
            # forward() refused all three (the gate; unit-tested to return no end)
            await eventually(lambda: service.core.stray_datagrams == 3)
            assert await conn.request(Probe(b"still fine"), timeout=5) == Probe(b"enif llits")
        finally:
            service.close()
