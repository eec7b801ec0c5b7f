"""Workflow domain model: jobs, ports, connections, and run/job state records.

Why this module is pure data: the same workflow is edited in the TUI's node-graph editor,
read from and written to YAML, validated, stored, and executed by the scheduler core.  Each
of those needs the *same* plain, immutable value, with no IO and no hidden state, so that
``load(dump(w)) == w`` holds and two copies can be compared with ``==``.

Vocabulary
----------
* A :class:`Workflow` is a named set of :class:`Job` s and :class:`Connection` s.
* A job runs one *service*: either on a given peer, or on ``any`` peer offering a service of
  that name (resolved when the run starts).  See :class:`ServiceRef`.
* A :class:`PortRef` names one interface of a job: ``count.STDOUT``, ``merge.MOUNT:/data/in``,
  or a file inside a mount, ``clean.MOUNT:/data/out/clean.csv``.  The interface types and mount
  directions are the services package's, so a workflow speaks the same words as a service.
* A :class:`Connection` carries one output to one input, or to the requester (``self``).
  ``file`` names the file the data becomes at a MOUNT destination or at ``self``.

States follow the original's job states (IDLE, READY, RUNNING, COMPLETED, ERRORED, CANCELLED)
plus the steps our two-phase protocol makes visible (REQUESTED, ACCEPTED, QUEUED, DELIVERING).
Transitions are a table; a missing entry is our bug and raises ``LocalProtocolError``, as in
h11.  Records are immutable and change only through ``with_status()`` (Prefect-style).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field, replace
from enum import StrEnum

from rnn_tui.errors import LocalProtocolError
from rnn_tui.identity.keys import PeerId
from rnn_tui.services.model import InterfaceType, MountDirection

__all__ = [
    "InterfaceType",
    "MountDirection",
    "SELF",
    "ServiceRef",
    "PortRef",
    "MountSpec",
    "Limits",
    "RetryPolicy",
    "Position",
    "MAX_POSITION",
    "Job",
    "Connection",
    "Workflow",
    "RunStatus",
    "JobStatus",
    "RUN_TERMINAL",
    "RUN_IN_PROGRESS",
    "RUN_CANCELABLE",
    "JOB_TERMINAL",
    "JOB_IN_PROGRESS",
    "JOB_CANCELABLE",
    "RunRecord",
    "JobRecord",
    "is_output",
    "is_input",
    "NAME_PATTERN",
]

SELF = "self"
"""The requester, as a connection destination."""

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
"""Job names: they appear in ``job.PORT`` references, so no dots, colons or spaces."""

_OUTPUT_TYPES = frozenset({InterfaceType.STDOUT, InterfaceType.STDERR, InterfaceType.LOGS})


# --------------------------------------------------------------------------- references


@dataclass(frozen=True, slots=True)
class ServiceRef:
    """Which service a job runs, and where.

    ``peer`` is ``None`` for "any peer offering a service called ``service``": the orchestrator
    resolves it when the run starts and may move a retry to another such peer.  ``service`` is
    a service name or a service id (32 hex digits) on that peer.
    """

    service: str
    peer: PeerId | None = None

    @property
    def is_any(self) -> bool:
        return self.peer is None

    def __str__(self) -> str:
        return f"{self.service}@{'any' if self.peer is None else self.peer.short}"


@dataclass(frozen=True, slots=True)
class PortRef:
    """One interface of one job: ``job.STDOUT`` or ``job.MOUNT:/path``.

    For MOUNT, ``path`` is the mount's path inside the container, or a file below it (an
    output file to ship, e.g. ``/data/out/result.csv``).  Other types have no path.
    """

    job: str
    interface: InterfaceType
    path: str | None = None

    def __post_init__(self) -> None:
        if self.interface is InterfaceType.MOUNT:
            if not self.path or not self.path.startswith("/"):
                raise ValueError(f"{self.job}.MOUNT needs an absolute path, e.g. MOUNT:/data")
            if ".." in self.path.split("/"):
                raise ValueError(f"{self.job}.MOUNT:{self.path}: '..' is not allowed")
            object.__setattr__(self, "path", posixpath.normpath(self.path))
        elif self.path is not None:
            raise ValueError(f"{self.job}.{self.interface.value}: only MOUNT takes a path")

    @property
    def key(self) -> str:
        """The interface part alone: ``STDOUT`` or ``MOUNT:/data/out``."""
        if self.interface is InterfaceType.MOUNT:
            return f"MOUNT:{self.path}"
        return str(self.interface.value)

    def __str__(self) -> str:
        return f"{self.job}.{self.key}"

    @classmethod
    def parse(cls, text: str) -> PortRef:
        """Parse ``job.STDOUT`` / ``job.MOUNT:/data/out``; ``ValueError`` says what is wrong."""
        if not isinstance(text, str) or "." not in text:
            raise ValueError(f"{text!r} is not a port reference; write job.INTERFACE")
        job, _, rest = text.partition(".")
        if not NAME_PATTERN.match(job):
            raise ValueError(f"{text!r}: {job!r} is not a valid job name")
        kind, sep, path = rest.partition(":")
        try:
            itype = InterfaceType(kind.upper())
        except ValueError:
            names = ", ".join(t.value for t in InterfaceType)
            raise ValueError(f"{text!r}: unknown interface {kind!r} (one of {names})") from None
        if itype is InterfaceType.MOUNT and not sep:
            raise ValueError(f"{text!r}: MOUNT needs a path, e.g. {job}.MOUNT:/data")
        if itype is not InterfaceType.MOUNT and sep:
            raise ValueError(f"{text!r}: only MOUNT takes a path")
        return cls(job, itype, path if sep else None)


@dataclass(frozen=True, slots=True)
class MountSpec:
    """A mount a job declares in the workflow (the service may declare more)."""

    path: str
    direction: MountDirection

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or ".." in self.path.split("/"):
            raise ValueError(f"mount path {self.path!r} must be absolute and without '..'")
        object.__setattr__(self, "path", posixpath.normpath(self.path))

    def contains(self, path: str) -> bool:
        """True when ``path`` is this mount or a file below it."""
        return path == self.path or path.startswith(self.path.rstrip("/") + "/")


def is_output(interface: InterfaceType, direction: MountDirection | None = None) -> bool:
    """Can data flow *out of* this interface?"""
    if interface is InterfaceType.MOUNT:
        return direction in (MountDirection.OUTPUT, MountDirection.BOTH)
    return interface in _OUTPUT_TYPES


def is_input(interface: InterfaceType, direction: MountDirection | None = None) -> bool:
    """Can data flow *into* this interface?"""
    if interface is InterfaceType.MOUNT:
        return direction in (MountDirection.INPUT, MountDirection.BOTH)
    return interface is InterfaceType.STDIN


# --------------------------------------------------------------------------- jobs


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-job resource caps; ``None`` means "the service's own requirement"."""

    cpu_millis: int | None = None
    memory_mb: int | None = None
    pids: int | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a failed job is tried again, and whether a retry may change peer.

    ``attempts`` counts every try, so 1 means "no retry".  With ``other_peer`` a retry goes to
    the next peer offering the same service (only for ``any`` references).
    """

    attempts: int = 1
    other_peer: bool = False
    backoff_s: float = 0.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("retry.attempts must be at least 1")
        if self.backoff_s < 0:
            raise ValueError("retry.backoff_s must not be negative")


MAX_POSITION = 4096
"""Largest layout-hint coordinate, in character cells: the editor allocates its canvas up to
the farthest box, so an absurd hint must not cost gigabytes."""


@dataclass(frozen=True, slots=True)
class Position:
    """An editor layout hint: the top-left cell where the node-graph editor draws this job.

    Optional and advisory: execution ignores it, and the editor falls back to its automatic
    layered layout for jobs without one.  Kept per job (not in a workflow-level map) so a
    hint can never name a job that does not exist, and renaming a job keeps its place.
    Integer cells, because the editor draws on a character grid.
    """

    x: int
    y: int

    def __post_init__(self) -> None:
        for axis, value in (("x", self.x), ("y", self.y)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"position.{axis} must be an integer, not {value!r}")
            if not 0 <= value <= MAX_POSITION:
                raise ValueError(f"position.{axis} must be between 0 and {MAX_POSITION}, "
                                 f"not {value}")


@dataclass(frozen=True, slots=True)
class Job:
    """One step of a workflow: a service with its parameters.

    ``env`` and ``defaults`` are ordered pairs (not dicts) so the value stays hashable and the
    YAML round trip keeps the author's order.  ``defaults`` maps an input interface key
    (``STDIN``, ``MOUNT:/data/in/params.txt``) to literal text used when nothing is connected.
    ``redundancy`` runs the job on that many distinct peers and ``confidence`` (default: a
    strict majority) is how many of them must produce identical outputs for it to complete.
    """

    name: str
    service: ServiceRef
    description: str = ""
    env: tuple[tuple[str, str], ...] = ()
    args: tuple[str, ...] = ()
    mounts: tuple[MountSpec, ...] = ()
    defaults: tuple[tuple[str, str], ...] = ()
    limits: Limits | None = None
    timeout_s: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    position: Position | None = None
    redundancy: int = 1
    confidence: int | None = None

    @property
    def quorum(self) -> int:
        """How many replicas must agree: ``confidence``, or a strict majority of them."""
        return self.confidence if self.confidence is not None else self.redundancy // 2 + 1

    @property
    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    @property
    def defaults_dict(self) -> dict[str, str]:
        return dict(self.defaults)

    def mount_for(self, path: str) -> MountSpec | None:
        """The declared mount containing ``path`` (the longest match), if any."""
        best: MountSpec | None = None
        for mount in self.mounts:
            if mount.contains(path) and (best is None or len(mount.path) > len(best.path)):
                best = mount
        return best

    def port(self, key: str) -> PortRef:
        """``job.port("STDOUT")`` → ``PortRef(job.name, STDOUT)``."""
        return PortRef.parse(f"{self.name}.{key}")


@dataclass(frozen=True, slots=True)
class Connection:
    """Data from ``source`` goes to ``target`` (a job's input) or to the requester (``None``).

    ``file`` is the name the data gets at a MOUNT destination or at ``self``; it is a plain
    relative name, confined to the destination directory when the transfer lands.
    ``stream`` (STDOUT/STDERR → STDIN only) pipes the output into the consumer while the
    producer still runs, instead of delivering it after the producer exits.
    """

    source: PortRef
    target: PortRef | None = None
    file: str | None = None
    stream: bool = False

    @property
    def to_self(self) -> bool:
        return self.target is None

    def __str__(self) -> str:
        dst = SELF if self.target is None else str(self.target)
        suffix = f" as {self.file}" if self.file else ""
        streamed = " (streamed)" if self.stream else ""
        return f"{self.source} -> {dst}{suffix}{streamed}"


@dataclass(frozen=True, slots=True)
class Workflow:
    """A named DAG of jobs and connections; plain, serializable, validated elsewhere."""

    name: str
    jobs: tuple[Job, ...] = ()
    connections: tuple[Connection, ...] = ()
    description: str = ""

    def job(self, name: str) -> Job:
        for job in self.jobs:
            if job.name == name:
                return job
        raise KeyError(f"workflow {self.name!r} has no job {name!r}")

    @property
    def job_names(self) -> tuple[str, ...]:
        return tuple(job.name for job in self.jobs)

    def inputs_of(self, job: str) -> tuple[Connection, ...]:
        return tuple(c for c in self.connections if c.target is not None and c.target.job == job)

    def outputs_of(self, job: str) -> tuple[Connection, ...]:
        return tuple(c for c in self.connections if c.source.job == job)

    def upstream_of(self, job: str) -> frozenset[str]:
        """Jobs whose output this job consumes."""
        return frozenset(c.source.job for c in self.inputs_of(job))

    def downstream_of(self, job: str) -> frozenset[str]:
        return frozenset(c.target.job for c in self.outputs_of(job) if c.target is not None)

    def with_job(self, job: Job) -> Workflow:
        """A copy with ``job`` added, or replacing the job of the same name (editor helper)."""
        jobs = [j for j in self.jobs if j.name != job.name]
        if len(jobs) == len(self.jobs):
            return replace(self, jobs=(*self.jobs, job))
        return replace(self, jobs=tuple(job if j.name == job.name else j for j in self.jobs))

    def without_job(self, name: str) -> Workflow:
        """A copy without job ``name`` and without the connections touching it."""
        return replace(
            self,
            jobs=tuple(j for j in self.jobs if j.name != name),
            connections=tuple(
                c for c in self.connections
                if c.source.job != name and (c.target is None or c.target.job != name)
            ),
        )


# --------------------------------------------------------------------------- states


class RunStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class JobStatus(StrEnum):
    IDLE = "IDLE"              # not yet asked of any executor
    REQUESTED = "REQUESTED"    # request phase: waiting for accept/refuse
    ACCEPTED = "ACCEPTED"      # an executor reserved it; waiting for upstream outputs
    READY = "READY"            # inputs delivered, start sent with routing
    QUEUED = "QUEUED"          # executor reported it queued (capacity)
    RUNNING = "RUNNING"
    DELIVERING = "DELIVERING"  # exited 0; outputs travelling to their destinations
    COMPLETED = "COMPLETED"
    ERRORED = "ERRORED"
    CANCELLED = "CANCELLED"


RUN_TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})
RUN_IN_PROGRESS = frozenset({RunStatus.RUNNING})
RUN_CANCELABLE = frozenset({RunStatus.PENDING, RunStatus.RUNNING})

JOB_TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.ERRORED, JobStatus.CANCELLED})
JOB_IN_PROGRESS = frozenset({
    JobStatus.REQUESTED, JobStatus.ACCEPTED, JobStatus.READY, JobStatus.QUEUED,
    JobStatus.RUNNING, JobStatus.DELIVERING,
})
JOB_CANCELABLE = frozenset({JobStatus.IDLE}) | JOB_IN_PROGRESS

_RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.RUNNING: frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED}),
}

_J = JobStatus
_JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    _J.IDLE: frozenset({_J.REQUESTED, _J.COMPLETED, _J.CANCELLED, _J.ERRORED}),
    _J.REQUESTED: frozenset({_J.ACCEPTED, _J.IDLE, _J.ERRORED, _J.CANCELLED}),
    _J.ACCEPTED: frozenset({_J.READY, _J.IDLE, _J.ERRORED, _J.CANCELLED}),
    _J.READY: frozenset({_J.QUEUED, _J.RUNNING, _J.DELIVERING, _J.IDLE, _J.ERRORED,
                         _J.CANCELLED}),
    _J.QUEUED: frozenset({_J.RUNNING, _J.DELIVERING, _J.IDLE, _J.ERRORED, _J.CANCELLED}),
    _J.RUNNING: frozenset({_J.DELIVERING, _J.IDLE, _J.ERRORED, _J.CANCELLED}),
    _J.DELIVERING: frozenset({_J.COMPLETED, _J.IDLE, _J.ERRORED, _J.CANCELLED}),
}
"""Back to IDLE means "retry": the attempt failed and a new attempt will be requested.
IDLE → COMPLETED is the resume cache: a matching earlier receipt supplies the outputs."""


def can_transition_run(old: RunStatus, new: RunStatus) -> bool:
    return new in _RUN_TRANSITIONS.get(old, frozenset())


def can_transition_job(old: JobStatus, new: JobStatus) -> bool:
    return new in _JOB_TRANSITIONS.get(old, frozenset())


@dataclass(frozen=True, slots=True)
class RunRecord:
    """The requester's view of one run of a workflow."""

    run_id: str
    workflow: str
    status: RunStatus = RunStatus.PENDING
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    reason: str = ""

    def with_status(self, status: RunStatus, now: float, reason: str = "") -> RunRecord:
        """A copy in ``status``; an illegal move (e.g. out of a terminal state) is our bug."""
        if not can_transition_run(self.status, status):
            raise LocalProtocolError(
                f"run {self.run_id}: illegal transition {self.status.value} -> {status.value}")
        started = self.started_at
        if status is RunStatus.RUNNING and started is None:
            started = now
        ended = now if status in RUN_TERMINAL else self.ended_at
        return replace(self, status=status, started_at=started, ended_at=ended,
                       reason=reason or self.reason)

    @property
    def is_terminal(self) -> bool:
        return self.status in RUN_TERMINAL


@dataclass(frozen=True, slots=True)
class JobRecord:
    """The requester's view of one job in one run (the current attempt)."""

    run_id: str
    job: str
    status: JobStatus = JobStatus.IDLE
    attempt: int = 0
    executor: PeerId | None = None
    service_id: str | None = None
    exit_code: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    updated_at: float = 0.0
    reason: str = ""

    def with_status(self, status: JobStatus, now: float, reason: str = "",
                    **changes: object) -> JobRecord:
        """A copy in ``status`` with ``changes`` applied; illegal moves raise."""
        if not can_transition_job(self.status, status):
            raise LocalProtocolError(
                f"job {self.job} of run {self.run_id}: illegal transition "
                f"{self.status.value} -> {status.value}")
        record = replace(self, status=status, updated_at=now, reason=reason, **changes)  # type: ignore[arg-type]
        if status is JobStatus.RUNNING and record.started_at is None:
            record = replace(record, started_at=now)
        if status in JOB_TERMINAL:
            record = replace(record, ended_at=now)
        if status is JobStatus.IDLE:
            record = replace(record, started_at=None, ended_at=None, exit_code=None)
        return record

    @property
    def is_terminal(self) -> bool:
        return self.status in JOB_TERMINAL
