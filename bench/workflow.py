"""Workflow benchmark: orchestration overhead per job, and bulk output transfer.

1. **Overhead.**  A 3-job pipeline (``seq`` → square → sum, all on the offline base image)
   runs as a workflow across 3 executor node processes (a 4th node is the requester), and
   the same three containers run directly with ``docker run``: once piped
   (``a | b | c``, concurrent) and once in sequence through files.  The workflow runs in
   two variants, alternating: batch connections (a consumer starts once its input is
   delivered), compared with the sequential ``docker run``s, and streamed pipes
   (``stream: true``: a consumer starts while its producer runs), compared with the piped
   ones.  Overhead per job = (workflow run time − direct time) / 3, from the requester's
   own created → ended timestamps.  Medians of ``--runs`` rounds.  Then a timeline of the
   critical path (median ms since the run was created) from the nodes' logs: the
   requester's job status changes and the ``phases`` line each executor logs per job.
2. **Transfer.**  One output of ``--mb`` MiB sent between two transports in this process
   with the workflow transfer driver (chunked, hashed, acknowledged, written to disk,
   fsynced and renamed) versus a bare aioquic stream with the same QUIC configuration (from
   ``bench/transport.py``), alternating rounds.  The driver is given the file's hash, as an
   executor is (it hashed the output for its receipt while the job wrote it).  The driver's
   memory is sampled from ``/proc/self/statm`` every 20 ms during the transfer (RSS peak −
   RSS before); CPU seconds are printed for both (all threads, and the event-loop thread).

Usage: ``python bench/workflow.py [--runs 5] [--mb 256] [--skip-pipeline]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.transport import bare_throughput, rss_bytes  # noqa: E402
from rnn_tui.errors import WorkflowError  # noqa: E402
from rnn_tui.identity import Identity, PeerId  # noqa: E402
from rnn_tui.transport import Transport, TransportSettings  # noqa: E402
from rnn_tui.transport.session import PeerConnection  # noqa: E402
from rnn_tui.workflow.transfer import hash_file  # noqa: E402
from rnn_tui.workflow.transfer_driver import Landing, TransferService  # noqa: E402
from rnn_tui.workflow.wire import XferOffer  # noqa: E402

HOST = "127.0.0.1"
STEPS = ("seq 1 20000", "awk '{print $1*$1}'", "awk '{s+=$1} END {print s}'")
PIPELINE = """\
name: bench-pipeline
jobs:
  - {name: gen, service: busybox, args: [sh, -c, "seq 1 20000"]}
  - {name: square, service: busybox, args: [sh, -c, "awk '{print $1*$1}'"]}
  - {name: total, service: busybox, args: [sh, -c, "awk '{s+=$1} END {print s}'"]}
connections:
  - {from: gen.STDOUT, to: square.STDIN}
  - {from: square.STDOUT, to: total.STDIN}
  - {from: total.STDOUT, to: self, file: total.txt}
"""
# the same pipeline with streamed pipes (``stream: true``): each consumer starts while its
# producer runs, as ``docker run a | docker run b | docker run c`` does — the like-for-like
# comparison with piped ``docker run``; the batch pipeline compares with the sequential one
PIPELINE_STREAM = PIPELINE.replace("name: bench-pipeline", "name: bench-pipeline-stream").replace(
    "to: square.STDIN}", "to: square.STDIN, stream: true}").replace(
    "to: total.STDIN}", "to: total.STDIN, stream: true}")
EXPECTED = str(sum(i * i for i in range(1, 20001))) + "\n"


def _image() -> str:
    import docker

    from rnn_tui.services.images import bootstrap_base_image

    client = docker.from_env(timeout=120)
    tag = "rnn-bench/base:latest"
    bootstrap_base_image(client, tag)
    return tag


def _docker(image: str, script: str) -> list[str]:
    return ["docker", "run", "--rm", "-i", "--network", "none", image, "sh", "-c", script]


def direct_piped(image: str) -> float:
    cmd = " | ".join(shlex.join(_docker(image, step)) for step in STEPS)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - t0
    assert out == EXPECTED, out
    return elapsed


def direct_sequential(image: str) -> float:
    data = b""
    t0 = time.perf_counter()
    for step in STEPS:
        data = subprocess.run(_docker(image, step), input=data, capture_output=True,
                              check=True).stdout
    elapsed = time.perf_counter() - t0
    assert data.decode() == EXPECTED
    return elapsed


_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) \S+\s+(\S+): (.*)$")
_STATUS = re.compile(r"^run (\w+) job (\w+): ([A-Z]+)")
_PHASES = re.compile(r"^job (\w+) of run (\w+) phases: (.*)$")


def _timeline(logs: list[Path], run_ids: list[str],
              created: dict[str, float]) -> dict[tuple[str, str], list[float]]:
    """(job, event) → ms since the run was created, one value per run, from the nodes' logs.

    Requester events are its job status changes (log timestamps, 1 ms resolution); executor
    events are the ``phases`` line each executor logs per job (``time.time()`` marks).
    """
    out: dict[tuple[str, str], list[float]] = {}
    wanted = set(run_ids)
    for path in logs:
        for line in path.read_text(errors="replace").splitlines():
            m = _LOG_LINE.match(line)
            if not m:
                continue
            stamp = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + \
                int(m.group(2)) / 1000
            text = m.group(4)
            if (s := _STATUS.match(text)) and s.group(1) in wanted:
                run, job, status = s.groups()
                out.setdefault((job, f"req:{status}"), []).append(
                    (stamp - created[run]) * 1000)
            elif (p := _PHASES.match(text)) and p.group(2) in wanted:
                job, run = p.group(1), p.group(2)
                for item in p.group(3).split():
                    phase, _, at = item.partition("=")
                    out.setdefault((job, f"exe:{phase}"), []).append(
                        (float(at) - created[run]) * 1000)
    return out


def _print_timeline(events: dict[tuple[str, str], list[float]]) -> None:
    print("  timeline (ms since the run was created, median over runs; req = requester's "
          "status change, exe = executor's step):")
    order = sorted(events, key=lambda k: statistics.median(events[k]))
    previous = 0.0
    for job, event in order:
        at = statistics.median(events[(job, event)])
        print(f"    {at:7.0f}  (+{at - previous:5.0f})  {job:7s} {event}")
        previous = at


def bench_pipeline(runs: int) -> None:
    from tests.integration.workflow_cluster import control, wait_run, workflow_cluster

    image = _image()
    home = Path(tempfile.mkdtemp(prefix="rnn-bench-wf-"))
    variants = {"batch": PIPELINE, "stream": PIPELINE_STREAM}
    ours: dict[str, list[float]] = {k: [] for k in variants}
    inside: dict[str, list[float]] = {k: [] for k in variants}
    piped: list[float] = []
    seq: list[float] = []
    run_ids: dict[str, list[str]] = {k: [] for k in variants}
    created: dict[str, float] = {}
    try:
        with workflow_cluster(home / "nodes", 180, image, 3, {}, heartbeat_s=5.0) as (req, _):
            for _ in range(runs + 1):  # the first round warms caches and connections
                for kind, text in variants.items():
                    spec = home / f"pipeline-{kind}.yaml"
                    spec.write_text(text)
                    run = control(req, "run.start", yaml=text, source=str(spec))
                    status = wait_run(req, run["run_id"], timeout=120)
                    assert status["status"] == "COMPLETED", status
                    results = control(req, "run.results", run_id=run["run_id"])
                    assert Path(results["files"][0]["path"]).read_text() == EXPECTED
                    ours[kind].append(status["ended_at"] - status["created_at"])
                    run_ids[kind].append(run["run_id"])
                    created[run["run_id"]] = status["created_at"]
                    receipts = control(req, "run.receipts", run_id=run["run_id"])["receipts"]
                    inside[kind].append(
                        sum(r["ended_ms"] - r["started_ms"] for r in receipts) / 1000)
                piped.append(direct_piped(image))
                seq.append(direct_sequential(image))
        logs = sorted((home / "nodes").glob("*.log"))
        events = {kind: _timeline(logs, ids[1:], created) for kind, ids in run_ids.items()}
    finally:
        shutil.rmtree(home, ignore_errors=True)
    piped, seq = piped[1:], seq[1:]
    m_piped, m_seq = statistics.median(piped), statistics.median(seq)
    print(f"load average {os.getloadavg()[0]:.1f}; {runs} rounds (after one warm-up)")
    print(f"  docker run piped median {m_piped * 1000:.0f} ms {[round(x * 1000) for x in piped]}")
    print(f"  docker run sequential median {m_seq * 1000:.0f} ms "
          f"{[round(x * 1000) for x in seq]}")
    for kind in variants:
        times, own = ours[kind][1:], inside[kind][1:]
        m_ours, m_inside = statistics.median(times), statistics.median(own)
        baseline, name = (m_piped, "piped") if kind == "stream" else (m_seq, "sequential")
        print(f"pipeline, {kind} (3 jobs, 3 executors): workflow median {m_ours * 1000:.0f} ms "
              f"{[round(x * 1000) for x in times]}")
        print(f"  executors' own time (receipt start -> end), sum of 3 jobs: median "
              f"{m_inside * 1000:.0f} ms")
        print(f"  overhead per job vs {name} (like for like): "
              f"{(m_ours - baseline) / 3 * 1000:.0f} ms (target <= 150 ms); "
              f"vs piped: {(m_ours - m_piped) / 3 * 1000:.0f} ms")
        _print_timeline(events[kind])


async def _transfer_once(size: int, datagram: int | None, tmp: Path,
                         known: tuple[int, bytes]) -> tuple[float, int, float]:
    settings = TransportSettings(max_datagram_size=datagram, keepalive_interval=5.0,
                                 idle_timeout=60.0)
    a = Transport(Identity.generate(), settings=settings)
    b = Transport(Identity.generate(), settings=settings)
    await a.start(HOST, 0)
    await b.start(HOST, 0)
    src = tmp / "src.bin"
    landed: dict[str, int] = {}

    async def connect(peer: PeerId) -> PeerConnection:
        conn = a.connection_to(peer)
        return conn if conn is not None and conn.is_open else await a.dial(
            b.endpoint.local_addr, expected_peer_id=peer, timeout=5)

    async def accept(peer: PeerId, offer: XferOffer) -> Landing:
        return Landing(tmp / "in", "dst.bin", 1 << 40, lambda n, sha: landed.update(n=n))

    async def never(peer: PeerId, offer: XferOffer) -> Landing:
        raise WorkflowError("sender only")

    sender = TransferService(lambda p: connect(p), never)
    receiver = TransferService(lambda p: a.dial(b.endpoint.local_addr), accept)
    sender.install(a.handlers)
    receiver.install(b.handlers)
    peak = before = rss_bytes()
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_bytes())
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample(), name="bench:rss")
    try:
        t0, cpu0, loop0 = time.perf_counter(), time.process_time(), time.thread_time()
        # ``known``: an executor ships outputs it already hashed for the receipt (while the
        # job's output streamed), so the transfer itself does not hash the file first
        outcome = await sender.send_file(b.identity.peer_id, src, transfer_id="bench",
                                         name="dst.bin", run_id="r", source_job="a", attempt=1,
                                         connection=0, target_job="b", target="STDIN",
                                         known=known)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        print(f"    (driver round: event-loop thread CPU {time.thread_time() - loop0:.2f} s, "
              f"all threads {cpu:.2f} s)")
        assert outcome.ok and landed.get("n") == size, outcome
        return size / elapsed, peak - before, cpu
    finally:
        stop.set()
        await sampler
        await sender.close()
        await receiver.close()
        await a.close()
        await b.close()
        with_dst = tmp / "in" / "dst.bin"
        if with_dst.exists():
            with_dst.unlink()


def _write_source(path: Path, mb: int) -> None:
    with open(path, "wb") as handle:
        for _ in range(mb):
            handle.write(os.urandom(1 << 20))


async def bench_transfer(mb: int, runs: int, datagram: int | None) -> None:
    size = mb * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="rnn-bench-xfer-") as tmpdir:
        tmp = Path(tmpdir)
        await asyncio.to_thread(_write_source, tmp / "src.bin", mb)
        known = await asyncio.to_thread(hash_file, tmp / "src.bin")
        ours: list[float] = []
        bare: list[float] = []
        mem: list[int] = []
        cpu_ours: list[float] = []
        cpu_bare: list[float] = []
        for _ in range(runs):
            rate, grew, cpu = await _transfer_once(size, datagram, tmp, known)
            ours.append(rate)
            mem.append(grew)
            cpu_ours.append(cpu)
            cpu0, loop0 = time.process_time(), time.thread_time()
            bare.append(await bare_throughput(size, datagram))
            print(f"    (bare round: event-loop thread CPU {time.thread_time() - loop0:.2f} s)")
            cpu_bare.append(time.process_time() - cpu0)
    mo, mb_ = statistics.median(ours), statistics.median(bare)
    label = "default 1200 B" if datagram is None else f"{datagram} B"
    print(f"transfer {mb} MiB, datagrams {label}: driver median {mo / 1e6:.1f} MB/s "
          f"{[round(x / 1e6, 1) for x in ours]}, bare aioquic median {mb_ / 1e6:.1f} MB/s "
          f"{[round(x / 1e6, 1) for x in bare]}, ratio {mo / mb_:.0%} (target >= 90%)")
    print(f"  driver RSS growth during transfer: median {statistics.median(mem) / 2**20:.1f} MiB "
          f"{[round(m / 2**20, 1) for m in mem]} for a {mb} MiB object")
    print(f"  CPU seconds (all threads, both ends): driver median "
          f"{statistics.median(cpu_ours):.2f} {[round(c, 2) for c in cpu_ours]}, bare median "
          f"{statistics.median(cpu_bare):.2f} {[round(c, 2) for c in cpu_bare]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--transfer-runs", type=int, default=3)
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--skip-transfer", action="store_true")
    parser.add_argument("--datagram", type=int, action="append",
                        help="QUIC datagram size(s) to test (default: 1200 and 16383)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    if not args.skip_pipeline:
        bench_pipeline(args.runs)
    if not args.skip_transfer:
        for datagram in args.datagram or [None, 16383]:
            asyncio.run(bench_transfer(args.mb, args.transfer_runs,
                                       None if datagram in (None, 1200) else datagram))


if __name__ == "__main__":
    main()
