"""NAT lab benchmark: per cell, success rate, time to direct, relayed vs direct RTT.

Runs the raw-UDP punch agents (the real ``HolePunch`` and ``NatDetector`` cores over
kernel NATs in network namespaces) ``--runs`` times per cell, each run in a fresh lab.
The "relay" here is the benchmark process carrying punch messages over the agents'
stdin/stdout pipes; its RTT is what the punch core measured for the CONNECT exchange.
Direct RTT is the median of ping/pong datagrams over the punched path.

Needs root.  Usage: ``sudo .venv/bin/python bench/nat_lab.py [--runs 10] [--cells ...]``
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.netlab.lab import NatLab, NatMode, lab_unavailable_reason  # noqa: E402
from tests.netlab.punch_run import build_pair, run_punch_cell, start_rendezvous  # noqa: E402

# name: (mode A, mode B, same NAT, expected outcome)
CELLS: dict[str, tuple[NatMode | None, NatMode | None, bool, str]] = {
    "public-nat": (None, NatMode.EIM, False, "direct"),
    "eim-eim": (NatMode.EIM, NatMode.EIM, False, "direct"),
    "eim-sym": (NatMode.EIM, NatMode.SYMMETRIC, False, "direct (birthday)"),
    "sym-sym": (NatMode.SYMMETRIC, NatMode.SYMMETRIC, False, "no punch: relay"),
    "same-nat": (NatMode.EIM, None, True, "direct (LAN)"),
}


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f} ms" if values else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--cells", nargs="*", default=list(CELLS), choices=list(CELLS))
    args = parser.parse_args()
    reason = lab_unavailable_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    print(f"NAT lab, raw UDP + sans-IO cores; {args.runs} runs per cell; "
          f"Python {platform.python_version()}, {platform.machine()}")
    header = (f"{'cell':10} {'expected':18} {'as expected':>11} {'direct':>7} "
              f"{'t->direct':>10} {'t->direct max':>13} {'relay rtt':>10} {'direct rtt':>10} "
              f"{'probes':>7} {'wall':>7}")
    print(header)
    for name in args.cells:
        mode_a, mode_b, same, expected = CELLS[name]
        direct = as_expected = 0
        ttd: list[float] = []
        relay_rtt: list[float] = []
        direct_rtt: list[float] = []
        probes: list[float] = []
        walls: list[float] = []
        for _ in range(args.runs):
            t0 = time.monotonic()
            with NatLab(prefix="rnnbench") as lab:
                rendezvous = start_rendezvous(lab)
                a, b = build_pair(lab, mode_a, mode_b, same)
                result = run_punch_cell(a, b, rendezvous, punch_timeout=3.0,
                                        exchange_timeout=1.0, timeout=15.0)
            walls.append(time.monotonic() - t0)
            ok = result.ok
            direct += ok
            as_expected += ok == (name != "sym-sym")
            won = result.a.succeeded
            if ok and won:
                ttd.append(won["time_to_direct"])
                probes.append(won["probes_sent"] + (result.b.succeeded or {}).get("probes_sent", 0))
                if won["rtt"] is not None:
                    relay_rtt.append(won["rtt"])
                done = result.a.done or {}
                if done.get("direct_rtt") is not None:
                    direct_rtt.append(done["direct_rtt"])
        print(f"{name:10} {expected:18} {as_expected:>5}/{args.runs:<5} {direct:>3}/{args.runs:<3} "
              f"{ms(ttd):>10} {(f'{max(ttd) * 1000:.1f} ms' if ttd else '-'):>13} "
              f"{ms(relay_rtt):>10} {ms(direct_rtt):>10} "
              f"{(f'{statistics.median(probes):.0f}' if probes else '-'):>7} "
              f"{statistics.median(walls):>6.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
