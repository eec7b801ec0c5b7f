"""Interop with libtorrent (an independent BEP 5 + BEP 44 implementation) on loopback.

Each of our nodes and each libtorrent session binds its own 127.0.0.x address, so
per-IP rate limits behave as on the Internet.  libtorrent is configured as FACTS.md
says: no bootstrap routers, LSD/UPnP/NAT-PMP off, routing restrictions off, flood
protection relaxed.  Alert objects are copied at once (they die at the next pop_alerts).
Waits poll with a deadline; nothing sleeps a fixed time before asserting.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from rnn_tui.dht.bep44 import ExpandedKeySigner, immutable_target
from rnn_tui.dht.udp import DhtUdpEndpoint, open_dht_endpoint
from rnn_tui.identity import Identity

lt = pytest.importorskip("libtorrent")

# libtorrent is an independent process-in-process peer with its own timers and flood
# protection; on the shared 2-core machine one read in ~20 runs missed its deadline (our
# second put, seq 2, not yet visible to libtorrent).  Retried twice: a real interop break
# fails every try.
pytestmark = [pytest.mark.integration, pytest.mark.interop, pytest.mark.flaky(reruns=2)]

DEADLINE = 30.0


def free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LtNode:
    """One libtorrent session used only for its DHT."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.port = free_udp_port(host)
        self.session = lt.session({
            "listen_interfaces": f"{host}:{self.port}",
            "enable_dht": True,
            "dht_bootstrap_nodes": "",
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "dht_block_ratelimit": 1_000_000,
            "dht_block_timeout": 1,
            "dht_upload_rate_limit": 10_000_000,
            "dht_enforce_node_id": False,
            "dht_ignore_dark_internet": False,
            "alert_mask": lt.alert.category_t.dht_notification
            | lt.alert.category_t.dht_operation_notification,
        })

    @property
    def addr(self) -> tuple[str, int]:
        return (self.host, self.port)

    async def poll(self, pick: Callable[[Any], Any], within: float) -> Any:
        """Pop alerts until ``pick(alert)`` returns non-None (pick copies what it needs)."""
        end = time.monotonic() + within
        while time.monotonic() < end:
            for alert in self.session.pop_alerts():
                found = pick(alert)
                if found is not None:
                    return found
            await asyncio.sleep(0.05)
        return None

    async def get_mutable(self, public_key: bytes, salt: bytes, expect_seq: int) -> tuple[Any, int] | None:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            self.session.dht_get_mutable_item(public_key, salt)

            def pick(alert: Any) -> Any:
                if isinstance(alert, lt.dht_mutable_item_alert) and bytes(alert.key) == public_key:
                    return (alert.item, int(alert.seq))
                return None

            got = await self.poll(pick, 10.0)
            if got is not None and got[1] >= expect_seq:
                return got
        return None

    async def get_immutable(self, target: bytes) -> Any:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            self.session.dht_get_immutable_item(lt.sha1_hash(target))

            def pick(alert: Any) -> Any:
                if isinstance(alert, lt.dht_immutable_item_alert) and bytes(alert.target.to_bytes()) == target:
                    return ("found", alert.item)
                return None

            got = await self.poll(pick, 10.0)
            if got is not None and got[1] is not None:
                return got[1]
        return None

    async def get_peers(self, infohash: bytes, wanted: tuple[str, int]) -> bool:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            self.session.dht_get_peers(lt.sha1_hash(infohash))

            def pick(alert: Any) -> Any:
                if (isinstance(alert, lt.dht_get_peers_reply_alert)
                        and bytes(alert.info_hash.to_bytes()) == infohash):
                    return [(str(ip), int(port)) for ip, port in alert.peers()]
                return None

            peers = await self.poll(pick, 10.0) or []
            if wanted in peers:
                return True
            await asyncio.sleep(0.5)
        return False

    async def put_mutable(self, signer: ExpandedKeySigner, value: bytes, salt: bytes) -> int:
        """Put until at least one node stored it (a busy machine can slow libtorrent's lookup)."""
        end = time.monotonic() + DEADLINE
        stored = 0
        while time.monotonic() < end and stored == 0:
            self.session.dht_put_mutable_item(signer.expanded_secret, signer.public_key, value, salt)

            def pick(alert: Any) -> Any:
                if isinstance(alert, lt.dht_put_alert) and bytes(alert.public_key) == signer.public_key:
                    return int(alert.num_success)
                return None

            stored = int(await self.poll(pick, 15.0) or 0)
        return stored

    async def put_immutable(self, value: bytes) -> bytes:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            target = bytes(self.session.dht_put_immutable_item(value).to_bytes())

            def pick(alert: Any, target: bytes = target) -> Any:
                if isinstance(alert, lt.dht_put_alert) and bytes(alert.target.to_bytes()) == target:
                    return int(alert.num_success)
                return None

            if await self.poll(pick, 15.0):
                return target
        raise AssertionError("libtorrent could not store the immutable item")

    async def wait_routing(self, wanted: int) -> int:
        """Poll libtorrent's routing table until it holds ``wanted`` nodes (or the deadline)."""
        end = time.monotonic() + DEADLINE
        size = 0
        while time.monotonic() < end:
            self.session.post_dht_stats()

            def pick(alert: Any) -> Any:
                if isinstance(alert, lt.dht_stats_alert):
                    return sum(int(b["num_nodes"]) for b in alert.routing_table)
                return None

            size = int(await self.poll(pick, 5.0) or 0)
            if size >= wanted:
                break
            await asyncio.sleep(0.2)
        return size

    def close(self) -> None:
        self.session.pause()
        del self.session


async def eventually(read: Callable[[], Any], expected: Any) -> Any:
    """Await ``read()`` until it returns ``expected`` or the deadline passes; return the last."""
    end = time.monotonic() + DEADLINE
    got = None
    while time.monotonic() < end:
        got = await read()
        if got == expected:
            break
        await asyncio.sleep(0.3)
    return got


@contextlib.asynccontextmanager
async def swarm(ours: int, theirs: int) -> AsyncIterator[tuple[list[DhtUdpEndpoint], list[LtNode]]]:
    nodes: list[DhtUdpEndpoint] = []
    lts: list[LtNode] = []
    try:
        for i in range(ours):
            nodes.append(await open_dht_endpoint(f"127.0.1.{i + 1}", 0, timeout=DEADLINE))
        for i in range(theirs):
            lts.append(LtNode(f"127.0.2.{i + 1}"))
        seeds = [nodes[0].addr] + [n.addr for n in lts]
        for node in nodes[1:]:
            await node.node.bootstrap(seeds[:1])
        for lt_node in lts:
            for node in nodes[:4]:
                lt_node.session.add_dht_node(node.addr)
        # Our nodes look the libtorrent ones up directly, then everyone refreshes.
        await nodes[0].node.bootstrap([n.addr for n in lts] + [nodes[1].addr])
        await asyncio.gather(*(n.node.bootstrap([lts[i % len(lts)].addr]) for i, n in enumerate(nodes)))
        for lt_node in lts:
            assert await lt_node.wait_routing(min(8, ours)) >= min(8, ours)
        yield nodes, lts
    finally:
        for node in nodes:
            node.close()
        for lt_node in lts:
            lt_node.close()


@pytest.mark.parametrize("salt", [b"", b"rnn-salt"])
async def test_our_mutable_put_is_read_by_libtorrent(salt: bytes) -> None:
    async with swarm(8, 1) as (nodes, (lt_node,)):
        ident = Identity(os.urandom(32))
        result = await nodes[3].node.put_mutable(ident, b"from-rnn", salt)
        assert result.stored >= 1
        assert await lt_node.get_mutable(ident.public_key, salt, 1) == (b"from-rnn", 1)
        await nodes[5].node.put_mutable(ident, b"from-rnn-v2", salt)
        assert await lt_node.get_mutable(ident.public_key, salt, 2) == (b"from-rnn-v2", 2)


@pytest.mark.parametrize("salt", [b"", b"lt-salt"])
async def test_libtorrent_mutable_put_is_read_by_us(salt: bytes) -> None:
    async with swarm(8, 1) as (nodes, (lt_node,)):
        signer = ExpandedKeySigner.from_seed(os.urandom(32))
        assert await lt_node.put_mutable(signer, b"from-libtorrent", salt) >= 1
        assert await eventually(lambda: nodes[6].node.get_mutable(signer.public_key, salt),
                                (b"from-libtorrent", 1)) == (b"from-libtorrent", 1)


async def test_immutable_items_both_ways() -> None:
    async with swarm(8, 1) as (nodes, (lt_node,)):
        target = await nodes[2].node.put_immutable(b"immutable from rnn")
        assert target == immutable_target(b"immutable from rnn")
        assert await lt_node.get_immutable(target) == b"immutable from rnn"
        theirs = await lt_node.put_immutable(b"immutable from libtorrent")
        assert await eventually(lambda: nodes[7].node.get_immutable(theirs),
                                b"immutable from libtorrent") == b"immutable from libtorrent"


async def test_announce_and_get_peers_both_ways() -> None:
    async with swarm(8, 1) as (nodes, (lt_node,)):
        ours = os.urandom(20)
        await nodes[1].node.announce(ours, 7001)
        assert await lt_node.get_peers(ours, (nodes[1].addr[0], 7001))
        theirs = os.urandom(20)
        lt_node.session.dht_announce(lt.sha1_hash(theirs), 7002, 0)
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            if (lt_node.host, 7002) in await nodes[4].node.get_peers(theirs):
                break
            await asyncio.sleep(0.5)
        else:
            pytest.fail("libtorrent's announce never became visible to our get_peers")


@pytest.mark.slow
async def test_swarm_of_20_ours_and_2_libtorrent_every_operation_from_any_node() -> None:
    rng = random.Random(7)
    async with swarm(20, 2) as (nodes, lts):
        for round_no in range(3):
            writer, reader = rng.sample(nodes, 2)
            lt_node = lts[round_no % 2]
            ident = Identity(os.urandom(32))
            salt = b"round-%d" % round_no
            await writer.node.put_mutable(ident, b"m%d" % round_no, salt)
            assert await reader.node.get_mutable(ident.public_key, salt) == (b"m%d" % round_no, 1)
            assert await lt_node.get_mutable(ident.public_key, salt, 1) == (b"m%d" % round_no, 1)

            signer = ExpandedKeySigner.from_seed(os.urandom(32))
            assert await lt_node.put_mutable(signer, b"l%d" % round_no, b"") >= 1
            key = signer.public_key
            assert await eventually(lambda r=reader, k=key: r.node.get_mutable(k),
                                    (b"l%d" % round_no, 1)) == (b"l%d" % round_no, 1)

            target = await writer.node.put_immutable(b"i%d" % round_no)
            assert await reader.node.get_immutable(target) == b"i%d" % round_no
            assert await lts[1 - round_no % 2].get_immutable(target) == b"i%d" % round_no

            infohash = os.urandom(20)
            await writer.node.announce(infohash, 8000 + round_no)
            assert (writer.addr[0], 8000 + round_no) in await reader.node.get_peers(infohash)
            assert await lt_node.get_peers(infohash, (writer.addr[0], 8000 + round_no))
