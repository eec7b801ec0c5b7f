"""Hostile input: random and mutated packets never raise out of the core, memory stays bounded."""

from __future__ import annotations

import hashlib

from dht_helpers import make_core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnn_tui.dht import bep44
from rnn_tui.dht.codec import encode
from rnn_tui.identity import Identity

IDENT = Identity(bytes(range(32)))


def valid_packets() -> list[bytes]:
    target = bep44.mutable_target(IDENT.public_key)
    args = {b"id": b"S" * 20}
    queries = [
        (b"ping", {}),
        (b"find_node", {b"target": target}),
        (b"get_peers", {b"info_hash": target}),
        (b"announce_peer", {b"info_hash": target, b"port": 1, b"token": b"12345678", b"implied_port": 1}),
        (b"get", {b"target": target, b"seq": 1}),
        (b"put", {b"v": b"x", b"k": IDENT.public_key, b"seq": 1, b"token": b"t" * 8,
                  b"sig": bep44.sign_item(IDENT, b"x", 1), b"salt": b"s", b"cas": 0}),
    ]
    packets = [encode({b"t": b"aa", b"y": b"q", b"q": q, b"a": {**args, **a}}) for q, a in queries]
    packets.append(encode({b"t": b"aa", b"y": b"r", b"r": {b"id": b"R" * 20, b"nodes": b"n" * 26,
                                                          b"values": [b"123456"], b"token": b"t"}}))
    packets.append(encode({b"t": b"aa", b"y": b"e", b"e": [201, b"oops"]}))
    return packets


PACKETS = valid_packets()

mutation = st.tuples(st.integers(0, len(PACKETS) - 1),
                     st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
                     st.integers(0, 400))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutation)
def test_mutated_packets_never_raise(m) -> None:
    index, flips, cut = m
    data = bytearray(PACKETS[index])
    for pos, byte in flips:
        if data:
            data[pos % len(data)] = byte
    core = make_core()
    core.start_ping(("203.0.113.7", 6881), 0.0)  # an outstanding transaction to match against
    core.receive_datagram(bytes(data[: max(1, len(data) - cut % 8)]), ("203.0.113.7", 6881), 0.1)
    core.receive_datagram(bytes(data), ("203.0.113.7", 6881), 0.2)
    core.handle_timer(10.0)
    core.datagrams_to_send()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    core = make_core()
    core.receive_datagram(data, ("203.0.113.7", 6881), 0.0)
    core.receive_datagram(b"d" + data + b"e", ("203.0.113.7", 6881), 0.0)


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.binary(max_size=30) | st.integers(-5, 2**64),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(
                        st.sampled_from([b"t", b"y", b"q", b"a", b"r", b"e", b"id", b"target", b"v",
                                         b"k", b"seq", b"sig", b"token", b"salt", b"cas", b"nodes",
                                         b"info_hash", b"port", b"implied_port", b"values", b"ip"]),
                        c, max_size=6), max_leaves=20),
       st.sampled_from([b"ping", b"find_node", b"get_peers", b"announce_peer", b"get", b"put"]))
def test_well_formed_but_wrongly_typed_queries_never_raise(args, method) -> None:
    core = make_core()
    msg = {b"t": b"aa", b"y": b"q", b"q": method,
           b"a": ({b"id": b"S" * 20, **args} if isinstance(args, dict) else args)}
    core.receive_datagram(encode(msg), ("203.0.113.7", 6881), 0.0)
    for data, _ in core.datagrams_to_send():
        assert data.startswith(b"d")


def test_floods_from_many_ips_keep_every_structure_bounded() -> None:
    core = make_core(max_items=64, max_items_per_ip=4, max_infohashes=50, rate_limit=5.0,
                     rate_burst=10.0)
    now = 0.0
    for i in range(3000):
        ip = f"198.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        sender = hashlib.sha1(b"%d" % i).digest()
        value = b"v%d" % i
        target = hashlib.sha1(encode(value)).digest()
        for method, args in ((b"ping", {}), (b"get_peers", {b"info_hash": target})):
            core.receive_datagram(encode({b"t": b"aa", b"y": b"q", b"q": method,
                                          b"a": {b"id": sender, **args}}), (ip, 1), now)
        token = core.tokens.issue(ip, now)
        core.receive_datagram(encode({b"t": b"ab", b"y": b"q", b"q": b"put",
                                      b"a": {b"id": sender, b"v": value, b"token": token}}), (ip, 1), now)
        core.receive_datagram(encode({b"t": b"ac", b"y": b"q", b"q": b"announce_peer",
                                      b"a": {b"id": sender, b"info_hash": target, b"port": 1,
                                             b"token": token}}), (ip, 1), now)
        core.datagrams_to_send()
        now += 0.001
    assert len(core.item_store) <= 64
    assert core.peer_store.infohashes() <= 50
    assert len(core.rate_limiter) <= core.rate_limiter.max_sources
    assert len(core.routing) <= 160 * 8
    core.handle_timer(now + 61.0)  # maintenance forgets idle sources
    assert len(core.rate_limiter) == 0


reply_values = st.dictionaries(
    st.sampled_from([b"id", b"nodes", b"token", b"values", b"v", b"k", b"seq", b"sig", b"ip"]),
    st.one_of(st.binary(max_size=60), st.integers(-3, 2**40),
              st.lists(st.binary(max_size=8), max_size=3), st.just(b"R" * 20)),
    max_size=7)


@settings(max_examples=150, deadline=None)
@given(st.lists(reply_values, min_size=1, max_size=4), st.sampled_from(
    ["get_mutable", "get_immutable", "get_peers", "put_mutable", "announce"]))
def test_hostile_replies_to_our_lookups_never_raise(replies, operation) -> None:
    core = make_core()
    seed = ("203.0.113.7", 6881)
    if operation == "get_mutable":
        core.start_get_mutable(IDENT.public_key, b"", 0.0, bootstrap=[seed])
    elif operation == "get_immutable":
        core.start_get_immutable(b"T" * 20, 0.0, bootstrap=[seed])
    elif operation == "get_peers":
        core.start_get_peers(b"T" * 20, 0.0, bootstrap=[seed])
    elif operation == "put_mutable":
        core.start_put_mutable(IDENT, b"value", b"", 0.0, bootstrap=[seed])
    else:
        core.start_announce(b"T" * 20, None, 0.0, bootstrap=[seed])
    (query, _), = core.datagrams_to_send()
    from rnn_tui.dht.codec import decode

    tid = decode(query)[b"t"]
    for values in replies:
        core.receive_datagram(encode({b"t": tid, b"y": b"r", b"r": values}), seed, 0.1)
        core.datagrams_to_send()
    core.handle_timer(30.0)
    core.handle_timer(60.0)
    assert core.pending_operations() == 0  # every operation finished, one way or another
