"""Messages between a requester and its executors, as frozen, slotted dataclasses.

Why a module of its own: the scheduler core (requester side) emits the commands and consumes
the reports, the orchestrator encodes them for the transport, and an executor decodes and
answers them.  Keeping them in one small pure module gives all three the same vocabulary.

Every message names ``run_id``, ``job`` and ``attempt``: a report about an older attempt, or
from a peer that is not the job's current executor, is recognised and ignored, never applied.

Commands (requester → executor) carry the ``peer`` they go to; the transport sends them over
the authenticated connection to that peer, so the executor knows who asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rnn_tui.identity.keys import PeerId
from rnn_tui.workflow.model import Limits, MountDirection

__all__ = [
    "InputRoute", "OutputRoute",
    "RequestJob", "StartJob", "DeliverOutputs", "CancelJob", "ReleaseJob", "Command",
    "ExecState", "JobAccepted", "JobRefused", "JobStatusReported", "JobExited",
    "OutputsDelivered", "Heartbeat", "Report", "OutputDigest",
]


# --------------------------------------------------------------------------- routing


@dataclass(frozen=True, slots=True)
class OutputRoute:
    """Where one output goes: ``source`` (``STDOUT``, ``MOUNT:/out/r.csv``) → a peer.

    ``target_job`` is ``None`` when the destination is the requester itself; ``target`` is the
    destination interface key (``STDIN``, ``MOUNT:/in``) and ``file`` its file name there.
    ``connection`` is the index of the workflow connection this route realises; ``stream``
    means it is piped while the job runs (``stream: true``) rather than sent after it exits.
    """

    connection: int
    source: str
    target_peer: PeerId
    target_job: str | None
    target: str | None
    file: str | None
    stream: bool = False


@dataclass(frozen=True, slots=True)
class InputRoute:
    """Where one input comes from: ``source_job``'s ``source`` on ``source_peer``.

    An executor accepts an incoming transfer only when it matches one of its input routes
    (peer, job, connection); anything else is refused ("output not in the routing").
    A ``stream`` input is fed to the job while it arrives, so the job starts without it.
    """

    connection: int
    source_job: str
    source: str
    source_peer: PeerId
    target: str
    file: str | None
    stream: bool = False


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class RequestJob:
    """Phase 1: "will you run this?"  The executor checks service, policy, capacity and the
    requester's identity, then answers ``JobAccepted`` or ``JobRefused`` with a reason."""

    peer: PeerId
    run_id: str
    job: str
    attempt: int
    service: str
    env: tuple[tuple[str, str], ...] = ()
    args: tuple[str, ...] = ()
    mounts: tuple[tuple[str, MountDirection], ...] = ()
    limits: Limits | None = None
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class StartJob:
    """Phase 2: run it.  Sent once every input has been delivered to this executor.

    ``delivery`` numbers this job's output deliveries (0 for the first); ``OutputsDelivered``
    echoes it so a later re-delivery (``DeliverOutputs``) is not confused with this one.
    ``hash_only`` names outputs to hash (and sign) though no route ships them: a redundant
    replica's outputs are compared, not delivered.
    """

    peer: PeerId
    run_id: str
    job: str
    attempt: int
    inputs: tuple[InputRoute, ...]
    outputs: tuple[OutputRoute, ...]
    delivery: int = 0
    hash_only: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeliverOutputs:
    """Send a completed job's outputs again, to a downstream job's new executor (a retry)."""

    peer: PeerId
    run_id: str
    job: str
    attempt: int
    outputs: tuple[OutputRoute, ...]
    delivery: int


@dataclass(frozen=True, slots=True)
class CancelJob:
    """Stop the job (or drop the reservation) and clean up; ``reason`` is shown to the owner."""

    peer: PeerId
    run_id: str
    job: str
    attempt: int
    reason: str


@dataclass(frozen=True, slots=True)
class ReleaseJob:
    """The run is over: the executor may delete this job's kept outputs."""

    peer: PeerId
    run_id: str
    job: str
    attempt: int


Command = RequestJob | StartJob | DeliverOutputs | CancelJob | ReleaseJob


# --------------------------------------------------------------------------- reports


class ExecState(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"


@dataclass(frozen=True, slots=True)
class OutputDigest:
    """An output an executor produced: its interface key, size and sha256 (hex)."""

    source: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class JobAccepted:
    run_id: str
    job: str
    attempt: int


@dataclass(frozen=True, slots=True)
class JobRefused:
    run_id: str
    job: str
    attempt: int
    reason: str


@dataclass(frozen=True, slots=True)
class JobStatusReported:
    run_id: str
    job: str
    attempt: int
    state: ExecState
    detail: str = ""


@dataclass(frozen=True, slots=True)
class JobExited:
    """The process ended; ``reason`` explains a non-zero code (OOM, timeout, signal...)."""

    run_id: str
    job: str
    attempt: int
    exit_code: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OutputsDelivered:
    """Delivery number ``delivery`` is over: every route was tried to the end.

    ``outputs`` describes what was produced (checked against the receipt); ``failed`` lists
    ``(connection index, reason)`` for routes whose receiver did not acknowledge.  One report
    per delivery keeps the order simple: a failed route is the receiver's attempt failing
    (it moves, and the output is delivered again), unless the receiver is the requester.
    """

    run_id: str
    job: str
    attempt: int
    delivery: int
    outputs: tuple[OutputDigest, ...] = ()
    failed: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True, slots=True)
class JobLost:
    """The executor no longer holds this attempt: it restarted or shut down with it in hand.

    Why a report of its own: without it the requester learns of the loss only from a
    heartbeat timeout.  The executor sends it as soon as it knows (while shutting down, or
    when it comes back and finds the attempt in its journal), with what became of the
    container in ``reason``; the requester's retry policy then applies at once.
    """

    run_id: str
    job: str
    attempt: int
    reason: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    run_id: str
    job: str
    attempt: int


Report = (JobAccepted | JobRefused | JobStatusReported | JobExited | OutputsDelivered
          | JobLost | Heartbeat)
