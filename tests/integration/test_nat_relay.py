"""Relayed QUIC over real loopback transports: identity end to end, tampering, vanishing relay."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from transport_helpers import Probe, running

from rnn_tui.errors import RnnError
from rnn_tui.identity import PeerId
from rnn_tui.nat.model import PathType
from rnn_tui.nat.relay_core import RelayLimits
from rnn_tui.nat.relay_driver import RelayClient, RelayRefused, RelayService
from rnn_tui.nat.wire import CircuitData, IncomingCircuit, RelayMessage
from rnn_tui.transport import PeerConnection, Transport

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _flip(data: bytes) -> bytes:
    altered = bytearray(data)
    altered[len(altered) // 2] ^= 0x01
    return bytes(altered)


class TamperingRelay(RelayService):
    """Flips one byte of every relayed packet after the first ``spare`` ones.

    Both ways a relay forwards: packets in DATAGRAM frames and ``CircuitData`` messages.
    """

    spare = 0
    tampered = 0

    def deliver(self, conn: PeerConnection, msg: RelayMessage) -> None:
        if isinstance(msg, CircuitData):
            self.spare -= 1
            if self.spare < 0:
                self.tampered += 1
                msg = replace(msg, payload=_flip(msg.payload))
        super().deliver(conn, msg)

    def deliver_packet(self, conn: PeerConnection, circuit_id: int, packet: bytes) -> None:
        self.spare -= 1
        if self.spare < 0:
            self.tampered += 1
            packet = _flip(packet)
        super().deliver_packet(conn, circuit_id, packet)


class LyingRelay(RelayService):
    """Tells the target that someone else is calling."""

    claimed: PeerId

    def deliver(self, conn: PeerConnection, msg: RelayMessage) -> None:
        if isinstance(msg, IncomingCircuit):
            msg = replace(msg, source=self.claimed.key)
        super().deliver(conn, msg)


@contextlib.asynccontextmanager
async def trio(service_cls: type[RelayService] = RelayService
               ) -> AsyncIterator[tuple[Transport, Transport, Transport, RelayService]]:
    async with running(3) as (a, relay, b):
        service = service_cls(relay, RelayLimits())
        try:
            yield a, relay, b, service
        finally:
            service.close()


async def reserved(b: Transport, relay: Transport, **kw) -> tuple[RelayClient, PeerConnection]:  # type: ignore[no-untyped-def]
    client_b = RelayClient(b, **kw)
    conn = await b.dial(relay.endpoint.local_addr, expected_peer_id=relay.identity.peer_id)
    accepted = await client_b.reserve(conn)
    assert accepted.ttl > 0
    return client_b, conn


def echo_handler(t: Transport, seen: list[bytes]) -> None:
    async def on_probe(conn: PeerConnection, msg: Probe) -> Probe:
        seen.append(msg.data)
        return Probe(msg.data[::-1])
    t.handlers.on_request(Probe, on_probe)


async def test_relayed_connection_proves_both_identities_and_carries_requests() -> None:
    async with trio() as (a, relay, b, service):
        inbound: list[tuple[PeerConnection, PeerId]] = []
        client_b, _ = await reserved(b, relay, on_connection=lambda c, r: inbound.append((c, r)))
        seen: list[bytes] = []
        echo_handler(b, seen)
        client_a = RelayClient(a)
        to_relay = await a.dial(relay.endpoint.local_addr, expected_peer_id=relay.identity.peer_id)
        conn = await client_a.dial_via(to_relay, b.identity.peer_id)
        assert conn.peer_id == b.identity.peer_id
        assert client_a.path_type(conn) is PathType.RELAYED
        assert client_a.path_type(to_relay) is PathType.DIRECT
        payload = bytes(range(256)) * 64  # 16 KiB: many relayed packets
        reply = await conn.request(Probe(payload), timeout=10)
        assert reply == Probe(payload[::-1]) and seen == [payload]
        assert await a.ping(conn) > 0
        assert inbound and inbound[0][0].peer_id == a.identity.peer_id
        assert inbound[0][1] == relay.identity.peer_id
        assert service.core.bytes_relayed > len(payload), "every byte went through the relay"


async def test_dial_to_a_peer_without_reservation_is_refused_with_the_reason() -> None:
    async with trio() as (a, relay, b, _):
        client_a = RelayClient(a)
        to_relay = await a.dial(relay.endpoint.local_addr, expected_peer_id=relay.identity.peer_id)
        with pytest.raises(RelayRefused, match="no reservation"):
            await client_a.dial_via(to_relay, b.identity.peer_id, timeout=5)


async def test_reservations_beyond_the_limit_are_refused() -> None:
    async with running(3) as (relay, b, c):
        service = RelayService(relay, RelayLimits(max_reservations=1))
        await reserved(b, relay)
        with pytest.raises(RelayRefused, match="relay full"):
            await reserved(c, relay)
        service.close()


async def test_a_tampering_relay_never_delivers_altered_data() -> None:
    async with trio(TamperingRelay) as (a, relay, b, service):
        assert isinstance(service, TamperingRelay)
        service.spare = 10_000  # let the handshake and one request through untouched
        await reserved(b, relay)
        seen: list[bytes] = []
        echo_handler(b, seen)
        client_a = RelayClient(a)
        to_relay = await a.dial(relay.endpoint.local_addr, expected_peer_id=relay.identity.peer_id)
        conn = await client_a.dial_via(to_relay, b.identity.peer_id)
        assert await conn.request(Probe(b"clean"), timeout=5) == Probe(b"naelc")
        service.spare = 0  # from now on every packet is altered
        with pytest.raises(RnnError):
            await conn.request(Probe(b"must not arrive altered" * 50), timeout=2)
        assert seen == [b"clean"], "the target received nothing but the clean request"


async def test_a_relay_lying_about_the_caller_is_caught_by_the_inner_handshake() -> None:
    async with trio(LyingRelay) as (a, relay, b, service):
        assert isinstance(service, LyingRelay)
        async with running(1) as (c,):
            service.claimed = c.identity.peer_id
            inbound: list[PeerConnection] = []
            await reserved(b, relay, on_connection=lambda conn, r: inbound.append(conn))
            client_a = RelayClient(a)
            to_relay = await a.dial(relay.endpoint.local_addr,
                                    expected_peer_id=relay.identity.peer_id)
            try:
                conn = await client_a.dial_via(to_relay, b.identity.peer_id, timeout=3)
            except RnnError:
                pass
            else:
                # A verified B; B checks A's certificate after its own handshake step,
                # sees A is not the claimed caller, and closes the connection.
                await asyncio.wait_for(conn.closed.wait(), 5)
                assert "identity" in conn.close_reason
            await asyncio.sleep(0.2)
            assert inbound == [], "B accepted a caller the relay misnamed"


async def test_relay_vanishing_mid_transfer_fails_fast_with_a_clear_error() -> None:
    async with trio() as (a, relay, b, service):
        await reserved(b, relay)

        async def slow(conn: PeerConnection, msg: Probe) -> Probe:
            await asyncio.sleep(30)
            return msg
        b.handlers.on_request(Probe, slow)
        client_a = RelayClient(a)
        to_relay = await a.dial(relay.endpoint.local_addr, expected_peer_id=relay.identity.peer_id)
        conn = await client_a.dial_via(to_relay, b.identity.peer_id)
        pending = asyncio.ensure_future(conn.request(Probe(b"x" * 10_000), timeout=20))
        await asyncio.sleep(0.3)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await relay.close()
        with pytest.raises(RnnError) as info:
            await pending
        assert "closed" in str(info.value).lower() or "vanished" in str(info.value).lower()
        assert loop.time() - started < 15, "the request must not wait for its own timeout"
        await asyncio.wait_for(conn.closed.wait(), 15)
        assert "vanished" in conn.close_reason or "closed" in conn.close_reason
