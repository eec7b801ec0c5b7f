"""One UDP port carries DHT and QUIC at once; QUIC also runs over a virtual (relay) path.

The DHT side is the real ``DhtNode`` driver on each transport's endpoint, as node.py wires
it: both nodes ping and announce to each other over the same port that carries a bulk
QUIC transfer between them.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from transport_helpers import Probe, eventually, running

from rnn_tui.dht.driver import DhtNode
from rnn_tui.transport import Transport
from rnn_tui.transport.messages import RawChunk

pytestmark = pytest.mark.integration


def attach_dht(node: Transport) -> DhtNode:
    dht = DhtNode(node.endpoint.send_raw)
    node.endpoint.dht_handler = dht.datagram_received
    return dht


async def test_dht_and_quic_share_the_port_under_load() -> None:
    async with running(2) as (a, b):
        dht_a, dht_b = attach_dht(a), attach_dht(b)
        try:
            async def bulk(conn, msg):  # type: ignore[no-untyped-def]
                for _ in range(200):
                    yield RawChunk(b"b" * 16_384)

            b.handlers.on_stream(Probe, bulk)
            conn = await a.dial(b.endpoint.local_addr, expected_peer_id=b.identity.peer_id)

            async def transfer() -> int:
                total = 0
                async with conn.stream(Probe(), timeout=10) as chunks:
                    async for chunk in chunks:
                        total += len(chunk.data)  # type: ignore[attr-defined]
                return total

            task = asyncio.create_task(transfer())
            for _ in range(20):  # DHT round trips interleaved with the QUIC transfer
                assert await dht_a.ping(b.endpoint.local_addr, timeout=5) == dht_b.node_id
                assert await dht_b.ping(a.endpoint.local_addr, timeout=5) == dht_a.node_id
            infohash = hashlib.sha1(b"remote-network-mesh").digest()
            await dht_b.bootstrap([a.endpoint.local_addr], timeout=5)
            await dht_a.announce(infohash, port=a.endpoint.local_addr[1], timeout=5)
            # b stored a's announce, with the shared port as a's address
            await eventually(lambda: a.endpoint.local_addr in dht_b.local_peers(infohash), within=5)
            assert await asyncio.wait_for(task, 30) == 200 * 16_384
            for node in (a, b):
                stats = node.endpoint.stats
                assert stats.handler_errors == 0
                assert stats.dht >= 20 and stats.quic > 100
        finally:
            dht_a.close()
            dht_b.close()


async def test_quic_runs_end_to_end_over_a_virtual_path() -> None:
    """What a relay does: carry opaque QUIC datagrams some other way than the socket."""
    async with running(2) as (a, b):
        loop = asyncio.get_running_loop()
        carried = [0]
        a_pseudo, b_pseudo = ("relay-a", 1), ("relay-b", 1)

        def back_to_a(data: bytes, addr: tuple[str, int]) -> None:
            carried[0] += 1
            loop.call_soon(a.endpoint.inject, data, b_pseudo, to_b)

        def to_b(data: bytes, addr: tuple[str, int]) -> None:
            carried[0] += 1
            loop.call_soon(b.endpoint.inject, data, a_pseudo, back_to_a)

        udp_before = a.endpoint.stats.sent + b.endpoint.stats.sent
        conn = await a.dial(b_pseudo, expected_peer_id=b.identity.peer_id, path=to_b)
        assert conn.peer_id == b.identity.peer_id
        await eventually(lambda: len(b.connections()) == 1)
        assert b.connections()[0].peer_id == a.identity.peer_id
        assert b.connections()[0].remote_addr == a_pseudo
        assert await a.ping(conn) > 0
        assert carried[0] >= 4
        assert a.endpoint.stats.sent + b.endpoint.stats.sent == udp_before  # nothing on the socket
