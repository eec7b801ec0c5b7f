"""Gossip on the simulated network: real cores, real signatures, loss and churn.

A smaller N than ``bench/gossip_sim.py`` (which runs 100 / 1,000 / 5,000) keeps the suite
fast; the targets asserted are the issue's: 100 % delivery without loss, >= 99.9 % with
10 % loss and 10 % churn, p99 hops <= 2*log2(N), <= 3 duplicates per node per message.
"""

from __future__ import annotations

import math

import pytest

from rnn_tui.gossip import PeerPenalized
from rnn_tui.gossip.simharness import GossipSimulation
from rnn_tui.gossip.wire import Frame, SignedMessage, encode_frame


def _run(n: int, *, loss: float, churn: float, messages: int, seed: int) -> GossipSimulation:
    sim = GossipSimulation(n, seed=seed, loss=loss)
    sim.run_for(5.0)
    churn_left = round(n * churn)
    for i in range(messages):
        if churn_left and i % 2 == 0:
            for _ in range(min(churn_left, max(1, round(n * churn / (messages / 2))))):
                sim.leave(sim.rng.choice(sim.online_indices()))
                sim.join()
                churn_left -= 1
        sim.run_for(0.5)
        sim.publish(sim.rng.choice(sim.online_indices()), b"service %d" % i + bytes(100))
    sim.run_for(10.0)
    return sim


@pytest.mark.parametrize("seed", [1, 2])
def test_no_loss_delivers_everything_within_hop_and_duplicate_budgets(seed: int) -> None:
    n = 80
    report = _run(n, loss=0.0, churn=0.0, messages=8, seed=seed).report(window=10.0)
    assert report.expected == 8 * (n - 1)
    assert report.delivery_ratio == 1.0
    assert report.hops_p99 <= 2 * math.log2(n)
    assert report.duplicates_per_node_msg <= 3.0
    assert report.invalid == 0


def test_loss_and_churn_still_deliver_999_per_mille() -> None:
    n = 80
    sim = _run(n, loss=0.10, churn=0.10, messages=8, seed=3)
    report = sim.report(window=10.0)
    assert report.churned == round(n * 0.10)
    assert report.delivery_ratio >= 0.999
    assert report.hops_p99 <= 2 * math.log2(n)
    assert report.duplicates_per_node_msg <= 3.0


def test_forger_in_the_network_is_isolated_and_its_forgeries_reach_nobody() -> None:
    sim = GossipSimulation(30, seed=4)
    sim.run_for(3.0)
    mallory = sim.nodes[0]
    victim_author = sim.nodes[1].identity
    penalized: list[tuple[int, PeerPenalized]] = []
    sim.on_event = lambda i, e: penalized.append((i, e)) if isinstance(e, PeerPenalized) else None
    ts_ms = int(sim.now * 1000)
    probe = SignedMessage.build(victim_author.public_key, 1, sim.topic, b"evil", ts_ms, bytes(64))
    forged = SignedMessage.build(victim_author.public_key, 1, sim.topic, b"evil", ts_ms,
                                 mallory.identity.sign(probe.signed))
    for neighbour in sorted(mallory.neighbours):
        sim.inject(0, neighbour, encode_frame(Frame(messages=((forged, 0),))))
    sim.run_for(2.0)
    assert all(forged.msg_id not in r.deliveries for r in sim.messages.values())
    assert not any(n.core.has_seen(forged.msg_id) for n in sim.nodes)
    assert {i for i, e in penalized if e.peer == mallory.identity.peer_id} == mallory.neighbours
    # honest traffic keeps flowing around the forger
    msg_id = sim.publish(2, b"honest")
    sim.run_for(5.0)
    assert len(sim.messages[msg_id].deliveries) == 29
