"""NatService on loopback: detection from identify, relay service when public, best path."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from transport_helpers import settings

from rnn_tui.identity import Identity
from rnn_tui.nat.model import NatType, PathType
from rnn_tui.nat.punch_core import PunchConfig
from rnn_tui.nat.relay_driver import RelayService
from rnn_tui.nat.service import NatService, NatSettings, interface_addresses
from rnn_tui.transport import Transport

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@contextlib.asynccontextmanager
async def nodes(*hosts: str) -> AsyncIterator[list[Transport]]:
    """Transports on distinct loopback addresses, so each is a distinct reporter IP."""
    ts = [Transport(Identity.generate(), settings=settings()) for _ in hosts]
    try:
        for t, host in zip(ts, hosts, strict=True):
            await t.start(host, 0)
        yield ts
    finally:
        for t in ts:
            await t.close()


async def eventually(predicate, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout:g}s")


async def test_identify_from_two_peers_classifies_and_dial_back_makes_us_a_relay() -> None:
    async with nodes("127.0.0.1", "127.0.0.2", "127.0.0.3") as (me, p1, p2):
        changes = []
        port = me.endpoint.local_addr[1]
        svc = NatService(me, NatSettings(check_interval=3600),
                         local_addrs=lambda: [("127.0.0.1", port)],
                         on_change=lambda status, relays: changes.append(status.nat_type))
        svc.start()
        await me.dial(p1.endpoint.local_addr, p1.identity.peer_id)
        assert svc.status.nat_type is NatType.UNKNOWN or svc.status.reporters <= 1
        await me.dial(p2.endpoint.local_addr, p2.identity.peer_id)
        await eventually(lambda: svc.status.nat_type is NatType.EIM)
        assert svc.status.external == ("127.0.0.1", port)
        assert svc.relay_service is None, "no relay service before we are known reachable"
        svc.dial_back(("127.0.0.4", 9), ("127.0.0.1", port))
        assert svc.status.nat_type is NatType.EIM, "one prober is not agreement"
        svc.dial_back(("127.0.0.5", 9), ("127.0.0.1", port))
        assert svc.status.nat_type is NatType.PUBLIC and svc.relay_service is not None
        assert changes[-1] is NatType.PUBLIC
        assert svc.metadata()["nat"] == "public"
        await svc.close()


async def test_connect_goes_relayed_then_direct_and_names_every_failed_path() -> None:
    async with nodes("127.0.0.1", "127.0.0.2", "127.0.0.3") as (a, relay, b):
        RelayService(relay)
        fast = NatSettings(check_interval=3600, punch=PunchConfig(linger=0.2),
                           direct_dial_timeout=1.0)
        svc_a = NatService(a, fast, local_addrs=lambda: [a.endpoint.local_addr])
        svc_b = NatService(b, fast, local_addrs=lambda: [b.endpoint.local_addr])
        svc_b.add_relay_candidates([(relay.endpoint.local_addr, relay.identity.peer_id)])
        svc_b.start()
        await eventually(lambda: len(svc_b.relays.active) == 1)
        assert svc_b.metadata()["relays"][0]["id"] == relay.identity.peer_id.hex
        conn, path = await svc_a.connect(
            b.identity.peer_id, addrs=[],
            relays=[(relay.endpoint.local_addr, relay.identity.peer_id)])
        assert path is PathType.DIRECT and conn.peer_id == b.identity.peer_id
        assert conn.remote_addr == b.endpoint.local_addr
        with pytest.raises(Exception, match="cannot reach") as info:
            await svc_a.connect(Identity.generate().peer_id, addrs=[],
                                relays=[(relay.endpoint.local_addr, relay.identity.peer_id)])
        assert "no reservation" in str(info.value)
        await svc_a.close()
        await svc_b.close()


async def test_a_new_local_address_resets_detection() -> None:
    async with nodes("127.0.0.1", "127.0.0.2", "127.0.0.3") as (me, p1, p2):
        addrs = [("127.0.0.1", me.endpoint.local_addr[1])]
        svc = NatService(me, NatSettings(check_interval=3600), local_addrs=lambda: addrs)
        svc.check()
        await me.dial(p1.endpoint.local_addr, p1.identity.peer_id)
        await me.dial(p2.endpoint.local_addr, p2.identity.peer_id)
        await eventually(lambda: svc.status.nat_type is NatType.EIM)
        addrs[:] = [("127.0.0.9", 4242)]
        svc.check()
        assert svc.status.nat_type is NatType.UNKNOWN and svc.status.external is None
        await svc.close()


def test_interface_addresses_skip_loopback() -> None:
    for ip, port in interface_addresses(30609):
        assert not ip.startswith("127.") and port == 30609


async def test_dial_back_end_to_end_two_helpers_make_us_public_and_a_relay() -> None:
    """Real dial-backs: each helper probes from a fresh socket; two distinct IPs agree."""
    async with nodes("127.0.0.1", "127.0.0.2", "127.0.0.3") as (me, h1, h2):
        port = me.endpoint.local_addr[1]
        quiet = NatSettings(check_interval=3600)
        svc = NatService(me, quiet, local_addrs=lambda: [("127.0.0.1", port)])
        helpers = [NatService(h, quiet, local_addrs=lambda h=h: [h.endpoint.local_addr])
                   for h in (h1, h2)]
        for s in (svc, *helpers):
            s.start()
        try:
            await me.dial(h1.endpoint.local_addr, h1.identity.peer_id)
            await eventually(lambda: len(svc.dial_backs) == 1)
            assert svc.status.nat_type is not NatType.PUBLIC, "one helper alone"
            await me.dial(h2.endpoint.local_addr, h2.identity.peer_id)
            await eventually(lambda: svc.status.nat_type is NatType.PUBLIC)
            assert svc.status.dial_back_confirmed and svc.relay_service is not None
            assert svc.metadata()["nat"] == "public"
            # The probes came from ports we never sent to, not from the helpers' sockets.
            probers = {d.prober for d in svc.dial_backs}
            assert {p[0] for p in probers} == {"127.0.0.2", "127.0.0.3"}
            assert not probers & {h1.endpoint.local_addr, h2.endpoint.local_addr}
            assert not any(me.endpoint.has_sent_to(p) for p in probers)
        finally:
            for s in (svc, *helpers):
                await s.close()


async def test_dial_back_requests_beyond_the_limit_are_refused_with_a_reason() -> None:
    from rnn_tui.nat.dialback import NONCE_LEN, DialBackConfig, DialBackReply, DialBackRequest

    async with nodes("127.0.0.1", "127.0.0.2") as (me, helper):
        cfg = NatSettings(check_interval=3600, dial_back=DialBackConfig(per_ip_interval=60.0))
        served = NatService(helper, cfg, local_addrs=lambda: [helper.endpoint.local_addr])
        try:
            conn = await me.dial(helper.endpoint.local_addr, helper.identity.peer_id)
            first = await conn.request(DialBackRequest(b"a" * NONCE_LEN), timeout=5.0)
            second = await conn.request(DialBackRequest(b"b" * NONCE_LEN), timeout=5.0)
            assert first == DialBackReply(True)
            assert isinstance(second, DialBackReply) and not second.sent
            assert "rate limited" in second.reason
        finally:
            await served.close()


async def test_connect_races_the_relay_instead_of_waiting_for_the_direct_timeout() -> None:
    """A target whose listed address never answers (as behind a NAT) is reached through
    its relay long before the direct dial's timeout: the relay path starts after
    ``relay_delay`` and wins; the hanging direct dial is left to fail on its own."""
    import socket

    async with nodes("127.0.0.1", "127.0.0.2", "127.0.0.3") as (a, relay, b):
        RelayService(relay)
        hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never read
        hole.bind(("127.0.0.4", 0))
        slow_direct = NatSettings(check_interval=3600, punch=PunchConfig(linger=0.2),
                                  direct_dial_timeout=120.0, relay_delay=0.3)
        svc_a = NatService(a, slow_direct, local_addrs=lambda: [a.endpoint.local_addr])
        svc_b = NatService(b, slow_direct, local_addrs=lambda: [b.endpoint.local_addr])
        svc_b.add_relay_candidates([(relay.endpoint.local_addr, relay.identity.peer_id)])
        svc_b.start()
        try:
            await eventually(lambda: len(svc_b.relays.active) == 1)
            conn, path = await asyncio.wait_for(svc_a.connect(
                b.identity.peer_id, addrs=[hole.getsockname()],
                relays=[(relay.endpoint.local_addr, relay.identity.peer_id)]), timeout=60)
            assert conn.peer_id == b.identity.peer_id and conn.is_open
            assert path in (PathType.DIRECT, PathType.RELAYED)
            assert conn.remote_addr != hole.getsockname()
        finally:
            hole.close()
            await svc_a.close()
            await svc_b.close()


async def test_when_a_direct_dial_wins_the_relay_is_never_used() -> None:
    async with nodes("127.0.0.1", "127.0.0.2", "127.0.0.3") as (a, relay, b):
        RelayService(relay)
        svc_a = NatService(a, NatSettings(check_interval=3600, relay_delay=30.0),
                           local_addrs=lambda: [a.endpoint.local_addr])
        try:
            conn, path = await svc_a.connect(
                b.identity.peer_id, addrs=[b.endpoint.local_addr],
                relays=[(relay.endpoint.local_addr, relay.identity.peer_id)])
            assert path is PathType.DIRECT and conn.remote_addr == b.endpoint.local_addr
            assert a.connection_to(relay.identity.peer_id) is None, "relay never dialled"
        finally:
            await svc_a.close()


async def test_a_dial_back_that_never_arrives_marks_us_unreachable() -> None:
    """Peers say they sent the probe but nothing arrives (as behind a filtering NAT)."""
    from rnn_tui.nat.dialback import DialBackConfig, DialBackReply, DialBackRequest

    async with nodes("127.0.0.1", "127.0.0.2", "127.0.0.3") as (me, p1, p2):
        async def sent_but_filtered(conn, msg: DialBackRequest) -> DialBackReply:  # type: ignore[no-untyped-def]
            return DialBackReply(True)

        for p in (p1, p2):
            p.handlers.on_request(DialBackRequest, sent_but_filtered)
        port = me.endpoint.local_addr[1]
        changes: list[bool] = []
        svc = NatService(me, NatSettings(check_interval=3600, dial_back=DialBackConfig(wait=0.3)),
                         local_addrs=lambda: [("127.0.0.1", port)],
                         on_change=lambda st, r: changes.append(svc.unreachable))
        try:
            assert not svc.unreachable, "no evidence yet"
            await me.dial(p1.endpoint.local_addr, p1.identity.peer_id)
            await me.dial(p2.endpoint.local_addr, p2.identity.peer_id)
            await eventually(lambda: svc.unreachable)
            assert svc.status.nat_type is NatType.EIM and svc.dial_back_failures >= 1
            assert changes[-1] is True, "the node hears of it (DHT read-only, republish)"
        finally:
            await svc.close()
