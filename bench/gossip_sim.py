"""Gossip simulation benchmark: real cores, real Ed25519 signatures, virtual clock.

For each N in --sizes and each scenario (0 % loss; 10 % loss + 10 % churn) it builds N
nodes with ``--connections`` random transport connections each, lets the meshes form,
publishes ``--messages`` messages from random online nodes, and prints delivery ratio,
latency p50/p99 in hops and in ms of simulated time, and duplicates per node per message.

Churn: over the publishing period, 10 % of the nodes leave and as many new ones join.

    .venv/bin/python bench/gossip_sim.py --sizes 100 1000 5000 --runs 3
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rnn_tui.gossip.params import GossipConfig  # noqa: E402
from rnn_tui.gossip.simharness import GossipSimulation, SimReport  # noqa: E402


def run_scenario(n: int, *, loss: float, churn: float, messages: int, seed: int,
                 connections: int, warmup: float, spacing: float, window: float,
                 config: GossipConfig) -> tuple[SimReport, float]:
    started = time.perf_counter()
    sim = GossipSimulation(n, seed=seed, loss=loss, connections=connections, config=config)
    sim.run_for(warmup)
    churn_events = round(n * churn)
    period = messages * spacing
    churn_every = period / churn_events if churn_events else math.inf
    next_churn = sim.now + (churn_every / 2 if churn_events else math.inf)
    churned = 0
    for i in range(messages):
        t_publish = sim.now + spacing
        while next_churn <= t_publish and churned < churn_events:
            sim.run_for(next_churn - sim.now)
            online = sim.online_indices()
            sim.leave(sim.rng.choice(online))
            sim.join()
            churned += 1
            next_churn += churn_every
        sim.run_for(t_publish - sim.now)
        author = sim.rng.choice(sim.online_indices())
        sim.publish(author, b"announce %d " % i + bytes(180))
    sim.run_for(window)
    return sim.report(window), time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--runs", type=int, default=1, help="seeds per scenario; medians are printed")
    parser.add_argument("--connections", type=int, default=12)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--spacing", type=float, default=0.5, help="seconds between publications")
    parser.add_argument("--window", type=float, default=10.0, help="seconds each message is measured")
    parser.add_argument("--d", type=int, default=GossipConfig().d)
    parser.add_argument("--d-low", type=int, default=GossipConfig().d_low)
    parser.add_argument("--d-high", type=int, default=GossipConfig().d_high)
    parser.add_argument("--scenarios", nargs="+", default=["clean", "lossy"], choices=["clean", "lossy"])
    args = parser.parse_args()
    config = GossipConfig(d=args.d, d_low=args.d_low, d_high=args.d_high)
    header = (f"{'N':>5} {'scenario':<16} {'delivery':>9} {'<=4s':>8} {'hops p50':>8} {'p99':>4} "
              f"{'bound':>5} {'ms p50':>7} {'ms p99':>7} {'dup/node/msg':>12} {'frames/node/msg':>15} "
              f"{'wall s':>7}")
    print(f"gossip sim: D={config.d} D_low={config.d_low} D_high={config.d_high} "
          f"connections={args.connections} messages={args.messages} runs={args.runs}")
    print(header)
    ok = True
    for n in args.sizes:
        for scenario in args.scenarios:
            loss, churn = (0.0, 0.0) if scenario == "clean" else (0.10, 0.10)
            reports, walls = [], []
            for run in range(args.runs):
                report, wall = run_scenario(
                    n, loss=loss, churn=churn, messages=args.messages, seed=1000 * run + n,
                    connections=args.connections, warmup=args.warmup, spacing=args.spacing,
                    window=args.window, config=config)
                reports.append(report)
                walls.append(wall)
            med = statistics.median
            delivery = med(r.delivery_ratio for r in reports)
            bound = 2 * math.log2(n)
            hops99 = med(r.hops_p99 for r in reports)
            dups = med(r.duplicates_per_node_msg for r in reports)
            label = "0% loss" if scenario == "clean" else "10% loss+churn"
            print(f"{n:>5} {label:<16} {delivery:>9.5f} {med(r.delivered_4s / r.expected for r in reports):>8.5f} "
                  f"{med(r.hops_p50 for r in reports):>8.0f} {hops99:>4.0f} {bound:>5.1f} "
                  f"{med(r.latency_ms_p50 for r in reports):>7.0f} {med(r.latency_ms_p99 for r in reports):>7.0f} "
                  f"{dups:>12.2f} {med(r.frames_per_node_msg for r in reports):>15.1f} {med(walls):>7.1f}",
                  flush=True)
            target = 1.0 if scenario == "clean" else 0.999
            ok &= delivery >= target and hops99 <= bound and dups <= 3.0
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
