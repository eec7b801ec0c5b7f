"""Workflow cores benchmark: what the pure parts cost, in CPU time, on one core.

Figures (median of ``--runs``):

* YAML load + validate of each example in ``workflows/`` and of a generated 200-job DAG (ms);
* the scheduler's own cost per job for 100- and 1000-job random DAG runs against instant
  executors
  (µs of CPU per job: its share of the "≤ 150 ms orchestration overhead per job" target);
* the transfer core moving ``--mib`` MiB in memory, sender → receiver, with per-chunk and
  whole-object sha256 (MB/s), against bare hashlib sha256 of the same bytes, and the most
  source bytes the sender ever held (memory stays flat: ``window × chunk``);
* receipts signed + encoded, and opened + verified, per second.

CPU time (``time.process_time``) keeps the figures independent of the other work on this
shared machine.  Usage: ``python bench/workflow_cores.py [--runs 5] [--mib 256]``
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rnn_tui.identity.keys import Identity  # noqa: E402
from rnn_tui.workflow.messages import (  # noqa: E402
    ExecState,
    JobAccepted,
    JobExited,
    JobStatusReported,
    OutputsDelivered,
    RequestJob,
    StartJob,
)
from rnn_tui.workflow.model import (  # noqa: E402
    Connection,
    InterfaceType,
    Job,
    MountDirection,
    MountSpec,
    PortRef,
    RunStatus,
    ServiceRef,
    Workflow,
)
from rnn_tui.workflow.receipts import (  # noqa: E402
    Digest,
    Receipt,
    open_receipt,
    sign_receipt,
    verify_receipt,
)
from rnn_tui.workflow.scheduler import Candidate, Scheduler  # noqa: E402
from rnn_tui.workflow.transfer import (  # noqa: E402
    TransferReceiver,
    TransferSender,
    WriteChunk,
)
from rnn_tui.workflow.validate import validate_workflow  # noqa: E402
from rnn_tui.workflow.yaml_io import dump_workflow, load_workflow  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def cpu(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def random_dag(n: int, seed: int) -> Workflow:
    """Job j reads the STDOUT of one or two earlier jobs as files in its ``/in`` mount."""
    rng = random.Random(seed)
    names = [f"j{i}" for i in range(n)]
    conns = []
    for j in range(1, n):
        for i in rng.sample(range(j), k=min(j, rng.randint(1, 2))):
            conns.append(Connection(PortRef(names[i], InterfaceType.STDOUT),
                                    PortRef(names[j], InterfaceType.MOUNT, "/in"),
                                    f"{names[i]}.txt"))
    inbox = (MountSpec("/in", MountDirection.INPUT),)
    jobs = tuple(Job(name, ServiceRef("svc"), mounts=inbox if k else ())
                 for k, name in enumerate(names))
    return Workflow("bench", jobs, tuple(conns))


def bench_yaml(runs: int) -> dict[str, float]:
    out = {}
    texts = {p.stem: p.read_text() for p in sorted((ROOT / "workflows").glob("*.yaml"))}
    texts["generated-200-jobs"] = dump_workflow(random_dag(200, 1))
    for name, text in texts.items():
        def once(text: str = text) -> None:
            loaded = load_workflow(text)
            assert validate_workflow(loaded.workflow, loaded.marks) == []
        out[name] = statistics.median(cpu(once) for _ in range(runs)) * 1000
    return out


def bench_scheduler(runs: int, n: int = 100) -> float:
    peers = [Identity(bytes([i]) * 32).peer_id for i in range(1, 5)]
    requester = Identity(b"\x09" * 32).peer_id
    wf = random_dag(n, 2)
    candidates = {job.name: [Candidate(peers[i % 4], "svc")] for i, job in enumerate(wf.jobs)}

    def once() -> None:
        s = Scheduler("r", wf, requester, candidates, now=0.0)
        s.start(0.0)
        now = 0.0
        pending = s.commands_to_send()
        while pending:
            now += 0.001
            cmd = pending.pop(0)
            if isinstance(cmd, RequestJob):
                s.receive(cmd.peer, JobAccepted("r", cmd.job, cmd.attempt), now)
            elif isinstance(cmd, StartJob):
                s.receive(cmd.peer, JobStatusReported("r", cmd.job, cmd.attempt,
                                                      ExecState.RUNNING), now)
                s.receive(cmd.peer, JobExited("r", cmd.job, cmd.attempt, 0), now)
                s.receive(cmd.peer, OutputsDelivered("r", cmd.job, cmd.attempt, 0), now)
            while s.next_event() is not None:
                pass
            pending.extend(s.commands_to_send())
        assert s.run.status is RunStatus.COMPLETED

    return statistics.median(cpu(once) for _ in range(runs)) / n * 1e6


def bench_transfer(runs: int, mib: int, chunk: int = 256 * 1024,
                   window: int = 16) -> tuple[float, float, int]:
    block = random.Random(3).randbytes(chunk)
    total = mib * 1024 * 1024

    def once() -> int:
        sender = TransferSender("b", "out", chunk_size=chunk, window=window)
        receiver = TransferReceiver("b", max_size=total)
        held = 0
        written = 0
        while not (sender.finished and receiver.finished):
            want = sender.wants_data()
            if want and sender.read_offset < total:
                sender.push(block[:min(want, chunk, total - sender.read_offset)])
            elif want:
                sender.finish()
            held = max(held, sender.held_bytes)
            for msg in sender.messages_to_send():
                receiver.receive(msg)
                while (event := receiver.next_event()) is not None:
                    if isinstance(event, WriteChunk):
                        written += len(event.data)
            for msg in receiver.messages_to_send():
                sender.receive(msg)
        assert written == total and receiver.failure == ""
        return held

    times, helds = [], []
    for _ in range(runs):
        start = time.process_time()
        helds.append(once())
        times.append(time.process_time() - start)
    data = block * (16 * 1024 * 1024 // chunk)
    bare = statistics.median(cpu(lambda: hashlib.sha256(data).digest()) for _ in range(runs))
    return total / statistics.median(times) / 1e6, len(data) / bare / 1e6, max(helds)


def bench_receipts(runs: int, count: int = 2000) -> tuple[float, float]:
    executor, requester = Identity(b"\x01" * 32), Identity(b"\x02" * 32)
    sha = hashlib.sha256(b"x").hexdigest()
    receipt = Receipt("run", "job", 1, requester.peer_id, executor.peer_id, "a" * 32, "busybox",
                      "sha256:" + "b" * 64, (Digest("STDIN", 1, sha),),
                      (Digest("STDOUT", 1, sha), Digest("STDERR", 0, sha)), 0, 1, 2)
    signed = sign_receipt(executor, receipt)

    def sign() -> None:
        for _ in range(count):
            sign_receipt(executor, receipt)

    def check() -> None:
        for _ in range(count):
            verify_receipt(open_receipt(signed.body, signed.signature),
                           executor=executor.peer_id)

    return (count / statistics.median(cpu(sign) for _ in range(runs)),
            count / statistics.median(cpu(check) for _ in range(runs)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    print(f"workflow cores, CPU time, median of {args.runs} runs")
    for name, ms in bench_yaml(args.runs).items():
        print(f"  yaml load+validate  {name:<24} {ms:8.2f} ms")
    for jobs in (100, 1000):
        print(f"  scheduler           {jobs}-job random DAG  {bench_scheduler(args.runs, jobs):8.1f}"
              " µs CPU per job")
    rate, bare, held = bench_transfer(args.runs, args.mib)
    print(f"  transfer core       {args.mib} MiB, 256 KiB chunks  {rate:8.0f} MB/s "
          f"(bare sha256 {bare:.0f} MB/s); sender held at most {held / 1024 / 1024:.1f} MiB")
    signs, checks = bench_receipts(args.runs)
    print(f"  receipts            sign+encode {signs:8.0f}/s, open+verify {checks:8.0f}/s")


if __name__ == "__main__":
    main()
