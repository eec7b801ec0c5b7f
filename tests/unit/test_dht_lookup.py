"""The iterative lookup as a pure object, on synthetic networks of a few hundred ids."""

from __future__ import annotations

import random

from rnn_tui.dht.lookup import Lookup
from rnn_tui.dht.messages import NodeInfo


def synthetic_network(n: int, seed: int) -> tuple[list[NodeInfo], dict[bytes, list[NodeInfo]]]:
    """Every node knows the 8 closest nodes in each of its ~log2(n) distance ranges."""
    rng = random.Random(seed)
    nodes = [NodeInfo(rng.randbytes(20), (f"10.0.{i >> 8}.{i & 255}", 1)) for i in range(n)]
    knows: dict[bytes, list[NodeInfo]] = {}
    for node in nodes:
        own = int.from_bytes(node.node_id, "big")
        buckets: dict[int, list[NodeInfo]] = {}
        for other in nodes:
            if other is node:
                continue
            bucket = (own ^ int.from_bytes(other.node_id, "big")).bit_length()
            if len(buckets.setdefault(bucket, [])) < 8:
                buckets[bucket].append(other)
        knows[node.node_id] = [n for b in buckets.values() for n in b]
    return nodes, knows


def closest_answer(knows: dict[bytes, list[NodeInfo]], node: NodeInfo, target: bytes) -> list[NodeInfo]:
    t = int.from_bytes(target, "big")
    return sorted(knows[node.node_id], key=lambda n: int.from_bytes(n.node_id, "big") ^ t)[:8]


def run(lookup: Lookup, knows, fail: set[bytes] = frozenset()) -> int:
    rounds = 0
    while not lookup.done:
        batch = lookup.next_queries()
        assert batch or lookup.in_flight == 0
        rounds += 1
        for node in batch:
            if node.node_id in fail:
                lookup.on_failure(node)
            else:
                lookup.on_response(node, closest_answer(knows, node, lookup.target), b"tok")
        assert rounds < 100
    return rounds


def test_lookup_converges_on_the_true_k_closest() -> None:
    nodes, knows = synthetic_network(800, seed=1)
    rng = random.Random(2)
    for _ in range(20):
        target = rng.randbytes(20)
        start = rng.choice(nodes)
        lookup = Lookup(target, k=8, alpha=3)
        lookup.add_candidates(closest_answer(knows, start, target))
        run(lookup, knows)
        t = int.from_bytes(target, "big")
        truth = sorted(nodes, key=lambda n: int.from_bytes(n.node_id, "big") ^ t)[:8]
        found = [n for n, _ in lookup.closest_responded()]
        assert found == truth
        assert all(token == b"tok" for _, token in lookup.closest_responded())
        assert lookup.queries_sent < 60


def test_lookup_routes_around_failed_nodes() -> None:
    nodes, knows = synthetic_network(500, seed=3)
    rng = random.Random(4)
    dead = {n.node_id for n in rng.sample(nodes, 100)}
    target = rng.randbytes(20)
    start = next(n for n in nodes if n.node_id not in dead)
    lookup = Lookup(target, k=8, alpha=3)
    lookup.add_candidates(closest_answer(knows, start, target))
    run(lookup, knows, dead)
    found = lookup.closest_responded()
    assert len(found) == 8 and not any(n.node_id in dead for n, _ in found)


def test_alpha_limits_parallel_queries_until_the_lookup_widens() -> None:
    lookup = Lookup(bytes(20), k=8, alpha=3)
    far = [NodeInfo(bytes([0x80 + i]) + bytes(19), ("10.0.0.1", i + 1)) for i in range(10)]
    lookup.add_candidates(far)
    first = lookup.next_queries()
    assert len(first) == 3 and lookup.next_queries() == []
    lookup.on_response(first[0], [])  # nothing closer: widen to the k closest
    assert lookup.widened
    assert len(lookup.next_queries()) == 5  # the rest of the 8 closest
    assert not lookup.done


def test_duplicate_and_late_replies_are_ignored() -> None:
    lookup = Lookup(bytes(20), k=2, alpha=2)
    a, b = (NodeInfo(bytes([i]) * 20, ("10.0.0.1", i)) for i in (1, 2))
    lookup.add_candidates([a, b])
    lookup.next_queries()
    lookup.on_response(a, [])
    lookup.on_response(a, [])
    lookup.on_failure(a)
    assert lookup.responses == 1 and lookup.in_flight == 1
