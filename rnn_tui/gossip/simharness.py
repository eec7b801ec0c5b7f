"""Run many real ``GossipCore``s on the in-process ``SimNetwork`` and measure delivery.

Why a harness in the package: the benchmark (``bench/gossip_sim.py``), the simulation
tests and several unit tests drive the same thing — real cores, real Ed25519 signatures,
datagrams with latency and loss on a virtual clock — and differ only in size and in
what they assert.  ``SimNetwork`` is address-based; the core is peer-based, so each node
gets a synthetic address and the harness maps ``PeerId`` <-> address.

Churn model: a leaving node vanishes (its address is detached, datagrams to it are
lost); its neighbours learn of it ``detect_delay`` seconds later, as a QUIC idle timeout
would tell them.  A joining node connects to ``connections`` random online nodes and
subscribes.  Delivery counts only the nodes that were online from a message's publication
to the end of its measurement window (a node that left cannot receive, and one that
joined later was never promised the message).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from rnn_tui.gossip.core import GossipCore
from rnn_tui.gossip.events import MessageDelivered
from rnn_tui.gossip.params import GossipConfig
from rnn_tui.identity import Identity, PeerId
from rnn_tui.sim.network import Addr, SimNetwork

__all__ = ["SimNode", "GossipSimulation", "PublishedMessage", "SimReport"]

DropFilter = Callable[[int, int, bytes], bool]


@dataclass(slots=True)
class SimNode:
    index: int
    identity: Identity
    core: GossipCore
    addr: Addr
    joined_at: float
    left_at: float = float("inf")
    neighbours: set[int] = field(default_factory=set)
    timer_at: float | None = None

    @property
    def online(self) -> bool:
        return self.left_at == float("inf")


@dataclass(slots=True)
class PublishedMessage:
    message_id: bytes
    author: int
    published_at: float
    deliveries: dict[int, tuple[float, int]] = field(default_factory=dict)  # node -> (time, hops)


@dataclass(frozen=True, slots=True)
class SimReport:
    nodes: int
    messages: int
    loss: float
    churned: int
    expected: int            # (message, eligible node) pairs
    delivered: int
    delivered_4s: int
    hops_p50: float
    hops_p99: float
    latency_ms_p50: float
    latency_ms_p99: float
    duplicates_per_node_msg: float
    frames_per_node_msg: float
    invalid: int

    @property
    def delivery_ratio(self) -> float:
        return self.delivered / self.expected if self.expected else 1.0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


class GossipSimulation:
    """N gossip nodes on one topic over a lossy simulated network."""

    def __init__(self, n: int, *, seed: int = 1, loss: float = 0.0, connections: int = 12,
                 latency: tuple[float, float] = (0.01, 0.1), detect_delay: float = 2.0,
                 config: GossipConfig | None = None, topic: str = "rnn/sim",
                 start_time: float = 1_700_000_000.0) -> None:
        self.rng = random.Random(seed)
        self.config = config or GossipConfig()
        self.topic = topic
        self.connections = connections
        self.detect_delay = detect_delay
        self._lat_lo, self._lat_span = latency[0], latency[1] - latency[0]
        self.net = SimNetwork(rng=random.Random(seed + 1), latency=self._latency, loss=loss)
        self.net.clock.now = start_time
        self.nodes: list[SimNode] = []
        self._by_addr: dict[Addr, int] = {}
        self._by_peer: dict[PeerId, int] = {}
        self.messages: dict[bytes, PublishedMessage] = {}
        self.drop_filter: DropFilter | None = None
        self.on_event: Callable[[int, object], None] | None = None
        for _ in range(n):
            self._create_node()
        for node in self.nodes:
            for other in self.rng.sample(range(n), min(n - 1, connections // 2 + 1)):
                if other != node.index and len(node.neighbours) < connections:
                    self.connect(node.index, other)
        for node in self.nodes:
            node.core.subscribe(topic)
            self._after_input(node)

    # ------------------------------------------------------------------ topology

    @property
    def now(self) -> float:
        return self.net.now

    def _latency(self, src: Addr, dst: Addr) -> float:
        a, b = self._by_addr[src], self._by_addr[dst]
        if a > b:
            a, b = b, a
        mix = (a * 2654435761 + b * 40503 + 12345) % 1_000_003
        return self._lat_lo + self._lat_span * (mix / 1_000_003)

    def _create_node(self) -> SimNode:
        index = len(self.nodes)
        identity = Identity(self.rng.randbytes(32))
        core = GossipCore(identity, random.Random(self.rng.getrandbits(64)), self.config)
        addr = (f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}", 7000)
        node = SimNode(index, identity, core, addr, joined_at=self.now)
        self.nodes.append(node)
        self._by_addr[addr] = index
        self._by_peer[identity.peer_id] = index
        self.net.attach(addr, partial(self._on_datagram, index))
        return node

    def connect(self, a: int, b: int) -> None:
        """Both ends learn of the connection at once (as after a QUIC handshake)."""
        na, nb = self.nodes[a], self.nodes[b]
        if b in na.neighbours or a == b:
            return
        na.neighbours.add(b)
        nb.neighbours.add(a)
        na.core.peer_connected(nb.identity.peer_id, self.now, outbound=True)   # a dialled b
        nb.core.peer_connected(na.identity.peer_id, self.now, outbound=False)
        self._after_input(na)
        self._after_input(nb)

    def leave(self, index: int) -> None:
        node = self.nodes[index]
        if not node.online:
            return
        node.left_at = self.now
        self.net.detach(node.addr)
        peer = node.identity.peer_id

        def notice(now: float, neighbours: tuple[int, ...] = tuple(sorted(node.neighbours))) -> None:
            for other in neighbours:
                o = self.nodes[other]
                o.neighbours.discard(index)
                if o.online:
                    o.core.peer_disconnected(peer, now)
                    self._after_input(o)

        self.net.call_later(self.detect_delay, notice)

    def join(self) -> int:
        node = self._create_node()
        online = [n.index for n in self.nodes if n.online and n.index != node.index]
        for other in self.rng.sample(online, min(len(online), self.connections)):
            self.connect(node.index, other)
        node.core.subscribe(self.topic)
        self._after_input(node)
        return node.index

    def online_indices(self) -> list[int]:
        return [n.index for n in self.nodes if n.online]

    # ------------------------------------------------------------------ driving

    def publish(self, index: int, payload: bytes) -> bytes:
        node = self.nodes[index]
        msg_id = node.core.publish(self.topic, payload, self.now)
        self.messages[msg_id] = PublishedMessage(msg_id, index, self.now)
        self._after_input(node)
        return msg_id

    def inject(self, src: int, dst: int, data: bytes) -> None:
        """Deliver raw bytes from ``src`` to ``dst`` now (tests of hostile peers)."""
        node = self.nodes[dst]
        node.core.receive(self.nodes[src].identity.peer_id, data, self.now)
        self._after_input(node)

    def run_for(self, seconds: float) -> None:
        self.net.run_for(seconds)

    def _on_datagram(self, index: int, data: bytes, src: Addr, now: float) -> None:
        node = self.nodes[index]
        node.core.receive(self.nodes[self._by_addr[src]].identity.peer_id, data, now)
        self._after_input(node)

    def _on_timer(self, index: int, when: float, now: float) -> None:
        node = self.nodes[index]
        if not node.online or node.timer_at != when:
            return
        node.timer_at = None
        node.core.handle_timer(now)
        self._after_input(node)

    def _after_input(self, node: SimNode) -> None:
        core = node.core
        for peer, data in core.messages_to_send():
            dst = self._by_peer[peer]
            if self.drop_filter is not None and self.drop_filter(node.index, dst, data):
                continue
            self.net.send(node.addr, self.nodes[dst].addr, data)
        while (event := core.next_event()) is not None:
            if isinstance(event, MessageDelivered):
                record = self.messages.get(event.message_id)
                if record is not None and node.index not in record.deliveries:
                    record.deliveries[node.index] = (self.now, event.hops)
            if self.on_event is not None:
                self.on_event(node.index, event)
        when = core.get_timer()
        if when is not None and node.online and node.timer_at != when:
            node.timer_at = when
            self.net.call_at(when, partial(self._on_timer, node.index, when))

    # ------------------------------------------------------------------ measuring

    def report(self, window: float) -> SimReport:
        """Delivery among nodes online from each publication until ``window`` after it."""
        expected = delivered = within_4s = online_at_publish = 0
        hops: list[float] = []
        latencies: list[float] = []
        for record in self.messages.values():
            start, end = record.published_at, record.published_at + window
            for node in self.nodes:
                if node.joined_at <= start and node.left_at > start:
                    online_at_publish += 1
                if node.index == record.author or node.joined_at > start or node.left_at <= end:
                    continue
                expected += 1
                got = record.deliveries.get(node.index)
                if got is None:
                    continue
                delivered += 1
                delay = got[0] - start
                within_4s += delay <= 4.0
                latencies.append(delay * 1000.0)
                hops.append(float(got[1]))
        duplicates = sum(n.core.counter("duplicates") for n in self.nodes)
        frames = sum(n.core.counter("frames_out") for n in self.nodes)
        invalid = sum(n.core.stats().counters["invalid"] for n in self.nodes)
        denominator = max(1, online_at_publish)
        return SimReport(
            nodes=sum(1 for n in self.nodes if n.joined_at <= min(
                (r.published_at for r in self.messages.values()), default=self.now)),
            messages=len(self.messages), loss=self.net.loss,
            churned=sum(1 for n in self.nodes if not n.online),
            expected=expected, delivered=delivered, delivered_4s=within_4s,
            hops_p50=_percentile(hops, 0.5), hops_p99=_percentile(hops, 0.99),
            latency_ms_p50=_percentile(latencies, 0.5), latency_ms_p99=_percentile(latencies, 0.99),
            duplicates_per_node_msg=duplicates / denominator,
            frames_per_node_msg=frames / denominator,
            invalid=invalid,
        )
