"""NAT drivers on loopback (no root needed): relay selection and failover, punch upgrade."""

from __future__ import annotations

import asyncio
import socket

import pytest
from transport_helpers import Probe, running

from rnn_tui.nat.model import NatType, PathType
from rnn_tui.nat.punch_core import PunchConfig, Strategy
from rnn_tui.nat.punch_driver import HolePuncher
from rnn_tui.nat.relay_driver import RelayClient, RelayService
from rnn_tui.nat.relay_manager import ActiveRelay, RelayManager, pick_relays
from rnn_tui.transport import PeerConnection, Transport

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_pick_relays_prefers_low_rtt_and_skips_excluded():
    from rnn_tui.identity import PeerId
    a, b, c = (PeerId(bytes([i]) * 32) for i in (1, 2, 3))
    rtts = {a: 0.030, b: 0.010, c: 0.020}
    assert pick_relays(rtts, 2, []) == [b, c]
    assert pick_relays(rtts, 2, [b]) == [c, a]
    assert pick_relays(rtts, 5, [a, b, c]) == []


async def test_manager_reserves_on_the_best_relays_and_replaces_a_dead_one() -> None:
    async with running(4) as (node, r1, r2, r3):
        services = [RelayService(r) for r in (r1, r2, r3)]
        changes: list[list[ActiveRelay]] = []
        manager = RelayManager(node, RelayClient(node), want=2, on_change=changes.append)
        manager.add_candidates([(r.endpoint.local_addr, r.identity.peer_id)
                                for r in (r1, r2, r3)])
        active = await manager.refresh()
        assert len(active) == 2 and changes
        chosen = {r.peer for r in active}
        for relay in active:
            service = next(s for s in services if s.transport.identity.peer_id == relay.peer)
            assert service.core.has_reservation(node.identity.peer_id,
                                                asyncio.get_running_loop().time())
        victim = next(r for r in (r1, r2, r3) if r.identity.peer_id in chosen)
        spare = next(r for r in (r1, r2, r3) if r.identity.peer_id not in chosen)
        await victim.close()
        expected = (chosen - {victim.identity.peer_id}) | {spare.identity.peer_id}
        await eventually(lambda: {r.peer for r in manager.active} == expected, 20)
        assert changes[-1] == manager.active
        await manager.close()
        for s in services:
            s.close()


async def eventually(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]  # noqa: ASYNC109
    """Poll ``predicate`` (state changed by network callbacks) until true or ``timeout``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout:g}s")


INBOUND: dict[Transport, list[PeerConnection]] = {}


def dead_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def punch_pair(a: Transport, relay: Transport, b: Transport
                     ) -> tuple[PeerConnection, HolePuncher, HolePuncher]:
    RelayService(relay)
    client_b = RelayClient(b, on_connection=lambda c, r: INBOUND.setdefault(b, []).append(c))
    await client_b.reserve(await b.dial(relay.endpoint.local_addr, relay.identity.peer_id))
    client_a = RelayClient(a)
    to_relay = await a.dial(relay.endpoint.local_addr, relay.identity.peer_id)
    relayed = await client_a.dial_via(to_relay, b.identity.peer_id)
    assert client_a.path_type(relayed) is PathType.RELAYED
    cfg = PunchConfig(linger=0.3)
    pa = HolePuncher(a, addresses=lambda: [a.endpoint.local_addr],
                     nat_type=lambda: NatType.EIM, config=cfg)
    pb = HolePuncher(b, addresses=lambda: [b.endpoint.local_addr],
                     nat_type=lambda: NatType.EIM, config=cfg)
    return relayed, pa, pb


async def test_punch_upgrades_a_relayed_connection_to_direct_with_the_same_identity() -> None:
    async with running(3) as (a, relay, b):
        relayed, pa, pb = await punch_pair(a, relay, b)
        seen: list[bytes] = []

        async def echo(conn: PeerConnection, msg: Probe) -> Probe:
            seen.append(msg.data)
            return msg
        b.handlers.on_request(Probe, echo)
        outcome = await pa.punch(relayed, timeout=15)
        assert outcome.path is PathType.DIRECT, outcome.reason
        assert outcome.strategy is Strategy.DIRECT and outcome.time_to_direct is not None
        direct = outcome.connection
        assert direct is not None and direct.peer_id == b.identity.peer_id
        assert direct.remote_addr == b.endpoint.local_addr
        assert await direct.request(Probe(b"direct"), timeout=5) == Probe(b"direct")
        assert seen == [b"direct"]
        await eventually(lambda: bool(pb.outcomes), 5)
        assert pb.outcomes[0].path is PathType.DIRECT
        assert pb.direct_connection(a.identity.peer_id) is not None
        await pa.close()
        await pb.close()


async def test_punch_to_an_unreachable_address_stays_relayed_with_a_reason() -> None:
    async with running(3) as (a, relay, b):
        relayed, pa, pb = await punch_pair(a, relay, b)
        # Both advertise loopback ports where nobody listens: no probe can arrive.
        dead_a, dead_b = dead_loopback_port(), dead_loopback_port()
        pa.addresses = lambda: [("127.0.0.1", dead_a)]
        pb.addresses = lambda: [("127.0.0.1", dead_b)]
        pa.config = pb.config = PunchConfig(punch_timeout=0.5, max_attempts=2, linger=0.1)
        outcome = await pa.punch(relayed, timeout=15)
        assert outcome.path is PathType.RELAYED and outcome.connection is None
        assert "no probe answered" in outcome.reason and outcome.attempts == 2
        assert await a.ping(relayed) > 0, "the relayed connection still works"
        await pa.close()
        await pb.close()


async def test_simultaneous_punches_from_both_sides_settle_on_one_session() -> None:
    async with running(3) as (a, relay, b):
        relayed, pa, pb = await punch_pair(a, relay, b)
        await eventually(lambda: bool(INBOUND.get(b)), 5)
        b_side = INBOUND[b][0]  # B's end of the relayed connection
        out_a, out_b = await asyncio.gather(pa.punch(relayed, timeout=15),
                                            pb.punch(b_side, timeout=15))
        assert out_a.path is PathType.DIRECT, out_a.reason
        assert out_b.path is PathType.DIRECT, out_b.reason
        assert out_a.connection is not None and out_a.connection.peer_id == b.identity.peer_id
        assert out_b.connection is not None and out_b.connection.peer_id == a.identity.peer_id
        await pa.close()
        await pb.close()


async def test_a_peer_cannot_start_punch_sessions_without_limit() -> None:
    async with running(3) as (a, relay, b):
        relayed, pa, pb = await punch_pair(a, relay, b)
        dead_a, dead_b = dead_loopback_port(), dead_loopback_port()
        pa.addresses = lambda: [("127.0.0.1", dead_a)]
        pb.addresses = lambda: [("127.0.0.1", dead_b)]
        pa.config = pb.config = PunchConfig(punch_timeout=0.3, exchange_timeout=0.5,
                                            max_attempts=1, linger=0.1)
        pb.max_sessions_per_minute = 1
        first = await pa.punch(relayed, timeout=10)
        assert "no probe answered" in first.reason  # B took part
        await asyncio.sleep(1.0)  # B's session ends (it waited 0.5 s for another attempt)
        second = await pa.punch(relayed, timeout=10)
        assert "no CONNECT reply" in second.reason, second.reason  # B ignored it
        await pa.close()
        await pb.close()
