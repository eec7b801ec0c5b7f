"""The scheduler's configuration, placement candidates and events (see ``scheduler.py``).

Kept apart so the state machine's module holds only transitions; ``scheduler`` re-exports
every name here.  Events are frozen, slotted, past-tense, one documented field each.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnn_tui.identity.keys import PeerId
from rnn_tui.workflow.messages import Report
from rnn_tui.workflow.model import JobRecord, RunRecord

__all__ = ["Candidate", "SchedulerConfig", "RunStatusChanged", "JobStatusChanged",
           "ReportIgnored", "SchedulerEvent"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A peer that offers a job's service, and the service's id there."""

    peer: PeerId
    service_id: str


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """Deadlines, in seconds.  ``heartbeat_timeout`` is typically 2× the executors' interval."""

    request_timeout: float = 10.0
    heartbeat_timeout: float = 10.0
    delivery_timeout: float = 300.0

    def __post_init__(self) -> None:
        for name in ("request_timeout", "heartbeat_timeout", "delivery_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"SchedulerConfig.{name} must be positive")


@dataclass(frozen=True, slots=True)
class RunStatusChanged:
    """The run moved to ``record.status`` (its reason says why, for FAILED/CANCELLED)."""

    record: RunRecord


@dataclass(frozen=True, slots=True)
class JobStatusChanged:
    """A job moved to ``record.status``; ``record.reason`` explains failures and retries."""

    record: JobRecord


@dataclass(frozen=True, slots=True)
class ReportIgnored:
    """A report was dropped: stale attempt, wrong peer, or not allowed in the job's state.

    Kept as an event (not an exception) because a peer's misbehaviour must never stop the
    requester; the node logs it and may lower the peer's reputation.
    """

    peer: PeerId
    report: Report
    reason: str


SchedulerEvent = RunStatusChanged | JobStatusChanged | ReportIgnored
