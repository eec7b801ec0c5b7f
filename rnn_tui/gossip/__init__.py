"""Signed, deduplicated topic gossip: a GossipSub-style sans-IO core and its asyncio driver.

Public API: ``GossipCore`` (the state machine), ``GossipConfig``, the events it emits and
the ``GossipStats`` snapshot.  The driver lives in ``rnn_tui.gossip.driver`` and is imported
on its own so that importing this package never pulls in asyncio.
"""

from rnn_tui.gossip.core import GossipCore
from rnn_tui.gossip.events import (
    GossipEvent,
    GossipStats,
    MessageDelivered,
    PeerPenalized,
    PeerSubscribed,
    PeerUnsubscribed,
    TopicStats,
)
from rnn_tui.gossip.params import GossipConfig, ScoreParams

__all__ = [
    "GossipCore",
    "GossipConfig",
    "ScoreParams",
    "GossipEvent",
    "GossipStats",
    "MessageDelivered",
    "PeerPenalized",
    "PeerSubscribed",
    "PeerUnsubscribed",
    "TopicStats",
]
