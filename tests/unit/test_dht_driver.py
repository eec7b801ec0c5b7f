"""The asyncio driver without sockets: nodes wired through call_soon."""

from __future__ import annotations

import asyncio
import random

import pytest

from rnn_tui.dht.core import DhtConfig
from rnn_tui.dht.driver import DhtNode, DhtOperationFailed
from rnn_tui.errors import RequestTimeout
from rnn_tui.identity import Identity


def wire(count: int) -> dict[tuple[str, int], DhtNode]:
    loop = asyncio.get_running_loop()
    nodes: dict[tuple[str, int], DhtNode] = {}

    def sender(src: tuple[str, int]):
        def send(data: bytes, dst: tuple[str, int]) -> None:
            if dst in nodes:
                loop.call_soon(nodes[dst].datagram_received, data, src)
        return send

    for i in range(count):
        addr = (f"10.9.0.{i + 1}", 6881)
        nodes[addr] = DhtNode(sender(addr), rng=random.Random(i), timeout=5.0)
    return nodes


async def test_ops_resolve_through_futures() -> None:
    nodes = wire(10)
    addrs = list(nodes)
    for addr in addrs[1:]:
        await nodes[addr].bootstrap([addrs[0]])
    assert await nodes[addrs[1]].ping(addrs[2]) == nodes[addrs[2]].node_id
    ident = Identity(bytes(32))
    put = await nodes[addrs[3]].put_mutable(ident, b"v", b"s")
    assert put.stored >= 1
    assert await nodes[addrs[7]].get_mutable(ident.public_key, b"s") == (b"v", 1)
    assert nodes[addrs[7]].stats()["routing_table"] >= 1
    for node in nodes.values():
        node.close()


async def test_unanswered_ping_returns_none_and_short_timeout_raises() -> None:
    quick = DhtNode(lambda data, addr: None, config=DhtConfig(query_timeout=0.05, query_retries=0),
                    rng=random.Random(1))
    assert await quick.ping(("10.9.9.9", 1)) is None
    quick.close()
    nodes = wire(1)
    (node,) = nodes.values()  # default: 2 s query timeout, one retry
    with pytest.raises(RequestTimeout):
        await node.ping(("10.9.9.9", 1), timeout=0.05)
    assert node.core.pending_operations() == 0  # the core op was cancelled
    node.close()


async def test_put_with_nobody_to_store_raises() -> None:
    nodes = wire(1)
    (node,) = nodes.values()
    with pytest.raises(DhtOperationFailed):
        await node.put_immutable(b"lonely")
    node.close()


async def test_external_address_callback_fires() -> None:
    seen: list[tuple[str, int]] = []
    nodes = wire(5)
    addrs = list(nodes)
    first = nodes[addrs[0]]
    first.on_external_address = lambda ip, port: seen.append((ip, port))
    await first.bootstrap(addrs[1:])
    assert seen == [("10.9.0.1", 6881)]
    for node in nodes.values():
        node.close()
