"""The hole-punch core, run in memory: two instances, a relay that is a list, virtual time."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnn_tui.errors import LocalProtocolError
from rnn_tui.nat.model import NatType
from rnn_tui.nat.punch_core import (
    HolePunch,
    PunchAttemptFailed,
    PunchConfig,
    PunchFailed,
    PunchMessageRefused,
    PunchPeerRefused,
    PunchStarted,
    PunchState,
    PunchSucceeded,
    Strategy,
    choose_strategy,
)
from rnn_tui.nat.wire import (
    PROBE,
    Probe,
    PunchConnect,
    PunchRefused,
    PunchSync,
    decode_message,
    decode_probe,
    encode_message,
    encode_probe,
)

A_PUB, A_LAN = ("203.0.113.10", 4000), ("10.1.0.2", 4000)
B_PUB, B_LAN = ("203.0.113.20", 5000), ("10.2.0.2", 5000)


def rng_bytes_from(seed: int):
    rng = random.Random(seed)
    return lambda n: rng.randbytes(n)


def make(initiator: bool, nat: NatType = NatType.EIM, seed: int = 1, **cfg) -> HolePunch:
    addrs = [A_PUB, A_LAN] if initiator else [B_PUB, B_LAN]
    return HolePunch(initiator=initiator, local_addrs=addrs, nat_type=nat,
                     rng_bytes=rng_bytes_from(seed), rng=random.Random(seed),
                     config=PunchConfig(**cfg))


def events(p: HolePunch) -> list:
    out = []
    while (ev := p.next_event()) is not None:
        out.append(ev)
    return out


@dataclass
class Pair:
    """Two cores joined by a relay (latency ``relay``) and a direct path that may be closed."""

    a: HolePunch
    b: HolePunch
    relay: float = 0.05
    direct_open: bool = True
    now: float = 0.0
    log_a: list = field(default_factory=list)
    log_b: list = field(default_factory=list)
    queue: list = field(default_factory=list)  # (time, target, kind, payload)

    def pump(self, until: float) -> None:
        while True:
            self._collect()
            timers = [t for t in (self.a.get_timer(), self.b.get_timer()) if t is not None]
            nxt = min([q[0] for q in self.queue] + timers, default=None)
            if nxt is None or nxt > until:
                self.now = until
                return
            self.now = max(self.now, nxt)
            due = [q for q in self.queue if q[0] <= self.now]
            self.queue = [q for q in self.queue if q[0] > self.now]
            for _, target, kind, payload in due:
                if kind == "msg":
                    target.receive_message(decode_message(payload), self.now)
                else:
                    src = B_PUB if target is self.a else A_PUB
                    target.receive_probe(payload, src, 0, self.now)
            for core in (self.a, self.b):
                t = core.get_timer()
                if t is not None and t <= self.now:
                    core.handle_timer(self.now)
            self._collect()

    def _collect(self) -> None:
        for core, other, log in ((self.a, self.b, self.log_a), (self.b, self.a, self.log_b)):
            for msg in core.messages_to_send():
                self.queue.append((self.now + self.relay, other, "msg", encode_message(msg)))
            for tx in core.datagrams_to_send():
                mine = [A_PUB, A_LAN] if other is self.a else [B_PUB, B_LAN]
                if self.direct_open and tx.addr == mine[0]:
                    self.queue.append((self.now + 0.01, other, "probe", tx.data))
            log.extend(events(core))


def test_strategy_table_is_symmetric_between_the_two_sides():
    mirror = {Strategy.DIRECT: Strategy.DIRECT, Strategy.NONE: Strategy.NONE,
              Strategy.BIRTHDAY_EASY: Strategy.BIRTHDAY_HARD,
              Strategy.BIRTHDAY_HARD: Strategy.BIRTHDAY_EASY}
    for mine in NatType:
        for theirs in NatType:
            assert choose_strategy(theirs, mine) is mirror[choose_strategy(mine, theirs)]
    assert choose_strategy(NatType.EDM, NatType.EDM) is Strategy.NONE
    assert choose_strategy(NatType.EIM, NatType.EIM) is Strategy.DIRECT
    assert choose_strategy(NatType.EDM, NatType.UNKNOWN) is Strategy.BIRTHDAY_HARD


def test_full_exchange_measures_rtt_syncs_and_succeeds_on_both_sides():
    pair = Pair(make(True), make(False, seed=2))
    pair.a.start(0.0)
    pair.pump(5.0)
    a_ok = [e for e in pair.log_a if isinstance(e, PunchSucceeded)]
    b_ok = [e for e in pair.log_b if isinstance(e, PunchSucceeded)]
    assert len(a_ok) == 1 and len(b_ok) == 1
    assert a_ok[0].rtt == pytest.approx(0.1)  # CONNECT there and back over the relay
    assert a_ok[0].remote == B_PUB and b_ok[0].remote == A_PUB
    assert a_ok[0].strategy is Strategy.DIRECT and not a_ok[0].is_lan
    started = [e for e in pair.log_a if isinstance(e, PunchStarted)][0]
    assert started.sockets == 0
    assert pair.a.state is PunchState.SUCCEEDED and pair.b.state is PunchState.SUCCEEDED


def test_initiator_waits_half_the_rtt_after_sync_before_probing():
    a, b = make(True), make(False, seed=2)
    a.start(0.0)
    b.receive_message(a.messages_to_send()[0], 0.05)
    a.receive_message(b.messages_to_send()[0], 0.10)
    (sync,) = a.messages_to_send()
    assert isinstance(sync, PunchSync)
    assert a.datagrams_to_send() == []
    assert a.get_timer() == pytest.approx(0.15)
    a.handle_timer(0.149)
    assert a.datagrams_to_send() == []
    a.handle_timer(a.get_timer())
    sent = a.datagrams_to_send()
    assert {tx.addr for tx in sent} == {B_PUB, B_LAN} and all(tx.via == 0 for tx in sent)


def connected_pair() -> tuple[HolePunch, HolePunch, PunchSync]:
    a, b = make(True), make(False, seed=2)
    a.start(0.0)
    b.receive_message(a.messages_to_send()[0], 0.05)
    a.receive_message(b.messages_to_send()[0], 0.10)
    (sync,) = a.messages_to_send()
    b.receive_message(sync, 0.15)
    events(a)
    events(b)
    return a, b, sync


def test_replayed_sync_is_refused_without_ending_the_attempt():
    a, b, sync = connected_pair()
    b.datagrams_to_send()
    b.receive_message(sync, 0.16)
    (refusal,) = b.messages_to_send()
    assert isinstance(refusal, PunchRefused) and not refusal.aborts
    assert "replayed SYNC" in refusal.reason
    (ev,) = events(b)
    assert isinstance(ev, PunchMessageRefused) and "replayed" in ev.reason
    assert b.state is PunchState.PUNCHING
    a.receive_message(refusal, 0.2)
    assert isinstance(events(a)[0], PunchPeerRefused) and a.state is PunchState.WAIT_START


def test_sync_for_an_unknown_attempt_and_sync_to_the_initiator_are_refused():
    a, b = make(True), make(False, seed=2)
    b.receive_message(PunchSync(b"\x01" * 8), 0.0)
    assert "unknown attempt" in b.messages_to_send()[0].reason
    a.start(0.0)
    a.messages_to_send()
    a.receive_message(PunchSync(a.attempt_id), 0.1)
    assert "only the initiator" in a.messages_to_send()[0].reason
    assert a.state is PunchState.AWAIT_CONNECT and b.state is PunchState.IDLE


def test_replayed_connect_and_stray_reply_are_refused():
    a, b = make(True), make(False, seed=2)
    a.start(0.0)
    (connect,) = a.messages_to_send()
    b.receive_message(connect, 0.05)
    b.messages_to_send()
    b.receive_message(connect, 0.06)
    assert "replayed CONNECT" in b.messages_to_send()[0].reason
    stray = PunchConnect(b"\x09" * 8, b"\x00" * 16, (B_PUB,), NatType.EIM, is_reply=True)
    a.receive_message(stray, 0.07)
    assert "unknown attempt" in a.messages_to_send()[0].reason
    assert a.state is PunchState.AWAIT_CONNECT


def test_responder_bounds_the_attempts_a_peer_may_start():
    b = make(False, seed=2, max_attempts=2)
    for i in range(3):
        b.receive_message(PunchConnect(bytes([i]) * 8, b"n" * 16, (A_PUB,), NatType.EIM,
                                       is_reply=False), float(i))
    replies = b.messages_to_send()
    assert [type(m).__name__ for m in replies] == ["PunchConnect", "PunchConnect",
                                                   "PunchRefused"]
    assert replies[-1].aborts and "too many attempts" in replies[-1].reason
    assert b.attempt == 2


def test_forged_reflected_and_stale_probes_are_dropped_and_counted():
    a, b, _ = connected_pair()
    b.datagrams_to_send()
    good = decode_probe(a_probe(a))
    assert good is not None
    forged = Probe(PROBE, good.attempt_id, True, good.seq, b"\x00" * 16)
    assert b.receive_probe(encode_probe(forged), A_PUB, 0, 0.2) is True
    assert b.datagrams_to_send() == [], "a forged probe is never acked"
    own = next(tx.data for tx in b_probes(b))  # b's own probe, reflected back at it
    assert b.receive_probe(own, A_PUB, 0, 0.2) is True
    stale = Probe(PROBE, b"\x07" * 8, True, good.seq, good.tag)
    assert b.receive_probe(encode_probe(stale), A_PUB, 0, 0.2) is True
    assert b.probes_rejected == 3 and b.state is PunchState.PUNCHING
    assert not [e for e in events(b) if isinstance(e, PunchSucceeded)]
    assert b.receive_probe(b"hello, not a probe", A_PUB, 0, 0.2) is False


def a_probe(a: HolePunch) -> bytes:
    a.handle_timer(a.get_timer() or 0.2)
    return a.datagrams_to_send()[0].data


def b_probes(b: HolePunch):
    b.handle_timer(b.get_timer() or 0.3)
    return b.datagrams_to_send()


def test_a_valid_probe_is_acked_on_the_socket_it_came_from_and_wins():
    a, b, _ = connected_pair()
    b.datagrams_to_send()
    probe = a_probe(a)
    assert b.receive_probe(probe, ("10.1.0.2", 4000), 7, 0.3) is True
    (ack,) = [tx for tx in b.datagrams_to_send()]
    assert ack.via == 7 and ack.addr == ("10.1.0.2", 4000)
    assert decode_probe(ack.data).kind == 2
    (won,) = [e for e in events(b) if isinstance(e, PunchSucceeded)]
    assert won.via == 7 and won.is_lan and won.remote == ("10.1.0.2", 4000)
    assert a.receive_probe(ack.data, B_PUB, 0, 0.31)
    assert a.remote == ("10.1.0.2", 4000) or a.remote == B_PUB


def test_acks_are_bounded_per_attempt():
    a, b, _ = connected_pair()
    probe = a_probe(a)
    for i in range(200):
        b.receive_probe(probe, ("203.0.113.10", 4000 + i), 0, 0.3)
    acks = [tx for tx in b.datagrams_to_send() if decode_probe(tx.data).kind == 2]
    assert len(acks) == PunchConfig().max_acks


def test_no_path_retries_with_fresh_attempts_then_fails_with_a_reason():
    pair = Pair(make(True, max_attempts=3, punch_timeout=1.0), make(False, seed=2,
                                                                        punch_timeout=1.0))
    pair.direct_open = False
    pair.a.start(0.0)
    pair.pump(30.0)
    retries = [e for e in pair.log_a if isinstance(e, PunchAttemptFailed)]
    assert [e.will_retry for e in retries] == [True, True, False]
    (failed,) = [e for e in pair.log_a if isinstance(e, PunchFailed)]
    assert failed.attempts == 3 and "no probe answered" in failed.reason
    assert failed.probes_sent > 0
    assert pair.b.attempt == 3, "the responder took part in every attempt"
    assert any(isinstance(e, PunchFailed) for e in pair.log_b)


def test_both_symmetric_gives_up_without_probing():
    pair = Pair(make(True, NatType.EDM), make(False, NatType.EDM, seed=2))
    pair.a.start(0.0)
    pair.pump(10.0)
    for log in (pair.log_a, pair.log_b):
        (failed,) = [e for e in log if isinstance(e, PunchFailed)]
        assert "endpoint-dependent" in failed.reason
        assert not [e for e in log if isinstance(e, PunchStarted)]
    assert pair.a.probes_sent == 0 and pair.b.probes_sent == 0


def test_birthday_easy_side_sprays_distinct_ports_and_stays_bounded():
    cfg = {"birthday_max_probes": 500, "birthday_batch": 50, "port_range": (20000, 29999),
           "punch_timeout": 2.0}
    a = make(True, NatType.EIM, **cfg)
    b = make(False, NatType.EDM, seed=2, **cfg)
    a.start(0.0)
    b.receive_message(a.messages_to_send()[0], 0.05)
    a.receive_message(b.messages_to_send()[0], 0.10)
    sent = []
    now = 0.1
    while a.get_timer() is not None and now < 10:
        now = a.get_timer()
        a.handle_timer(now)
        sent += a.datagrams_to_send()
    spray = [tx for tx in sent if tx.addr not in (B_PUB, B_LAN)]
    assert len(spray) == 500
    assert len({tx.addr for tx in spray}) == 500
    assert all(tx.addr[0] == B_PUB[0] and 20000 <= tx.addr[1] <= 29999 for tx in spray)
    assert all(tx.via == 0 for tx in sent)


def test_birthday_hard_side_opens_many_mappings_to_public_addresses_only():
    a = make(True, NatType.EIM, birthday_sockets=16)
    b = make(False, NatType.EDM, seed=2, birthday_sockets=16)
    a.start(0.0)
    b.receive_message(a.messages_to_send()[0], 0.05)
    a.receive_message(b.messages_to_send()[0], 0.10)
    b.receive_message(a.messages_to_send()[0], 0.15)
    (started,) = [e for e in events(b) if isinstance(e, PunchStarted)]
    assert started.strategy is Strategy.BIRTHDAY_HARD and started.sockets == 16
    sent = b.datagrams_to_send()
    extra = [tx for tx in sent if tx.via > 0]
    assert {tx.via for tx in extra} == set(range(1, 17))
    assert {tx.addr for tx in extra} == {A_PUB}


def test_same_seed_gives_the_same_probes():
    def run() -> list[bytes]:
        pair = Pair(make(True, NatType.EIM, birthday_max_probes=64),
                    make(False, NatType.EDM, seed=2, birthday_max_probes=64))
        pair.direct_open = False
        pair.a.start(0.0)
        pair.pump(0.5)
        return [tx.data for tx in pair.a.datagrams_to_send()] + [pair.a.attempt_id]
    assert run() == run()


def test_misuse_is_a_local_error():
    with pytest.raises(LocalProtocolError, match="not ip:port"):
        HolePunch(initiator=True, local_addrs=[("example.org", 1)], nat_type=NatType.EIM,
                  rng_bytes=rng_bytes_from(1), rng=random.Random(1))
    b = make(False)
    with pytest.raises(LocalProtocolError, match="only the initiator"):
        b.start(0.0)
    a = make(True)
    a.start(0.0)
    with pytest.raises(LocalProtocolError, match="state"):
        a.start(0.1)


def test_config_rejects_impossible_bounds():
    with pytest.raises(ValueError, match="port_range"):
        PunchConfig(port_range=(0, 10))
    with pytest.raises(ValueError, match="birthday_max_probes"):
        PunchConfig(port_range=(1000, 1010), birthday_max_probes=100)


# -- every input in every state: the core never raises and never wins on forged input ----
ATTEMPTS = st.sampled_from([b"\x00" * 8, b"\x01" * 8, b"\xff" * 8])
ADDRS = st.lists(st.sampled_from([A_PUB, A_LAN, B_PUB, B_LAN]), max_size=3).map(tuple)
NATS = st.sampled_from(list(NatType))
MESSAGES = st.one_of(
    st.builds(PunchConnect, ATTEMPTS, st.binary(min_size=16, max_size=16), ADDRS, NATS,
              st.booleans()),
    st.builds(PunchSync, ATTEMPTS),
    st.builds(PunchRefused, ATTEMPTS, st.text(max_size=20), st.booleans()),
)
INPUTS = st.lists(st.one_of(
    st.tuples(st.just("msg"), MESSAGES),
    st.tuples(st.just("probe"), st.builds(Probe, st.sampled_from([1, 2]), ATTEMPTS,
                                          st.booleans(), st.integers(0, 2**32 - 1),
                                          st.binary(min_size=16, max_size=16))),
    st.tuples(st.just("bytes"), st.binary(max_size=40)),
    st.tuples(st.just("time"), st.floats(0.0, 5.0)),
), max_size=25)


@settings(max_examples=150, deadline=None)
@given(initiator=st.booleans(), nat=NATS, inputs=INPUTS)
def test_any_input_sequence_is_handled_without_exceptions(initiator, nat, inputs):
    p = HolePunch(initiator=initiator, local_addrs=[A_PUB], nat_type=nat,
                  rng_bytes=rng_bytes_from(3), rng=random.Random(3),
                  config=PunchConfig(birthday_max_probes=64, birthday_sockets=4))
    now = 0.0
    if initiator:
        p.start(now)
    for kind, value in inputs:
        if kind == "msg":
            p.receive_message(value, now)
        elif kind == "probe":
            p.receive_probe(encode_probe(value), B_PUB, 0, now)
        elif kind == "bytes":
            p.receive_probe(value, B_PUB, 0, now)
        else:
            now += value
            timer = p.get_timer()
            if timer is not None and timer <= now:
                p.handle_timer(now)
        p.datagrams_to_send()
        p.messages_to_send()
    evs = events(p)
    # Forged probes carry random tags: they can never make a session succeed.
    assert not [e for e in evs if isinstance(e, PunchSucceeded)]
