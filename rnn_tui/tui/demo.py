"""An in-memory node for ``rnn --demo``, Pilot tests and screenshots.

Why not a mock: it implements the whole ``NodeFacade`` with real domain values (real
``Service`` ids derived from real Ed25519 identities, real ``Workflow`` parsed from YAML,
``RunRecord``/``JobRecord`` moved only through their guarded transitions).  It just keeps
everything in memory and simulates execution, so every screen can be driven without a
network, and the scene is the same at every start (fixed keys, fixed timestamps).

``live=False`` (tests, screenshots) produces nothing by itself; ``start_run`` still runs
jobs, paced by ``step_s``.  ``live=True`` (``rnn --demo``) also streams log lines from the
running job so the logs view has something to follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from rnn_tui.api import (
    LogLine,
    LogStream,
    NodeEvent,
    NodeStatus,
    NodeStatusChanged,
    PeerDetail,
    PeerInfo,
    ReceiptInfo,
    RunInfo,
    RunUpdated,
    ServiceDraft,
    ServiceInfo,
    ServiceRemoved,
    ServiceSource,
    ServiceUpdated,
    SourceKind,
    WorkflowDeleted,
    WorkflowInfo,
    WorkflowSaved,
)
from rnn_tui.errors import RnnError, ServiceError
from rnn_tui.identity.keys import Identity
from rnn_tui.services.model import Interface, InterfaceType, MountDirection, Service, ServiceKind
from rnn_tui.util.eventbus import EventBus
from rnn_tui.util.tasks import TaskManager
from rnn_tui.workflow.model import JobRecord, JobStatus, RunRecord, RunStatus
from rnn_tui.workflow.yaml_io import dump_workflow, load_workflow

__all__ = ["DemoNode", "DEMO_NOW", "DEMO_WORKFLOW_YAML"]

DEMO_NOW = 1_790_000_000.0  # fixed "now" for the scene: snapshots never depend on the clock


def _identity(n: int) -> Identity:
    return Identity(bytes([n]) * 32)


SELF_ID = _identity(1)
PEER_IDS = [_identity(n) for n in (2, 3, 4, 5, 6)]

_STD = (Interface(InterfaceType.STDIN), Interface(InterfaceType.STDOUT),
        Interface(InterfaceType.STDERR), Interface(InterfaceType.LOGS))


def _mount(path: str, direction: MountDirection) -> Interface:
    return Interface(InterfaceType.MOUNT, path, direction)


def _service(owner: Identity, name: str, description: str,
             extra: tuple[Interface, ...] = (), kind: ServiceKind = ServiceKind.DOCKER) -> Service:
    fields: dict[str, object] = {"description": description, "interfaces": _STD + extra}
    if kind is ServiceKind.DOCKER:
        fields["image_ref"] = f"rnn/{name}:1"
        fields["image_digest"] = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
    else:
        fields["content_hash"] = "sha256:" + "ab" * 32
    return Service.new(owner.peer_id, name, kind, int(DEMO_NOW) - 86_400, **fields)


def _demo_services() -> list[ServiceInfo]:
    """Two local services and four remote ones, covering every interface type."""
    out = [
        ServiceInfo(_service(SELF_ID, "gbif-fetch", "Download pollinator occurrences from a GBIF export",
                             (_mount("/data/out", MountDirection.OUTPUT),)), True),
        ServiceInfo(_service(SELF_ID, "csv-clean", "Deduplicate and normalise species CSV"), True),
        ServiceInfo(_service(PEER_IDS[0], "species-model", "Fit a habitat suitability model",
                             (_mount("/models", MountDirection.OUTPUT),)), False),
        ServiceInfo(_service(PEER_IDS[1], "report-md", "Render a Markdown report from results",
                             (_mount("/data/in", MountDirection.INPUT),)), False),
        ServiceInfo(_service(PEER_IDS[2], "ndvi", "NDVI from Sentinel-2 tiles",
                             (_mount("/out", MountDirection.OUTPUT),)), False),
        ServiceInfo(_service(PEER_IDS[3], "forest-cover", "Hansen forest-cover extract",
                             (), ServiceKind.DATA), False),
    ]
    return out


DEMO_WORKFLOW_YAML = """\
name: pollinators
description: Integrate pollinator-species data for agroecosystems
jobs:
  - name: fetch
    service: gbif-fetch
    args: [--country, FR]
  - name: clean
    service: csv-clean
  - name: model
    service: species-model
    env: {SEED: "42"}
  - name: report
    service: report-md
connections:
  - {from: fetch.STDOUT, to: clean.STDIN}
  - {from: clean.STDOUT, to: model.STDIN}
  - {from: model.STDOUT, to: report.STDIN}
  - {from: fetch.LOGS, to: report.MOUNT:/data/in, file: fetch.log}
  - {from: report.STDOUT, to: self, file: report.md}
"""

_DEFORESTATION_YAML = """\
name: deforestation
description: Estimate deforestation from satellite data
jobs:
  - name: tiles
    service: forest-cover
  - name: ndvi
    service: ndvi
connections:
  - {from: tiles.STDOUT, to: ndvi.STDIN}
  - {from: ndvi.STDOUT, to: self, file: ndvi.csv}
"""

_LOG_SCRIPT: dict[str, list[tuple[LogStream, str]]] = {
    "fetch": [(LogStream.LOGS, "resolving GBIF export 0012345-230224"),
              (LogStream.STDOUT, "species,lat,lon,date"),
              (LogStream.STDOUT, "Apis mellifera,43.61,3.87,2024-05-02"),
              (LogStream.STDOUT, "Bombus terrestris,43.62,3.88,2024-05-03"),
              (LogStream.LOGS, "wrote 18,204 occurrences")],
    "clean": [(LogStream.LOGS, "reading 18,204 rows"),
              (LogStream.STDERR, "warning: 312 rows without coordinates dropped"),
              (LogStream.STDOUT, "17,892 rows, 141 species"),
              (LogStream.LOGS, "done in 2.1 s")],
    "model": [(LogStream.LOGS, "fitting MaxEnt with 141 species"),
              (LogStream.STDOUT, "epoch 1/5 auc=0.71"),
              (LogStream.STDOUT, "epoch 2/5 auc=0.78"),
              (LogStream.STDERR, "convergence warning: increase max_iter")],
    "report": [(LogStream.STDOUT, "# Pollinators report"), (LogStream.LOGS, "rendered 4 figures")],
}


class DemoNode:
    """A deterministic, in-memory ``NodeFacade`` (see module docstring)."""

    def __init__(self, *, live: bool = False, step_s: float = 0.5,
                 clock: Callable[[], float] = lambda: DEMO_NOW,
                 fail_start: str | None = None) -> None:
        self.live = live
        self.step_s = step_s
        self.clock = clock
        self.fail_start = fail_start
        self.base = clock()  # the scene's "now": fixed in tests, the real time in --demo
        self.bus = EventBus(maxsize=10_000)
        self.tasks = TaskManager("demo-node")
        self._started = False
        self._status = NodeStatus(
            peer_id=str(SELF_ID.peer_id), reachability="private", nat_type="endpoint-independent",
            relay=PEER_IDS[0].peer_id.short, listen_addrs=("udp://0.0.0.0:30609",),
            peer_count=5, running_jobs=1)
        self._peers = {str(p.peer_id): info for p, info in zip(PEER_IDS, self._demo_peers(),
                                                                 strict=True)}
        self._services = {s.service_id: s for s in _demo_services()}
        self._workflows: dict[str, WorkflowInfo] = {}
        for text in (DEMO_WORKFLOW_YAML, _DEFORESTATION_YAML):
            wf = load_workflow(text).workflow
            self._workflows[wf.name] = WorkflowInfo(wf.name, dump_workflow(wf), len(wf.jobs),
                                                    self.base - 3600, wf.description)
        self._runs: dict[str, RunInfo] = {}
        self._logs: dict[str, list[LogLine]] = {}
        self._log_waiters: dict[str, asyncio.Event] = {}
        self._run_counter = 0
        self.pings = 0
        self.connects: list[str] = []
        self._seed_runs()

    @classmethod
    def live_scene(cls) -> DemoNode:
        """The scene for ``rnn --demo``: real clock, the model job keeps logging."""
        import time

        return cls(live=True, clock=time.time)

    # --- scene ------------------------------------------------------------------------
    def _demo_peers(self) -> list[PeerInfo]:
        return [
            PeerInfo(str(PEER_IDS[0].peer_id), ("198.51.100.7:30609",), False, 18.4,
                     "public", 2, self.base - 2, True, "rnn/0.1.0"),
            PeerInfo(str(PEER_IDS[1].peer_id), ("203.0.113.20:41000",), False, 42.0,
                     "endpoint-independent", 1, self.base - 5, True, "rnn/0.1.0"),
            PeerInfo(str(PEER_IDS[2].peer_id), ("relay:" + PEER_IDS[0].peer_id.short,), True,
                     95.5, "symmetric", 1, self.base - 12, True, "rnn/0.1.0"),
            PeerInfo(str(PEER_IDS[3].peer_id), ("192.0.2.44:30609",), False, 63.1,
                     "endpoint-independent", 1, self.base - 40, True, "rnn/0.1.0"),
            PeerInfo(str(PEER_IDS[4].peer_id), ("192.0.2.99:30609",), False, None,
                     "unknown", 0, self.base - 900, False, "libtorrent/2.0"),
        ]

    def _seed_runs(self) -> None:
        run = RunRecord("r-0001", "pollinators", RunStatus.RUNNING, self.base - 120,
                        self.base - 118)
        states = {"fetch": JobStatus.COMPLETED, "clean": JobStatus.COMPLETED,
                  "model": JobStatus.RUNNING, "report": JobStatus.IDLE}
        executors = {"fetch": SELF_ID, "clean": SELF_ID, "model": PEER_IDS[0],
                     "report": PEER_IDS[1]}
        jobs = tuple(
            JobRecord("r-0001", name, state, 1, executors[name].peer_id,
                      exit_code=0 if state is JobStatus.COMPLETED else None,
                      started_at=self.base - 110 if state is not JobStatus.IDLE else None,
                      ended_at=self.base - 60 if state is JobStatus.COMPLETED else None)
            for name, state in states.items())
        self._runs["r-0001"] = RunInfo(run, jobs)
        lines = []
        for i, name in enumerate(("fetch", "clean", "model")):
            for k, (stream, text) in enumerate(_LOG_SCRIPT[name]):
                lines.append(LogLine("r-0001", name, stream, text, self.base - 110 + i * 20 + k))
        self._logs["r-0001"] = lines
        old = RunRecord("r-0000", "deforestation", RunStatus.FAILED, self.base - 7200,
                        self.base - 7190, self.base - 7000, "ndvi: exit code 2")
        self._runs["r-0000"] = RunInfo(old, (
            JobRecord("r-0000", "tiles", JobStatus.COMPLETED, 1, PEER_IDS[3].peer_id, exit_code=0),
            JobRecord("r-0000", "ndvi", JobStatus.ERRORED, 1, PEER_IDS[2].peer_id, exit_code=2,
                      reason="exit code 2")))
        self._logs["r-0000"] = [
            LogLine("r-0000", "ndvi", LogStream.STDERR, "error: tile T31TEJ missing band B08",
                    self.base - 7001)]
        self._run_counter = 1

    # --- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        if self.fail_start:
            raise RnnError(self.fail_start)
        self._started = True
        self._status = replace(self._status, started=True)
        self._emit(NodeStatusChanged(self._status))
        if self.live:
            self.tasks.spawn("live-logs", self._live_logs())

    async def stop(self) -> None:
        self._started = False
        await self.tasks.shutdown()
        self.bus.close()

    def status(self) -> NodeStatus:
        return self._status

    def subscribe_events(self) -> AsyncIterator[NodeEvent]:
        return aiter(self.bus.subscribe())

    def _emit(self, event: NodeEvent) -> None:
        self.bus.publish(event)

    # --- snapshots --------------------------------------------------------------------
    async def peers(self) -> list[PeerInfo]:
        return list(self._peers.values())

    async def describe_peer(self, peer_id: str) -> PeerDetail:
        peer = self._peers.get(peer_id)
        if peer is None:
            raise RnnError(f"unknown peer {peer_id[:10]}")
        receipts = tuple(
            ReceiptInfo(run.run_id, job.job, job.job, "executed for us", job.status,
                        job.ended_at, verified=job.status is JobStatus.COMPLETED)
            for run in self._runs.values() for job in run.jobs
            if job.executor is not None and str(job.executor) == peer_id)
        meta = (("agent", peer.agent), ("nat", peer.nat_type),
                ("addresses", ", ".join(peer.addresses)),
                ("services", ", ".join(s.name for s in self._services.values()
                                       if s.peer_id == peer_id) or "—"))
        return PeerDetail(peer, meta, receipts)

    async def services(self) -> list[ServiceInfo]:
        return list(self._services.values())

    async def workflows(self) -> list[WorkflowInfo]:
        return sorted(self._workflows.values(), key=lambda w: w.name)

    async def runs(self) -> list[RunInfo]:
        return sorted(self._runs.values(), key=lambda r: r.run_id, reverse=True)

    # --- commands ---------------------------------------------------------------------
    async def connect(self, target: str) -> PeerInfo:
        target = target.strip()
        if not target:
            raise RnnError("connect: give host:port or a peer id")
        self.connects.append(target)
        for peer in self._peers.values():
            if peer.peer_id == target or target in peer.addresses:
                return peer
        if ":" not in target:
            raise RnnError(f"connect: no peer {target[:16]!r} found in the DHT")
        raise RnnError(f"connect: {target} did not answer within 5 s")

    async def ping(self, peer_id: str) -> float:
        self.pings += 1
        peer = self._peers.get(peer_id)
        if peer is None or not peer.connected:
            raise RnnError(f"ping {peer_id[:10]}: no route to peer")
        return peer.rtt_ms or 0.0

    async def search_services(self, phrase: str) -> AsyncIterator[ServiceInfo]:
        words = phrase.lower().split()
        for info in self._services.values():
            if info.local:
                continue
            hay = f"{info.name} {info.service.description}".lower()
            if all(w in hay for w in words):
                await asyncio.sleep(0)
                yield info

    async def inspect_service_source(self, source: ServiceSource) -> ServiceDraft:
        ref = source.ref.strip()
        if not ref:
            raise ServiceError(f"{source.kind.value}: give a reference")
        name = ref.rstrip("/").split("/")[-1].split(":")[0].removesuffix(".git") or "service"
        notes = ["STDIN, STDOUT, STDERR, LOGS are always offered"]
        extra: tuple[Interface, ...] = ()
        if source.kind is SourceKind.IMAGE:
            extra = (_mount("/data", MountDirection.BOTH),)
            notes.append("VOLUME /data -> MOUNT:/data (BOTH)")
        elif source.kind is SourceKind.DOCKERFILE:
            extra = (_mount("/work", MountDirection.BOTH),)
            notes.append("WORKDIR /work -> MOUNT:/work (BOTH)")
        svc = _service(SELF_ID, name, f"built from {source.kind.value} {ref}", extra)
        return ServiceDraft(source, svc, tuple(notes))

    async def add_service(self, draft: ServiceDraft) -> ServiceInfo:
        if draft.service.id in self._services:
            raise ServiceError(f"a service called {draft.service.name!r} already exists")
        info = ServiceInfo(draft.service, True)
        self._services[info.service_id] = info
        self._emit(ServiceUpdated(info))
        return info

    async def remove_service(self, service_id: str) -> None:
        if self._services.pop(service_id, None) is None:
            raise ServiceError(f"no service {service_id}")
        self._emit(ServiceRemoved(service_id))

    async def save_workflow(self, name: str, yaml_text: str) -> WorkflowInfo:
        wf = load_workflow(yaml_text, name).workflow  # raises WorkflowInvalid
        info = WorkflowInfo(wf.name, yaml_text, len(wf.jobs), self.clock(), wf.description)
        self._workflows[wf.name] = info
        self._emit(WorkflowSaved(info))
        return info

    async def delete_workflow(self, name: str) -> None:
        if self._workflows.pop(name, None) is None:
            raise RnnError(f"no workflow {name!r}")
        self._emit(WorkflowDeleted(name))

    async def start_run(self, workflow_name: str) -> RunInfo:
        info = self._workflows.get(workflow_name)
        if info is None:
            raise RnnError(f"no workflow {workflow_name!r}")
        wf = load_workflow(info.yaml_text, workflow_name).workflow
        self._run_counter += 1
        run_id = f"r-{self._run_counter:04d}"
        now = self.clock()
        record = RunRecord(run_id, wf.name, RunStatus.PENDING, now)
        run = RunInfo(record, tuple(JobRecord(run_id, j.name) for j in wf.jobs))
        self._runs[run_id] = run
        self._logs[run_id] = []
        self._emit(RunUpdated(run))
        self.tasks.spawn(f"run:{run_id}", self._execute(run_id, [j.name for j in wf.jobs]))
        return run

    async def cancel_run(self, run_id: str) -> None:
        run = self._runs.get(run_id)
        if run is None:
            raise RnnError(f"no run {run_id}")
        if run.run.is_terminal:
            raise RnnError(f"run {run_id} already ended ({run.status.value})")
        self.tasks.cancel(f"run:{run_id}")
        now = self.clock()
        jobs = tuple(j if j.is_terminal else j.with_status(JobStatus.CANCELLED, now)
                     for j in run.jobs)
        self._set_run(RunInfo(run.run.with_status(RunStatus.CANCELLED, now, "cancelled"), jobs))

    async def job_logs(self, run_id: str, job: str | None = None,
                       follow: bool = True) -> AsyncIterator[LogLine]:
        if run_id not in self._logs:
            raise RnnError(f"no run {run_id}")
        sent = 0
        while True:
            lines = self._logs[run_id]
            while sent < len(lines):
                line = lines[sent]
                sent += 1
                if job is None or line.job == job:
                    yield line
            run = self._runs[run_id]
            if not follow or (run.run.is_terminal and sent >= len(self._logs[run_id])):
                return
            waiter = self._log_waiters.setdefault(run_id, asyncio.Event())
            await waiter.wait()

    # --- simulation -------------------------------------------------------------------
    def _append_log(self, line: LogLine) -> None:
        self._logs.setdefault(line.run_id, []).append(line)
        waiter = self._log_waiters.pop(line.run_id, None)
        if waiter is not None:
            waiter.set()

    def _wake_logs(self, run_id: str) -> None:
        waiter = self._log_waiters.pop(run_id, None)
        if waiter is not None:
            waiter.set()

    def _set_run(self, run: RunInfo) -> None:
        self._runs[run.run_id] = run
        running = sum(1 for r in self._runs.values() for j in r.jobs
                      if j.status is JobStatus.RUNNING)
        self._status = replace(self._status, running_jobs=running)
        self._emit(RunUpdated(run))
        self._emit(NodeStatusChanged(self._status))
        self._wake_logs(run.run_id)

    async def _execute(self, run_id: str, order: list[str]) -> None:
        """Move each job through REQUESTED → … → COMPLETED, in workflow order."""
        run = self._runs[run_id]
        run = replace(run, run=run.run.with_status(RunStatus.RUNNING, self.clock()))
        self._set_run(run)
        steps = (JobStatus.REQUESTED, JobStatus.ACCEPTED, JobStatus.READY, JobStatus.RUNNING)
        for name in order:
            for status in steps:
                job = self._runs[run_id].job(name)
                assert job is not None
                self._set_run(self._runs[run_id].with_job(job.with_status(status, self.clock())))
                await asyncio.sleep(self.step_s / 4)
            for stream, text in _LOG_SCRIPT.get(name, [(LogStream.STDOUT, f"{name} ok")]):
                self._append_log(LogLine(run_id, name, stream, text, self.clock()))
            job = self._runs[run_id].job(name)
            assert job is not None
            job = job.with_status(JobStatus.DELIVERING, self.clock(), exit_code=0)
            job = job.with_status(JobStatus.COMPLETED, self.clock())
            self._set_run(self._runs[run_id].with_job(job))
        run = self._runs[run_id]
        self._set_run(replace(run, run=run.run.with_status(RunStatus.COMPLETED, self.clock())))

    async def _live_logs(self) -> None:
        """``--demo`` only: the running model job keeps printing."""
        n = 0
        while True:
            await asyncio.sleep(0.25)
            n += 1
            stream = LogStream.STDERR if n % 7 == 0 else LogStream.STDOUT
            text = (f"step {n}: loss={1 / (n + 1):.4f}" if stream is LogStream.STDOUT
                    else f"slow batch at step {n}")
            with contextlib.suppress(KeyError):
                self._append_log(LogLine("r-0001", "model", stream, text, self.clock()))
