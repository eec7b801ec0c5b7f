"""The scheduler against random DAGs and randomly misbehaving executors, on a virtual clock.

Properties checked on every example:
* the run always ends (COMPLETED, FAILED or CANCELLED) in bounded virtual time;
* no job is started before every job it reads from has completed *and* delivered its
  outputs to that job's executor;
* nothing starts before every job was accepted once (the request phase is a barrier);
* a terminal job or run never changes again;
* COMPLETED means every job completed; otherwise the run has a reason;
* all of the above still hold when the requester "restarts" at a random moment: the
  scheduler is snapshotted, serialised to JSON and restored from it.

The executors here are a scripted counterpart speaking the real message types (as aioquic's
tests pair two connections); their behaviour per attempt is drawn by Hypothesis.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnn_tui.identity.keys import Identity, PeerId
from rnn_tui.workflow.messages import (
    CancelJob,
    DeliverOutputs,
    ExecState,
    Heartbeat,
    JobAccepted,
    JobExited,
    JobRefused,
    JobStatusReported,
    OutputDigest,
    OutputsDelivered,
    ReleaseJob,
    Report,
    RequestJob,
    StartJob,
)
from rnn_tui.workflow.model import (
    JOB_TERMINAL,
    Connection,
    InterfaceType,
    Job,
    JobStatus,
    PortRef,
    RetryPolicy,
    RunStatus,
    ServiceRef,
    Workflow,
)
from rnn_tui.workflow.scheduler import (
    Candidate,
    JobStatusChanged,
    RunStatusChanged,
    Scheduler,
    SchedulerConfig,
)
from rnn_tui.workflow.snapshot import SchedulerSnapshot

EXECUTORS = [Identity(bytes([i]) * 32).peer_id for i in range(10, 14)]
REQUESTER = Identity(bytes([9]) * 32).peer_id
HEARTBEAT = 1.0
MAX_TIME = 100_000.0


@st.composite
def dags(draw: st.DrawFn) -> tuple[Workflow, dict[str, list[Candidate]]]:
    n = draw(st.integers(1, 7))
    names = [f"j{i}" for i in range(n)]
    jobs = []
    for name in names:
        retry = draw(st.sampled_from([RetryPolicy(), RetryPolicy(2, True), RetryPolicy(3, False, 0.5)]))
        jobs.append(Job(name, ServiceRef("svc"), retry=retry,
                        timeout_s=draw(st.sampled_from([None, 20.0]))))
    conns = []
    for j in range(n):
        for i in range(j):
            if draw(st.booleans()):
                conns.append(Connection(PortRef(names[i], InterfaceType.STDOUT),
                                        PortRef(names[j], InterfaceType.STDIN)))
    for name in names:
        if draw(st.integers(0, 3)) == 0:
            conns.append(Connection(PortRef(name, InterfaceType.STDERR), None, f"{name}.err"))
    candidates = {name: [Candidate(p, "svc") for p in draw(
        st.lists(st.sampled_from(EXECUTORS), min_size=1, max_size=3, unique=True))]
        for name in names}
    return Workflow("random", tuple(jobs), tuple(conns)), candidates


@dataclass
class World:
    scheduler: Scheduler
    draw: Callable[[st.SearchStrategy[object]], object]
    queue: list[tuple[float, int, Callable[[float], None]]] = field(default_factory=list)
    seq: itertools.count = field(default_factory=itertools.count)
    live: set[tuple[str, int]] = field(default_factory=set)      # attempts still beating
    delivered: set[tuple[str, str, PeerId]] = field(default_factory=set)
    terminal_jobs: set[str] = field(default_factory=set)
    run_ended: bool = False
    first_start_seen: bool = False
    answers: dict[tuple[str, int], str] = field(default_factory=dict)
    started: set[tuple[str, int]] = field(default_factory=set)
    candidates: dict[str, list[Candidate]] = field(default_factory=dict)
    restarts: int = 0

    def at(self, when: float, fn: Callable[[float], None]) -> None:
        heapq.heappush(self.queue, (when, next(self.seq), fn))

    def latency(self) -> float:
        return float(self.draw(st.sampled_from([0.01, 0.2, 1.5])))  # type: ignore[arg-type]

    def report(self, peer: PeerId, report: Report, when: float) -> None:
        self.at(when, lambda now: self.feed(lambda: self.scheduler.receive(peer, report, now), now))

    def feed(self, action: Callable[[], None], now: float) -> None:
        action()
        self.pump(now)

    def pump(self, now: float) -> None:
        s = self.scheduler
        while (event := s.next_event()) is not None:
            if isinstance(event, JobStatusChanged):
                name = event.record.job
                assert name not in self.terminal_jobs, f"terminal job {name} changed again"
                if event.record.status in JOB_TERMINAL:
                    self.terminal_jobs.add(name)
            elif isinstance(event, RunStatusChanged):
                assert not self.run_ended, "terminal run changed again"
                if event.record.is_terminal:
                    self.run_ended = True
        for command in s.commands_to_send():
            self.on_command(command, now)
        timer = s.get_timer()
        if timer is not None:
            self.at(max(timer, now),
                    lambda t: self.feed(lambda: self.scheduler.handle_timer(t), t))

    def restart_requester(self, now: float) -> None:
        """Persist, lose the process, restore from JSON, carry on."""
        old = self.scheduler
        text = old.snapshot().to_json()
        self.scheduler = Scheduler.restore(
            SchedulerSnapshot.from_json(text), old.workflow, old.requester, self.candidates,
            now, old.config)
        self.restarts += 1
        self.pump(now)

    # ---- the executors' side
    def on_command(self, cmd: object, now: float) -> None:
        s = self.scheduler
        if isinstance(cmd, RequestJob):
            key = (cmd.job, cmd.attempt)
            repeat = key in self.answers  # a restored requester asks again: same answer
            if not repeat:
                self.answers[key] = str(self.draw(
                    st.sampled_from(["accept"] * 6 + ["refuse", "silent"])))
            choice = self.answers[key]
            if choice == "accept":
                self.report(cmd.peer, JobAccepted(s.run_id, cmd.job, cmd.attempt),
                            now + self.latency())
                if not repeat:
                    self.live.add(key)
                    self.beat(cmd.peer, cmd.job, cmd.attempt, now + HEARTBEAT)
            elif choice == "refuse":
                self.report(cmd.peer, JobRefused(s.run_id, cmd.job, cmd.attempt, "busy"),
                            now + self.latency())
        elif isinstance(cmd, StartJob):
            self.check_start(cmd)
            if (cmd.job, cmd.attempt) not in self.started:  # a repeat after restore: no-op
                self.started.add((cmd.job, cmd.attempt))
                self.run_job(cmd, now)
        elif isinstance(cmd, DeliverOutputs):
            if self.draw(st.sampled_from([True, True, True, False])):
                self.deliver(cmd.peer, cmd.job, cmd.attempt, cmd.delivery, cmd.outputs,
                             now + self.latency())
        elif isinstance(cmd, CancelJob):
            self.live.discard((cmd.job, cmd.attempt))
        else:
            assert isinstance(cmd, ReleaseJob)

    def check_start(self, cmd: StartJob) -> None:
        s = self.scheduler
        if not self.first_start_seen:
            self.first_start_seen = True
            assert all(j.status in (JobStatus.ACCEPTED, JobStatus.READY) for j in s.jobs), \
                "a job started before every job was accepted"
        for upstream in s.workflow.upstream_of(cmd.job):
            assert s.job(upstream).status is JobStatus.COMPLETED, (cmd.job, upstream)
            assert (upstream, cmd.job, cmd.peer) in self.delivered, \
                f"{cmd.job} started on {cmd.peer.short} before {upstream}'s outputs arrived"
        assert {r.source_job for r in cmd.inputs} == set(s.workflow.upstream_of(cmd.job))

    def run_job(self, cmd: StartJob, now: float) -> None:
        s = self.scheduler
        key = (cmd.job, cmd.attempt)
        fate = self.draw(st.sampled_from(["ok"] * 8 + ["fail", "die", "hang", "bad-route"]))
        t = now + self.latency()
        self.report(cmd.peer, JobStatusReported(s.run_id, cmd.job, cmd.attempt, ExecState.RUNNING),
                    t)
        if fate == "die":
            self.at(t, lambda _: self.live.discard(key))
            return
        if fate == "hang":
            if s.workflow.job(cmd.job).timeout_s is None:
                fate = "ok"
            else:
                return
        t += float(self.draw(st.sampled_from([0.1, 2.0, 7.0])))  # type: ignore[arg-type]
        code = 1 if fate == "fail" else 0
        self.report(cmd.peer, JobExited(s.run_id, cmd.job, cmd.attempt, code), t)
        if code == 0:
            self.deliver(cmd.peer, cmd.job, cmd.attempt, 0, cmd.outputs, t + self.latency(),
                         fail_one=fate == "bad-route")

    def deliver(self, peer: PeerId, job: str, attempt: int, number: int,
                routes: tuple[object, ...], when: float, fail_one: bool = False) -> None:
        failed: tuple[tuple[int, str], ...] = ()
        ok_routes = list(routes)
        if fail_one and routes:
            first = routes[0]
            failed = ((first.connection, "receiver vanished"),)  # type: ignore[attr-defined]
            ok_routes = ok_routes[1:]

        def send(now: float) -> None:
            if (job, attempt) not in self.live and number == 0:
                return
            for route in ok_routes:
                if route.target_job is not None:  # type: ignore[attr-defined]
                    self.delivered.add((job, route.target_job, route.target_peer))  # type: ignore[attr-defined]
            self.feed(lambda: self.scheduler.receive(peer, OutputsDelivered(
                self.scheduler.run_id, job, attempt, number,
                (OutputDigest("STDOUT", 1, "00" * 32),), failed), now), now)
        self.at(when, send)

    def beat(self, peer: PeerId, job: str, attempt: int, when: float) -> None:
        def tick(now: float) -> None:
            if (job, attempt) in self.live and not self.run_ended:
                self.feed(lambda: self.scheduler.receive(
                    peer, Heartbeat(self.scheduler.run_id, job, attempt), now), now)
                self.beat(peer, job, attempt, now + HEARTBEAT)
        self.at(when, tick)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dag=dags(), data=st.data())
def test_random_dags_always_end_and_respect_dependencies(
        dag: tuple[Workflow, dict[str, list[Candidate]]], data: st.DataObject) -> None:
    workflow, candidates = dag
    scheduler = Scheduler("r", workflow, REQUESTER, candidates, now=0.0,
                          config=SchedulerConfig(request_timeout=3.0, heartbeat_timeout=3.0,
                                                 delivery_timeout=10.0))
    world = World(scheduler, data.draw, candidates=candidates)
    world.feed(lambda: scheduler.start(0.0), 0.0)
    for when in data.draw(st.lists(st.sampled_from([0.05, 0.3, 1.0, 2.5, 6.0, 15.0]),
                                   max_size=2)):
        world.at(when, world.restart_requester)
    if data.draw(st.integers(0, 9)) == 0:
        when = float(data.draw(st.sampled_from([0.5, 3.0, 12.0])))
        world.at(when, lambda now: world.feed(lambda: world.scheduler.cancel(now, "user"), now))
    steps = 0
    while world.queue and not world.run_ended:
        now, _, fn = heapq.heappop(world.queue)
        assert now < MAX_TIME
        fn(now)
        steps += 1
        assert steps < 200_000
    scheduler = world.scheduler
    assert world.run_ended and scheduler.run.is_terminal
    statuses = {j.job: j.status for j in scheduler.jobs}
    assert all(status in JOB_TERMINAL for status in statuses.values()), statuses
    if scheduler.run.status is RunStatus.COMPLETED:
        assert all(status is JobStatus.COMPLETED for status in statuses.values())
    else:
        assert scheduler.run.reason
        assert any(status is not JobStatus.COMPLETED for status in statuses.values())
