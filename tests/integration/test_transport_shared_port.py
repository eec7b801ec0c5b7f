"""One UDP port carries DHT and QUIC at once; QUIC also runs over a virtual (relay) path.

The DHT side is a small KRPC ``ping`` responder standing in for the DHT driver (the
DHT package's asyncio driver was not available when this test was written); it uses
the real endpoint, the real demux and the real ``send_raw``.
"""

from __future__ import annotations

import asyncio
import socket

import bencodepy
import pytest
from transport_helpers import LOOPBACK, Probe, eventually, running

from rnn_tui.transport import Transport
from rnn_tui.transport.messages import RawChunk

pytestmark = pytest.mark.integration


def install_krpc_ping_responder(node: Transport) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []

    def on_dht(data: bytes, addr: tuple[str, int]) -> None:
        msg = bencodepy.decode(data)
        if msg.get(b"y") == b"q" and msg.get(b"q") == b"ping":
            seen.append(addr)
            reply = {b"r": {b"id": b"R" * 20}, b"t": msg[b"t"], b"y": b"r"}
            node.endpoint.send_raw(bencodepy.encode(reply), addr)

    node.endpoint.dht_handler = on_dht
    return seen


async def test_dht_and_quic_share_the_port_under_load() -> None:
    async with running(2) as (a, b):
        seen = install_krpc_ping_responder(b)

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
        replies = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dht_client:
            dht_client.bind((LOOPBACK, 0))
            dht_client.setblocking(False)
            loop = asyncio.get_running_loop()
            for i in range(100):
                query = {b"a": {b"id": b"Q" * 20}, b"q": b"ping", b"t": i.to_bytes(2, "big"),
                         b"y": b"q"}
                dht_client.sendto(bencodepy.encode(query), b.endpoint.local_addr)
                async with asyncio.timeout(5):
                    data, src = await loop.sock_recvfrom(dht_client, 2048)
                assert src == b.endpoint.local_addr  # the answer comes from the shared port
                assert bencodepy.decode(data)[b"t"] == i.to_bytes(2, "big")
                replies += 1
        assert await asyncio.wait_for(task, 30) == 200 * 16_384
        assert replies == 100 and len(seen) == 100
        assert b.endpoint.stats.handler_errors == 0
        assert b.endpoint.stats.dht == 100 and b.endpoint.stats.quic > 200


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
