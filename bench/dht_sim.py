"""DHT simulation benchmark: N real ``DhtCore``s on a virtual-clock network.

For each N: build the network (every node bootstraps through a few already-joined nodes),
then run two scenarios on it:

1. 0 % loss: ``ops`` rounds of "node A announces an infohash, node B (random) looks it up
   with get_peers" and "A puts a mutable item, B gets it".
2. 10 % loss on every datagram and 20 % churn: the items are published first, then 20 % of
   the nodes vanish without notice, then random surviving nodes look everything up.

Printed per scenario: success rate, median / p95 lookup latency in RTTs (one RTT = 2 x the
one-way latency, 100 ms here), queries sent per lookup, and memory per node (RSS growth
while building the network, divided by N).

Usage: ``python bench/dht_sim.py --sizes 1000 10000 --ops 200``
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rnn_tui.dht.core import DhtConfig  # noqa: E402
from rnn_tui.dht.events import MutableFound, PeersFound  # noqa: E402
from rnn_tui.dht.simulation import SimHost, build_network, wait_all  # noqa: E402
from rnn_tui.identity import Identity  # noqa: E402
from rnn_tui.sim.network import SimNetwork  # noqa: E402

ONE_WAY = 0.05
RTT = 2 * ONE_WAY


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_lookups(net: SimNetwork, rng: random.Random, hosts: list[SimHost],
                published: list[tuple[str, object, object]]) -> dict[str, float]:
    """Look every published thing up from a random online host, all in parallel batches."""
    latencies: list[float] = []
    queries: list[int] = []
    ok = 0
    online = [h for h in hosts if h.online]
    batch = 20
    for start in range(0, len(published), batch):
        pending = []
        started = net.now
        for kind, key, expected in published[start:start + batch]:
            host = rng.choice(online)
            if kind == "peers":
                op = host.start("get_peers", key)
            else:
                op = host.start("get_mutable", key, b"bench")
            pending.append((host, op, kind, expected, started))
        finish: dict[tuple[int, int], float] = {}

        def all_done(pending: list[tuple[SimHost, int, str, object, float]] = pending,
                     finish: dict[tuple[int, int], float] = finish) -> bool:
            for host, op, *_ in pending:
                if op in host.results:
                    finish.setdefault((id(host), op), net.now)
            return len(finish) == len(pending)

        net.run_until(all_done, max_time=net.now + 120.0)
        for host, op, kind, expected, t0 in pending:
            result = host.results.pop(op, None)
            if result is None:
                continue
            latencies.append((finish[(id(host), op)] - t0) / RTT)
            if isinstance(result, PeersFound):
                queries.append(result.queries)
                ok += expected in result.peers
            elif isinstance(result, MutableFound):
                queries.append(result.queries)
                ok += result.item is not None and result.item.value == expected
    n = len(published)
    return {
        "success": ok / n if n else 0.0,
        "median_rtt": statistics.median(latencies) if latencies else float("nan"),
        "p95_rtt": percentile(latencies, 0.95) if latencies else float("nan"),
        "queries_per_lookup": statistics.median(queries) if queries else float("nan"),
    }


def publish(net: SimNetwork, rng: random.Random, hosts: list[SimHost], ops: int,
            tag: str) -> list[tuple[str, object, object]]:
    published: list[tuple[str, object, object]] = []
    online = [h for h in hosts if h.online]
    batch = 20
    for start in range(0, ops, batch):
        pending = []
        for i in range(start, min(ops, start + batch)):
            host = rng.choice(online)
            if i % 2 == 0:
                infohash = rng.randbytes(20)
                port = 1000 + i % 60000
                pending.append((host, host.start("announce", infohash, port)))
                published.append(("peers", infohash, (host.addr[0], port)))
            else:
                ident = Identity(rng.randbytes(32))
                value = f"{tag}-{i}".encode()
                pending.append((host, host.start("put_mutable", ident, value, b"bench")))
                published.append(("mutable", ident.public_key, value))
        wait_all(net, pending, 120.0)
    return published


def run_size(n: int, ops: int, seed: int, learn: bool = True, alpha: int | None = None) -> None:
    rng = random.Random(seed)
    net = SimNetwork(rng=random.Random(seed + 1), latency=ONE_WAY, loss=0.0)
    config = DhtConfig(query_timeout=0.5, query_retries=1, lookup_timeout=0.3,
                       learn_from_replies=learn, alpha=alpha or DhtConfig().alpha)
    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    hosts = build_network(net, n, rng, config)
    build_s = time.perf_counter() - t0
    gc.collect()
    per_node = (rss_bytes() - rss0) / n
    tables = [len(h.core.routing) for h in hosts]
    print(f"N={n}: built in {build_s:.0f}s wall, {net.stats.sent} datagrams; routing table "
          f"median {statistics.median(tables):.0f} nodes; memory {per_node / 1024:.1f} KiB/node")

    t1 = time.perf_counter()
    published = publish(net, rng, hosts, ops, "clean")
    res = run_lookups(net, rng, hosts, published)
    print(f"  loss 0%,  churn 0%:  success {res['success'] * 100:.1f}%  median {res['median_rtt']:.1f} RTT  "
          f"p95 {res['p95_rtt']:.1f} RTT  {res['queries_per_lookup']:.0f} queries/lookup  "
          f"({time.perf_counter() - t1:.0f}s wall)")

    t2 = time.perf_counter()
    net.loss = 0.10
    published = publish(net, rng, hosts, ops, "lossy")
    for host in rng.sample(hosts, n // 5):
        host.go_offline()
    res = run_lookups(net, rng, hosts, published)
    print(f"  loss 10%, churn 20%: success {res['success'] * 100:.1f}%  median {res['median_rtt']:.1f} RTT  "
          f"p95 {res['p95_rtt']:.1f} RTT  {res['queries_per_lookup']:.0f} queries/lookup  "
          f"({time.perf_counter() - t2:.0f}s wall)")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--ops", type=int, default=200, help="items published per scenario")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--alpha", type=int, default=None, help="parallel queries per lookup")
    parser.add_argument("--no-learn", action="store_true",
                        help="do not fill free bucket slots with nodes named in replies")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, one-way latency {ONE_WAY * 1000:.0f} ms, seed {args.seed}, "
          f"learn_from_replies={not args.no_learn}, alpha={args.alpha or DhtConfig().alpha}")
    for n in args.sizes:
        run_size(n, args.ops, args.seed, learn=not args.no_learn, alpha=args.alpha)


if __name__ == "__main__":
    main()
