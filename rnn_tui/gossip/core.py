"""Sans-IO gossip core: GossipSub-style topic meshes with signed, deduplicated messages.

The only inputs that change state (after aioquic's ``QuicConnection``):

* API calls: ``peer_connected``, ``peer_disconnected``, ``subscribe``, ``unsubscribe``,
  ``publish``;
* ``receive(from_peer, data, now)``: one frame from an authenticated neighbour;
* ``handle_timer(now)``: the heartbeat.

Outputs are drained by the driver: ``messages_to_send()`` (frames per peer, coalesced so a
peer gets at most one frame per input), ``next_event()`` and ``get_timer()``.  No socket,
clock or randomness lives here: time comes in as ``now`` (seconds, the same clock as
message timestamps), randomness from the injected ``random.Random``.

How a message travels: the author signs it and sends it to every peer subscribed to the
topic (flood publish).  Each receiver checks, cheapest first, that it is new (seen-cache),
on a subscribed topic, within the sender's rate budget, within the hop limit, fresh
(timestamp) and not a replayed or stale sequence; then verifies the signature once, and
only then delivers it and forwards it to its mesh peers for that topic.  Every heartbeat
each node advertises the ids of recent messages (IHAVE) to a few non-mesh peers, which pull
what they miss (IWANT): that lazy path repairs losses and churn.

Peer misbehaviour never raises out of here: it is dropped, counted in ``stats()`` and
charged to the peer's score; a peer below the mesh threshold loses its mesh place, one
below the graylist threshold is ignored altogether (``PeerPenalized`` events).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter

from rnn_tui.errors import LocalProtocolError
from rnn_tui.gossip.caches import (
    AuthorBudgets,
    LruSet,
    MessageCache,
    SeenCache,
    SequenceWindows,
    TokenBucket,
)
from rnn_tui.gossip.events import (
    GossipEvent,
    GossipStats,
    MessageDelivered,
    PeerPenalized,
    PeerSubscribed,
    PeerUnsubscribed,
    TopicStats,
)
from rnn_tui.gossip.params import GossipConfig
from rnn_tui.gossip.wire import (
    Frame,
    MalformedFrame,
    SignedMessage,
    decode_frame,
    encode_frame,
    make_message_id,
    signing_bytes,
)
from rnn_tui.identity import Identity, PeerId, verify_signature

__all__ = ["GossipCore"]

_by_key = attrgetter("key")
_MAX_PROMISES = 50_000


class _PeerState:
    __slots__ = ("peer", "outbound", "topics", "score", "frames", "messages", "ihave_seen",
                 "iwant_asked")

    def __init__(self, peer: PeerId, cfg: GossipConfig, now: float, outbound: bool) -> None:
        self.peer = peer
        self.outbound = outbound   # we dialled it: an attacker cannot make us dial it at will
        self.topics: set[str] = set()
        self.score = 0.0
        self.frames = TokenBucket(cfg.frame_rate, cfg.frame_burst, now)
        self.messages = TokenBucket(cfg.message_rate, cfg.message_burst, now)
        self.ihave_seen = 0     # IHAVE entries accepted this heartbeat
        self.iwant_asked = 0    # ids we asked this peer for this heartbeat


@dataclass(slots=True)
class _Outgoing:
    """What we owe one peer, coalesced into one frame when the driver drains us."""

    subscriptions: list[tuple[str, bool]] = field(default_factory=list)
    messages: list[tuple[SignedMessage, int]] = field(default_factory=list)
    ihave: list[tuple[str, tuple[bytes, ...]]] = field(default_factory=list)
    iwant: list[bytes] = field(default_factory=list)
    graft: list[str] = field(default_factory=list)
    prune: list[tuple[str, int]] = field(default_factory=list)
    payload_bytes: int = 0

    def to_frame(self) -> Frame:
        return Frame(tuple(self.subscriptions), tuple(self.messages), tuple(self.ihave),
                     tuple(self.iwant), tuple(self.graft), tuple(self.prune))


class GossipCore:
    """One node's gossip state.  See the module docstring for the protocol."""

    def __init__(self, identity: Identity, rng: random.Random, config: GossipConfig | None = None) -> None:
        self._identity = identity
        self._me = identity.peer_id
        self._rng = rng
        self._cfg = config or GossipConfig()
        cfg = self._cfg
        self._peers: dict[PeerId, _PeerState] = {}
        self._subscriptions: set[str] = set()
        self._topic_peers: dict[str, set[PeerId]] = {}
        self._mesh: dict[str, set[PeerId]] = {}
        self._fanout: dict[str, set[PeerId]] = {}
        self._fanout_last: dict[str, float] = {}
        self._backoff: dict[tuple[str, PeerId], float] = {}
        self._joined: dict[tuple[str, PeerId], float] = {}   # when a peer entered our mesh
        self._seen = SeenCache(cfg.seen_ttl, cfg.max_seen)
        self._invalid = LruSet(cfg.max_invalid_cache)
        self._mcache = MessageCache(cfg.history_length, cfg.history_gossip)
        self._seqs = SequenceWindows(cfg.seq_window, cfg.max_authors)
        self._authors = AuthorBudgets(cfg.author_rate, cfg.author_burst, cfg.max_authors)
        self._promises: dict[bytes, list[tuple[PeerId, float]]] = {}  # id -> (asked, when)
        self._outbox: dict[PeerId, _Outgoing] = {}
        self._ready: list[tuple[PeerId, bytes]] = []
        self._events: deque[GossipEvent] = deque()
        self._counters: dict[str, int] = {}
        self._next_heartbeat: float | None = None
        self._last_seq = 0
        self._now = 0.0

    # ------------------------------------------------------------------ public queries

    @property
    def peer_id(self) -> PeerId:
        return self._me

    @property
    def config(self) -> GossipConfig:
        return self._cfg

    def subscriptions(self) -> frozenset[str]:
        return frozenset(self._subscriptions)

    def connected_peers(self) -> frozenset[PeerId]:
        return frozenset(self._peers)

    def mesh_peers(self, topic: str) -> frozenset[PeerId]:
        return frozenset(self._mesh.get(topic, ()))

    def topic_peers(self, topic: str) -> frozenset[PeerId]:
        return frozenset(self._topic_peers.get(topic, ()))

    def score(self, peer: PeerId) -> float | None:
        state = self._peers.get(peer)
        return None if state is None else state.score

    def counter(self, name: str) -> int:
        return self._counters.get(name, 0)

    def has_seen(self, message_id: bytes) -> bool:
        return message_id in self._seen

    def stats(self) -> GossipStats:
        counters = dict(self._counters)
        counters["seen_evicted"] = self._seen.evicted
        counters["invalid"] = sum(counters.get(k, 0) for k in _INVALID_REASONS)
        topics = sorted(self._subscriptions | set(self._fanout))
        return GossipStats(
            peer_id=str(self._me),
            connected_peers=len(self._peers),
            topics=tuple(
                TopicStats(t, t in self._subscriptions,
                           tuple(sorted(p.short for p in self._mesh.get(t, ()))),
                           len(self._topic_peers.get(t, ())), len(self._fanout.get(t, ())))
                for t in topics),
            counters=counters,
            penalized=tuple(sorted((s.peer.short, round(s.score, 2))
                                   for s in self._peers.values() if s.score < 0)),
            seen_cache=len(self._seen),
            message_cache=len(self._mcache),
        )

    # ------------------------------------------------------------------ outputs

    def messages_to_send(self) -> list[tuple[PeerId, bytes]]:
        """Frames to transmit, at most one per peer per drain (plus early overflow frames)."""
        for peer in list(self._outbox):
            self._flush(peer)
        out, self._ready = self._ready, []
        # Sets are hash-ordered per process; a fixed order keeps simulations reproducible.
        out.sort(key=lambda item: item[0].key)
        return out

    def next_event(self) -> GossipEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        return self._next_heartbeat

    # ------------------------------------------------------------------ peers

    def peer_connected(self, peer: PeerId, now: float, *, outbound: bool = False) -> None:
        """An authenticated transport connection to ``peer`` is up: say what we subscribe to.

        ``outbound``: we dialled it.  Each mesh keeps ``d_out`` such peers, so a flood of
        inbound connections (an eclipse attempt) cannot take every mesh place.
        """
        self._touch(now)
        if peer == self._me or peer in self._peers:
            return
        self._peers[peer] = _PeerState(peer, self._cfg, now, outbound)
        if self._subscriptions:
            self._out(peer).subscriptions.extend((t, True) for t in sorted(self._subscriptions))

    def peer_disconnected(self, peer: PeerId, now: float) -> None:
        self._touch(now)
        state = self._peers.pop(peer, None)
        if state is None:
            return
        for topic in state.topics:
            self._forget_topic_peer(topic, peer)
            self._emit(PeerUnsubscribed(peer, topic))
        for peers in (*self._mesh.values(), *self._fanout.values()):
            peers.discard(peer)
        self._outbox.pop(peer, None)

    # ------------------------------------------------------------------ topics

    def subscribe(self, topic: str) -> None:
        """Join ``topic``: announce it and graft up to D peers (fanout peers first)."""
        self._check_topic(topic)
        if topic in self._subscriptions:
            return
        if len(self._subscriptions) >= self._cfg.max_topics:
            raise LocalProtocolError(f"gossip: already subscribed to {self._cfg.max_topics} topics")
        self._subscriptions.add(topic)
        for peer in self._peers:
            self._out(peer).subscriptions.append((topic, True))
        mesh = self._mesh.setdefault(topic, set())
        joining = sorted(self._fanout.pop(topic, set()), key=_by_key)
        self._fanout_last.pop(topic, None)
        joining += self._pick(self._graft_candidates(topic, set(joining)), self._cfg.d - len(joining))
        for peer in joining:
            self._mesh_add(topic, mesh, peer)
            self._out(peer).graft.append(topic)

    def unsubscribe(self, topic: str) -> None:
        if topic not in self._subscriptions:
            return
        self._subscriptions.discard(topic)
        for peer in self._peers:
            self._out(peer).subscriptions.append((topic, False))
        for peer in self._mesh.pop(topic, set()):
            self._prune(topic, peer)

    # ------------------------------------------------------------------ publish

    def publish(self, topic: str, payload: bytes, now: float) -> bytes:
        """Sign and send a new message; returns its 20-byte id.

        The sequence number starts from the clock in microseconds, so a restarted node
        never reuses a sequence its peers still remember.
        """
        self._touch(now)
        self._check_topic(topic)
        if len(payload) > self._cfg.wire.max_payload_bytes:
            raise LocalProtocolError(
                f"gossip: payload of {len(payload)} bytes exceeds {self._cfg.wire.max_payload_bytes}")
        self._last_seq = max(self._last_seq + 1, int(now * 1_000_000))
        ts_ms = int(now * 1000)
        signed = signing_bytes(self._me.key, self._last_seq, topic, payload, ts_ms)
        signature = self._identity.sign(signed)
        message = SignedMessage(self._me.key, self._last_seq, topic, payload, ts_ms, signature,
                                make_message_id(signed, signature), signed)
        self._seen.add(message.msg_id, now)
        self._seqs.accept(message.author, message.seq)
        self._mcache.put(message, 0)
        self._count("published")
        for peer in self._publish_targets(topic, now):
            self._send_message(peer, message, 1)
        return message.msg_id

    def _publish_targets(self, topic: str, now: float) -> Iterable[PeerId]:
        threshold = self._cfg.score.gossip_threshold
        if self._cfg.flood_publish:
            return [p for p in self._topic_peers.get(topic, ()) if self._peers[p].score >= threshold]
        if topic in self._subscriptions:
            return list(self._mesh.get(topic, ()))
        fanout = self._fanout.setdefault(topic, set())
        if len(fanout) < self._cfg.d:
            fanout.update(self._pick(self._graft_candidates(topic, fanout), self._cfg.d - len(fanout)))
        self._fanout_last[topic] = now
        return list(fanout)

    # ------------------------------------------------------------------ receive

    def receive(self, from_peer: PeerId, data: bytes, now: float) -> None:
        """One frame from a connected neighbour.  Never raises for anything the peer sent."""
        self._touch(now)
        self._count("frames_in")
        self._count("bytes_in", len(data))
        peer = self._peers.get(from_peer)
        if peer is None:
            self._count("unknown_peer")
            return
        if peer.score < self._cfg.score.graylist_threshold:
            self._count("graylisted_frames")
            return
        if not peer.frames.take(now):
            self._count("rate_limited")
            self._penalize(peer, self._cfg.score.flood, "flood")
            return
        try:
            frame = decode_frame(data, self._cfg.wire)
        except MalformedFrame:
            self._count("malformed")
            self._penalize(peer, self._cfg.score.invalid_message, "malformed")
            return
        for topic, on in frame.subscriptions:
            self._on_subscription(peer, topic, on)
        for message, hops in frame.messages:
            if peer.score < self._cfg.score.graylist_threshold:
                break
            self._on_message(peer, message, hops, now)
        for topic, ids in frame.ihave:
            self._on_ihave(peer, topic, ids, now)
        if frame.iwant:
            self._on_iwant(peer, frame.iwant)
        for topic in frame.graft:
            self._on_graft(peer, topic, now)
        for topic, backoff in frame.prune:
            self._on_prune(peer, topic, backoff, now)

    def _on_subscription(self, peer: _PeerState, topic: str, on: bool) -> None:
        if on:
            if topic in peer.topics:
                return
            if len(peer.topics) >= self._cfg.max_peer_topics:
                self._count("peer_topics_over_limit")
                return
            peer.topics.add(topic)
            self._topic_peers.setdefault(topic, set()).add(peer.peer)
            self._emit(PeerSubscribed(peer.peer, topic))
        elif topic in peer.topics:
            peer.topics.discard(topic)
            self._forget_topic_peer(topic, peer.peer)
            for peers in (self._mesh.get(topic), self._fanout.get(topic)):
                if peers is not None:
                    peers.discard(peer.peer)
            self._emit(PeerUnsubscribed(peer.peer, topic))

    def _forget_topic_peer(self, topic: str, peer: PeerId) -> None:
        peers = self._topic_peers.get(topic)
        if peers is not None:
            peers.discard(peer)
            if not peers:   # topics are named by peers: never keep empty ones around
                del self._topic_peers[topic]

    def _implied_subscription(self, peer: _PeerState, topic: str) -> None:
        """IHAVE and GRAFT for a topic prove the sender subscribes to it.

        Why: the subscription announcement may have been lost or overtaken; without this
        a peer whose hello went missing would never join our mesh nor get our IHAVEs.
        """
        if topic not in peer.topics:
            self._on_subscription(peer, topic, True)

    def _on_message(self, peer: _PeerState, message: SignedMessage, hops: int, now: float) -> None:
        """Cheap checks first; the signature is verified once per message id."""
        self._count("messages_in")
        cfg = self._cfg
        msg_id = message.msg_id
        if msg_id in self._seen:
            self._count("duplicates")
            return
        if msg_id in self._invalid:
            self._count("invalid_signature")
            self._penalize(peer, cfg.score.invalid_message, "invalid_signature")
            return
        if message.topic not in self._subscriptions:
            self._count("unknown_topic")
            self._penalize(peer, cfg.score.unknown_topic, "unknown_topic")
            return
        if not peer.messages.take(now):
            self._count("rate_limited")
            self._penalize(peer, cfg.score.flood, "flood")
            return
        if hops > cfg.max_hops:
            self._count("hop_limit")
            return
        sent_at = message.timestamp_ms / 1000.0
        if now - sent_at > cfg.max_message_age:
            self._count("stale_timestamp")
            return
        if sent_at - now > cfg.max_clock_skew:
            self._count("future_timestamp")
            return
        reason = self._seqs.check(message.author, message.seq)
        if reason is not None:
            self._count(reason)
            return
        if not verify_signature(message.author, message.signed, message.signature):
            self._invalid.add(msg_id)
            self._count("invalid_signature")
            self._penalize(peer, cfg.score.invalid_message, "invalid_signature")
            return
        self._count("verified")
        self._seen.add(msg_id, now)
        self._seqs.accept(message.author, message.seq)
        # Charged only after verification, so forgeries cannot spend an honest author's
        # budget.  The excess is remembered as seen (its copies stay cheap) but never
        # delivered or forwarded; only the author itself is penalized for it.
        if not self._authors.take(message.author, now):
            self._count("author_rate_limited")
            if peer.peer.key == message.author:
                self._penalize(peer, cfg.score.flood, "flood")
            return
        self._mcache.put(message, hops)
        self._promises.pop(msg_id, None)
        author = PeerId(message.author)
        if author != self._me:
            self._count("delivered")
            self._emit(MessageDelivered(message.topic, author, message.seq, message.payload,
                                        sent_at, msg_id, hops, peer.peer))
        if hops >= cfg.max_hops:
            return
        for target in self._mesh.get(message.topic, ()):
            if target != peer.peer and target != author:
                self._send_message(target, message, hops + 1)

    def _on_ihave(self, peer: _PeerState, topic: str, ids: tuple[bytes, ...], now: float) -> None:
        self._count("ihave_in")
        cfg = self._cfg
        self._implied_subscription(peer, topic)
        if peer.score < cfg.score.gossip_threshold or topic not in self._subscriptions:
            return
        peer.ihave_seen += 1
        if peer.ihave_seen > cfg.max_ihave_frames:
            self._count("ihave_over_budget")
            return
        wanted: list[bytes] = []
        for msg_id in ids:
            if msg_id in self._seen or msg_id in self._invalid:
                continue
            asked = self._promises.get(msg_id)
            if asked and now - asked[-1][1] < cfg.iwant_retry:
                continue
            if peer.iwant_asked + len(wanted) >= cfg.max_iwant_ids or len(self._promises) >= _MAX_PROMISES:
                self._count("iwant_over_budget")
                break
            wanted.append(msg_id)
        if not wanted:
            return
        peer.iwant_asked += len(wanted)
        for msg_id in wanted:
            self._promises.setdefault(msg_id, []).append((peer.peer, now))
        self._out(peer.peer).iwant.extend(wanted)
        self._count("iwant_out", len(wanted))

    def _on_iwant(self, peer: _PeerState, ids: tuple[bytes, ...]) -> None:
        self._count("iwant_in", len(ids))
        if peer.score < self._cfg.score.gossip_threshold:
            return
        for msg_id in ids:
            entry = self._mcache.get(msg_id)
            if entry is None:
                self._count("iwant_missing")
                continue
            served = entry.served.get(peer.peer.key, 0)
            if served >= self._cfg.max_retransmissions:
                self._count("iwant_over_budget")
                continue
            entry.served[peer.peer.key] = served + 1
            self._count("iwant_served")
            self._send_message(peer.peer, entry.message, entry.hops + 1)

    def _on_graft(self, peer: _PeerState, topic: str, now: float) -> None:
        self._count("graft_in")
        self._implied_subscription(peer, topic)
        mesh = self._mesh.get(topic)
        if mesh is None or topic not in self._subscriptions:
            self._prune(topic, peer.peer)
            return
        if peer.peer in mesh:
            return
        until = self._backoff.get((topic, peer.peer))
        if until is not None and now < until:
            self._penalize(peer, self._cfg.score.graft_in_backoff, "graft_in_backoff")
            self._prune(topic, peer.peer)
            return
        if peer.score < self._cfg.score.mesh_threshold:
            self._prune(topic, peer.peer)
            return
        # Accepted even above D_high (as libp2p does): refusing would lock newcomers out
        # of a network whose meshes are all full; the heartbeat trims back to D.
        self._mesh_add(topic, mesh, peer.peer)

    def _on_prune(self, peer: _PeerState, topic: str, backoff: int, now: float) -> None:
        self._count("prune_in")
        mesh = self._mesh.get(topic)
        if mesh is not None:
            mesh.discard(peer.peer)
        self._backoff[(topic, peer.peer)] = now + min(max(float(backoff), 1.0), 3600.0)

    # ------------------------------------------------------------------ heartbeat

    def handle_timer(self, now: float) -> None:
        self._touch(now)
        due = self._next_heartbeat
        if due is None or now < due:
            return
        interval = self._cfg.heartbeat_interval
        self._next_heartbeat = due + interval if due + interval > now else now + interval
        self._heartbeat(now)

    def _heartbeat(self, now: float) -> None:
        cfg = self._cfg
        self._count("heartbeats")
        for state in self._peers.values():
            state.ihave_seen = 0
            state.iwant_asked = 0
            if state.score:
                state.score *= cfg.score.decay
                if state.score > -0.01:
                    state.score = 0.0
        self._check_promises(now)
        for topic in sorted(self._subscriptions):
            self._maintain_mesh(topic)
        self._maintain_fanout(now)
        for topic in sorted(self._subscriptions | set(self._fanout)):
            self._emit_gossip(topic)
        self._mcache.shift()
        self._seen.expire(now)
        self._backoff = {k: v for k, v in self._backoff.items() if v > now}
        recent = now - cfg.history_gossip * cfg.heartbeat_interval
        self._joined = {k: v for k, v in self._joined.items()
                        if v > recent and k[1] in self._mesh.get(k[0], ())}

    def _check_promises(self, now: float) -> None:
        horizon = now - self._cfg.iwant_followup
        for msg_id in list(self._promises):
            asked = self._promises[msg_id]
            while asked and asked[0][1] <= horizon:
                state = self._peers.get(asked.pop(0)[0])
                if state is not None:
                    self._count("broken_promises")
                    self._penalize(state, self._cfg.score.broken_promise, "broken_promise")
            if not asked:
                del self._promises[msg_id]

    def _maintain_mesh(self, topic: str) -> None:
        cfg = self._cfg
        mesh = self._mesh.setdefault(topic, set())
        for peer in sorted(mesh, key=_by_key):
            if self._peers[peer].score < cfg.score.mesh_threshold:
                mesh.discard(peer)
                self._prune(topic, peer)
        if len(mesh) < cfg.d_low:
            for peer in self._pick(self._graft_candidates(topic, mesh), cfg.d - len(mesh)):
                self._mesh_add(topic, mesh, peer)
                self._out(peer).graft.append(topic)
                self._count("graft_out")
        elif len(mesh) > cfg.d_high:
            outbound = [p for p in mesh if self._peers[p].outbound]
            keep = set(self._pick(outbound, cfg.d_out))
            keep.update(self._pick(mesh - keep, cfg.d - len(keep)))
            for peer in sorted(mesh - keep, key=_by_key):
                mesh.discard(peer)
                self._prune(topic, peer)
        missing_out = cfg.d_out - sum(1 for p in mesh if self._peers[p].outbound)
        if missing_out > 0 and len(mesh) >= cfg.d_low:
            candidates = [p for p in self._graft_candidates(topic, mesh) if self._peers[p].outbound]
            for peer in self._pick(candidates, missing_out):
                self._mesh_add(topic, mesh, peer)
                self._out(peer).graft.append(topic)
                self._count("graft_out")

    def _maintain_fanout(self, now: float) -> None:
        for topic in sorted(self._fanout):
            if now - self._fanout_last.get(topic, now) > self._cfg.fanout_ttl:
                del self._fanout[topic]
                self._fanout_last.pop(topic, None)
                continue
            fanout = self._fanout[topic]
            fanout.intersection_update(self._topic_peers.get(topic, set()))
            if len(fanout) < self._cfg.d:
                fanout.update(self._pick(self._graft_candidates(topic, fanout), self._cfg.d - len(fanout)))

    def _emit_gossip(self, topic: str) -> None:
        ids = self._mcache.gossip_ids(topic)
        if not ids:
            return
        cfg = self._cfg
        mesh = self._mesh.get(topic, set())
        exclude = mesh | self._fanout.get(topic, set())
        candidates = [p for p in self._topic_peers.get(topic, ())
                      if p not in exclude and self._peers[p].score >= cfg.score.gossip_threshold]
        count = max(cfg.d_lazy, int(cfg.gossip_factor * len(candidates)))
        if len(ids) > cfg.wire.max_ids:
            ids = self._rng.sample(ids, cfg.wire.max_ids)
        advert = (topic, tuple(ids))
        # Peers that joined our mesh within the gossip window may have missed what we
        # pushed before they joined (e.g. a message published while meshes were forming):
        # they get the advert too.  Others in the mesh got every message eagerly.
        recent = self._now - cfg.history_gossip * cfg.heartbeat_interval
        fresh = sorted((p for p in mesh if self._joined.get((topic, p), recent) > recent), key=_by_key)
        for peer in self._pick(candidates, count) + fresh:
            out = self._out(peer)
            out.ihave.append(advert)
            self._count("ihave_out")
            if len(out.ihave) >= cfg.wire.max_ihave_topics:
                self._flush(peer)

    # ------------------------------------------------------------------ helpers

    def _touch(self, now: float) -> None:
        self._now = now
        if self._next_heartbeat is None:
            self._next_heartbeat = now + self._rng.random() * self._cfg.heartbeat_interval

    def _check_topic(self, topic: str) -> None:
        raw = topic.encode()
        if not raw or len(raw) > self._cfg.wire.max_topic_bytes:
            raise LocalProtocolError(
                f"gossip: topic {topic!r} must be 1..{self._cfg.wire.max_topic_bytes} bytes of UTF-8")

    def _graft_candidates(self, topic: str, exclude: set[PeerId]) -> list[PeerId]:
        threshold = self._cfg.score.mesh_threshold
        now = self._now
        out = []
        for peer in self._topic_peers.get(topic, ()):
            if peer in exclude or self._peers[peer].score < threshold:
                continue
            until = self._backoff.get((topic, peer))
            if until is not None and now < until:
                continue
            out.append(peer)
        return out

    def _pick(self, peers: Iterable[PeerId], count: int) -> list[PeerId]:
        """``count`` peers chosen at random, reproducibly (set order is hash-seeded)."""
        ordered = sorted(peers, key=_by_key)
        if count <= 0:
            return []
        if count >= len(ordered):
            return ordered
        return self._rng.sample(ordered, count)

    def _mesh_add(self, topic: str, mesh: set[PeerId], peer: PeerId) -> None:
        mesh.add(peer)
        self._joined[(topic, peer)] = self._now

    def _prune(self, topic: str, peer: PeerId) -> None:
        backoff = self._cfg.prune_backoff
        self._backoff[(topic, peer)] = self._now + backoff
        self._out(peer).prune.append((topic, int(backoff)))
        self._count("prune_out")

    def _penalize(self, peer: _PeerState, amount: float, reason: str) -> None:
        s = self._cfg.score
        old = peer.score
        peer.score = max(s.floor, old + amount)
        new = peer.score
        if old >= s.mesh_threshold > new:
            self._count("peers_penalized")
            for topic, mesh in self._mesh.items():
                if peer.peer in mesh:
                    mesh.discard(peer.peer)
                    self._prune(topic, peer.peer)
            for fanout in self._fanout.values():
                fanout.discard(peer.peer)
            self._emit(PeerPenalized(peer.peer, reason, new, new < s.graylist_threshold))
        elif old >= s.graylist_threshold > new:
            self._count("peers_graylisted")
            self._emit(PeerPenalized(peer.peer, reason, new, True))

    def _send_message(self, peer: PeerId, message: SignedMessage, hops: int) -> None:
        out = self._out(peer)
        out.messages.append((message, hops))
        out.payload_bytes += len(message.payload) + 200
        self._count("messages_out")
        if (len(out.messages) >= self._cfg.wire.max_messages
                or out.payload_bytes * 2 >= self._cfg.wire.max_frame_bytes):
            self._flush(peer)

    def _out(self, peer: PeerId) -> _Outgoing:
        out = self._outbox.get(peer)
        if out is None:
            out = self._outbox[peer] = _Outgoing()
        return out

    def _flush(self, peer: PeerId) -> None:
        out = self._outbox.pop(peer, None)
        if out is None or peer not in self._peers:
            return
        data = encode_frame(out.to_frame())
        self._count("frames_out")
        self._count("bytes_out", len(data))
        self._ready.append((peer, data))

    def _emit(self, event: GossipEvent) -> None:
        if len(self._events) >= self._cfg.max_events:
            self._events.popleft()
            self._count("events_dropped")
        self._events.append(event)

    def _count(self, name: str, amount: int = 1) -> None:
        self._counters[name] = self._counters.get(name, 0) + amount


_INVALID_REASONS = ("invalid_signature", "malformed", "unknown_topic", "rate_limited", "author_rate_limited",
                    "hop_limit", "stale_timestamp", "future_timestamp", "replayed_seq",
                    "stale_seq", "graylisted_frames", "unknown_peer")
