"""Relay server core: reservations, circuits, forwarding rules, limits, refusals."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnn_tui.identity import PeerId
from rnn_tui.nat.relay_core import (
    CircuitEnded,
    CircuitOpened,
    ForwardRefused,
    RelayLimits,
    RelayServer,
    ReservationRefused,
)
from rnn_tui.nat.wire import (
    CircuitAccept,
    CircuitClosed,
    CircuitData,
    CircuitReject,
    ConnectAccepted,
    ConnectRefused,
    ConnectRequest,
    IncomingCircuit,
    ReserveAccepted,
    ReserveRefused,
    ReserveRequest,
)


def pid(n: int) -> PeerId:
    return PeerId(n.to_bytes(2, "big") * 16)


A, B, C = pid(1), pid(2), pid(3)


def drain(r: RelayServer) -> list:
    out = []
    while (ev := r.next_event()) is not None:
        out.append(ev)
    return out


def open_circuit(r: RelayServer, src: PeerId = A, dst: PeerId = B, now: float = 0.0) -> int:
    r.receive_message(dst, ReserveRequest(), now)
    r.receive_message(src, ConnectRequest(dst.key), now)
    sent = r.messages_to_send()
    incoming = [m for p, m in sent if p == dst and isinstance(m, IncomingCircuit)]
    assert incoming and incoming[0].source == src.key
    r.receive_message(dst, CircuitAccept(incoming[0].circuit_id), now)
    (accepted,) = [m for p, m in r.messages_to_send() if p == src]
    assert isinstance(accepted, ConnectAccepted) and accepted.target == dst.key
    return incoming[0].circuit_id


def test_reserve_and_renew():
    r = RelayServer(RelayLimits(reservation_ttl=60))
    r.receive_message(A, ReserveRequest(), 0.0)
    ((peer, msg),) = r.messages_to_send()
    assert peer == A and isinstance(msg, ReserveAccepted) and msg.ttl == 60
    assert r.has_reservation(A, 59.0) and not r.has_reservation(A, 60.0)
    r.receive_message(A, ReserveRequest(), 50.0)
    assert r.has_reservation(A, 100.0)
    assert [e.renewed for e in drain(r)] == [False, True]


def test_circuit_forwards_both_ways_and_counts_bytes():
    r = RelayServer()
    cid = open_circuit(r)
    assert any(isinstance(e, CircuitOpened) for e in drain(r))
    r.receive_message(A, CircuitData(cid, b"ciphertext-1"), 1.0)
    r.receive_message(B, CircuitData(cid, b"ciphertext-22"), 1.0)
    assert r.messages_to_send() == [(B, CircuitData(cid, b"ciphertext-1")),
                                    (A, CircuitData(cid, b"ciphertext-22"))]
    assert r.bytes_relayed == 25


def test_dial_without_reservation_is_refused_with_a_reason():
    r = RelayServer()
    r.receive_message(A, ConnectRequest(B.key), 0.0)
    ((peer, msg),) = r.messages_to_send()
    assert peer == A and isinstance(msg, ConnectRefused) and "no reservation" in msg.reason
    r.receive_message(A, ReserveRequest(), 0.0)
    r.messages_to_send()
    r.receive_message(A, ConnectRequest(A.key), 0.0)
    assert "yourself" in r.messages_to_send()[0][1].reason


def test_a_third_party_cannot_inject_into_or_accept_a_circuit():
    r = RelayServer()
    r.receive_message(B, ReserveRequest(), 0.0)
    r.receive_message(A, ConnectRequest(B.key), 0.0)
    cid = [m for _, m in r.messages_to_send() if isinstance(m, IncomingCircuit)][0].circuit_id
    r.receive_message(C, CircuitAccept(cid), 0.1)  # C poses as the target
    assert not [m for p, m in r.messages_to_send() if p == A]
    r.receive_message(B, CircuitAccept(cid), 0.2)
    r.messages_to_send()
    r.receive_message(C, CircuitData(cid, b"forged"), 0.3)
    sent = r.messages_to_send()
    assert sent == [(C, CircuitClosed(cid, "no such circuit for you"))]
    refused = [e for e in drain(r) if isinstance(e, ForwardRefused)]
    assert [e.peer for e in refused] == [C, C]


def test_reservation_flood_from_many_peers_stops_at_the_limit():
    r = RelayServer(RelayLimits(max_reservations=50))
    for i in range(1000):
        r.receive_message(pid(100 + i), ReserveRequest(), 0.0)
    replies = [m for _, m in r.messages_to_send()]
    assert sum(isinstance(m, ReserveAccepted) for m in replies) == 50
    refused = [m for m in replies if isinstance(m, ReserveRefused)]
    assert len(refused) == 950 and all("relay full" in m.reason for m in refused)
    assert r.reservation_count == 50


def test_one_peer_flooding_requests_is_rate_limited():
    r = RelayServer(RelayLimits(request_rate=1.0, request_burst=4))
    for _ in range(20):
        r.receive_message(A, ReserveRequest(), 0.0)
    replies = [m for _, m in r.messages_to_send()]
    assert sum(isinstance(m, ReserveAccepted) for m in replies) == 4
    assert all("rate limit" in m.reason for m in replies if isinstance(m, ReserveRefused))
    assert any(isinstance(e, ReservationRefused) for e in drain(r))
    r.receive_message(A, ReserveRequest(), 1.0)  # one token back after a second
    assert isinstance(r.messages_to_send()[0][1], ReserveAccepted)


def test_expired_reservations_free_their_slots():
    r = RelayServer(RelayLimits(max_reservations=1, reservation_ttl=10))
    r.receive_message(A, ReserveRequest(), 0.0)
    r.receive_message(B, ReserveRequest(), 5.0)
    r.receive_message(B, ReserveRequest(), 10.0)
    kinds = [type(m) for _, m in r.messages_to_send()]
    assert kinds == [ReserveAccepted, ReserveRefused, ReserveAccepted]


def test_byte_limit_closes_the_circuit_on_both_ends():
    r = RelayServer(RelayLimits(max_circuit_bytes=100))
    cid = open_circuit(r)
    r.receive_message(A, CircuitData(cid, b"x" * 60), 1.0)
    r.receive_message(A, CircuitData(cid, b"x" * 60), 1.0)
    sent = r.messages_to_send()
    assert sent[0] == (B, CircuitData(cid, b"x" * 60))
    closes = {p: m for p, m in sent[1:]}
    assert set(closes) == {A, B} and all("byte limit" in m.reason for m in closes.values())
    (ended,) = [e for e in drain(r) if isinstance(e, CircuitEnded)]
    assert ended.bytes_relayed == 60
    assert r.circuit_count == 0


def test_duration_limit_and_accept_timeout_fire_on_timer():
    r = RelayServer(RelayLimits(max_circuit_seconds=30, accept_timeout=5))
    cid = open_circuit(r, now=0.0)
    r.receive_message(C, ReserveRequest(), 0.0)
    r.receive_message(A, ConnectRequest(C.key), 0.0)  # C never answers
    r.messages_to_send()
    assert r.get_timer() == 5.0
    r.handle_timer(5.0)
    ((peer, msg),) = r.messages_to_send()
    assert peer == A and isinstance(msg, ConnectRefused) and "did not answer" in msg.reason
    r.handle_timer(30.0)
    closes = r.messages_to_send()
    assert {p for p, _ in closes} == {A, B}
    assert all(m.circuit_id == cid and "duration" in m.reason for _, m in closes)


def test_target_refusal_and_disconnect_reach_the_other_end():
    r = RelayServer()
    r.receive_message(B, ReserveRequest(), 0.0)
    r.receive_message(A, ConnectRequest(B.key), 0.0)
    cid = [m for _, m in r.messages_to_send() if isinstance(m, IncomingCircuit)][0].circuit_id
    r.receive_message(B, CircuitReject(cid, "busy"), 0.1)
    ((peer, msg),) = r.messages_to_send()
    assert peer == A and msg.reason == "the target refused: busy"
    cid2 = open_circuit(r, A, B, 1.0)
    r.peer_disconnected(B, 2.0)
    ((peer, msg),) = r.messages_to_send()
    assert peer == A and msg == CircuitClosed(cid2, f"peer {B.short} disconnected")
    assert not r.has_reservation(B, 2.0)


def test_per_peer_circuit_limit():
    r = RelayServer(RelayLimits(max_circuits_per_peer=2))
    r.receive_message(B, ReserveRequest(), 0.0)
    for _ in range(3):
        r.receive_message(A, ConnectRequest(B.key), 0.0)
    sent = r.messages_to_send()
    assert sum(isinstance(m, IncomingCircuit) for _, m in sent) == 2
    (refused,) = [m for _, m in sent if isinstance(m, ConnectRefused)]
    assert "too many circuits" in refused.reason


def test_limits_are_validated():
    with pytest.raises(ValueError, match="max_reservations"):
        RelayLimits(max_reservations=0)
    with pytest.raises(ValueError, match="request_rate"):
        RelayLimits(request_rate=0)


def test_per_peer_byte_rate_drops_the_excess_and_refills():
    r = RelayServer(RelayLimits(peer_bytes_per_second=1000, peer_bytes_burst=2000))
    cid = open_circuit(r)
    for _ in range(5):
        r.receive_message(A, CircuitData(cid, b"x" * 500), 1.0)
    forwarded = [m for p, m in r.messages_to_send() if p == B]
    assert len(forwarded) == 4 and r.dropped_over_rate == 500
    r.receive_message(A, CircuitData(cid, b"x" * 500), 1.5)  # 500 bytes of tokens back
    assert len(r.messages_to_send()) == 1
    r.receive_message(B, CircuitData(cid, b"y" * 500), 1.5)  # B has its own bucket
    assert r.messages_to_send() == [(A, CircuitData(cid, b"y" * 500))]


# -- forward(): circuit data that arrived as a DATAGRAM frame, same gate and counters --
def test_forward_names_the_other_end_and_counts_bytes():
    r = RelayServer()
    cid = open_circuit(r)
    drain(r)
    assert r.forward(A, cid, 1000, 1.0) == B
    assert r.forward(B, cid, 300, 1.0) == A
    assert r.bytes_relayed == 1300
    assert r.messages_to_send() == [] and not r.has_output, "forwarding builds no message"


def test_forward_refuses_non_ends_and_pending_circuits():
    r = RelayServer()
    cid = open_circuit(r)
    assert r.forward(C, cid, 10, 1.0) is None
    assert r.messages_to_send() == [(C, CircuitClosed(cid, "no such circuit for you"))]
    assert r.forward(A, cid + 99, 10, 1.0) is None
    r.messages_to_send()
    r.receive_message(C, ReserveRequest(), 1.0)
    r.receive_message(A, ConnectRequest(C.key), 1.0)
    (pending,) = [m for p, m in r.messages_to_send() if isinstance(m, IncomingCircuit)]
    assert r.forward(A, pending.circuit_id, 10, 1.0) is None, "not accepted yet"
    refused = [e for e in drain(r) if isinstance(e, ForwardRefused)]
    assert [e.peer for e in refused] == [C, A, A] and r.bytes_relayed == 0
    # quiet (the datagram path): the same drops, counted, with no reply and no event
    for sender, circuit in ((C, cid), (A, cid + 99), (A, pending.circuit_id)):
        assert r.forward(sender, circuit, 10, 1.0, quiet=True) is None
    assert r.stray_datagrams == 3 and not r.has_output
    assert r.forward(A, cid, 10, 1.0, quiet=True) == B


def test_forward_enforces_the_byte_limit_and_the_byte_rate():
    r = RelayServer(RelayLimits(max_circuit_bytes=100))
    cid = open_circuit(r)
    assert r.forward(A, cid, 60, 1.0) == B
    assert r.forward(A, cid, 60, 1.0) is None
    assert r.has_output
    closes = dict(r.messages_to_send())
    assert set(closes) == {A, B} and all("byte limit" in m.reason for m in closes.values())
    assert r.circuit_count == 0
    r = RelayServer(RelayLimits(peer_bytes_per_second=1000, peer_bytes_burst=2000))
    cid = open_circuit(r)
    results = [r.forward(A, cid, 500, 1.0) for _ in range(5)]
    assert results == [B, B, B, B, None] and r.dropped_over_rate == 500
    assert r.forward(A, cid, 500, 1.5) == B  # refilled
    assert r.messages_to_send() == [], "a drop over the rate is silent (no flood of replies)"


# -- any sequence from any peers: data only ever flows between the two ends of a circuit --
PEERS = [A, B, C, pid(4)]
CIDS = st.integers(1, 4)
RELAY_INPUTS = st.lists(st.tuples(
    st.sampled_from(PEERS),
    st.one_of(st.just(ReserveRequest()),
              st.builds(ConnectRequest, st.sampled_from([p.key for p in PEERS])),
              st.builds(CircuitAccept, CIDS),
              st.builds(CircuitReject, CIDS, st.just("no")),
              st.builds(CircuitData, CIDS, st.binary(min_size=1, max_size=40)),
              st.builds(CircuitClosed, CIDS, st.just("bye")),
              st.builds(IncomingCircuit, CIDS, st.just(A.key)),
              st.tuples(st.just("datagram"), CIDS, st.integers(1, 40))),
    st.floats(0, 3)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(RELAY_INPUTS)
def test_relay_forwards_only_between_circuit_ends(inputs):
    r = RelayServer(RelayLimits(max_reservations=2, max_circuits=3, max_circuit_bytes=100,
                                max_circuit_seconds=5, accept_timeout=2))
    now = 0.0
    ends: dict[int, set[PeerId]] = {}  # accepted circuits, from the relay's own replies
    for peer, msg, dt in inputs:
        now += dt
        r.handle_timer(now)
        if isinstance(msg, tuple):  # a packet that came as a DATAGRAM frame
            _, cid, size = msg
            to = r.forward(peer, cid, size, now, quiet=size % 2 == 0)
            if to is not None:
                assert {peer, to} == ends.get(cid), "datagram between non-ends"
        else:
            r.receive_message(peer, msg, now)
        for to, out in r.messages_to_send():
            if isinstance(out, ConnectAccepted):
                ends[out.circuit_id] = {to, PeerId(out.target)}
            if isinstance(out, CircuitData):
                assert to in ends.get(out.circuit_id, set()), "data to a non-end"
                assert peer in ends[out.circuit_id] and peer != to, "data from a non-end"
            if isinstance(out, IncomingCircuit):
                assert PeerId(out.source) == peer, "the relay named someone else as caller"
        assert r.reservation_count <= 2 and r.circuit_count <= 3
