"""NAT lab benchmark: per cell, success rate, time to direct, relayed vs direct RTT.

Runs the raw-UDP punch agents (the real ``HolePunch`` and ``NatDetector`` cores over
kernel NATs in network namespaces) ``--runs`` times per cell, each run in a fresh lab.
The "relay" here is the benchmark process carrying punch messages over the agents'
stdin/stdout pipes; its RTT is what the punch core measured for the CONNECT exchange.
Direct RTT is the median of ping/pong datagrams over the punched path.

Needs root.  Usage: ``sudo .venv/bin/python bench/nat_lab.py [--runs 10] [--cells ...]``;
``--quic`` runs QUIC node agents, ``--rnn`` real ``rnn start --headless`` processes
(``--relay-mib 0`` skips the loopback throughput part; ``--cells`` with no cell runs only
it: ``bench/nat_lab.py --cells --relay-runs 3 --relay-rounds 5``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataclasses import dataclass  # noqa: E402
from typing import ClassVar  # noqa: E402

from rnn_tui.identity import Identity, PeerId  # noqa: E402
from rnn_tui.nat.relay_driver import RelayClient, RelayService  # noqa: E402
from rnn_tui.transport import PeerConnection, Transport, TransportSettings  # noqa: E402
from rnn_tui.transport.messages import register_message  # noqa: E402
from tests.netlab.lab import NatLab, NatMode, lab_unavailable_reason  # noqa: E402
from tests.netlab.node_run import run_quic_cell  # noqa: E402
from tests.netlab.punch_run import build_pair, run_punch_cell, start_rendezvous  # noqa: E402


@register_message
@dataclass(frozen=True, slots=True)
class BenchBlob:
    """Benchmark-only payload (type range 0xF0xx: tests and experiments)."""

    TYPE: ClassVar[int] = 0xF0A1
    data: bytes

    def encode(self) -> bytes:
        return self.data

    @classmethod
    def decode(cls, body: bytes) -> BenchBlob:
        return cls(body)


REPO = Path(__file__).resolve().parents[1]


def start_relay_process() -> tuple[subprocess.Popen[str], tuple[str, int], PeerId]:
    """A relay node in its own process on loopback; the caller terminates it by PID."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.netlab.node_agent", "relay",
                             "--ip", "127.0.0.1", "--bind", "127.0.0.1"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout is not None
    ready = json.loads(proc.stdout.readline())
    return proc, (ready["addr"][0], ready["addr"][1]), PeerId(bytes.fromhex(ready["peer"]))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), for the relay's share."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def relay_vs_direct(size: int, rounds: int, separate: bool) -> dict[str, float]:
    """Loopback: the same request over a direct and a relayed connection (MB/s, RTT, CPU).

    With ``separate`` the relay is its own process (as on a real network, where the relay
    is another host); otherwise all three nodes share this event loop, which caps the
    relayed rate well below the direct one (the relay decrypts and re-encrypts every
    byte).  Direct and relayed requests alternate, ``rounds`` of each, so a change in
    the machine's load hits both alike.  CPU is reported per MiB moved: this process
    (A and B, plus the relay when in-process) and the relay process; on a shared
    machine it is steadier than the rates.
    """
    nodes = [Transport(Identity.generate(), settings=TransportSettings()) for _ in range(3)]
    a, relay, b = nodes
    for node in nodes:
        await node.start("127.0.0.1", 0)
    proc = None
    service = None
    if separate:
        proc, relay_addr, relay_id = await asyncio.to_thread(start_relay_process)
    else:
        service = RelayService(relay)
        relay_addr, relay_id = relay.endpoint.local_addr, relay.identity.peer_id

    async def sink(conn: PeerConnection, msg: BenchBlob) -> BenchBlob:
        return BenchBlob(b"ok")
    b.handlers.on_request(BenchBlob, sink)
    try:
        b_to_r = await b.dial(relay_addr, relay_id)
        await RelayClient(b).reserve(b_to_r)
        a_to_r = await a.dial(relay_addr, relay_id)
        relayed = await RelayClient(a).dial_via(a_to_r, b.identity.peer_id)
        direct = await a.dial(b.endpoint.local_addr, b.identity.peer_id)
        paths = (("direct", direct), ("relayed", relayed))
        out: dict[str, float] = {}
        loop = asyncio.get_running_loop()
        blob = BenchBlob(b"\x5a" * size)
        for name, conn in paths:
            rtts = [await a.ping(conn) for _ in range(20)]
            out[f"{name}_rtt"] = statistics.median(rtts)
            await conn.request(blob, timeout=120)  # warm-up: congestion windows open
        rates: dict[str, list[float]] = {"direct": [], "relayed": []}
        cpu: dict[str, list[float]] = {"direct": [], "relayed": [], "relay": []}
        mib = size / (1024 * 1024)
        for _ in range(rounds):
            for name, conn in paths:
                relay_cpu = _cpu_seconds(proc.pid) if proc is not None else 0.0
                c0, t0 = time.process_time(), loop.time()
                await conn.request(blob, timeout=120)
                rates[name].append(size / (loop.time() - t0) / 1e6)
                cpu[name].append((time.process_time() - c0) / mib)
                if proc is not None and name == "relayed":
                    cpu["relay"].append((_cpu_seconds(proc.pid) - relay_cpu) / mib)
        for name in rates:
            out[f"{name}_mbps"] = statistics.median(rates[name])
            out[f"{name}_cpu"] = statistics.median(cpu[name])
        out["relay_cpu"] = statistics.median(cpu["relay"]) if cpu["relay"] else 0.0
        return out
    finally:
        if service is not None:
            service.close()
        for node in nodes:
            await node.close()
        if proc is not None:
            proc.terminate()
            await asyncio.to_thread(proc.wait, 10)

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


QUIC_EXPECT = {"public-nat": ["direct"], "eim-eim": ["relayed", "direct"],
               "eim-sym": ["relayed", "direct"], "sym-sym": ["relayed", "relayed"],
               "same-nat": ["relayed", "direct"]}


def quic_matrix(cells: list[str], runs: int) -> None:
    """The issue's matrix with real QUIC nodes: expected path reached and data exchanged."""
    print(f"NAT lab, real QUIC node agents (transport + relay + punch); {runs} runs per cell; "
          f"Python {platform.python_version()}")
    print(f"{'cell':10} {'expected path':15} {'as expected':>11} {'t->direct':>10} "
          f"{'t->direct max':>13} {'relayed rtt':>11} {'direct rtt':>10} {'wall':>7}")
    for name in cells:
        mode_a, mode_b, same, _ = CELLS[name]
        good = 0
        ttd: list[float] = []
        rtt: dict[str, list[float]] = {"relayed": [], "direct": []}
        walls: list[float] = []
        for _ in range(runs):
            t0 = time.monotonic()
            a, b, _story = run_quic_cell(mode_a, mode_b, same, direct_dial=name == "public-nat",
                                         prefix="rnnbench")
            walls.append(time.monotonic() - t0)
            talker = b if name == "public-nat" else a
            ex = talker.all("exchanged")
            if [e["path"] for e in ex] == QUIC_EXPECT[name] and all(e["ok"] for e in ex):
                good += 1
            for e in ex:
                rtt[e["path"]].append(e["rtt"])
            for outcome in a.all("punch-outcome"):
                if outcome["time_to_direct"] is not None:
                    ttd.append(outcome["time_to_direct"])
        print(f"{name:10} {'->'.join(QUIC_EXPECT[name]):15} {good:>5}/{runs:<5} {ms(ttd):>10} "
              f"{(f'{max(ttd) * 1000:.1f} ms' if ttd else '-'):>13} {ms(rtt['relayed']):>11} "
              f"{ms(rtt['direct']):>10} {statistics.median(walls):>6.2f}s")


def _med_ms(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ms" if values else "-"


def rnn_matrix(cells: list[str], runs: int) -> None:
    """The matrix with real ``rnn start --headless`` processes, one lab per round."""
    import tempfile

    from tests.netlab.rnn_cells import CELLS as RNN_CELLS
    from tests.netlab.rnn_cells import run_round

    print(f"NAT lab, real rnn nodes (rnn start --headless in namespaces); {runs} rounds; "
          f"Python {platform.python_version()}")
    results: dict[str, list] = {name: [] for name in cells}
    walls = []
    for n in range(runs):
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="rnn-natbench-") as tmp:
            rnd = run_round(Path(tmp), [RNN_CELLS[c] for c in cells])
        walls.append(time.monotonic() - t0)
        if rnd.error:
            print(f"round {n}: {rnd.error}")
        for res in rnd.cells:
            results[res.cell].append(res)
            if not res.ok:
                print(f"round {n} {res.cell}: {res.error}")
    print(f"median round (lab build, node starts, cells, teardown): "
          f"{statistics.median(walls):.1f}s")
    print(f"{'cell':10} {'expected':8} {'as expected':>11} {'how':>6} {'t->direct':>10} "
          f"{'max':>8} {'connect':>8} {'relayed rtt':>11} {'rtt (5 pings)':>13}")
    for name in cells:
        rs = results[name]
        good = sum(r.ok for r in rs)
        hows = sorted({r.how for r in rs})
        ttd = [r.time_to_direct_ms for r in rs if r.time_to_direct_ms is not None]
        conn = [r.connect_s for r in rs if r.connect_s is not None]
        rel = [r.relayed_rtt_ms for r in rs if r.relayed_rtt_ms is not None]
        rtt = [r.rtt_ms for r in rs if r.rtt_ms is not None]
        print(f"{name:10} {RNN_CELLS[name].expected:8} {good:>5}/{len(rs):<5} "
              f"{'/'.join(hows):>6} {_med_ms(ttd):>10} {(f'{max(ttd):.0f} ms' if ttd else '-'):>8} "
              f"{(f'{statistics.median(conn):.1f} s' if conn else '-'):>8} {_med_ms(rel):>11} "
              f"{(f'{statistics.median(rtt):.1f} ms' if rtt else '-'):>13}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--cells", nargs="*", default=list(CELLS), choices=list(CELLS))
    parser.add_argument("--quic", action="store_true",
                        help="run the matrix with real QUIC node agents instead of raw UDP")
    parser.add_argument("--rnn", action="store_true",
                        help="run the matrix with real 'rnn start --headless' processes")
    parser.add_argument("--relay-process", action=argparse.BooleanOptionalAction, default=True,
                        help="run the relay as its own process (default) or in-process")
    parser.add_argument("--relay-mib", type=float, default=2.0,
                        help="payload of the relayed-vs-direct throughput test (0: skip)")
    parser.add_argument("--relay-rounds", type=int, default=5,
                        help="alternating direct/relayed requests per run (median)")
    parser.add_argument("--relay-runs", type=int, default=3,
                        help="runs of the throughput test, each with fresh nodes")
    args = parser.parse_args()
    if args.relay_mib > 0:
        size = int(args.relay_mib * 1024 * 1024)
        where = "relay in its own process" if args.relay_process else "all in one process"
        ratios = []
        for run in range(1, args.relay_runs + 1):
            load = os.getloadavg()[0]
            r = asyncio.run(relay_vs_direct(size, rounds=args.relay_rounds,
                                            separate=args.relay_process))
            ratios.append(r["relayed_mbps"] / r["direct_mbps"])
            relay_cpu = f", relay {r['relay_cpu'] * 1000:.0f}" if args.relay_process else ""
            print(f"run {run}: loopback QUIC ({where}), {args.relay_mib:g} MiB request, median "
                  f"of {args.relay_rounds}: direct {r['direct_mbps']:.1f} MB/s, relayed "
                  f"{r['relayed_mbps']:.1f} MB/s ({ratios[-1]:.0%} of direct); ping RTT direct "
                  f"{r['direct_rtt'] * 1000:.2f} ms, relayed {r['relayed_rtt'] * 1000:.2f} ms; "
                  f"CPU ms/MiB direct {r['direct_cpu'] * 1000:.0f}, relayed "
                  f"{r['relayed_cpu'] * 1000:.0f}{relay_cpu}; load average {load:.1f}",
                  flush=True)
        print(f"relayed / direct, median of {len(ratios)} runs: "
              f"{statistics.median(ratios):.0%} ({', '.join(f'{x:.0%}' for x in ratios)})")
    if not args.cells:
        return 0
    reason = lab_unavailable_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    if args.quic:
        quic_matrix(args.cells, args.runs)
        return 0
    if args.rnn:
        rnn_matrix(args.cells, args.runs)
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
