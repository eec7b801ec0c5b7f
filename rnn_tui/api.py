"""Domain dataclasses the node hands to its faces (TUI, control API, CLI).

Why here and not in ``tui/``: the node produces these and the UI only renders them
("domain models live outside the TUI package").  They are plain, frozen, slotted values
with no behaviour beyond derived properties, so they never leak peewee rows, aioquic
objects or Docker SDK objects into a widget.  Where a domain type already exists
(``services.model.Service``, ``workflow.model.RunRecord``/``JobRecord``) we carry it as is
and only add what the UI needs around it (is it local? which jobs belong to a run?).

Times are POSIX timestamps (float seconds) or ``None`` when unknown.  Peer ids are their
z-base-32 text form (``str(PeerId)``) so a table row can be rendered without crypto.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from rnn_tui.services.model import Interface, InterfaceType, Service
from rnn_tui.workflow.model import (
    JOB_TERMINAL,
    JobRecord,
    JobStatus,
    RunRecord,
    RunStatus,
    is_input,
    is_output,
)

__all__ = [
    "LogStream",
    "SourceKind",
    "ServiceSource",
    "ServiceDraft",
    "PeerInfo",
    "ReceiptInfo",
    "PeerDetail",
    "ServiceInfo",
    "WorkflowInfo",
    "RunInfo",
    "LogLine",
    "NodeStatus",
    "NodeEvent",
    "NodeStatusChanged",
    "PeerUpdated",
    "PeerRemoved",
    "ServiceUpdated",
    "ServiceRemoved",
    "WorkflowSaved",
    "WorkflowDeleted",
    "RunUpdated",
    "NodeFailed",
    "interface_key",
    "input_keys",
    "output_keys",
]


def interface_key(interface: Interface) -> str:
    """The port name a workflow uses for ``interface``: ``STDOUT`` or ``MOUNT:/data``."""
    if interface.type is InterfaceType.MOUNT:
        return f"MOUNT:{interface.path}"
    return str(interface.type.value)


def input_keys(interfaces: tuple[Interface, ...]) -> tuple[str, ...]:
    return tuple(interface_key(i) for i in interfaces if is_input(i.type, i.direction))


def output_keys(interfaces: tuple[Interface, ...]) -> tuple[str, ...]:
    return tuple(interface_key(i) for i in interfaces if is_output(i.type, i.direction))


class LogStream(StrEnum):
    STDOUT = "STDOUT"
    STDERR = "STDERR"
    LOGS = "LOGS"


class SourceKind(StrEnum):
    """Where the add-service wizard builds a service from."""

    IMAGE = "image"
    GIT = "git"
    DOCKERFILE = "dockerfile"


@dataclass(frozen=True, slots=True)
class ServiceSource:
    kind: SourceKind
    ref: str  # image name, Git URL, or path to a directory holding a Dockerfile


@dataclass(frozen=True, slots=True)
class ServiceDraft:
    """What the node detected from a source, for the operator to review before adding.

    ``service`` is complete but not yet registered; the wizard may replace its interfaces
    (``service.with_changes(now, interfaces=...)``) before ``add_service``.
    """

    source: ServiceSource
    service: Service
    notes: tuple[str, ...] = ()  # e.g. "VOLUME /data -> MOUNT:/data (BOTH)"


@dataclass(frozen=True, slots=True)
class PeerInfo:
    peer_id: str
    addresses: tuple[str, ...] = ()
    relayed: bool = False
    rtt_ms: float | None = None
    nat_type: str = "unknown"
    service_count: int = 0
    last_seen: float | None = None
    connected: bool = False
    agent: str = ""

    @property
    def short_id(self) -> str:
        return self.peer_id[:10]


@dataclass(frozen=True, slots=True)
class ReceiptInfo:
    """A signed record of work done with a peer (either direction)."""

    run_id: str
    job: str
    service: str
    role: str  # "executed for us" | "we executed"
    status: JobStatus
    finished_at: float | None = None
    verified: bool = False


@dataclass(frozen=True, slots=True)
class PeerDetail:
    peer: PeerInfo
    metadata: tuple[tuple[str, str], ...] = ()
    receipts: tuple[ReceiptInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """A service as the UI lists it: ours (``local``) or a remote peer's."""

    service: Service
    local: bool = True

    @property
    def service_id(self) -> str:
        return self.service.id

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def peer_id(self) -> str:
        return str(self.service.owner)

    @property
    def inputs(self) -> tuple[str, ...]:
        return input_keys(self.service.interfaces)

    @property
    def outputs(self) -> tuple[str, ...]:
        return output_keys(self.service.interfaces)


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    """A saved workflow; ``yaml_text`` is its canonical serialisation."""

    name: str
    yaml_text: str
    job_count: int = 0
    updated_at: float | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One run with the current record of each of its jobs (in workflow order)."""

    run: RunRecord
    jobs: tuple[JobRecord, ...] = ()

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def workflow(self) -> str:
        return self.run.workflow

    @property
    def status(self) -> RunStatus:
        return self.run.status

    @property
    def progress(self) -> float:
        """Fraction of jobs in a terminal state (0.0-1.0)."""
        if not self.jobs:
            return 0.0
        return sum(1 for j in self.jobs if j.status in JOB_TERMINAL) / len(self.jobs)

    def job(self, name: str) -> JobRecord | None:
        return next((j for j in self.jobs if j.job == name), None)

    def with_job(self, job: JobRecord) -> RunInfo:
        return replace(self, jobs=tuple(job if j.job == job.job else j for j in self.jobs))


@dataclass(frozen=True, slots=True)
class LogLine:
    run_id: str
    job: str
    stream: LogStream
    text: str
    ts: float = 0.0


@dataclass(frozen=True, slots=True)
class NodeStatus:
    peer_id: str = ""
    reachability: str = "unknown"  # "public" | "private" | "unknown"
    nat_type: str = "unknown"  # e.g. "endpoint-independent", "symmetric"
    relay: str = ""  # short id of the relay we use, "" when none
    listen_addrs: tuple[str, ...] = ()
    peer_count: int = 0
    running_jobs: int = 0
    started: bool = False

    @property
    def short_id(self) -> str:
        return self.peer_id[:10] if self.peer_id else "—"


# --- events the node streams to its faces ------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeStatusChanged:
    status: NodeStatus


@dataclass(frozen=True, slots=True)
class PeerUpdated:
    peer: PeerInfo


@dataclass(frozen=True, slots=True)
class PeerRemoved:
    peer_id: str


@dataclass(frozen=True, slots=True)
class ServiceUpdated:
    service: ServiceInfo


@dataclass(frozen=True, slots=True)
class ServiceRemoved:
    service_id: str


@dataclass(frozen=True, slots=True)
class WorkflowSaved:
    workflow: WorkflowInfo


@dataclass(frozen=True, slots=True)
class WorkflowDeleted:
    name: str


@dataclass(frozen=True, slots=True)
class RunUpdated:
    """A run or one of its jobs changed state; carries the whole run (small)."""

    run: RunInfo


@dataclass(frozen=True, slots=True)
class NodeFailed:
    """A node subsystem failed; ``reason`` is one line for the operator."""

    reason: str
    fatal: bool = False
    details: tuple[str, ...] = field(default=())


NodeEvent = (
    NodeStatusChanged
    | PeerUpdated
    | PeerRemoved
    | ServiceUpdated
    | ServiceRemoved
    | WorkflowSaved
    | WorkflowDeleted
    | RunUpdated
    | NodeFailed
)
