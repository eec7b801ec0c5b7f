"""The requester's workflow scheduler: a sans-IO state machine for one run.

Why sans-IO: the hard part of orchestration is the order of things (who may start when,
what a late or stale report means, when a retry moves, when a run is over), not the sockets.
As a pure machine it is tested with thousands of random DAGs and executor behaviours in
milliseconds, and the asyncio orchestrator around it stays thin.

Inputs (the only things that change state)::

    start(now)                      begin phase 1 (request every job)
    receive(peer, report, now)      a report from an executor (see ``messages``)
    report_failure(job, attempt, reason, now)
                                    the orchestrator found a problem itself (bad receipt,
                                    unrouted output, hash mismatch, lost connection)
    cancel(now, reason)             the user cancelled the run
    handle_timer(now)               a deadline passed

Outputs, drained by the driver: ``commands_to_send()`` (frozen command dataclasses addressed
to a peer), ``next_event()`` (status changes), ``get_timer()`` (the earliest deadline).

Protocol, in two phases:

1. **Request.**  Every job is offered to its executor candidate at once.  Nothing starts
   until every job has been accepted, so a refusal costs no work.  A refused job moves to the
   next candidate if its retry policy allows, or the run fails with the refusal's reason.
2. **Start.**  A job is started (``StartJob`` with its routing: where each output goes and
   where each input comes from) when every job it reads from has *delivered* its outputs to
   this job's executor, and every job it writes to has an executor that accepted.  Jobs with
   no inputs start at once, so independent jobs run in parallel.  A job is COMPLETED when it
   exited 0 and its executor reports every output delivered.

Failure: an attempt fails on a refusal, a non-zero exit, a timeout, a heartbeat timeout (the
executor went silent), a failed delivery, or a problem the orchestrator reports.  The job
then retries (maybe on another peer) while attempts remain; otherwise it is ERRORED, jobs
downstream of it are CANCELLED with the reason, unrelated branches finish, and the run ends
FAILED naming the first job that errored.  Terminal states never change again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from rnn_tui.errors import LocalProtocolError
from rnn_tui.identity.keys import PeerId
from rnn_tui.workflow.messages import (
    CancelJob,
    Command,
    DeliverOutputs,
    ExecState,
    Heartbeat,
    InputRoute,
    JobAccepted,
    JobExited,
    JobLost,
    JobRefused,
    JobStatusReported,
    OutputDigest,
    OutputRoute,
    OutputsDelivered,
    ReleaseJob,
    Report,
    RequestJob,
    StartJob,
)
from rnn_tui.workflow.model import (
    JOB_TERMINAL,
    Job,
    JobRecord,
    JobStatus,
    RunRecord,
    RunStatus,
    Workflow,
)
from rnn_tui.workflow.redundancy import Vote, compared_sources, plan_replicas, tally
from rnn_tui.workflow.run_graph import RunGraph
from rnn_tui.workflow.scheduler_events import (
    Candidate,
    JobStatusChanged,
    ReportIgnored,
    RunStatusChanged,
    SchedulerConfig,
    SchedulerEvent,
)
from rnn_tui.workflow.snapshot import JobSnapshot, SchedulerSnapshot

__all__ = [
    "Candidate",
    "SchedulerConfig",
    "Scheduler",
    "RunStatusChanged",
    "JobStatusChanged",
    "ReportIgnored",
    "SchedulerEvent",
]

_ENGAGED = frozenset({JobStatus.ACCEPTED, JobStatus.READY, JobStatus.QUEUED, JobStatus.RUNNING,
                      JobStatus.DELIVERING})
"""States in which an executor holds the job and must show signs of life."""

_FEEDING = frozenset({JobStatus.RUNNING, JobStatus.DELIVERING, JobStatus.COMPLETED})
"""Producer states in which a streamed pipe it was started with carries (or carried) data."""


@dataclass(frozen=True, slots=True)
class _Delivery:
    """One delivery in flight: the (job, executor) pairs it feeds, fixed when it was sent."""

    deadline: float | None
    targets: frozenset[tuple[str, PeerId]]


class _JobState:
    """Mutable bookkeeping for one job; the public view is its immutable ``record``."""

    __slots__ = ("record", "candidates", "next_candidate", "tries", "last_heard",
                 "request_deadline", "timeout_deadline", "retry_at", "outputs", "deliveries",
                 "receivers")

    def __init__(self, record: JobRecord, candidates: Sequence[Candidate]) -> None:
        self.record = record
        self.candidates = tuple(candidates)
        self.next_candidate = 0
        self.tries = 0
        self.last_heard = 0.0
        self.request_deadline: float | None = None
        self.timeout_deadline: float | None = None
        self.retry_at: float | None = None
        self.outputs: tuple[OutputDigest, ...] = ()
        self.deliveries = 0
        self.receivers: dict[int, _Delivery] = {}


class Scheduler:
    """Runs one workflow run from the requester's side (see the module docstring)."""

    def __init__(self, run_id: str, workflow: Workflow, requester: PeerId,
                 candidates: Mapping[str, Sequence[Candidate]], now: float,
                 config: SchedulerConfig | None = None) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.requester = requester
        self.config = config or SchedulerConfig()
        self._run = RunRecord(run_id, workflow.name, created_at=now)
        self._jobs: dict[str, _JobState] = {}
        self._specs = {job.name: job for job in workflow.jobs}
        # k-way redundancy: replicas "J#2".."J#k" run J's service on other peers with J's
        # inputs; their outputs go nowhere, their (receipt-checked) hashes are compared
        self._replicas: dict[str, tuple[str, ...]] = {}
        self._replica_of: dict[str, str] = {}
        self._connections = list(workflow.connections)
        placements: list[tuple[str, Sequence[Candidate]]] = []
        for job in workflow.jobs:
            options = candidates.get(job.name, ())
            if not options:
                raise LocalProtocolError(f"job {job.name!r} has no executor candidate; "
                                         "resolve its service before starting the run")
            placements.append((job.name, options))
            if job.redundancy > 1:
                placements.extend(self._add_replicas(job, options))
        for name, options in placements:
            self._jobs[name] = _JobState(JobRecord(run_id, name, updated_at=now), options)
        self._index = {name: i for i, (name, _options) in enumerate(placements)}
        # jobs by status, kept by _set_job, so each report costs O(waiting jobs), not O(jobs)
        self._by_status: dict[JobStatus, set[str]] = {status: set() for status in JobStatus}
        self._by_status[JobStatus.IDLE].update(self._specs)
        self._dirty: set[str] = set()  # jobs whose start condition may have changed
        # the wiring, indexed once (replicas included); a cycle is refused here
        self._graph = RunGraph(workflow.name, self._jobs, self._connections)
        # (upstream job, downstream job, downstream executor) whose outputs arrived there
        self._delivered: set[tuple[str, str, PeerId]] = set()
        # streamed pipes: (producer, consumer, consumer's executor, consumer's attempt) for
        # every pipe a running producer feeds
        self._streaming: set[tuple[str, str, PeerId, int]] = set()
        self._awaiting_quorum: set[str] = set()  # delivered; waits for its replicas to agree
        self._commands: list[Command] = []
        self._events: deque[SchedulerEvent] = deque()
        self._request_phase = True
        self._first_error = ""

    # ------------------------------------------------------------------ persistence
    def snapshot(self) -> SchedulerSnapshot:
        """The state to persist (take it after sending the drained commands)."""
        return SchedulerSnapshot(
            run=self._run,
            jobs=tuple(JobSnapshot(s.record, s.tries, s.next_candidate, s.outputs,
                                   s.deliveries) for s in self._jobs.values()),
            delivered=tuple(sorted(self._delivered, key=lambda t: (t[0], t[1], t[2].key))),
            request_phase=self._request_phase,
            first_error=self._first_error,
            streaming=tuple(sorted(self._streaming, key=lambda t: (t[0], t[1], t[2].key, t[3]))),
        )

    @classmethod
    def restore(cls, snapshot: SchedulerSnapshot, workflow: Workflow, requester: PeerId,
                candidates: Mapping[str, Sequence[Candidate]], now: float,
                config: SchedulerConfig | None = None) -> Scheduler:
        """Rebuild the scheduler after a requester restart and carry the run on.

        Old deadlines are not trusted (the driver's clock may have restarted): every holding
        executor gets a fresh ``heartbeat_timeout`` to show it is still there (executors
        reconnect and keep beating), a RUNNING job's timeout starts again, a pending retry is
        due at once.  Commands that may have been lost with the old process are sent again —
        ``RequestJob`` for REQUESTED jobs and ``StartJob`` for READY ones — so executors must
        treat a repeated command for the same attempt as a no-op (answering it again).
        """
        scheduler = cls(snapshot.run.run_id, workflow, requester, candidates,
                        snapshot.run.created_at, config)
        known = {j.record.job: j for j in snapshot.jobs}
        if set(known) != set(scheduler._jobs):
            raise LocalProtocolError(f"snapshot of run {snapshot.run.run_id} does not match "
                                     f"workflow {workflow.name!r}")
        scheduler._run = snapshot.run
        scheduler._delivered = set(snapshot.delivered)
        scheduler._streaming = set(snapshot.streaming)
        scheduler._request_phase = snapshot.request_phase
        scheduler._first_error = snapshot.first_error
        for name, saved in known.items():
            state = scheduler._jobs[name]
            state.record = saved.record
            state.tries = saved.tries
            state.next_candidate = saved.next_candidate
            state.outputs = saved.outputs
            state.deliveries = saved.deliveries
            state.last_heard = now
            scheduler._by_status[JobStatus.IDLE].discard(name)
            scheduler._by_status[saved.record.status].add(name)
        scheduler._dirty.update(scheduler._jobs)
        scheduler._awaiting_quorum = {
            name for name in scheduler._replicas
            if known[name].record.status is JobStatus.DELIVERING and known[name].outputs}
        if scheduler._run.is_terminal:
            return scheduler
        for name, state in scheduler._jobs.items():
            status = state.record.status
            if status is JobStatus.REQUESTED:
                state.tries -= 1  # the repeat is the same attempt, not a new try
                scheduler._resend_request(name, now)
            elif status is JobStatus.IDLE and state.tries:
                state.retry_at = now
            elif status is JobStatus.READY:
                scheduler._start(name, now, resend=True)
            elif status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DELIVERING):
                # its first delivery is still to come: expect it to the current consumers
                state.receivers[0] = _Delivery(None, frozenset(
                    (d, e) for d in scheduler._graph.downstream[name]
                    if (e := scheduler._jobs[d].record.executor) is not None
                    and scheduler._jobs[d].record.status not in JOB_TERMINAL))
                timeout = workflow.job(name).timeout_s
                if status is JobStatus.RUNNING and timeout is not None:
                    state.timeout_deadline = now + timeout
        scheduler._advance(now)
        return scheduler

    # ------------------------------------------------------------------ public views
    @property
    def run(self) -> RunRecord:
        return self._run

    def job(self, name: str) -> JobRecord:
        return self._jobs[name].record

    @property
    def jobs(self) -> tuple[JobRecord, ...]:
        return tuple(state.record for state in self._jobs.values())

    def outputs_of(self, name: str) -> tuple[OutputDigest, ...]:
        """What the job's executor reported producing (to check against its receipt)."""
        return self._jobs[name].outputs

    def commands_to_send(self) -> list[Command]:
        commands, self._commands = self._commands, []
        return commands

    def next_event(self) -> SchedulerEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        if self._run.is_terminal:
            return None
        deadlines: list[float] = []
        for state in self._jobs.values():
            status = state.record.status
            if status is JobStatus.REQUESTED and state.request_deadline is not None:
                deadlines.append(state.request_deadline)
            if status in _ENGAGED:
                deadlines.append(state.last_heard + self.config.heartbeat_timeout)
            if status is JobStatus.RUNNING and state.timeout_deadline is not None:
                deadlines.append(state.timeout_deadline)
            if status is JobStatus.IDLE and state.retry_at is not None:
                deadlines.append(state.retry_at)
            deadlines.extend(d.deadline for d in state.receivers.values()
                             if d.deadline is not None)
        return min(deadlines) if deadlines else None

    # ------------------------------------------------------------------ inputs
    def start(self, now: float) -> None:
        """Phase 1: request every job from its first candidate."""
        if self._run.status is not RunStatus.PENDING:
            raise LocalProtocolError(f"run {self.run_id} was already started")
        self._set_run(RunStatus.RUNNING, now)
        for name in self._jobs:
            self._request(name, now)

    def cancel(self, now: float, reason: str = "cancelled by the requester") -> None:
        """Stop every unfinished job; cancelling a finished run does nothing."""
        if self._run.is_terminal:
            return
        for name, state in self._jobs.items():
            if state.record.status not in JOB_TERMINAL:
                self._cancel_job(name, now, reason)
        self._set_run(RunStatus.CANCELLED, now, reason)
        self._release_all()

    def receive(self, peer: PeerId, report: Report, now: float) -> None:
        """Apply one executor report; anything that does not fit is ignored with a reason."""
        state = self._jobs.get(report.job) if report.run_id == self.run_id else None
        if state is None:
            self._ignore(peer, report, f"no job {report.job!r} in run {report.run_id}")
            return
        record = state.record
        if record.executor != peer:
            self._ignore(peer, report, f"{peer.short} is not the executor of {report.job!r}")
            return
        if report.attempt != record.attempt:
            self._ignore(peer, report, f"attempt {report.attempt} is not the current attempt "
                                       f"{record.attempt}")
            return
        state.last_heard = now
        if isinstance(report, Heartbeat):
            return
        if self._run.is_terminal and not isinstance(report, OutputsDelivered):
            self._ignore(peer, report, "the run is over")
            return
        allowed, handler = _DISPATCH[type(report)]
        if record.status not in allowed:
            self._ignore(peer, report, f"{type(report).__name__} is not expected while "
                                       f"{report.job!r} is {record.status.value}")
            return
        handler(self, report.job, report, now)
        self._advance(now)

    def report_failure(self, job: str, attempt: int, reason: str, now: float) -> None:
        """The orchestrator saw this attempt go wrong (e.g. a receipt that does not verify)."""
        state = self._jobs[job]
        if state.record.attempt != attempt or state.record.status in JOB_TERMINAL:
            return  # verify receipts *before* passing OutputsDelivered on; after, it is final
        self._attempt_failed(job, reason, now)
        self._advance(now)

    def handle_timer(self, now: float) -> None:
        """Fire every deadline that has passed."""
        if self._run.is_terminal:
            return
        for name, state in self._jobs.items():
            status = state.record.status
            if (status is JobStatus.REQUESTED and state.request_deadline is not None
                    and now >= state.request_deadline):
                self._attempt_failed(name, f"{state.record.executor!s:.10} did not answer the "
                                           f"request within {self.config.request_timeout:g}s",
                                     now)
            elif (status in _ENGAGED and name not in self._awaiting_quorum
                  and now >= state.last_heard + self.config.heartbeat_timeout):
                self._attempt_failed(name, f"executor {state.record.executor!s:.10} silent for "
                                           f"{now - state.last_heard:.1f}s (heartbeat timeout)",
                                     now)
            elif (status is JobStatus.RUNNING and state.timeout_deadline is not None
                  and now >= state.timeout_deadline):
                limit = self._specs[name].timeout_s
                self._attempt_failed(name, f"timed out after {limit:g}s", now)
            elif status is JobStatus.IDLE and state.retry_at is not None and now >= state.retry_at:
                state.retry_at = None
                self._request(name, now)
            for number, delivery in list(state.receivers.items()):
                if delivery.deadline is not None and now >= delivery.deadline:
                    del state.receivers[number]
                    for downstream, executor in sorted(delivery.targets, key=str):
                        if self._jobs[downstream].record.executor == executor:
                            self._attempt_failed(downstream, f"inputs from {name!r} were not "
                                                             "delivered in time", now)
        self._advance(now)

    # ------------------------------------------------------------------ report handlers
    def _on_accepted(self, name: str, report: Report, now: float) -> None:
        state = self._jobs[name]
        state.request_deadline = None
        self._set_job(name, JobStatus.ACCEPTED, now)

    def _on_refused(self, name: str, report: Report, now: float) -> None:
        assert isinstance(report, JobRefused)
        executor = self._jobs[name].record.executor
        self._attempt_failed(name, f"refused by {executor!s:.10}: {report.reason}", now,
                             notify=False)

    def _on_status(self, name: str, report: Report, now: float) -> None:
        assert isinstance(report, JobStatusReported)
        status = self._jobs[name].record.status
        if report.state is ExecState.QUEUED:
            if status is JobStatus.READY:
                self._set_job(name, JobStatus.QUEUED, now, report.detail)
            return
        if status is not JobStatus.RUNNING:
            self._set_job(name, JobStatus.RUNNING, now, report.detail)
            timeout = self._specs[name].timeout_s
            self._jobs[name].timeout_deadline = None if timeout is None else now + timeout
            self._dirty.update(self._graph.downstream[name])  # consumers of its streams may start

    def _on_exited(self, name: str, report: Report, now: float) -> None:
        assert isinstance(report, JobExited)
        if report.exit_code != 0:
            why = f": {report.reason}" if report.reason else ""
            self._attempt_failed(name, f"exited with code {report.exit_code}{why}", now,
                                 notify=False, exit_code=report.exit_code)
            return
        self._set_job(name, JobStatus.DELIVERING, now, exit_code=0)

    def _on_lost(self, name: str, report: Report, now: float) -> None:
        assert isinstance(report, JobLost)
        executor = self._jobs[name].record.executor
        self._attempt_failed(name, f"executor {executor!s:.10} lost the job: {report.reason}",
                             now, notify=False)

    def _on_delivered(self, name: str, report: Report, now: float) -> None:
        assert isinstance(report, OutputsDelivered)
        state = self._jobs[name]
        delivery = state.receivers.pop(report.delivery, None)
        if delivery is None:
            return
        failed = dict(report.failed)
        by_connection = dict(enumerate(self._connections))
        blamed: dict[str, str] = {}
        for index, why in failed.items():
            conn = by_connection.get(index)
            if conn is None or conn.source.job != name:
                continue
            if conn.target is None:
                blamed[name] = f"could not deliver {conn.source.key} to the requester: {why}"
            else:
                blamed.setdefault(conn.target.job, f"could not receive input from {name!r}: {why}")
        for downstream, executor in delivery.targets:
            if downstream not in blamed:
                self._delivered.add((name, downstream, executor))
                self._dirty.add(downstream)
        if name in blamed and state.record.status is JobStatus.DELIVERING:
            self._attempt_failed(name, blamed.pop(name), now)
            return
        blamed.pop(name, None)
        if state.record.status is JobStatus.DELIVERING and report.delivery == 0:
            state.outputs = report.outputs
            if name in self._replicas:
                self._awaiting_quorum.add(name)  # _advance decides once enough replicas end
            else:
                self._set_job(name, JobStatus.COMPLETED, now)
        targets = dict(delivery.targets)
        for downstream, why in sorted(blamed.items()):
            if self._jobs[downstream].record.executor == targets.get(downstream):
                self._attempt_failed(downstream, why, now)

    # ------------------------------------------------------------------ machinery
    def _request(self, name: str, now: float) -> None:
        state = self._jobs[name]
        candidate = state.candidates[state.next_candidate % len(state.candidates)]
        # a retry keeps the previous attempt's failure visible until something new happens
        self._set_job(name, JobStatus.REQUESTED, now, state.record.reason,
                      attempt=state.record.attempt + 1,
                      executor=candidate.peer, service_id=candidate.service_id)
        self._resend_request(name, now)

    def _resend_request(self, name: str, now: float) -> None:
        state = self._jobs[name]
        job = self._specs[name]
        record = state.record
        assert record.executor is not None and record.service_id is not None
        state.tries += 1
        state.request_deadline = now + self.config.request_timeout
        state.timeout_deadline = None
        state.last_heard = now
        self._commands.append(RequestJob(
            peer=record.executor, run_id=self.run_id, job=name, attempt=record.attempt,
            service=record.service_id, env=job.env, args=job.args,
            mounts=tuple((m.path, m.direction) for m in job.mounts), limits=job.limits,
            timeout_s=job.timeout_s))

    def _attempt_failed(self, name: str, reason: str, now: float, *, notify: bool = True,
                        exit_code: int | None = None) -> None:
        """End the current attempt: retry while the policy allows, else ERRORED."""
        state = self._jobs[name]
        record = state.record
        if record.status in JOB_TERMINAL:
            return
        if notify and record.executor is not None and record.status is not JobStatus.IDLE:
            self._commands.append(CancelJob(record.executor, self.run_id, name, record.attempt,
                                            reason))
        policy = self._specs[name].retry
        state.receivers.clear()
        fed = self._end_streams(name)
        if state.tries < policy.attempts and not self._run.is_terminal:
            if policy.other_peer:
                state.next_candidate += 1
            state.retry_at = now + policy.backoff_s
            self._set_job(name, JobStatus.IDLE, now, f"attempt {record.attempt} failed: "
                                                     f"{reason}; retrying")
            if policy.backoff_s == 0:
                state.retry_at = None
                self._request(name, now)
            self._fail_fed(name, fed, reason, now)
            return
        changes = {} if exit_code is None else {"exit_code": exit_code}
        self._set_job(name, JobStatus.ERRORED, now, reason, **changes)
        if name in self._replica_of and not self._request_phase:
            return  # a replica that fails is a missing vote; the quorum decides
        if not self._first_error:
            self._first_error = f"job {name!r} errored: {reason}"
        for downstream in self._graph.descendants(name):
            if self._jobs[downstream].record.status not in JOB_TERMINAL:
                self._cancel_job(downstream, now, f"upstream job {name!r} errored")
        if self._request_phase:
            # the run cannot complete and nothing has started yet: stop every other job
            for other, other_state in self._jobs.items():
                if other_state.record.status not in JOB_TERMINAL:
                    self._cancel_job(other, now, f"run failed before start: job {name!r} "
                                                 "could not be placed")

    # ------------------------------------------------------------------ redundancy
    def has_job(self, name: str) -> bool:
        """A job of the workflow, or one of its redundant replicas (``job#2``)."""
        return name in self._jobs

    def _add_replicas(self, job: Job, options: Sequence[Candidate]
                      ) -> list[tuple[str, Sequence[Candidate]]]:
        try:
            replicas = plan_replicas(job, options)
        except ValueError as exc:
            raise LocalProtocolError(str(exc)) from None
        self._replicas[job.name] = tuple(spec.name for spec, _ in replicas)
        for spec, _options in replicas:
            name = spec.name
            self._replica_of[name] = job.name
            self._specs[name] = spec
            for conn in list(self._connections):  # the same inputs as the job itself
                if conn.target is not None and conn.target.job == job.name:
                    self._connections.append(replace(conn, target=replace(conn.target,
                                                                          job=name)))
        return [(spec.name, placed) for spec, placed in replicas]

    def _compared_outputs(self, primary: str) -> tuple[str, ...]:
        return compared_sources([c.source.key for _, c in self._graph.conn_out[primary]])

    def _decide_quorum(self, name: str, now: float) -> None:
        """A delivered redundant job completes when its quorum agrees, errors when it can't."""
        def vote(job: str) -> Vote:
            state = self._jobs[job]
            done = state.record.status is JobStatus.COMPLETED or job == name
            return Vote(state.record.executor, state.outputs if done else None,
                        state.record.status in JOB_TERMINAL)

        verdict = tally(vote(name), [vote(r) for r in self._replicas[name]],
                        self._compared_outputs(name), self._specs[name].quorum)
        if not verdict.decided:
            return
        self._awaiting_quorum.discard(name)
        for replica in self._replicas[name]:
            if self._jobs[replica].record.status not in JOB_TERMINAL:
                self._cancel_job(replica, now, f"{name!r} is decided: {verdict.reason}")
        if verdict.agreed:
            self._set_job(name, JobStatus.COMPLETED, now, verdict.reason)
            self._dirty.update(self._graph.downstream[name])
            return
        record = self._jobs[name].record
        if record.executor is not None:
            self._commands.append(CancelJob(record.executor, self.run_id, name, record.attempt,
                                            verdict.reason))
        self._set_job(name, JobStatus.ERRORED, now, verdict.reason)
        self._first_error = self._first_error or f"job {name!r} errored: {verdict.reason}"
        for downstream in self._graph.descendants(name):
            if self._jobs[downstream].record.status not in JOB_TERMINAL:
                self._cancel_job(downstream, now, f"upstream job {name!r} errored")

    def _end_streams(self, name: str) -> list[str]:
        """Forget the pipes ``name``'s attempt is part of; the consumers it was feeding live.

        A consumer's failed attempt also forgets that its streamed inputs were delivered: its
        next attempt is a new workspace, fed again (live, or from the finished output).
        """
        fed = []
        for pipe in list(self._streaming):
            producer, consumer, executor, attempt = pipe
            if producer == name:
                self._streaming.discard(pipe)
                record = self._jobs[consumer].record
                if (record.executor, record.attempt) == (executor, attempt) and record.status in (
                        JobStatus.READY, JobStatus.QUEUED, JobStatus.RUNNING):
                    fed.append(consumer)
            elif consumer == name:
                self._streaming.discard(pipe)
        for producer in self._graph.streamed_from[name]:
            self._delivered = {d for d in self._delivered if d[:2] != (producer, name)}
        return fed

    def _fail_fed(self, name: str, fed: list[str], reason: str, now: float) -> None:
        """A producer's attempt is retried: the consumers it fed live got a broken stream.

        (A producer that errors for good cancels its consumers as descendants instead.)
        """
        for consumer in fed:
            self._attempt_failed(consumer, f"streamed input from {name!r} failed: {reason}", now)

    def _cancel_job(self, name: str, now: float, reason: str) -> None:
        state = self._jobs[name]
        record = state.record
        if record.executor is not None and record.status is not JobStatus.IDLE:
            self._commands.append(CancelJob(record.executor, self.run_id, name, record.attempt,
                                            reason))
        state.receivers.clear()
        state.retry_at = None
        self._set_job(name, JobStatus.CANCELLED, now, reason)

    def _advance(self, now: float) -> None:
        """Start what can start, re-deliver what a retried job needs, and end the run."""
        if self._run.is_terminal:
            return
        for name in sorted(self._awaiting_quorum):
            self._decide_quorum(name, now)
        if self._request_phase:
            if len(self._by_status[JobStatus.ACCEPTED]) == len(self._jobs):
                self._request_phase = False
                self._dirty.update(self._jobs)
            else:
                self._finish_if_done(now)
                return
        candidates = self._dirty & self._by_status[JobStatus.ACCEPTED]
        self._dirty.clear()
        for name in sorted(candidates, key=self._index.__getitem__):
            state = self._jobs[name]
            if state.record.status is not JobStatus.ACCEPTED:
                continue  # started or failed earlier in this loop
            executor = state.record.executor
            assert executor is not None
            ready = True
            for upstream in self._graph.upstream[name]:
                up = self._jobs[upstream]
                if (upstream in self._graph.streamed_from[name] and up.record.status in _FEEDING
                        and (upstream, name, executor, state.record.attempt) in self._streaming):
                    continue  # its producer is running and pipes into this very attempt
                if up.record.status is not JobStatus.COMPLETED:
                    ready = False
                elif (upstream, name, executor) not in self._delivered:
                    ready = False
                    self._redeliver(upstream, name, now)
            # every consumer must have an executor to route to (or be out of the run)
            if ready and all(self._jobs[d].record.status is JobStatus.ACCEPTED
                             or self._jobs[d].record.status in JOB_TERMINAL
                             for d in self._graph.downstream[name]):
                self._start(name, now)
        self._finish_if_done(now)

    def _start(self, name: str, now: float, *, resend: bool = False) -> None:
        state = self._jobs[name]
        executor = state.record.executor
        assert executor is not None
        outputs = self._routes_out(name, None)
        state.receivers[0] = _Delivery(None, frozenset(
            (r.target_job, r.target_peer) for r in outputs if r.target_job is not None))
        state.deliveries = max(state.deliveries, 1)
        state.last_heard = now
        if not resend:
            self._set_job(name, JobStatus.READY, now)
        for route in outputs:
            if route.stream and route.target_job is not None:
                consumer = self._jobs[route.target_job].record
                self._streaming.add((name, route.target_job, route.target_peer, consumer.attempt))
        primary = self._replica_of.get(name, name)
        hash_only = self._compared_outputs(primary) if primary in self._replicas else ()
        self._commands.append(StartJob(executor, self.run_id, name, state.record.attempt,
                                       self._routes_in(name), outputs, delivery=0,
                                       hash_only=hash_only))

    def _redeliver(self, upstream: str, downstream: str, now: float) -> None:
        state = self._jobs[upstream]
        target = (downstream, self._jobs[downstream].record.executor)
        if any(target in d.targets for d in state.receivers.values()):
            return  # already on its way
        number = state.deliveries
        state.deliveries += 1
        routes = self._routes_out(upstream, downstream)
        state.receivers[number] = _Delivery(now + self.config.delivery_timeout, frozenset(
            (r.target_job, r.target_peer) for r in routes if r.target_job is not None))
        executor = state.record.executor
        assert executor is not None
        self._commands.append(DeliverOutputs(executor, self.run_id, upstream,
                                             state.record.attempt, routes, number))

    def _routes_out(self, name: str, only: str | None) -> tuple[OutputRoute, ...]:
        routes: list[OutputRoute] = []
        for index, conn in self._graph.conn_out[name]:
            if conn.target is None:
                if only is None:
                    routes.append(OutputRoute(index, conn.source.key, self.requester, None, None,
                                              conn.file))
                continue
            if only is not None and conn.target.job != only:
                continue
            if self._jobs[conn.target.job].record.status in JOB_TERMINAL:
                continue  # that consumer errored or was cancelled; nobody to deliver to
            target_executor = self._jobs[conn.target.job].record.executor
            assert target_executor is not None
            routes.append(OutputRoute(index, conn.source.key, target_executor, conn.target.job,
                                      conn.target.key, conn.file, conn.stream))
        return tuple(routes)

    def _routes_in(self, name: str) -> tuple[InputRoute, ...]:
        routes: list[InputRoute] = []
        for index, conn in self._graph.conn_in[name]:
            assert conn.target is not None
            source_executor = self._jobs[conn.source.job].record.executor
            assert source_executor is not None
            routes.append(InputRoute(index, conn.source.job, conn.source.key, source_executor,
                                     conn.target.key, conn.file, conn.stream))
        return tuple(routes)

    def _finish_if_done(self, now: float) -> None:
        if self._run.is_terminal:
            return
        if sum(len(self._by_status[s]) for s in JOB_TERMINAL) != len(self._jobs):
            return
        if all(self._jobs[n].record.status is JobStatus.COMPLETED
               for n in self._jobs if n not in self._replica_of):
            self._set_run(RunStatus.COMPLETED, now)
        else:
            self._set_run(RunStatus.FAILED, now, self._first_error or "a job was cancelled")
        self._release_all()

    def _release_all(self) -> None:
        for name, state in self._jobs.items():
            record = state.record
            if record.status is JobStatus.COMPLETED and record.executor is not None:
                self._commands.append(ReleaseJob(record.executor, self.run_id, name,
                                                 record.attempt))

    def _set_job(self, name: str, status: JobStatus, now: float, reason: str = "",
                 **changes: object) -> None:
        state = self._jobs[name]
        old = state.record.status
        state.record = state.record.with_status(status, now, reason, **changes)
        self._by_status[old].discard(name)
        self._by_status[status].add(name)
        # its consumers wait for it to complete, its producers for it to have an executor
        self._dirty.add(name)
        self._dirty.update(self._graph.downstream[name])
        self._dirty.update(self._graph.upstream[name])
        self._events.append(JobStatusChanged(state.record))

    def _set_run(self, status: RunStatus, now: float, reason: str = "") -> None:
        self._run = self._run.with_status(status, now, reason)
        self._events.append(RunStatusChanged(self._run))

    def _ignore(self, peer: PeerId, report: Report, reason: str) -> None:
        self._events.append(ReportIgnored(peer, report, reason))


_Handler = Callable[[Scheduler, str, Report, float], None]
_DISPATCH: dict[type, tuple[frozenset[JobStatus], _Handler]] = {
    JobAccepted: (frozenset({JobStatus.REQUESTED}), Scheduler._on_accepted),
    JobRefused: (frozenset({JobStatus.REQUESTED}), Scheduler._on_refused),
    JobStatusReported: (frozenset({JobStatus.READY, JobStatus.QUEUED, JobStatus.RUNNING}),
                        Scheduler._on_status),
    JobExited: (frozenset({JobStatus.READY, JobStatus.QUEUED, JobStatus.RUNNING}),
                Scheduler._on_exited),
    OutputsDelivered: (frozenset({JobStatus.DELIVERING, JobStatus.COMPLETED}),
                       Scheduler._on_delivered),
    JobLost: (_ENGAGED | {JobStatus.REQUESTED}, Scheduler._on_lost),
}
"""Which report is allowed in which job state; anything else is ignored with a reason."""
