"""What the requester must persist to carry a run across its own restart.

Why: "after a restart of the requester, a run in flight continues, or ends with an explained
failure; nothing is silently lost".  The scheduler's state is small — the run and job
records, retry counters, which outputs already reached which executor — so the orchestrator
stores a :class:`SchedulerSnapshot` (as JSON text, in the store's run row) after every batch
of events, and ``Scheduler.restore`` rebuilds the machine from it.

Times in a snapshot are whatever clock the driver fed as ``now``; ``restore`` does not trust
old deadlines across a restart and re-arms them from the new ``now`` (see its docstring).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rnn_tui.errors import StoreError
from rnn_tui.identity.keys import PeerId
from rnn_tui.workflow.messages import OutputDigest
from rnn_tui.workflow.model import JobRecord, JobStatus, RunRecord, RunStatus

__all__ = ["JobSnapshot", "SchedulerSnapshot", "SNAPSHOT_VERSION"]

SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    record: JobRecord
    tries: int
    next_candidate: int
    outputs: tuple[OutputDigest, ...] = ()
    deliveries: int = 0


@dataclass(frozen=True, slots=True)
class SchedulerSnapshot:
    """Everything ``Scheduler.restore`` needs besides the workflow and the candidates."""

    run: RunRecord
    jobs: tuple[JobSnapshot, ...]
    delivered: tuple[tuple[str, str, PeerId], ...]
    request_phase: bool
    first_error: str
    streaming: tuple[tuple[str, str, PeerId, int], ...] = ()
    """Live pipes: (producer, consumer, consumer's executor, consumer's attempt)."""

    def to_json(self) -> str:
        return json.dumps({
            "v": SNAPSHOT_VERSION,
            "run": _run_to_dict(self.run),
            "jobs": [_job_to_dict(j) for j in self.jobs],
            "delivered": [[u, d, p.hex] for u, d, p in self.delivered],
            "request_phase": self.request_phase,
            "first_error": self.first_error,
            "streaming": [[p, c, e.hex, a] for p, c, e, a in self.streaming],
        }, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SchedulerSnapshot:
        """Parse a stored snapshot; ``StoreError`` if it is damaged or of another version."""
        try:
            data = json.loads(text)
            if data.get("v") != SNAPSHOT_VERSION:
                raise StoreError(f"scheduler snapshot version {data.get('v')!r} is not "
                                 f"{SNAPSHOT_VERSION}")
            run = _run_from_dict(data["run"])
            return cls(
                run=run,
                jobs=tuple(_job_from_dict(j, run.run_id) for j in data["jobs"]),
                delivered=tuple((str(u), str(d), PeerId(bytes.fromhex(p)))
                                for u, d, p in data["delivered"]),
                request_phase=bool(data["request_phase"]),
                first_error=str(data["first_error"]),
                streaming=tuple((str(p), str(c), PeerId(bytes.fromhex(e)), int(a))
                                for p, c, e, a in data.get("streaming", [])),
            )
        except StoreError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreError(f"damaged scheduler snapshot: {exc!r}") from None


def _peer_hex(peer: PeerId | None) -> str | None:
    return None if peer is None else peer.hex


def _peer(text: Any) -> PeerId | None:
    return None if text is None else PeerId(bytes.fromhex(str(text)))


def _run_to_dict(run: RunRecord) -> dict[str, Any]:
    return {"run_id": run.run_id, "workflow": run.workflow, "status": run.status.value,
            "created_at": run.created_at, "started_at": run.started_at,
            "ended_at": run.ended_at, "reason": run.reason}


def _run_from_dict(d: dict[str, Any]) -> RunRecord:
    return RunRecord(str(d["run_id"]), str(d["workflow"]), RunStatus(d["status"]),
                     float(d["created_at"]), _opt_float(d["started_at"]),
                     _opt_float(d["ended_at"]), str(d["reason"]))


def _job_to_dict(j: JobSnapshot) -> dict[str, Any]:
    r = j.record
    return {"job": r.job, "status": r.status.value, "attempt": r.attempt,
            "executor": _peer_hex(r.executor), "service_id": r.service_id,
            "exit_code": r.exit_code, "started_at": r.started_at, "ended_at": r.ended_at,
            "updated_at": r.updated_at, "reason": r.reason, "tries": j.tries,
            "next_candidate": j.next_candidate, "deliveries": j.deliveries,
            "outputs": [[o.source, o.size, o.sha256] for o in j.outputs]}


def _job_from_dict(d: dict[str, Any], run_id: str) -> JobSnapshot:
    record = JobRecord(
        run_id=run_id, job=str(d["job"]), status=JobStatus(d["status"]),
        attempt=int(d["attempt"]), executor=_peer(d["executor"]),
        service_id=None if d["service_id"] is None else str(d["service_id"]),
        exit_code=None if d["exit_code"] is None else int(d["exit_code"]),
        started_at=_opt_float(d["started_at"]), ended_at=_opt_float(d["ended_at"]),
        updated_at=float(d["updated_at"]), reason=str(d["reason"]))
    outputs = tuple(OutputDigest(str(s), int(n), str(h)) for s, n, h in d["outputs"])
    return JobSnapshot(record, int(d["tries"]), int(d["next_candidate"]), outputs,
                       int(d["deliveries"]))


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
