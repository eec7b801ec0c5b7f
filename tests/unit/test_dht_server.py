"""Serving queries: every method, every BEP 44 error code, tokens and bad input."""

from __future__ import annotations

import hashlib

import pytest
from dht_helpers import PEER, error_code, make_core, query, raw

from rnn_tui.dht import bep44
from rnn_tui.dht.codec import encode
from rnn_tui.dht.messages import unpack_nodes
from rnn_tui.identity import Identity

IDENT = Identity(bytes(range(32)))


def get_token(core, target: bytes, addr=PEER, now: float = 0.0) -> bytes:
    reply = query(core, b"get", {b"target": target}, addr=addr, now=now)
    assert reply is not None and reply[b"y"] == b"r"
    return reply[b"r"][b"token"]


def put_mutable(core, value, seq: int, *, salt: bytes = b"", cas: int | None = None,
                signer=IDENT, token: bytes | None = None, now: float = 0.0, addr=PEER):
    target = bep44.mutable_target(signer.public_key, salt)
    args = {b"v": value, b"k": signer.public_key, b"seq": seq,
            b"sig": bep44.sign_item(signer, value, seq, salt),
            b"token": token if token is not None else get_token(core, target, addr, now)}
    if salt:
        args[b"salt"] = salt
    if cas is not None:
        args[b"cas"] = cas
    return query(core, b"put", args, now=now, addr=addr)


def test_ping_and_find_node() -> None:
    core = make_core()
    reply = query(core, b"ping", {})
    assert reply[b"y"] == b"r" and reply[b"r"][b"id"] == core.node_id
    assert reply[b"ip"] == bytes([203, 0, 113, 7]) + (6881).to_bytes(2, "big")  # BEP 42
    # The pinging node is now in the table and comes back from find_node.
    reply = query(core, b"find_node", {b"target": b"S" * 20}, addr=("198.51.100.1", 1))
    assert [n.node_id for n in unpack_nodes(reply[b"r"][b"nodes"])] == [b"S" * 20]


def test_announce_and_get_peers_with_token_and_implied_port() -> None:
    core = make_core()
    infohash = b"I" * 20
    reply = query(core, b"get_peers", {b"info_hash": infohash})
    token = reply[b"r"][b"token"]
    assert b"values" not in reply[b"r"]
    ok = query(core, b"announce_peer", {b"info_hash": infohash, b"port": 9999, b"token": token,
                                        b"implied_port": 1})
    assert ok[b"y"] == b"r"
    reply = query(core, b"get_peers", {b"info_hash": infohash}, addr=("198.51.100.1", 1))
    assert reply[b"r"][b"values"] == [bytes([203, 0, 113, 7]) + (6881).to_bytes(2, "big")]


def test_announce_with_a_token_for_another_ip_is_refused() -> None:
    core = make_core()
    token = query(core, b"get_peers", {b"info_hash": b"I" * 20})[b"r"][b"token"]
    reply = query(core, b"announce_peer", {b"info_hash": b"I" * 20, b"port": 1, b"token": token},
                  addr=("198.51.100.9", 6881))
    assert error_code(reply) == 203


def test_token_rotation_accepts_previous_secret_then_expires() -> None:
    core = make_core()
    token = query(core, b"get_peers", {b"info_hash": b"I" * 20}, now=0.0)[b"r"][b"token"]
    args = {b"info_hash": b"I" * 20, b"port": 1, b"token": token}
    assert query(core, b"announce_peer", args, now=299.0)[b"y"] == b"r"
    assert query(core, b"announce_peer", args, now=301.0)[b"y"] == b"r"   # previous secret
    assert query(core, b"announce_peer", args, now=599.0)[b"y"] == b"r"
    assert error_code(query(core, b"announce_peer", args, now=601.0)) == 203  # rotated twice


def test_mutable_put_get_with_salt_and_seq_filter() -> None:
    core = make_core()
    assert put_mutable(core, b"v1", 1, salt=b"s")[b"y"] == b"r"
    target = bep44.mutable_target(IDENT.public_key, b"s")
    reply = query(core, b"get", {b"target": target})[b"r"]
    assert (reply[b"v"], reply[b"seq"], reply[b"k"]) == (b"v1", 1, IDENT.public_key)
    assert bep44.verify_item(IDENT.public_key, reply[b"v"], 1, reply[b"sig"], b"s")
    newer_only = query(core, b"get", {b"target": target, b"seq": 1})[b"r"]
    assert newer_only[b"seq"] == 1 and b"v" not in newer_only


def test_immutable_put_get() -> None:
    core = make_core()
    value = {b"hello": [b"world", 1]}
    target = hashlib.sha1(encode(value)).digest()
    reply = query(core, b"put", {b"v": value, b"token": get_token(core, target)})
    assert reply[b"y"] == b"r"
    assert query(core, b"get", {b"target": target})[b"r"][b"v"] == value


def test_error_205_value_too_big() -> None:
    core = make_core()
    assert error_code(put_mutable(core, b"x" * 1000, 1)) == 205


def test_error_206_invalid_signature() -> None:
    core = make_core()
    target = bep44.mutable_target(IDENT.public_key)
    reply = query(core, b"put", {b"v": b"x", b"k": IDENT.public_key, b"seq": 1, b"sig": bytes(64),
                                 b"token": get_token(core, target)})
    assert error_code(reply) == 206


def test_error_207_salt_too_big() -> None:
    core = make_core()
    assert error_code(put_mutable(core, b"x", 1, salt=b"s" * 65, token=b"t")) == 207


def test_error_301_cas_mismatch() -> None:
    core = make_core()
    put_mutable(core, b"a", 5)
    assert error_code(put_mutable(core, b"b", 6, cas=4)) == 301
    assert put_mutable(core, b"b", 6, cas=5)[b"y"] == b"r"


def test_error_302_seq_lower_than_current() -> None:
    core = make_core()
    put_mutable(core, b"a", 5)
    assert error_code(put_mutable(core, b"b", 4)) == 302
    assert error_code(put_mutable(core, b"different", 5)) == 302
    assert put_mutable(core, b"a", 5)[b"y"] == b"r"  # same seq and value: a refresh


def test_error_203_invalid_token_on_put() -> None:
    core = make_core()
    assert error_code(put_mutable(core, b"a", 1, token=b"nope")) == 203


def test_error_204_unknown_method() -> None:
    core = make_core()
    assert error_code(query(core, b"vote", {})) == 204


@pytest.mark.parametrize("args", [
    {b"target": b"x" * 19},
    {b"target": 5},
    {},
])
def test_bad_find_node_arguments_get_203(args) -> None:
    core = make_core()
    assert error_code(query(core, b"find_node", args)) == 203


def test_19_byte_sender_id_gets_203() -> None:
    core = make_core()
    assert error_code(query(core, b"ping", {}, sender=b"x" * 19)) == 203


def test_malformed_packets_are_dropped_silently() -> None:
    core = make_core()
    for data in (b"garbage", b"d1:t2:aa1:y1:qe" + b"x", b"i42e", b"le"):
        assert raw(core, data) is None
    assert core.stats.dropped_malformed == 4


def test_query_with_tid_but_wrong_type_gets_error() -> None:
    core = make_core()
    assert error_code(raw(core, encode({b"t": b"aa", b"y": b"q", b"q": b"ping", b"a": 5}))) == 203


def test_flood_from_one_ip_is_rate_limited_and_others_still_served() -> None:
    core = make_core(rate_limit=10.0, rate_burst=20.0)
    answered = sum(query(core, b"ping", {}, now=0.0) is not None for _ in range(200))
    assert answered == 20
    assert core.stats.dropped_rate_limited == 180
    assert query(core, b"ping", {}, addr=("198.51.100.2", 1), now=0.0) is not None
    assert query(core, b"ping", {}, now=1.0) is not None  # refilled


def test_read_only_queries_do_not_enter_the_routing_table() -> None:
    core = make_core()
    query(core, b"ping", {}, extra={b"ro": 1})
    assert len(core.routing) == 0
    query(core, b"ping", {})
    assert len(core.routing) == 1


def test_read_only_node_answers_nothing_and_marks_its_queries() -> None:
    core = make_core(read_only=True)
    assert query(core, b"ping", {}) is None
    core.start_ping(PEER, 0.0)
    (data, _), = core.datagrams_to_send()
    from rnn_tui.dht.codec import decode
    assert decode(data)[b"ro"] == 1


def test_item_store_is_bounded_per_ip_and_in_total() -> None:
    core = make_core(max_items=10, max_items_per_ip=3)
    for i in range(6):
        value = b"item%d" % i
        target = hashlib.sha1(encode(value)).digest()
        query(core, b"put", {b"v": value, b"token": get_token(core, target)})
    assert len(core.item_store) == 3
    for i in range(20):
        addr = (f"198.51.100.{i + 1}", 1)
        value = b"other%d" % i
        target = hashlib.sha1(encode(value)).digest()
        query(core, b"put", {b"v": value, b"token": get_token(core, target, addr)}, addr=addr)
    assert len(core.item_store) == 10


def test_items_expire_after_two_hours() -> None:
    core = make_core()
    put_mutable(core, b"a", 1)
    target = bep44.mutable_target(IDENT.public_key)
    assert b"v" in query(core, b"get", {b"target": target}, now=7199.0)[b"r"]
    assert b"v" not in query(core, b"get", {b"target": target}, now=7201.0)[b"r"]


def test_queries_from_ipv6_are_answered_and_do_not_break_later_replies() -> None:
    core = make_core()
    assert query(core, b"ping", {}, addr=("::1", 6881))[b"y"] == b"r"
    reply = query(core, b"find_node", {b"target": b"T" * 20})
    assert reply[b"y"] == b"r"


def test_read_only_mode_can_be_switched_at_runtime() -> None:
    core = make_core()
    core.set_read_only(True)
    assert query(core, b"ping", {}) is None, "read-only: no answer"
    core.set_read_only(False)
    assert query(core, b"ping", {}) is not None, "writable again: answers"
