"""The asyncio driver: frames go out through the send callable, events come back, tasks stop.

Socket-free: drivers are wired to each other through their ``send``/``received`` pair,
which is exactly how the transport's "gossip" message type connects them in the node.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Callable

from rnn_tui.gossip import GossipConfig, GossipCore, MessageDelivered
from rnn_tui.gossip.driver import GossipDriver
from rnn_tui.identity import Identity, PeerId

TOPIC = "rnn/services/1"


class Cluster:
    def __init__(self, n: int, config: GossipConfig) -> None:
        self.drivers: dict[PeerId, GossipDriver] = {}
        self.inbox: dict[PeerId, list[MessageDelivered]] = {}
        self.fail_to: set[PeerId] = set()
        for i in range(n):
            core = GossipCore(Identity(bytes([i + 1]) * 32), random.Random(i), config)
            driver = GossipDriver(core, self._sender(core.peer_id), send_timeout=1.0)
            self.drivers[core.peer_id] = driver
            box: list[MessageDelivered] = []
            self.inbox[core.peer_id] = box
            driver.add_listener(lambda e, box=box: box.append(e) if isinstance(e, MessageDelivered) else None)

    def _sender(self, me: PeerId):  # type: ignore[no-untyped-def]
        async def send(peer: PeerId, data: bytes) -> None:
            if peer in self.fail_to:
                raise ConnectionError("link down")
            await asyncio.sleep(0)
            self.drivers[peer].received(me, data)
        return send

    async def start(self) -> None:
        ids = list(self.drivers)
        for d in self.drivers.values():
            await d.start()
            d.subscribe(TOPIC)
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                self.drivers[a].peer_connected(b)
                self.drivers[b].peer_connected(a)
        # subscriptions are exchanged asynchronously: wait until everyone knows everyone
        await _until(lambda: all(len(d.core.topic_peers(TOPIC)) == len(ids) - 1
                                 for d in self.drivers.values()))

    async def close(self) -> None:
        for d in self.drivers.values():
            await d.close()


async def _until(predicate: Callable[[], bool], polls: int = 1000) -> None:
    """Let the loop run until ``predicate()`` holds (a poll budget, not a timing assertion)."""
    for _ in range(polls):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")


async def test_publish_reaches_every_driver_and_stats_count_it() -> None:
    cluster = Cluster(5, GossipConfig(heartbeat_interval=0.05))
    await cluster.start()
    try:
        author = next(iter(cluster.drivers))
        cluster.drivers[author].publish(TOPIC, b"service up")
        await _until(lambda: all(len(box) == 1 for p, box in cluster.inbox.items() if p != author))
        stats = cluster.drivers[author].stats()
        assert stats.counters["published"] == 1
        assert stats.counters["driver_frames_sent"] >= 4
        assert stats.topics[0].topic == TOPIC and stats.topics[0].subscribed
        # heartbeats run on the driver's timer
        await _until(lambda: cluster.drivers[author].stats().counters.get("heartbeats", 0) >= 2)
    finally:
        await cluster.close()


async def test_send_failures_are_counted_and_do_not_stop_gossip() -> None:
    cluster = Cluster(4, GossipConfig(heartbeat_interval=0.05))
    await cluster.start()
    try:
        ids = list(cluster.drivers)
        cluster.fail_to.add(ids[3])
        cluster.drivers[ids[0]].publish(TOPIC, b"x")
        await _until(lambda: len(cluster.inbox[ids[1]]) == 1 and len(cluster.inbox[ids[2]]) == 1)
        assert cluster.inbox[ids[3]] == []
        await _until(lambda: cluster.drivers[ids[0]].stats().counters.get("driver_send_failures", 0) >= 1)
    finally:
        await cluster.close()


async def test_received_from_unknown_peer_registers_it_and_close_cancels_tasks() -> None:
    cluster = Cluster(2, GossipConfig(heartbeat_interval=0.05))
    ids = list(cluster.drivers)
    for d in cluster.drivers.values():
        await d.start()
        d.subscribe(TOPIC)
    # only one side is told about the connection; the other learns from the first frame
    cluster.drivers[ids[0]].peer_connected(ids[1])
    await _until(lambda: ids[0] in cluster.drivers[ids[1]].core.topic_peers(TOPIC))
    names = [t.get_name() for t in asyncio.all_tasks()]
    assert any(name.startswith("gossip:send:") for name in names)
    await cluster.close()
    await asyncio.sleep(0)
    leftover = [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("gossip:") and not t.done()]
    assert leftover == []


def test_core_import_pulls_in_no_asyncio() -> None:
    import subprocess

    code = ("import sys; import rnn_tui.gossip.core, rnn_tui.gossip.wire; "
            "bad = [m for m in ('asyncio', 'socket', 'textual', 'peewee', 'docker') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
