"""Gossip over the real transport: 6 nodes, identity-bound QUIC on loopback.

A service announced on one node reaches every other node's catalog, and so does its
removal; a peer that sends a forged frame over its authenticated connection is penalized.
The bound of 5 s is the issue's acceptance figure; it is a deadline, not a measurement.
"""

from __future__ import annotations

import random
import time

import pytest
from transport_helpers import eventually, running

from rnn_tui.gossip import GossipConfig, GossipCore, MessageDelivered, PeerPenalized
from rnn_tui.gossip.announcements import (
    TOPIC_SERVICES,
    AnnouncementCatalog,
    ServiceAction,
    ServiceAnnouncement,
    decode_payload,
)
from rnn_tui.gossip.driver import GossipDriver
from rnn_tui.gossip.over_transport import GossipFrame, attach_to_transport, transport_sender
from rnn_tui.gossip.wire import Frame, SignedMessage, encode_frame
from rnn_tui.transport import Transport

pytestmark = pytest.mark.integration

EDGES = [(i, (i + 1) % 6) for i in range(6)] + [(0, 3), (1, 4), (2, 5)]


async def _gossip_network(nodes: list[Transport]) -> tuple[list[GossipDriver], list[AnnouncementCatalog],
                                                           list[list[object]]]:
    drivers, catalogs, events = [], [], []
    for i, transport in enumerate(nodes):
        core = GossipCore(transport.identity, random.Random(i), GossipConfig(heartbeat_interval=0.2))
        driver = GossipDriver(core, transport_sender(transport))
        attach_to_transport(transport, driver)
        catalog = AnnouncementCatalog()
        seen: list[object] = []

        def on_event(event: object, catalog: AnnouncementCatalog = catalog, seen: list[object] = seen) -> None:
            seen.append(event)
            if isinstance(event, MessageDelivered) and event.topic == TOPIC_SERVICES:
                payload = decode_payload(event.payload)
                assert isinstance(payload, ServiceAnnouncement)
                catalog.apply(event.author, event.seq, payload, event.timestamp)

        driver.add_listener(on_event)
        driver.subscribe(TOPIC_SERVICES)
        await driver.start()
        drivers.append(driver)
        catalogs.append(catalog)
        events.append(seen)
    for a, b in EDGES:
        await nodes[a].dial(nodes[b].endpoint.local_addr, expected_peer_id=nodes[b].identity.peer_id)
    await eventually(lambda: all(len(d.core.topic_peers(TOPIC_SERVICES)) >= 3 for d in drivers))
    return drivers, catalogs, events


async def test_service_announcement_and_removal_reach_all_six_nodes() -> None:
    async with running(6) as nodes:
        drivers, catalogs, _ = await _gossip_network(nodes)
        try:
            owner = nodes[0].identity.peer_id
            add = ServiceAnnouncement(ServiceAction.ADD, "svc-resize", {b"n": b"image-resize", b"k": b"do"})
            drivers[0].publish(TOPIC_SERVICES, add.encode())
            await eventually(lambda: all((owner, "svc-resize") in c for c in catalogs[1:]), within=5.0)
            assert all(c.entries()[0].summary == {b"n": b"image-resize", b"k": b"do"} for c in catalogs[1:])
            drivers[0].publish(TOPIC_SERVICES, ServiceAnnouncement(ServiceAction.REMOVE, "svc-resize", {}).encode())
            await eventually(lambda: all(len(c) == 0 for c in catalogs[1:]), within=5.0)
            stats = drivers[3].stats()
            assert stats.counters["delivered"] == 2 and stats.counters.get("invalid", 0) == 0
        finally:
            for d in drivers:
                await d.close()


async def test_forged_frame_over_an_authenticated_connection_is_penalized() -> None:
    async with running(6) as nodes:
        drivers, catalogs, events = await _gossip_network(nodes)
        try:
            mallory, victim = nodes[0], nodes[1]
            claimed = nodes[2].identity
            ts_ms = int(time.time() * 1000)
            payload = ServiceAnnouncement(ServiceAction.ADD, "fake", {}).encode()
            probe = SignedMessage.build(claimed.public_key, 1, TOPIC_SERVICES, payload, ts_ms, bytes(64))
            forged = SignedMessage.build(claimed.public_key, 1, TOPIC_SERVICES, payload, ts_ms,
                                         mallory.identity.sign(probe.signed))
            conn = mallory.connection_to(victim.identity.peer_id)
            assert conn is not None
            conn.send(GossipFrame(encode_frame(Frame(messages=((forged, 0),)))))
            await eventually(lambda: any(isinstance(e, PeerPenalized) and e.peer == mallory.identity.peer_id
                                         for e in events[1]))
            assert all(len(c) == 0 for c in catalogs)
            assert drivers[1].stats().counters["invalid_signature"] == 1
        finally:
            for d in drivers:
                await d.close()
