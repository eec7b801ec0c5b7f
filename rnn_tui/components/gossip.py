"""Gossip in the node: one core + driver on the transport, topics for services and events.

Topics (see docs/GOSSIP.md): ``rnn/services/1`` carries each author's public service
catalog whenever it changes; ``rnn/meta/1`` carries peer-metadata changes ahead of the hourly
DHT republish; ``rnn/events/1`` carries node lifecycle events (up, down).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from rnn_tui.gossip.core import GossipCore
from rnn_tui.gossip.driver import GossipDriver
from rnn_tui.gossip.events import GossipEvent, MessageDelivered
from rnn_tui.gossip.over_transport import attach_to_transport, transport_sender
from rnn_tui.identity import Identity, PeerId
from rnn_tui.transport.manager import Transport

log = logging.getLogger(__name__)

TOPIC_SERVICES = "rnn/services/1"
TOPIC_META = "rnn/meta/1"
TOPIC_EVENTS = "rnn/events/1"
MAX_PAYLOAD = 60_000

Handler = Callable[[PeerId, dict[str, Any]], None]


class GossipComponent:
    def __init__(self, identity: Identity, transport: Transport) -> None:
        self.identity = identity
        self.core = GossipCore(identity, random.Random())
        self.driver = GossipDriver(self.core, transport_sender(transport))
        self._handlers: dict[str, list[Handler]] = {}
        # Lazy repair can hand us an author's older message after a newer one; every topic
        # here carries state that replaces the previous (a whole catalog, the latest
        # metadata), so anything not newer than what we applied is dropped.
        self._last_seq: dict[tuple[str, PeerId], int] = {}
        attach_to_transport(transport, self.driver)
        self.driver.add_listener(self._on_event)

    async def start(self) -> None:
        for topic in (TOPIC_SERVICES, TOPIC_META, TOPIC_EVENTS):
            self.driver.subscribe(topic)
        await self.driver.start()

    async def close(self) -> None:
        await self.driver.close()

    def on(self, topic: str, handler: Handler) -> None:
        """``handler(author, document)`` for every verified message on ``topic``."""
        self._handlers.setdefault(topic, []).append(handler)

    def publish(self, topic: str, document: dict[str, Any]) -> None:
        payload = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
        if len(payload) > MAX_PAYLOAD:
            log.warning("gossip: %s payload of %d bytes is too large; not sent", topic, len(payload))
            return
        self.driver.publish(topic, payload)

    def stats(self) -> dict[str, Any]:
        return dict(self.driver.stats().to_dict())

    def _on_event(self, event: GossipEvent) -> None:
        if not isinstance(event, MessageDelivered):
            return
        key = (event.topic, event.author)
        if event.seq <= self._last_seq.get(key, -1):
            log.debug("gossip: older message %d from %s on %s ignored", event.seq,
                      event.author.short, event.topic)
            return
        if len(self._last_seq) > 100_000:
            self._last_seq.clear()
        self._last_seq[key] = event.seq
        try:
            document = json.loads(event.payload)
        except ValueError:
            log.info("gossip: undecodable payload on %s from %s", event.topic, event.author.short)
            return
        if not isinstance(document, dict):
            return
        for handler in self._handlers.get(event.topic, []):
            try:
                handler(event.author, document)
            except Exception:
                log.exception("gossip handler for %s failed", event.topic)

    def announce_lifecycle(self, state: str) -> None:
        self.publish(TOPIC_EVENTS, {"event": state, "t": int(time.time())})
