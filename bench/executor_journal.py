"""Executor journal cost: what persisting held jobs adds to a job (restart recovery).

An executor writes a job's row when it accepts it (awaited before ``JobAccepted`` is
answered: the only write on a job's critical path), again when it starts and ends, and
deletes it when released (those are written behind the job).  This measures, on a real
store (SQLite WAL on the data dir's file system, its DB thread):

* the wall time of the awaited acceptance write (median and p95 of ``--jobs``);
* the CPU time of all four writes per job (``time.process_time``, this process).

Usage: ``python bench/executor_journal.py [--jobs 500]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from rnn_tui.store import Store
from rnn_tui.store import runs as R


async def measure(jobs: int, root: Path) -> dict[str, float]:
    store = Store(root / "node.db")
    try:
        waits = []
        cpu0 = time.process_time()
        for i in range(jobs):
            row = R.ExecutorJobRow("run1", f"j{i}", 1, "requester", f"run1-j{i}-1", "busybox",
                                   "accepted", {"outputs": []}, time.time())
            t0 = time.perf_counter()
            await store.call(R.save_executor_job, store, row)
            waits.append(time.perf_counter() - t0)
            for state in ("running", "done"):
                await store.call(R.save_executor_job, store, R.ExecutorJobRow(
                    row.run_id, row.job, 1, row.requester, row.job_id, row.service, state,
                    {"outputs": [[0, "STDOUT", "peer"]]}, time.time()))
            await store.call(R.forget_executor_job, store, row.run_id, row.job, 1)
        cpu = time.process_time() - cpu0
    finally:
        store.close()
    waits.sort()
    return {"accept_median_ms": statistics.median(waits) * 1e3,
            "accept_p95_ms": waits[int(0.95 * (len(waits) - 1))] * 1e3,
            "cpu_per_job_ms": cpu / jobs * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(measure(args.jobs, Path(tmp)))
    print(f"load average {os.getloadavg()[0]:.2f}; {args.jobs} jobs")
    for key, value in result.items():
        print(f"{key:>18}: {value:.3f}")


if __name__ == "__main__":
    main()
