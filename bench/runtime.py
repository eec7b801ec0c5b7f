"""Container runtime benchmark: job overhead, live output rate, stdin feed rate.

All three go through ``DockerRuntime.run`` (the code the node uses), against the real engine,
with the default confinement (network none, limits, caps dropped, log driver none):

1. job overhead: a trivial job (``true``): create → attach → start → wait → inspect →
   remove, as seen by the caller of ``run``.  For scale, the same engine calls made
   directly with docker-py (same confinement, no threads, no streams, no files) are
   timed in the same runs ("raw engine"): on a loaded machine both grow together, and the
   difference is what our code adds;
2. live output: a job printing N lines of 76 bytes (75 characters + newline); the rate is
   lines counted in the ``on_output`` callback on the event loop, between the first and the
   last chunk (so container start-up is not in it), and also over the whole job;
3. stdin feed: M MiB fed to ``dd bs=1M iflag=fullblock of=/dev/null`` through the attach socket (busybox
   ``wc -c`` reads in small blocks and tops out near 50 MB/s, which would measure wc); the
   rate is measured between the first chunk requested from the source and EOF being sent,
   and dd's own count of full 1 MiB blocks is checked.

Each figure is the median of ``--runs`` runs.  Usage: ``python bench/runtime.py --runs 5``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docker  # noqa: E402

from rnn_tui.identity import Identity  # noqa: E402
from rnn_tui.services.images import bootstrap_base_image  # noqa: E402
from rnn_tui.services.model import Requirements  # noqa: E402
from rnn_tui.services.registry import (  # noqa: E402
    InMemoryServiceRepository,
    ServiceOptions,
    ServiceRegistry,
)
from rnn_tui.services.runtime import DockerRuntime, JobOutcome, JobRequest, OutputChunk  # noqa: E402

LINE = 76


async def job_overhead(runtime: DockerRuntime, service, requester, jobs: int) -> list[float]:  # type: ignore[no-untyped-def]
    times = []
    for i in range(jobs):
        t0 = time.perf_counter()
        result = await runtime.run(JobRequest(f"ovh-{i}-{os.getpid()}", service, requester,
                                              command=("true",)))
        times.append(time.perf_counter() - t0)
        assert result.outcome is JobOutcome.COMPLETED, result.explanation
        runtime.discard_workspace(result.job_id)
    return times


def raw_engine(client, image: str, jobs: int) -> list[float]:  # type: ignore[no-untyped-def]
    """The bare engine sequence with our container settings, for comparison."""
    api = client.api
    times = []
    for i in range(jobs):
        t0 = time.perf_counter()
        host = api.create_host_config(
            network_mode="none", mem_limit=512 << 20, memswap_limit=512 << 20,
            nano_cpus=10**9, pids_limit=128, security_opt=["no-new-privileges"],
            cap_drop=["ALL"], log_config={"Type": "none", "Config": {}})
        cid = api.create_container(image, ["true"], stdin_open=True, host_config=host,
                                   labels={"io.remote-network.bench": "raw"},
                                   name=f"rnn-bench-raw-{os.getpid()}-{i}")["Id"]
        sock = api.attach_socket(cid, {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        api.start(cid)
        api.wait(cid)
        api.inspect_container(cid)
        api.remove_container(cid, force=True)
        getattr(sock, "_sock", sock).close()
        times.append(time.perf_counter() - t0)
    return times


async def live_output(runtime: DockerRuntime, service, requester, lines: int, tag: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    counted = 0
    first = last = 0.0

    def on_output(chunk: OutputChunk) -> None:
        nonlocal counted, first, last
        now = time.perf_counter()
        if not first:
            first = now
        last = now
        counted += chunk.data.count(b"\n")

    text = "x" * (LINE - 1)
    t0 = time.perf_counter()
    result = await runtime.run(JobRequest(
        f"out-{tag}-{os.getpid()}", service, requester, on_output=on_output,
        command=("sh", "-c", f"yes {text} | head -n {lines}")))
    total = time.perf_counter() - t0
    assert result.outcome is JobOutcome.COMPLETED, result.explanation
    assert counted == lines and result.stdout_bytes == lines * LINE, (counted, result.stdout_bytes)
    runtime.discard_workspace(result.job_id)
    return counted / (last - first), counted / total


async def stdin_feed(runtime: DockerRuntime, service, requester, mib: int, tag: str) -> float:  # type: ignore[no-untyped-def]
    block = os.urandom(1 << 20)
    marks: list[float] = []

    def source() -> Iterator[bytes]:
        marks.append(time.perf_counter())
        for _ in range(mib):
            yield block
        marks.append(time.perf_counter())  # runs after the last sendall returned

    result = await runtime.run(JobRequest(f"in-{tag}-{os.getpid()}", service, requester,
                                          stdin=source(), command=("dd", "bs=1048576", "iflag=fullblock", "of=/dev/null")))
    assert result.outcome is JobOutcome.COMPLETED, result.explanation
    assert f"{mib}+0 records in" in result.stderr_path.read_text(), result.stderr_path.read_text()
    runtime.discard_workspace(result.job_id)
    return (mib << 20) / (marks[1] - marks[0]) / 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=20, help="trivial jobs per overhead run")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--stdin-mib", type=int, default=512)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    client = docker.from_env(timeout=120)
    tag = f"rnn-bench/base:{os.getpid()}"
    bootstrap_base_image(client, tag)
    me = Identity(os.urandom(32))
    registry = ServiceRegistry(InMemoryServiceRepository(), me.peer_id, clock=time.time)
    service = await registry.add_local_image(tag, ServiceOptions(
        name="bench", requirements=Requirements(memory_bytes=512 << 20)))
    figures: dict[str, list[float]] = {"overhead_ms": [], "raw_engine_ms": [],
                                       "output_lines_per_s": [],
                                       "output_lines_per_s_whole_job": [], "stdin_mb_per_s": []}
    with tempfile.TemporaryDirectory(prefix="rnn-bench-") as tmp:
        runtime = DockerRuntime(me.peer_id, Path(tmp), client=client)
        try:
            await job_overhead(runtime, service, me.peer_id, 2)  # warm-up
            for run in range(args.runs):
                times = await job_overhead(runtime, service, me.peer_id, args.jobs)
                figures["overhead_ms"].append(statistics.median(times) * 1000)
                raw = await asyncio.to_thread(raw_engine, client, tag, args.jobs)
                figures["raw_engine_ms"].append(statistics.median(raw) * 1000)
                streamed, whole = await live_output(runtime, service, me.peer_id, args.lines, str(run))
                figures["output_lines_per_s"].append(streamed)
                figures["output_lines_per_s_whole_job"].append(whole)
                figures["stdin_mb_per_s"].append(
                    await stdin_feed(runtime, service, me.peer_id, args.stdin_mib, str(run)))
        finally:
            await runtime.reap_leftovers()
            for container in client.containers.list(
                    all=True, filters={"label": "io.remote-network.bench=raw"}):
                container.remove(force=True)
            client.images.remove(tag, force=True)
    summary = {key: round(statistics.median(values), 1) for key, values in figures.items()}
    if args.json:
        print(json.dumps({"median": summary, "runs": figures}, indent=2))
        return
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"docker {client.version()['Version']}, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"runs: {args.runs} (overhead: median of {args.jobs} jobs each; output: {args.lines} "
          f"lines of {LINE} B; stdin: {args.stdin_mib} MiB)")
    for key, values in figures.items():
        print(f"{key:30s} median {statistics.median(values):>12,.1f}   runs "
              + " ".join(f"{v:,.1f}" for v in values))


if __name__ == "__main__":
    asyncio.run(main())
