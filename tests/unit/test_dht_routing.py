"""Routing table: bucket splitting, node states, replacement cache, refresh ids."""

from __future__ import annotations

import random

from rnn_tui.dht.routing import K, RoutingTable, shared_prefix_bits

OWN = bytes(20)  # all zeros: a node's bucket is the number of its leading zero bits


def node_with_prefix(bits: int, rng: random.Random) -> bytes:
    """An id sharing exactly ``bits`` leading bits with OWN."""
    value = (1 << (159 - bits)) | rng.getrandbits(159 - bits)
    return value.to_bytes(20, "big")


def test_buckets_split_only_around_our_own_id() -> None:
    rng = random.Random(1)
    table = RoutingTable(OWN, 0.0)
    for i in range(K):
        assert table.heard_from(node_with_prefix(0, rng), ("10.0.0.1", i + 1), 0.0, responded=True)
    assert len(table.buckets) == 1
    # A 9th far node (prefix 0) forces a split of the only bucket: bucket 0 stays full.
    table.heard_from(node_with_prefix(0, rng), ("10.0.0.1", 100), 0.0, responded=True)
    assert len(table) == K
    # Close nodes keep splitting the last bucket, far buckets never split again.
    for bits in range(1, 6):
        for i in range(K):
            table.heard_from(node_with_prefix(bits, rng), ("10.0.1.1", bits * 100 + i), 0.0, responded=True)
    assert len(table.buckets) >= 6
    for index, bucket in enumerate(table.buckets[:-1]):
        assert all(shared_prefix_bits(OWN, e.node_id) == index for e in bucket.nodes)
        assert len(bucket.nodes) <= K
    assert len(table) == 6 * K


def test_full_bucket_keeps_newcomers_as_replacements_and_swaps_bad_nodes() -> None:
    rng = random.Random(2)
    table = RoutingTable(OWN, 0.0)
    members = [node_with_prefix(0, rng) for _ in range(K)]
    for i, node_id in enumerate(members):
        table.heard_from(node_id, ("10.0.0.1", i + 1), 0.0, responded=True)
    table.heard_from(node_with_prefix(1, rng), ("10.0.0.2", 1), 0.0, responded=True)  # split
    newcomer = node_with_prefix(0, rng)
    assert table.heard_from(newcomer, ("10.0.0.3", 1), 1.0, responded=True) is None
    assert table.buckets[0].replacements[-1].node_id == newcomer
    table.failed(members[0], 2.0)
    assert members[0] in table  # one failure: questionable, not bad
    table.failed(members[0], 3.0)
    assert members[0] not in table and newcomer in table


def test_node_states_follow_bep5_windows() -> None:
    table = RoutingTable(OWN, 0.0)
    entry = table.heard_from(b"\x80" + bytes(19), ("10.0.0.1", 1), 0.0, responded=True)
    assert entry is not None and entry.is_good(60.0)
    assert not entry.is_good(15 * 60.0 + 1)  # questionable after 15 minutes
    unconfirmed = table.heard_from(b"\x81" + bytes(19), ("10.0.0.2", 1), 0.0, responded=False)
    assert unconfirmed is not None and not unconfirmed.is_good(1.0)


def test_same_id_from_another_address_does_not_hijack_the_entry() -> None:
    table = RoutingTable(OWN, 0.0)
    node_id = b"\x80" + bytes(19)
    table.heard_from(node_id, ("10.0.0.1", 1), 0.0, responded=True)
    assert table.heard_from(node_id, ("10.6.6.6", 1), 1.0, responded=True) is None
    assert table.get(node_id).addr == ("10.0.0.1", 1)


def test_closest_is_sorted_by_xor_distance() -> None:
    rng = random.Random(3)
    table = RoutingTable(OWN, 0.0)
    ids = [rng.randbytes(20) for _ in range(200)]
    for i, node_id in enumerate(ids):
        table.heard_from(node_id, ("10.0.0.1", i + 1), 0.0, responded=True)
    target = rng.randbytes(20)
    got = [n.node_id for n in table.closest(target, 8)]
    known = [e.node_id for e in table.entries()]
    expected = sorted(known, key=lambda n: int.from_bytes(n, "big") ^ int.from_bytes(target, "big"))[:8]
    assert got == expected


def test_random_id_in_bucket_lands_in_that_bucket() -> None:
    rng = random.Random(4)
    table = RoutingTable(rng.randbytes(20), 0.0)
    for i in range(300):
        table.heard_from(rng.randbytes(20), ("10.0.0.1", i + 1), 0.0, responded=True)
    for index in range(len(table.buckets)):
        for _ in range(5):
            node_id = table.random_id_in_bucket(index, rng.getrandbits(160))
            assert table.bucket_index(node_id) == index


def test_stale_buckets_are_reported_for_refresh() -> None:
    table = RoutingTable(OWN, 0.0)
    table.heard_from(b"\x80" + bytes(19), ("10.0.0.1", 1), 0.0, responded=True)
    assert table.stale_buckets(10.0) == []
    assert table.stale_buckets(15 * 60.0) == [0]


def test_rebuild_around_a_new_id_keeps_nodes() -> None:
    rng = random.Random(5)
    table = RoutingTable(OWN, 0.0)
    for i in range(50):
        table.heard_from(rng.randbytes(20), ("10.0.0.1", i + 1), 0.0, responded=True)
    before = len(table)
    table.rebuild(b"\xff" * 20, 1.0)
    assert table.own_id == b"\xff" * 20
    assert len(table) <= before and len(table) >= K


def test_ipv6_nodes_stay_out_of_the_ipv4_table() -> None:
    table = RoutingTable(OWN, 0.0)
    assert table.heard_from(b"\x80" + bytes(19), ("::1", 6881), 0.0, responded=True) is None
    assert len(table) == 0


def test_nodes_heard_about_only_fill_free_slots_and_go_bad_after_one_failure() -> None:
    rng = random.Random(6)
    table = RoutingTable(OWN, 0.0)
    members = [node_with_prefix(0, rng) for _ in range(K)]
    for i, node_id in enumerate(members):
        table.heard_from(node_id, ("10.0.0.1", i + 1), 0.0, responded=True)
    table.heard_from(node_with_prefix(1, rng), ("10.0.0.2", 1), 0.0, responded=True)  # split
    rumour = node_with_prefix(0, rng)
    table.heard_about(rumour, ("10.0.0.3", 1), 1.0)
    assert rumour not in table and not table.buckets[0].replacements  # bucket 0 is full
    close = node_with_prefix(3, rng)
    table.heard_about(close, ("10.0.0.4", 1), 1.0)
    assert close in table and not table.get(close).is_good(1.0)
    table.failed(close, 2.0)
    assert table.get(close) is None or table.get(close).is_bad()
