"""A few hundred real cores on the simulated network (bench/dht_sim.py goes to 10,000)."""

from __future__ import annotations

import random

import pytest

from rnn_tui.dht.core import DhtConfig
from rnn_tui.dht.events import MutableFound, PeersFound
from rnn_tui.dht.simulation import build_network, wait_all
from rnn_tui.identity import Identity
from rnn_tui.sim.network import SimNetwork

CONFIG = DhtConfig(query_timeout=0.5, lookup_timeout=0.3)


def publish_and_find(net: SimNetwork, rng: random.Random, hosts, count: int, churn: float) -> int:
    published = []
    pending = []
    for i in range(count):
        host = rng.choice(hosts)
        infohash = rng.randbytes(20)
        pending.append((host, host.start("announce", infohash, 2000 + i)))
        ident = Identity(rng.randbytes(32))
        pending.append((host, host.start("put_mutable", ident, b"v%d" % i, b"")))
        published.append((infohash, (host.addr[0], 2000 + i), ident.public_key, b"v%d" % i))
    assert wait_all(net, pending, 60.0)
    for host in rng.sample(hosts, int(len(hosts) * churn)):
        host.go_offline()
    online = [h for h in hosts if h.online]
    lookups = []
    for infohash, peer, public_key, value in published:
        reader = rng.choice(online)
        lookups.append((reader, reader.start("get_peers", infohash), peer))
        reader = rng.choice(online)
        lookups.append((reader, reader.start("get_mutable", public_key, b""), value))
    assert wait_all(net, [(h, op) for h, op, _ in lookups], 120.0)
    ok = 0
    for host, op, expected in lookups:
        result = host.results[op]
        if isinstance(result, PeersFound):
            ok += expected in result.peers
        else:
            assert isinstance(result, MutableFound)
            ok += result.item is not None and result.item.value == expected
    return ok


def test_300_nodes_every_lookup_succeeds_without_loss() -> None:
    rng = random.Random(11)
    net = SimNetwork(rng=random.Random(12), latency=0.05)
    hosts = build_network(net, 300, rng, CONFIG)
    assert min(len(h.core.routing) for h in hosts) >= 8
    assert publish_and_find(net, rng, hosts, 20, churn=0.0) == 40


@pytest.mark.slow
def test_300_nodes_with_10_percent_loss_and_20_percent_churn() -> None:
    rng = random.Random(21)
    net = SimNetwork(rng=random.Random(22), latency=0.05)
    hosts = build_network(net, 300, rng, CONFIG)
    net.loss = 0.10
    assert publish_and_find(net, rng, hosts, 20, churn=0.2) >= 39  # >= 97.5 %
