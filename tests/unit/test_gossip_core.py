"""Socket-free tests of the gossip core: cores wired to each other in memory, time by hand."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnn_tui.errors import LocalProtocolError
from rnn_tui.gossip import (
    GossipConfig,
    GossipCore,
    MessageDelivered,
    PeerPenalized,
    PeerSubscribed,
    PeerUnsubscribed,
)
from rnn_tui.gossip.wire import Frame, SignedMessage, decode_frame, encode_frame
from rnn_tui.identity import Identity, PeerId

TOPIC = "rnn/services/1"
T0 = 1_700_000_000.0


class Net:
    """Cores connected by perfect zero-latency links; ``drop`` filters frames in flight."""

    def __init__(self, n: int, config: GossipConfig | None = None, subscribe: bool = True) -> None:
        self.config = config or GossipConfig()
        self.ids = [Identity(bytes([i + 1]) * 32) for i in range(n)]
        self.cores = [GossipCore(ident, random.Random(i), self.config) for i, ident in enumerate(self.ids)]
        self.index = {c.peer_id: i for i, c in enumerate(self.cores)}
        self.events: list[list[object]] = [[] for _ in range(n)]
        self.sent: list[tuple[int, int, bytes]] = []
        self.now = T0
        self.drop: Callable[[int, int, bytes], bool] | None = None
        if subscribe:
            for core in self.cores:
                core.subscribe(TOPIC)

    def connect(self, a: int, b: int, a_dialled: bool = False) -> None:
        self.cores[a].peer_connected(self.cores[b].peer_id, self.now, outbound=a_dialled)
        self.cores[b].peer_connected(self.cores[a].peer_id, self.now)

    def connect_all(self) -> None:
        for a in range(len(self.cores)):
            for b in range(a + 1, len(self.cores)):
                self.connect(a, b)

    def pump(self) -> None:
        """Deliver frames until nobody has anything left to say."""
        for _ in range(1000):
            moved = False
            for i, core in enumerate(self.cores):
                for peer, data in core.messages_to_send():
                    j = self.index.get(peer)
                    if j is None:   # a test-made peer outside the net: nobody listens
                        continue
                    self.sent.append((i, j, data))
                    moved = True
                    if self.drop is not None and self.drop(i, j, data):
                        continue
                    self.cores[j].receive(core.peer_id, data, self.now)
                while (event := core.next_event()) is not None:
                    self.events[i].append(event)
            if not moved:
                return
        raise AssertionError("gossip did not quiesce")

    def tick(self, seconds: float = 1.0, steps: int = 1) -> None:
        for _ in range(steps):
            self.now += seconds
            for core in self.cores:
                core.handle_timer(self.now)
            self.pump()

    def delivered(self, i: int) -> list[MessageDelivered]:
        return [e for e in self.events[i] if isinstance(e, MessageDelivered)]


def settled(n: int, config: GossipConfig | None = None) -> Net:
    net = Net(n, config)
    net.connect_all()
    net.pump()
    net.tick(steps=3)
    return net


def forged_frame(author: Identity, *, payload: bytes = b"x", seq: int = 1, topic: str = TOPIC,
                 ts: float = T0, hops: int = 1, signer: Identity | None = None,
                 tamper: bytes | None = None) -> tuple[bytes, SignedMessage]:
    """A message frame, signed by ``signer`` (default: the author) and optionally tampered."""
    ts_ms = int(ts * 1000)
    probe = SignedMessage.build(author.public_key, seq, topic, payload, ts_ms, bytes(64))
    signature = (signer or author).sign(probe.signed)
    message = SignedMessage.build(author.public_key, seq, topic, tamper if tamper is not None else payload,
                                  ts_ms, signature)
    return encode_frame(Frame(messages=((message, hops),))), message


# ---------------------------------------------------------------------------- propagation


def test_published_message_reaches_every_node_once_with_author_and_seq() -> None:
    net = settled(10)
    msg_id = net.cores[0].publish(TOPIC, b"service added", net.now)
    net.pump()
    for i in range(1, 10):
        got = net.delivered(i)
        assert len(got) == 1
        assert got[0].payload == b"service added"
        assert got[0].author == net.cores[0].peer_id
        assert got[0].message_id == msg_id
        assert got[0].topic == TOPIC
    assert net.delivered(0) == []   # the author is not told about its own message
    seqs = [net.cores[0].publish(TOPIC, b"m%d" % k, net.now) for k in range(3)]
    net.pump()
    assert [d.seq for d in net.delivered(5)][1:] == sorted(d.seq for d in net.delivered(5)[1:])
    assert len(set(seqs)) == 3


def test_multi_hop_line_counts_hops() -> None:
    net = Net(5)
    for a in range(4):
        net.connect(a, a + 1)
    net.pump()
    net.tick()
    net.cores[0].publish(TOPIC, b"hi", net.now)
    net.pump()
    assert [net.delivered(i)[0].hops for i in range(1, 5)] == [1, 2, 3, 4]


def test_mesh_degree_stays_within_bounds_and_is_refilled_after_disconnects() -> None:
    config = GossipConfig(d=4, d_low=3, d_high=6)
    net = settled(14, config)
    for core in net.cores:
        assert config.d_low <= len(core.mesh_peers(TOPIC)) <= config.d_high
        assert len(core.topic_peers(TOPIC)) == 13
    victim = net.cores[0]
    for peer in list(victim.mesh_peers(TOPIC)):
        victim.peer_disconnected(peer, net.now)
        net.cores[net.index[peer]].peer_disconnected(victim.peer_id, net.now)
    assert victim.mesh_peers(TOPIC) == frozenset()
    net.tick()
    assert config.d_low <= len(victim.mesh_peers(TOPIC)) <= config.d_high
    # the grafted peers agree: the mesh is symmetric
    for peer in victim.mesh_peers(TOPIC):
        assert victim.peer_id in net.cores[net.index[peer]].mesh_peers(TOPIC)


def test_over_full_mesh_is_trimmed_to_d_at_heartbeat() -> None:
    config = GossipConfig(d=2, d_low=1, d_high=3, d_out=0)
    net = Net(7, config)
    net.connect_all()
    net.pump()
    hub = net.cores[0]
    for i in range(1, 7):   # everyone asks the hub to mesh
        hub.receive(net.cores[i].peer_id, encode_frame(Frame(graft=(TOPIC,))), net.now)
    assert len(hub.mesh_peers(TOPIC)) == 6
    net.tick()
    assert len(hub.mesh_peers(TOPIC)) == config.d
    assert hub.counter("prune_out") >= 4


def test_subscription_changes_are_tracked_and_announced() -> None:
    net = Net(2, subscribe=False)
    net.connect(0, 1)
    net.cores[1].subscribe(TOPIC)
    net.pump()
    assert PeerSubscribed(net.cores[1].peer_id, TOPIC) in net.events[0]
    assert net.cores[0].topic_peers(TOPIC) == {net.cores[1].peer_id}
    net.cores[1].unsubscribe(TOPIC)
    net.pump()
    assert PeerUnsubscribed(net.cores[1].peer_id, TOPIC) in net.events[0]
    assert net.cores[0].topic_peers(TOPIC) == frozenset()


def test_late_subscriber_hello_exchange_on_connect() -> None:
    net = Net(2)
    net.connect(0, 1)
    net.pump()
    assert net.cores[0].topic_peers(TOPIC) == {net.cores[1].peer_id}
    assert net.cores[1].topic_peers(TOPIC) == {net.cores[0].peer_id}


def test_publish_without_subscription_uses_fanout() -> None:
    net = Net(6, GossipConfig(flood_publish=False), subscribe=False)
    for core in net.cores[1:]:
        core.subscribe(TOPIC)
    net.connect_all()
    net.pump()
    net.tick()
    net.cores[0].publish(TOPIC, b"from outside", net.now)
    net.pump()
    assert all(len(net.delivered(i)) == 1 for i in range(1, 6))
    assert net.cores[0].stats().topics[0].fanout_peers >= 1


# ---------------------------------------------------------------------------- dedup and repair


def test_duplicate_frames_deliver_once_and_are_counted() -> None:
    net = settled(3)
    data, message = forged_frame(net.ids[0], ts=net.now)
    receiver = net.cores[1]
    receiver.receive(net.cores[0].peer_id, data, net.now)
    receiver.receive(net.cores[2].peer_id, data, net.now)
    net.pump()
    assert len(net.delivered(1)) == 1
    assert receiver.counter("duplicates") >= 1
    assert receiver.counter("verified") == 1   # the signature was checked once


def test_missed_message_is_repaired_through_ihave_iwant() -> None:
    net = settled(10, GossipConfig(d=3, d_low=2, d_high=4, d_out=1))
    target = 9
    net.drop = lambda src, dst, data: dst == target and b"3:msg" in data
    net.cores[0].publish(TOPIC, b"lost on the eager path", net.now)
    net.pump()
    assert net.delivered(target) == []
    net.drop = None
    net.tick(steps=2)
    assert [d.payload for d in net.delivered(target)] == [b"lost on the eager path"]
    assert net.cores[target].counter("iwant_out") >= 1
    assert sum(c.counter("iwant_served") for c in net.cores) >= 1


def test_iwant_is_served_at_most_max_retransmissions_times() -> None:
    net = settled(2, GossipConfig(max_retransmissions=2))
    msg_id = net.cores[0].publish(TOPIC, b"x", net.now)
    net.pump()
    ask = encode_frame(Frame(iwant=(msg_id,)))
    for _ in range(5):
        net.cores[0].receive(net.cores[1].peer_id, ask, net.now)
    assert net.cores[0].counter("iwant_served") == 2


def test_message_cache_forgets_after_history_and_seen_cache_expires() -> None:
    config = GossipConfig()
    net = settled(2, config)
    msg_id = net.cores[0].publish(TOPIC, b"x", net.now)
    net.pump()
    net.tick(steps=config.history_length + 1)
    net.cores[0].receive(net.cores[1].peer_id, encode_frame(Frame(iwant=(msg_id,))), net.now)
    assert net.cores[0].counter("iwant_missing") == 1
    assert net.cores[1].has_seen(msg_id)
    net.tick(seconds=config.seen_ttl + 1)
    assert not net.cores[1].has_seen(msg_id)


# ---------------------------------------------------------------------------- bad input


def test_forged_signature_is_dropped_never_forwarded_and_penalized() -> None:
    net = settled(6)
    mallory = net.cores[0]
    data, message = forged_frame(net.ids[3], ts=net.now, signer=net.ids[0])   # claims author 3
    victim = net.cores[1]
    victim.receive(mallory.peer_id, data, net.now)
    net.pump()
    assert net.delivered(1) == []
    assert victim.counter("invalid_signature") == 1
    assert not victim.has_seen(message.msg_id)
    assert all(c.counter("messages_in") == 0 for c in net.cores[2:])   # not forwarded
    assert mallory.peer_id not in victim.mesh_peers(TOPIC)
    penalized = [e for e in net.events[1] if isinstance(e, PeerPenalized)]
    assert penalized and penalized[0].peer == mallory.peer_id and penalized[0].reason == "invalid_signature"
    # the same forgery again is refused from the negative cache, without a new verification
    victim.receive(mallory.peer_id, data, net.now)
    assert victim.counter("invalid_signature") == 2
    assert victim.counter("verified") == 0


def test_tampered_payload_fails_verification() -> None:
    net = settled(2)
    data, _ = forged_frame(net.ids[0], ts=net.now, payload=b"price=1", tamper=b"price=0")
    net.cores[1].receive(net.cores[0].peer_id, data, net.now)
    assert net.delivered(1) == [] and net.cores[1].counter("invalid_signature") == 1


def test_genuine_copy_still_accepted_after_a_forged_one_with_the_same_author_and_seq() -> None:
    net = settled(3)
    forged, _ = forged_frame(net.ids[0], ts=net.now, seq=5, signer=net.ids[2])
    genuine, _ = forged_frame(net.ids[0], ts=net.now, seq=5)
    net.cores[1].receive(net.cores[2].peer_id, forged, net.now)
    net.cores[1].receive(net.cores[0].peer_id, genuine, net.now)
    net.pump()
    assert len(net.delivered(1)) == 1


def test_replay_after_seen_expiry_is_refused_by_age_and_sequence() -> None:
    net = settled(2)
    data, _ = forged_frame(net.ids[0], ts=net.now, seq=10)
    net.cores[1].receive(net.cores[0].peer_id, data, net.now)
    net.tick(seconds=net.config.seen_ttl + 1)
    net.cores[1].receive(net.cores[0].peer_id, data, net.now)
    assert len(net.delivered(1)) == 1
    assert net.cores[1].counter("stale_timestamp") == 1
    # a fresh timestamp does not help a reused sequence number
    reused, _ = forged_frame(net.ids[0], ts=net.now, seq=10, payload=b"different")
    net.cores[1].receive(net.cores[0].peer_id, reused, net.now)
    assert net.cores[1].counter("replayed_seq") == 1
    assert len(net.delivered(1)) == 1


def test_sequences_below_the_window_are_stale() -> None:
    net = settled(2, GossipConfig(seq_window=4))
    receiver = net.cores[1]
    for seq in range(100, 105):
        receiver.receive(net.cores[0].peer_id, forged_frame(net.ids[0], ts=net.now, seq=seq)[0], net.now)
    receiver.receive(net.cores[0].peer_id, forged_frame(net.ids[0], ts=net.now, seq=50)[0], net.now)
    receiver.receive(net.cores[0].peer_id, forged_frame(net.ids[0], ts=net.now, seq=99)[0], net.now)
    net.pump()
    assert receiver.counter("stale_seq") == 2
    assert [e.seq for e in net.delivered(1)] == [100, 101, 102, 103, 104]
    # out of order but inside the window is fine
    receiver.receive(net.cores[0].peer_id, forged_frame(net.ids[0], ts=net.now, seq=110)[0], net.now)
    receiver.receive(net.cores[0].peer_id, forged_frame(net.ids[0], ts=net.now, seq=108)[0], net.now)
    net.pump()
    assert {e.seq for e in net.delivered(1)} >= {108, 110}


def test_future_timestamp_and_hop_limit() -> None:
    config = GossipConfig(max_hops=5)
    net = settled(3, config)
    receiver = net.cores[1]
    future, _ = forged_frame(net.ids[0], ts=net.now + config.max_clock_skew + 5, seq=1)
    receiver.receive(net.cores[0].peer_id, future, net.now)
    assert receiver.counter("future_timestamp") == 1
    too_far, _ = forged_frame(net.ids[0], ts=net.now, seq=2, hops=6)
    receiver.receive(net.cores[0].peer_id, too_far, net.now)
    assert receiver.counter("hop_limit") == 1
    last_hop, _ = forged_frame(net.ids[0], ts=net.now, seq=3, hops=5)
    receiver.receive(net.cores[0].peer_id, last_hop, net.now)
    net.pump()
    assert [d.seq for d in net.delivered(1)] == [3]
    assert net.delivered(2) == []     # delivered at the limit, never forwarded beyond it


def test_unknown_topic_is_dropped_and_counted() -> None:
    net = settled(2)
    data, _ = forged_frame(net.ids[0], ts=net.now, topic="not/ours")
    net.cores[1].receive(net.cores[0].peer_id, data, net.now)
    assert net.delivered(1) == []
    assert net.cores[1].counter("unknown_topic") == 1
    assert net.cores[1].score(net.cores[0].peer_id) == net.config.score.unknown_topic


def test_malformed_and_oversized_frames_are_dropped_and_penalized() -> None:
    config = GossipConfig()
    net = settled(2, config)
    receiver = net.cores[1]
    sender = net.cores[0].peer_id
    receiver.receive(sender, b"\x00garbage", net.now)
    big = forged_frame(net.ids[0], ts=net.now, payload=b"x" * (config.wire.max_payload_bytes + 1))[0]
    receiver.receive(sender, big, net.now)
    assert receiver.counter("malformed") == 2
    assert receiver.score(sender) == 2 * config.score.invalid_message
    assert net.delivered(1) == []


def test_publish_refuses_bad_local_input() -> None:
    net = settled(1)
    with pytest.raises(LocalProtocolError, match="exceeds"):
        net.cores[0].publish(TOPIC, b"x" * (net.config.wire.max_payload_bytes + 1), net.now)
    with pytest.raises(LocalProtocolError, match="topic"):
        net.cores[0].publish("", b"x", net.now)


def test_flooding_peer_is_rate_limited_then_graylisted() -> None:
    config = GossipConfig(frame_rate=10, frame_burst=20)
    net = settled(3, config)
    flooder, victim = net.cores[0], net.cores[1]
    assert flooder.peer_id in victim.topic_peers(TOPIC)
    hello = encode_frame(Frame(subscriptions=((TOPIC, True),)))
    for _ in range(200):
        victim.receive(flooder.peer_id, hello, net.now)
    assert victim.counter("rate_limited") > 0
    assert victim.counter("graylisted_frames") > 0
    assert flooder.peer_id not in victim.mesh_peers(TOPIC)
    net.pump()
    events = [e for e in net.events[1] if isinstance(e, PeerPenalized)]
    assert [e.graylisted for e in events] == [False, True]
    # the graylisted peer's genuine messages are ignored, the honest neighbour still works
    victim.receive(flooder.peer_id, forged_frame(net.ids[0], ts=net.now)[0], net.now)
    assert net.delivered(1) == []
    net.cores[2].publish(TOPIC, b"honest", net.now)
    net.pump()
    assert [d.payload for d in net.delivered(1)] == [b"honest"]


def test_message_flood_from_one_peer_is_capped() -> None:
    config = GossipConfig(message_rate=5, message_burst=10)
    net = settled(2, config)
    receiver = net.cores[1]
    for seq in range(1, 31):
        receiver.receive(net.cores[0].peer_id, forged_frame(net.ids[0], ts=net.now, seq=seq)[0], net.now)
    net.pump()
    assert len(net.delivered(1)) == 10
    # over budget: dropped and charged until the peer is ignored altogether
    assert receiver.counter("rate_limited") + receiver.counter("graylisted_frames") == 20
    assert any(isinstance(e, PeerPenalized) and e.graylisted for e in net.events[1])


def test_penalty_decays_and_peer_regains_mesh_eligibility() -> None:
    net = settled(2)
    receiver = net.cores[1]
    receiver.receive(net.cores[0].peer_id, b"junk", net.now)
    assert receiver.score(net.cores[0].peer_id) == net.config.score.invalid_message
    assert net.cores[0].peer_id not in receiver.mesh_peers(TOPIC)
    net.tick(steps=40)
    score = receiver.score(net.cores[0].peer_id)
    assert score is not None and score > net.config.score.mesh_threshold
    net.tick(seconds=net.config.prune_backoff + 1, steps=2)
    assert net.cores[0].peer_id in receiver.mesh_peers(TOPIC)


def test_broken_ihave_promise_is_penalized() -> None:
    net = settled(2)
    liar, receiver = net.cores[0], net.cores[1]
    receiver.receive(liar.peer_id, encode_frame(Frame(ihave=((TOPIC, (b"\x42" * 20,)),))), net.now)
    net.drop = lambda src, dst, data: True          # the liar never answers
    net.tick(seconds=net.config.iwant_followup + 1)
    assert receiver.counter("broken_promises") == 1
    score = receiver.score(liar.peer_id)
    assert score is not None and score < 0


def test_graft_during_backoff_is_penalized() -> None:
    net = settled(2)
    a, b = net.cores[0], net.cores[1]
    b.receive(a.peer_id, encode_frame(Frame(prune=((TOPIC, 60),))), net.now)
    assert a.peer_id not in b.mesh_peers(TOPIC)
    b.receive(a.peer_id, encode_frame(Frame(graft=(TOPIC,))), net.now)
    assert a.peer_id not in b.mesh_peers(TOPIC)
    assert b.score(a.peer_id) == net.config.score.graft_in_backoff


def test_frames_from_unconnected_peers_are_ignored() -> None:
    net = settled(1)
    stranger = Identity(b"\x99" * 32)
    net.cores[0].receive(stranger.peer_id, forged_frame(stranger, ts=net.now)[0], net.now)
    assert net.cores[0].counter("unknown_peer") == 1


def test_caches_stay_bounded_under_many_messages() -> None:
    config = GossipConfig(max_seen=50, seq_window=8, max_authors=3, message_rate=1e6, message_burst=1e6,
                          frame_rate=1e6, frame_burst=1e6)
    net = settled(2, config)
    receiver = net.cores[1]
    for k in range(6):
        author = Identity(bytes([50 + k]) * 32)
        receiver.peer_connected(author.peer_id, net.now)
        for seq in range(1, 21):
            receiver.receive(author.peer_id, forged_frame(author, ts=net.now, seq=seq)[0], net.now)
    stats = receiver.stats()
    assert stats.seen_cache == 50
    assert stats.counters["seen_evicted"] == 6 * 20 - 50


def test_events_queue_is_bounded() -> None:
    config = GossipConfig(max_events=5)
    net = Net(1, config)
    for k in range(10):
        net.cores[0].peer_connected(Identity(bytes([100 + k]) * 32).peer_id, net.now)
        net.cores[0].receive(Identity(bytes([100 + k]) * 32).peer_id,
                             encode_frame(Frame(subscriptions=((TOPIC, True),))), net.now)
    assert net.cores[0].counter("events_dropped") == 5


def test_stats_snapshot_is_json_ready() -> None:
    net = settled(4)
    net.cores[0].publish(TOPIC, b"x", net.now)
    net.pump()
    stats = net.cores[1].stats()
    data = json.loads(json.dumps(stats.to_dict()))
    assert data["topics"][0]["topic"] == TOPIC
    assert data["counters"]["delivered"] == 1
    assert data["connected_peers"] == 3
    assert len(data["topics"][0]["mesh_peers"]) == len(net.cores[1].mesh_peers(TOPIC))


def test_same_seed_same_frames() -> None:
    def run() -> list[bytes]:
        net = settled(8)
        net.cores[3].publish(TOPIC, b"x", net.now)
        net.pump()
        net.tick(steps=2)
        return [d for _, _, d in net.sent if b"3:msg" not in d]   # signatures differ only by content
    assert run() == run()


def test_core_does_not_leak_peer_ids_of_strangers() -> None:
    net = settled(2)
    assert net.cores[0].connected_peers() == {net.cores[1].peer_id}
    assert isinstance(next(iter(net.cores[0].connected_peers())), PeerId)


def test_decoded_outgoing_frames_are_valid() -> None:
    net = settled(5)
    net.cores[0].publish(TOPIC, b"x", net.now)
    net.pump()
    net.tick(steps=2)
    for _, _, data in net.sent:
        decode_frame(data, net.config.wire)


def test_a_peer_cannot_claim_unbounded_topics() -> None:
    config = GossipConfig(max_peer_topics=3)
    net = settled(2, config)
    claims = tuple((f"t{k}", True) for k in range(10))
    net.cores[1].receive(net.cores[0].peer_id, encode_frame(Frame(subscriptions=claims)), net.now)
    assert net.cores[1].counter("peer_topics_over_limit") == 10 - 2   # it already had TOPIC
    assert net.cores[1].topic_peers("t9") == frozenset()


# ---------------------------------------------------------------------------- fuzzing

_topics = st.sampled_from([TOPIC, "other", "x" * 128])
_ids = st.binary(min_size=20, max_size=20)
_frames = st.builds(
    Frame,
    subscriptions=st.lists(st.tuples(_topics, st.booleans()), max_size=3).map(tuple),
    ihave=st.lists(st.tuples(_topics, st.lists(_ids, max_size=3).map(tuple)), max_size=2).map(tuple),
    iwant=st.lists(_ids, max_size=3).map(tuple),
    graft=st.lists(_topics, max_size=2).map(tuple),
    prune=st.lists(st.tuples(_topics, st.integers(0, 86_400)), max_size=2).map(tuple),
)
_inputs = st.lists(
    st.one_of(
        st.tuples(st.just("frame"), st.integers(0, 2), _frames),
        st.tuples(st.just("bytes"), st.integers(0, 2), st.binary(max_size=64)),
        st.tuples(st.just("message"), st.integers(0, 2), st.tuples(st.integers(1, 5), st.booleans(),
                                                                    st.integers(-200, 60))),
        st.tuples(st.just("tick"), st.integers(0, 2), st.floats(0.1, 5.0)),
        st.tuples(st.just("disconnect"), st.integers(0, 2), st.none()),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(_inputs)
def test_any_sequence_of_peer_inputs_keeps_the_core_consistent(inputs: list[tuple[str, int, object]]) -> None:
    net = settled(4, GossipConfig(max_seen=20))
    core = net.cores[3]
    for kind, who, arg in inputs:
        sender = net.cores[who]
        if kind == "frame":
            assert isinstance(arg, Frame)
            core.receive(sender.peer_id, encode_frame(arg), net.now)
        elif kind == "bytes":
            assert isinstance(arg, bytes)
            core.receive(sender.peer_id, arg, net.now)
        elif kind == "message":
            seq, forge, age = arg  # type: ignore[misc]
            data, _ = forged_frame(net.ids[who], seq=seq, ts=net.now - age,
                                   signer=net.ids[(who + 1) % 3] if forge else None)
            core.receive(sender.peer_id, data, net.now)
        elif kind == "tick":
            net.now += float(arg)  # type: ignore[arg-type]
            core.handle_timer(net.now)
        else:
            core.peer_disconnected(sender.peer_id, net.now)
        core.messages_to_send()
        while core.next_event() is not None:
            pass
        connected = core.connected_peers()
        assert core.mesh_peers(TOPIC) <= connected
        assert core.topic_peers(TOPIC) <= connected
        assert core.stats().seen_cache <= 20
        assert core.counter("delivered") <= core.counter("verified")


def test_an_author_flooding_valid_messages_is_capped_everywhere_and_penalized_only_if_it_sends() -> None:
    config = GossipConfig(author_rate=1.0, author_burst=5.0)
    net = settled(3, config)
    relay, receiver = net.cores[2], net.cores[1]
    flooder = net.ids[0]
    # relayed by an honest neighbour: capped, the relay is not blamed
    for seq in range(1, 9):
        receiver.receive(relay.peer_id, forged_frame(flooder, ts=net.now, seq=seq)[0], net.now)
    net.pump()
    assert len(net.delivered(1)) == 5
    assert receiver.counter("author_rate_limited") == 3
    assert receiver.score(relay.peer_id) == 0.0
    # sent by the author itself: capped and charged
    for seq in range(9, 12):
        receiver.receive(net.cores[0].peer_id, forged_frame(flooder, ts=net.now, seq=seq)[0], net.now)
    assert receiver.counter("author_rate_limited") == 6
    score = receiver.score(net.cores[0].peer_id)
    assert score is not None and score < 0
    # forgeries in the author's name do not spend its budget
    net.tick(seconds=10)
    for k in range(8):   # more forgeries than the budget holds, each from its own peer
        forger = Identity(bytes([200 + k]) * 32)
        receiver.peer_connected(forger.peer_id, net.now)
        receiver.receive(forger.peer_id, forged_frame(flooder, ts=net.now, seq=20 + k, signer=forger)[0],
                         net.now)
    assert receiver.counter("invalid_signature") == 8
    receiver.receive(relay.peer_id, forged_frame(flooder, ts=net.now, seq=40)[0], net.now)
    net.pump()
    assert [d.seq for d in net.delivered(1)][-1] == 40


def test_mesh_keeps_its_outbound_quota_against_a_crowd_of_inbound_peers() -> None:
    config = GossipConfig()   # d=4, d_out=2
    net = Net(12, config)
    for other in range(1, 12):
        net.connect(0, other, a_dialled=other in (1, 2))   # node 0 dialled only 1 and 2
    net.pump()
    hub = net.cores[0]
    dialled = {net.cores[1].peer_id, net.cores[2].peer_id}
    for i in range(3, 12):   # the inbound crowd grafts itself into the hub's mesh
        hub.receive(net.cores[i].peer_id, encode_frame(Frame(graft=(TOPIC,))), net.now)
    assert not dialled & hub.mesh_peers(TOPIC)
    for _ in range(3):       # the hub alone: nobody else's heartbeat can help it
        net.now += 1.0
        hub.handle_timer(net.now)
        hub.messages_to_send()
        assert dialled <= hub.mesh_peers(TOPIC)
        assert config.d_low <= len(hub.mesh_peers(TOPIC)) <= config.d_high


def test_message_published_while_meshes_form_reaches_peers_that_join_the_mesh_later() -> None:
    net = Net(3)
    net.connect(0, 1)
    net.connect(1, 2)
    net.pump()                      # subscriptions known, no heartbeat yet: meshes are empty
    assert net.cores[1].mesh_peers(TOPIC) == frozenset()
    net.cores[0].publish(TOPIC, b"early", net.now)
    net.pump()
    assert [d.payload for d in net.delivered(1)] == [b"early"] and net.delivered(2) == []
    net.tick(steps=3)               # node 1 grafts node 2, then advertises to its new mesh peer
    assert [d.payload for d in net.delivered(2)] == [b"early"]
