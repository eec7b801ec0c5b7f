"""Tunable parameters of the gossip core, with the reasons for their defaults.

The mesh follows GossipSub v1.1 (see docs/GOSSIP.md for why GossipSub and not Plumtree).
Defaults differ from libp2p's on purpose: D=4/D_low=3/D_high=6 instead of 6/4/12,
because every mesh edge costs each node between a half and one duplicate per message
and the issue's budget is <= 3 duplicates per node per message.  In our simulation D=6
gave 4.7 duplicates per node per message, D=5 gave 3.8 and D=4 gave 2.3-2.8; the lazy
IHAVE/IWANT path carries the reliability that the smaller mesh gives up (docs/GOSSIP.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from rnn_tui.errors import ConfigError
from rnn_tui.gossip.wire import WireLimits

__all__ = ["GossipConfig", "ScoreParams"]


@dataclass(frozen=True, slots=True)
class ScoreParams:
    """Per-peer score: penalties only, decaying towards 0 every heartbeat.

    Why penalties only: positive credit would let a peer bank good behaviour and then
    flood; decay lets an honest peer that hit a few losses (broken IWANT promises on a
    lossy link) recover within tens of seconds.
    """

    invalid_message: float = -10.0      # bad signature, malformed frame, oversize, bad field
    unknown_topic: float = -1.0         # a message for a topic we never subscribed to
    flood: float = -2.0                 # a frame or message over the peer's rate budget
    broken_promise: float = -1.0        # advertised in IHAVE, never delivered after IWANT
    graft_in_backoff: float = -3.0      # re-grafting while told to back off
    decay: float = 0.95                 # multiplier per heartbeat
    mesh_threshold: float = -4.0        # below: pruned from the mesh, never grafted
    gossip_threshold: float = -8.0      # below: no IHAVE/IWANT exchanged
    graylist_threshold: float = -16.0   # below: every frame ignored
    floor: float = -100.0               # scores never go lower (recovery stays bounded)


@dataclass(frozen=True, slots=True)
class GossipConfig:
    d: int = 4                          # target mesh degree per topic
    d_low: int = 3                      # graft when the mesh falls below this
    d_high: int = 6                     # prune when the mesh rises above this
    d_out: int = 2                      # mesh peers per topic that we dialled (eclipse defence)
    d_lazy: int = 6                     # minimum IHAVE targets per topic per heartbeat
    gossip_factor: float = 0.25         # ... or this fraction of non-mesh topic peers
    heartbeat_interval: float = 1.0
    history_length: int = 5             # heartbeats a message stays servable (IWANT)
    history_gossip: int = 3             # heartbeats a message id is advertised (IHAVE)
    fanout_ttl: float = 60.0            # forget fanout peers of a topic we stopped publishing on
    prune_backoff: float = 60.0         # no re-graft of a pruned peer before this
    seen_ttl: float = 180.0             # > max_message_age + max_clock_skew: replays hit age check
    max_seen: int = 200_000
    max_message_age: float = 120.0
    max_clock_skew: float = 30.0
    max_hops: int = 32
    flood_publish: bool = True          # the author sends to every topic peer, not just its mesh
    iwant_followup: float = 3.0         # an IWANT unanswered after this is a broken promise
    iwant_retry: float = 1.0            # ask another advertiser if no answer by then
    max_ihave_frames: int = 10          # IHAVE entries accepted per peer per heartbeat
    max_iwant_ids: int = 500            # ids we ask one peer for per heartbeat
    max_retransmissions: int = 3        # times we serve one id to one peer
    # Budgets.  Per neighbour, generous: an honest peer relays everyone's messages, and a
    # burst (a whole network announcing after a restart) must not get it graylisted.  Per
    # author, tight: nobody has a reason to publish more than a few messages a second, and
    # only the author's own key can make its messages, so this is what stops a valid flood.
    frame_rate: float = 1000.0          # frames/s a peer may send us (token bucket)
    frame_burst: float = 2000.0
    message_rate: float = 1000.0        # new full messages/s a peer may relay to us
    message_burst: float = 2000.0
    author_rate: float = 20.0           # verified messages/s we accept from one author
    author_burst: float = 100.0
    seq_window: int = 128               # out-of-order sequences tolerated per author
    max_authors: int = 10_000           # authors whose sequence window we remember
    max_invalid_cache: int = 4096       # ids known to carry a bad signature
    max_peer_topics: int = 64           # topics one peer may claim
    max_topics: int = 64                # topics we subscribe to
    max_events: int = 10_000            # undrained events before the oldest are dropped
    wire: WireLimits = WireLimits()
    score: ScoreParams = ScoreParams()

    def __post_init__(self) -> None:
        if not 1 <= self.d_low <= self.d <= self.d_high:
            raise ConfigError(f"gossip: need 1 <= d_low ({self.d_low}) <= d ({self.d}) <= d_high ({self.d_high})",
                              key="gossip.d")
        if not 0 <= self.d_out < self.d_low or self.d_out > self.d // 2:
            raise ConfigError(f"gossip: need 0 <= d_out ({self.d_out}) < d_low and d_out <= d/2",
                              key="gossip.d_out")
        if not 1 <= self.history_gossip <= self.history_length:
            raise ConfigError("gossip: need 1 <= history_gossip <= history_length", key="gossip.history_gossip")
        if self.heartbeat_interval <= 0:
            raise ConfigError("gossip: heartbeat_interval must be > 0", key="gossip.heartbeat_interval")
        if self.seen_ttl < self.max_message_age + self.max_clock_skew:
            raise ConfigError("gossip: seen_ttl must cover max_message_age + max_clock_skew, "
                              "or a replay could slip between them", key="gossip.seen_ttl")
        s = self.score
        if not s.floor <= s.graylist_threshold <= s.gossip_threshold <= s.mesh_threshold <= 0:
            raise ConfigError("gossip: need floor <= graylist <= gossip <= mesh threshold <= 0",
                              key="gossip.score")
