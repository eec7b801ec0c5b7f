"""Events the gossip core hands its driver, and the stats snapshot behind ``rnn gossip stats``."""

from __future__ import annotations

from dataclasses import dataclass

from rnn_tui.identity import PeerId

__all__ = [
    "GossipEvent",
    "MessageDelivered",
    "PeerPenalized",
    "PeerSubscribed",
    "PeerUnsubscribed",
    "TopicStats",
    "GossipStats",
]


@dataclass(frozen=True, slots=True)
class MessageDelivered:
    """A new, verified message on a topic we subscribe to (never our own)."""

    topic: str
    author: PeerId          # who signed it
    seq: int                # the author's sequence number
    payload: bytes
    timestamp: float        # author's clock, seconds
    message_id: bytes       # 20 bytes, stable across hops
    hops: int               # transport hops from the author to us
    from_peer: PeerId       # the neighbour that handed it over


@dataclass(frozen=True, slots=True)
class PeerPenalized:
    """A peer's score crossed a threshold downwards: it lost its mesh place or is ignored."""

    peer: PeerId
    reason: str             # the offence that tipped it over, e.g. "invalid_signature"
    score: float
    graylisted: bool        # True: every frame from it is now ignored


@dataclass(frozen=True, slots=True)
class PeerSubscribed:
    """A connected peer said it subscribes to ``topic``."""

    peer: PeerId
    topic: str


@dataclass(frozen=True, slots=True)
class PeerUnsubscribed:
    """A peer left ``topic`` (or disconnected while subscribed)."""

    peer: PeerId
    topic: str


GossipEvent = MessageDelivered | PeerPenalized | PeerSubscribed | PeerUnsubscribed


@dataclass(frozen=True, slots=True)
class TopicStats:
    topic: str
    subscribed: bool
    mesh_peers: tuple[str, ...]   # short peer ids
    topic_peers: int              # connected peers that subscribe to it
    fanout_peers: int


@dataclass(frozen=True, slots=True)
class GossipStats:
    """A snapshot for the CLI and TUI; ``counters`` holds every drop reason by name."""

    peer_id: str
    connected_peers: int
    topics: tuple[TopicStats, ...]
    counters: dict[str, int]
    penalized: tuple[tuple[str, float], ...]   # (short peer id, score) below 0
    seen_cache: int
    message_cache: int

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able form for the control API."""
        return {
            "peer_id": self.peer_id,
            "connected_peers": self.connected_peers,
            "topics": [
                {"topic": t.topic, "subscribed": t.subscribed, "mesh_peers": list(t.mesh_peers),
                 "topic_peers": t.topic_peers, "fanout_peers": t.fanout_peers}
                for t in self.topics
            ],
            "counters": dict(self.counters),
            "penalized": [[p, s] for p, s in self.penalized],
            "seen_cache": self.seen_cache,
            "message_cache": self.message_cache,
        }
