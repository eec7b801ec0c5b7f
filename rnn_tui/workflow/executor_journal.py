"""The executor's journal of held jobs, and what it says about a job a restart lost.

Why it exists: an executor that stops (SIGTERM) or dies (kill -9) while holding jobs must not
leave its requesters waiting for a heartbeat timeout, nor leave containers behind.  Each held
job is journalled (the store's ``executor_jobs``) as its state changes; ``ExecutorService``
tells the requesters at shutdown, and after a crash ``recover`` reads the journal back.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Protocol

from rnn_tui.identity.keys import PeerId

__all__ = ["ExecutorJournal", "JournalEntry", "SHUTDOWN_REASONS", "lost_reason"]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One held job as the journal keeps it: enough to say what it was and clean it up.

    ``job_id`` names the workspace and labels the container; ``routing`` is the
    ``(connection, output, target peer)`` of every output route once the job started.
    """

    run_id: str
    job: str
    attempt: int
    requester: PeerId
    job_id: str
    service: str
    state: str
    routing: tuple[tuple[int, str, str], ...] = ()


class ExecutorJournal(Protocol):
    """Where held jobs are persisted (the node gives the store; tests may give the store too)."""

    async def save(self, entry: JournalEntry) -> None: ...

    async def forget(self, run_id: str, job: str, attempt: int) -> None: ...

    async def load(self) -> list[JournalEntry]: ...


SHUTDOWN_REASONS = {
    "accepted": "the executor node shut down before the job started",
    "running": "the executor node shut down while the job ran; its container was stopped "
               "and removed",
    "delivering": "the executor node shut down while delivering the outputs",
    "done": "the executor node shut down; the job's kept outputs are gone",
}


def lost_reason(state: str, container: dict[str, Any] | None) -> str:
    """What an executor that restarted says about a job it held (``container``: its State)."""
    if state == "accepted":
        return "the executor restarted before the job started; its reservation was lost"
    if state in ("delivering", "done"):
        return "the executor restarted while delivering the outputs; they were lost"
    if container is None:
        return "the executor restarted while the job ran; container lost"
    if "Error" in container and "Status" not in container:
        return f"the executor restarted while the job ran; container lost ({container['Error']})"
    if container.get("Running"):
        return ("the executor restarted while the job ran; container lost (it was still "
                "running: stopped and removed)")
    return (f"the executor restarted while the job ran; container lost (it had exited with "
            f"code {container.get('ExitCode')} but its output was not captured; removed)")


_UNSAFE_IN_JOB_ID = re.compile(r"[^A-Za-z0-9_.-]")


def executor_job_id(requester: PeerId, run_id: str, job: str, attempt: int) -> str:
    """The job's id on this executor: workspace directory, container name and labels.

    Readable (run, job, attempt with unsafe characters replaced) plus a hash of the exact
    tuple, so that two jobs whose names sanitise alike (a replica ``calc#2`` and a job
    ``calc_2``), or long names cut at the same place, never share a workspace or container.
    The journal stores it, so a restarted executor finds the job's container again.
    """
    readable = _UNSAFE_IN_JOB_ID.sub("_", f"{run_id}-{job}-{attempt}")[:100]
    digest = hashlib.sha256("\x1f".join((str(requester), run_id, job, str(attempt))).encode())
    return f"{readable}-{digest.hexdigest()[:12]}"
