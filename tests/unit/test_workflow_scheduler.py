"""The requester's scheduler core, scenario by scenario, with time advanced by hand."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnn_tui.errors import LocalProtocolError
from rnn_tui.identity.keys import Identity, PeerId
from rnn_tui.workflow.messages import (
    CancelJob,
    Command,
    DeliverOutputs,
    ExecState,
    Heartbeat,
    JobAccepted,
    JobExited,
    JobLost,
    JobRefused,
    JobStatusReported,
    OutputDigest,
    OutputsDelivered,
    ReleaseJob,
    RequestJob,
    StartJob,
)
from rnn_tui.workflow.model import JobStatus, RetryPolicy, RunStatus, Workflow
from rnn_tui.workflow.scheduler import (
    Candidate,
    JobStatusChanged,
    ReportIgnored,
    RunStatusChanged,
    Scheduler,
    SchedulerConfig,
)
from rnn_tui.workflow.yaml_io import load_workflow

PEERS = [Identity(bytes([i]) * 32).peer_id for i in range(1, 6)]
REQUESTER, A, B, C, D = PEERS
RUN = "run1"

PIPELINE = """\
name: p
jobs:
  - {name: src, service: data}
  - {name: mid, service: tool, retry: {attempts: 2, other_peer: true}}
  - {name: end, service: tool, timeout_s: 30}
connections:
  - {from: src.STDOUT, to: mid.STDIN}
  - {from: mid.STDOUT, to: end.STDIN}
  - {from: end.STDOUT, to: self, file: out.txt}
"""


def make(text: str = PIPELINE, **placement: list[PeerId]) -> Scheduler:
    wf: Workflow = load_workflow(text).workflow
    candidates = {
        job.name: [Candidate(p, f"svc-{job.service.service}")
                   for p in placement.get(job.name, [A])]
        for job in wf.jobs
    }
    return Scheduler(RUN, wf, REQUESTER, candidates, now=0.0,
                     config=SchedulerConfig(request_timeout=5, heartbeat_timeout=4,
                                            delivery_timeout=20))


def drain(s: Scheduler) -> list[Command]:
    return s.commands_to_send()


def events(s: Scheduler) -> list[object]:
    out = []
    while (event := s.next_event()) is not None:
        out.append(event)
    return out


def accept_all(s: Scheduler, now: float = 0.1) -> list[Command]:
    requests = [c for c in drain(s) if isinstance(c, RequestJob)]
    for req in requests:
        s.receive(req.peer, JobAccepted(RUN, req.job, req.attempt), now)
    return drain(s)


def finish(s: Scheduler, start: StartJob, now: float, code: int = 0) -> list[Command]:
    s.receive(start.peer, JobStatusReported(RUN, start.job, start.attempt, ExecState.RUNNING), now)
    s.receive(start.peer, JobExited(RUN, start.job, start.attempt, code), now)
    if code == 0:
        s.receive(start.peer, OutputsDelivered(
            RUN, start.job, start.attempt, start.delivery,
            (OutputDigest("STDOUT", 3, "ab" * 32),)), now)
    return drain(s)


def test_happy_path_two_phases_and_routing() -> None:
    s = make(src=[A], mid=[B], end=[C])
    s.start(0.0)
    requests = drain(s)
    assert [(c.job, c.peer) for c in requests if isinstance(c, RequestJob)] == [
        ("src", A), ("mid", B), ("end", C)]
    # phase 2 waits for every acceptance
    s.receive(A, JobAccepted(RUN, "src", 1), 0.1)
    s.receive(B, JobAccepted(RUN, "mid", 1), 0.1)
    assert drain(s) == []
    s.receive(C, JobAccepted(RUN, "end", 1), 0.2)
    (start_src,) = drain(s)
    assert isinstance(start_src, StartJob) and start_src.job == "src" and start_src.inputs == ()
    (route,) = start_src.outputs
    assert (route.target_peer, route.target_job, route.target) == (B, "mid", "STDIN")
    (start_mid,) = finish(s, start_src, 1.0)
    assert isinstance(start_mid, StartJob) and start_mid.job == "mid"
    assert start_mid.inputs[0].source_peer == A and start_mid.inputs[0].source_job == "src"
    (start_end,) = finish(s, start_mid, 2.0)
    assert isinstance(start_end, StartJob)
    (to_self,) = start_end.outputs
    assert to_self.target_peer == REQUESTER and to_self.target_job is None
    assert to_self.file == "out.txt"
    released = finish(s, start_end, 3.0)
    assert s.run.status is RunStatus.COMPLETED and s.run.ended_at == 3.0
    assert sorted((c.job, c.peer) for c in released if isinstance(c, ReleaseJob)) == [
        ("end", C), ("mid", B), ("src", A)]
    assert s.outputs_of("end")[0].sha256 == "ab" * 32
    assert s.get_timer() is None


def test_independent_jobs_start_together() -> None:
    s = make("name: fan\njobs:\n  - {name: a, service: s}\n  - {name: b, service: s}\n"
             "  - {name: c, service: s}\nconnections:\n  - {from: a.STDOUT, to: c.STDIN}\n"
             "  - {from: b.STDOUT, to: c.STDIN}\n".replace("b.STDOUT, to: c.STDIN",
                                                           "b.STDOUT, to: self, file: b"))
    s.start(0.0)
    starts = [c.job for c in accept_all(s) if isinstance(c, StartJob)]
    assert starts == ["a", "b"]


def test_refusal_moves_to_next_candidate_then_fails_run_with_reason() -> None:
    s = make(mid=[B, C])
    s.start(0.0)
    drain(s)
    s.receive(B, JobRefused(RUN, "mid", 1, "no capacity"), 0.5)
    (retry,) = drain(s)
    assert isinstance(retry, RequestJob) and retry.peer == C and retry.attempt == 2
    assert s.job("mid").status is JobStatus.REQUESTED
    assert "refused by" in [e for e in events(s) if isinstance(e, JobStatusChanged)][-2].record.reason
    s.receive(C, JobRefused(RUN, "mid", 2, "policy: requester not allowed"), 0.6)
    cancels = drain(s)
    assert s.run.status is RunStatus.FAILED
    assert "job 'mid' errored: refused by" in s.run.reason
    assert "policy: requester not allowed" in s.run.reason
    assert s.job("src").status is JobStatus.CANCELLED
    assert {c.job for c in cancels if isinstance(c, CancelJob)} == {"src", "end"}
    assert s.job("mid").status is JobStatus.ERRORED


def test_unanswered_request_times_out() -> None:
    s = make()
    s.start(0.0)
    drain(s)
    assert s.get_timer() == 5.0
    s.handle_timer(5.0)
    assert s.run.status is RunStatus.FAILED
    assert "did not answer the request within 5s" in s.run.reason


def test_failed_job_fails_downstream_and_run_without_retry() -> None:
    s = make(src=[A], mid=[B], end=[C])
    s.start(0.0)
    (start_src,) = accept_all(s)
    assert isinstance(start_src, StartJob)
    finish(s, start_src, 1.0, code=3)
    assert s.job("src").status is JobStatus.ERRORED and s.job("src").exit_code == 3
    assert s.job("mid").status is JobStatus.CANCELLED
    assert s.job("mid").reason == "upstream job 'src' errored"
    assert s.run.status is RunStatus.FAILED
    assert s.run.reason == "job 'src' errored: exited with code 3"


def test_retry_moves_to_other_peer_and_inputs_are_delivered_again() -> None:
    s = make(src=[A], mid=[B, D], end=[C])
    s.start(0.0)
    (start_src,) = accept_all(s)
    assert isinstance(start_src, StartJob)
    (start_mid,) = finish(s, start_src, 1.0)
    assert isinstance(start_mid, StartJob) and start_mid.peer == B
    s.receive(B, JobExited(RUN, "mid", 1, 137, "killed (out of memory)"), 2.0)
    (retry,) = drain(s)
    assert isinstance(retry, RequestJob) and retry.peer == D and retry.attempt == 2
    s.receive(D, JobAccepted(RUN, "mid", 2), 2.1)
    (redeliver,) = drain(s)
    assert isinstance(redeliver, DeliverOutputs) and redeliver.peer == A
    assert redeliver.delivery == 1 and redeliver.outputs[0].target_peer == D
    # a stale report from the old attempt changes nothing
    s.receive(B, Heartbeat(RUN, "mid", 1), 2.2)
    assert any(isinstance(e, ReportIgnored) for e in events(s))
    s.receive(A, OutputsDelivered(RUN, "src", 1, 1), 2.5)
    (start_mid2,) = drain(s)
    assert isinstance(start_mid2, StartJob) and start_mid2.peer == D and start_mid2.attempt == 2
    (start_end,) = finish(s, start_mid2, 3.0)
    assert isinstance(start_end, StartJob)
    assert start_end.inputs[0].source_peer == D
    finish(s, start_end, 4.0)
    assert s.run.status is RunStatus.COMPLETED


def test_heartbeat_timeout_detects_dead_executor() -> None:
    s = make(src=[A], mid=[B], end=[C])
    s.start(0.0)
    (start_src,) = accept_all(s, now=0.0)
    assert isinstance(start_src, StartJob)
    s.receive(A, JobStatusReported(RUN, "src", 1, ExecState.RUNNING), 1.0)
    for t in (2.0, 3.0, 4.0):  # the others keep beating
        s.receive(B, Heartbeat(RUN, "mid", 1), t)
        s.receive(C, Heartbeat(RUN, "end", 1), t)
    assert s.get_timer() == 5.0
    s.handle_timer(5.0)
    assert s.job("src").status is JobStatus.ERRORED
    assert "silent for 4.0s (heartbeat timeout)" in s.job("src").reason
    assert s.run.status is RunStatus.FAILED


def test_lost_job_is_retried_at_once_without_a_heartbeat_timeout() -> None:
    s = make(src=[A], mid=[B, D], end=[C])
    s.start(0.0)
    (start_src,) = accept_all(s, now=0.0)
    assert isinstance(start_src, StartJob)
    s.receive(A, JobStatusReported(RUN, "src", 1, ExecState.RUNNING), 0.5)
    # mid's executor restarted while holding its reservation (ACCEPTED, not started)
    s.receive(B, JobLost(RUN, "mid", 1, "the executor restarted before the job started"), 1.0)
    (retry,) = drain(s)
    assert isinstance(retry, RequestJob) and retry.peer == D and retry.attempt == 2
    assert "lost the job: the executor restarted before the job started; retrying" in \
        s.job("mid").reason
    # src's executor lost it while running; src has no retry policy: the run fails, explained
    s.receive(A, JobLost(RUN, "src", 1, "container lost (it was still running)"), 1.5)
    assert s.job("src").status is JobStatus.ERRORED
    assert s.run.status is RunStatus.FAILED
    assert "lost the job: container lost (it was still running)" in s.run.reason
    assert not any(isinstance(c, CancelJob) and c.job == "src" for c in drain(s))


def test_lost_report_for_another_attempt_or_a_finished_job_is_ignored() -> None:
    s = make(src=[A], mid=[B], end=[C])
    s.start(0.0)
    (start_src,) = accept_all(s, now=0.0)
    assert isinstance(start_src, StartJob)
    finish(s, start_src, 1.0)
    assert s.job("src").status is JobStatus.COMPLETED
    events(s)
    s.receive(A, JobLost(RUN, "src", 1, "shut down"), 1.1)
    s.receive(B, JobLost(RUN, "mid", 7, "shut down"), 1.1)
    ignored = [e for e in events(s) if isinstance(e, ReportIgnored)]
    assert len(ignored) == 2 and s.job("src").status is JobStatus.COMPLETED
    assert s.job("mid").status is not JobStatus.IDLE and s.run.status is RunStatus.RUNNING


def test_job_timeout_cancels_the_job() -> None:
    s = make(src=[A], mid=[B], end=[C])
    s.start(0.0)
    (start_src,) = accept_all(s)
    assert isinstance(start_src, StartJob)
    (start_mid,) = finish(s, start_src, 1.0)
    assert isinstance(start_mid, StartJob)
    (start_end,) = finish(s, start_mid, 2.0)
    assert isinstance(start_end, StartJob)
    s.receive(C, JobStatusReported(RUN, "end", 1, ExecState.RUNNING), 3.0)
    for t in range(4, 34, 2):
        s.receive(C, Heartbeat(RUN, "end", 1), float(t))
    s.handle_timer(33.0)
    assert s.job("end").status is JobStatus.ERRORED and s.job("end").reason == "timed out after 30s"
    assert any(isinstance(c, CancelJob) and c.job == "end" for c in drain(s))


def test_cancel_propagates_to_every_executor() -> None:
    s = make(src=[A], mid=[B], end=[C])
    s.start(0.0)
    accept_all(s)
    s.cancel(1.0, "user pressed c")
    cancels = drain(s)
    assert sorted((c.job, c.peer) for c in cancels if isinstance(c, CancelJob)) == [
        ("end", C), ("mid", B), ("src", A)]
    assert s.run.status is RunStatus.CANCELLED and s.run.reason == "user pressed c"
    assert all(j.status is JobStatus.CANCELLED for j in s.jobs)
    s.cancel(2.0)  # idempotent
    assert drain(s) == []


def test_reports_from_strangers_and_out_of_order_are_ignored() -> None:
    s = make(src=[A], mid=[B], end=[C])
    s.start(0.0)
    drain(s)
    s.receive(D, JobAccepted(RUN, "src", 1), 0.1)
    s.receive(A, JobExited(RUN, "src", 1, 0), 0.1)
    s.receive(A, JobAccepted("other-run", "src", 1), 0.1)
    s.receive(A, JobAccepted(RUN, "nope", 1), 0.1)
    ignored = [e for e in events(s) if isinstance(e, ReportIgnored)]
    assert len(ignored) == 4
    assert "is not the executor" in ignored[0].reason
    assert "JobExited is not expected while 'src' is REQUESTED" in ignored[1].reason
    assert s.job("src").status is JobStatus.REQUESTED


def test_failed_delivery_to_consumer_retries_the_consumer() -> None:
    s = make(src=[A], mid=[B, D], end=[C])
    s.start(0.0)
    (start_src,) = accept_all(s)
    assert isinstance(start_src, StartJob)
    s.receive(A, JobExited(RUN, "src", 1, 0), 1.0)
    s.receive(A, OutputsDelivered(RUN, "src", 1, 0, failed=((0, "connection lost"),)), 1.5)
    assert s.job("src").status is JobStatus.COMPLETED
    (cancel, retry) = drain(s)
    assert isinstance(cancel, CancelJob) and cancel.peer == B
    assert isinstance(retry, RequestJob) and retry.peer == D
    assert "could not receive input from 'src': connection lost" in s.job("mid").reason


def test_undelivered_redelivery_times_out() -> None:
    s = make(src=[A], mid=[B, D], end=[C])
    s.start(0.0)
    (start_src,) = accept_all(s)
    assert isinstance(start_src, StartJob)
    finish(s, start_src, 1.0)
    s.report_failure("mid", 1, "receipt signed by the wrong key", 1.5)
    drain(s)
    s.receive(D, JobAccepted(RUN, "mid", 2), 1.6)
    assert any(isinstance(c, DeliverOutputs) for c in drain(s))
    s.receive(D, Heartbeat(RUN, "mid", 2), 5.0)
    s.receive(C, Heartbeat(RUN, "end", 1), 5.0)
    for t in range(9, 22, 4):
        s.receive(D, Heartbeat(RUN, "mid", 2), float(t))
        s.receive(C, Heartbeat(RUN, "end", 1), float(t))
    s.handle_timer(21.6)
    assert s.job("mid").status is JobStatus.ERRORED
    assert "inputs from 'src' were not delivered in time" in s.job("mid").reason


def test_backoff_delays_the_retry() -> None:
    text = PIPELINE.replace("retry: {attempts: 2, other_peer: true}",
                            "retry: {attempts: 3, backoff_s: 2}")
    s = make(text)
    s.start(0.0)
    drain(s)
    s.receive(A, JobRefused(RUN, "mid", 1, "busy"), 1.0)
    assert drain(s) == [] and s.job("mid").status is JobStatus.IDLE
    assert s.get_timer() == 3.0
    s.handle_timer(3.0)
    (again,) = drain(s)
    assert isinstance(again, RequestJob) and again.attempt == 2


def test_misuse_is_a_local_error() -> None:
    wf = load_workflow(PIPELINE).workflow
    with pytest.raises(LocalProtocolError, match="no executor candidate"):
        Scheduler(RUN, wf, REQUESTER, {"src": [Candidate(A, "x")]}, now=0.0)
    cyc = load_workflow("name: c\njobs:\n  - {name: a, service: s}\n  - {name: b, service: s}\n"
                        "connections:\n  - {from: a.STDOUT, to: b.STDIN}\n"
                        "  - {from: b.STDOUT, to: a.STDIN}\n").workflow
    with pytest.raises(LocalProtocolError, match="cycle"):
        Scheduler(RUN, cyc, REQUESTER, {"a": [Candidate(A, "x")], "b": [Candidate(A, "x")]}, 0.0)
    s = make()
    s.start(0.0)
    with pytest.raises(LocalProtocolError, match="already started"):
        s.start(1.0)
    assert RetryPolicy().attempts == 1


def test_events_report_every_change_in_order() -> None:
    s = make(src=[A], mid=[B], end=[C])
    s.start(0.0)
    seen = events(s)
    assert isinstance(seen[0], RunStatusChanged) and seen[0].record.status is RunStatus.RUNNING
    assert [e.record.status for e in seen[1:] if isinstance(e, JobStatusChanged)] == [
        JobStatus.REQUESTED] * 3


def test_restart_mid_run_continues_from_a_json_snapshot() -> None:
    from rnn_tui.errors import StoreError
    from rnn_tui.workflow.snapshot import SchedulerSnapshot

    s = make(src=[A], mid=[B], end=[C])
    s.start(0.0)
    (start_src,) = accept_all(s)
    assert isinstance(start_src, StartJob)
    (start_mid,) = finish(s, start_src, 1.0)
    assert isinstance(start_mid, StartJob)
    s.receive(B, JobStatusReported(RUN, "mid", 1, ExecState.RUNNING), 1.5)
    text = s.snapshot().to_json()
    snap = SchedulerSnapshot.from_json(text)
    assert snap == s.snapshot()
    wf = s.workflow
    candidates = {"src": [Candidate(A, "svc-data")], "mid": [Candidate(B, "svc-tool")],
                  "end": [Candidate(C, "svc-tool")]}
    restored = Scheduler.restore(snap, wf, REQUESTER, candidates, now=100.0,
                                 config=s.config)
    assert restored.job("mid").status is JobStatus.RUNNING
    assert restored.commands_to_send() == []
    # the executor reconnects and finishes; the run carries on to completion
    restored.receive(B, JobExited(RUN, "mid", 1, 0), 101.0)
    restored.receive(B, OutputsDelivered(RUN, "mid", 1, 0), 101.5)
    (start_end,) = restored.commands_to_send()
    assert isinstance(start_end, StartJob) and start_end.job == "end"
    finish(restored, start_end, 102.0)
    assert restored.run.status is RunStatus.COMPLETED
    # a silent executor after the restart is detected within one heartbeat timeout
    lost = Scheduler.restore(snap, wf, REQUESTER, candidates, now=100.0, config=s.config)
    assert lost.get_timer() == 104.0
    lost.handle_timer(104.0)
    mid = lost.job("mid")  # its retry policy allows a second attempt
    assert mid.status is JobStatus.REQUESTED and mid.attempt == 2
    assert "heartbeat timeout" in mid.reason
    with pytest.raises(StoreError, match="damaged"):
        SchedulerSnapshot.from_json(text.replace('"jobs"', '"jobz"'))
    with pytest.raises(StoreError, match="version"):
        SchedulerSnapshot.from_json(text.replace('"v": 1', '"v": 9'))


def test_restart_resends_lost_requests_and_starts() -> None:
    s = make(src=[A], mid=[B], end=[C])
    s.start(0.0)
    drain(s)
    s.receive(A, JobAccepted(RUN, "src", 1), 0.1)
    s.receive(B, JobAccepted(RUN, "mid", 1), 0.1)
    snap = s.snapshot()
    candidates = {"src": [Candidate(A, "svc-data")], "mid": [Candidate(B, "svc-tool")],
                  "end": [Candidate(C, "svc-tool")]}
    restored = Scheduler.restore(snap, s.workflow, REQUESTER, candidates, now=50.0)
    (again,) = restored.commands_to_send()
    assert isinstance(again, RequestJob) and (again.job, again.peer, again.attempt) == (
        "end", C, 1)
    restored.receive(C, JobAccepted(RUN, "end", 1), 50.1)
    (start,) = restored.commands_to_send()
    assert isinstance(start, StartJob) and start.job == "src"
    snap2 = restored.snapshot()
    again2 = Scheduler.restore(snap2, s.workflow, REQUESTER, candidates, now=60.0)
    (start_again,) = again2.commands_to_send()
    assert start_again == start  # READY: the StartJob may have been lost, so it is repeated


REPORT_KINDS = ["accept", "refuse", "queued", "running", "exit0", "exit1", "delivered",
                "delivered-failed", "heartbeat", "lost"]


def _report(kind: str, job: str, attempt: int, delivery: int) -> object:
    return {
        "accept": JobAccepted(RUN, job, attempt),
        "refuse": JobRefused(RUN, job, attempt, "no"),
        "queued": JobStatusReported(RUN, job, attempt, ExecState.QUEUED),
        "running": JobStatusReported(RUN, job, attempt, ExecState.RUNNING),
        "exit0": JobExited(RUN, job, attempt, 0),
        "exit1": JobExited(RUN, job, attempt, 1, "boom"),
        "delivered": OutputsDelivered(RUN, job, attempt, delivery),
        "delivered-failed": OutputsDelivered(RUN, job, attempt, delivery, (),
                                             ((delivery, "lost"), (99, "no such route"))),
        "heartbeat": Heartbeat(RUN, job, attempt),
        "lost": JobLost(RUN, job, attempt, "executor restarted"),
    }[kind]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.sampled_from(REPORT_KINDS),
                          st.sampled_from(["src", "mid", "end"]), st.integers(0, 3),
                          st.integers(0, 2), st.sampled_from([0.0, 0.5, 3.0, 10.0]),
                          st.integers(0, 30)), max_size=60))
def test_any_report_sequence_is_absorbed(steps: list[tuple[int, str, str, int, int, float, int]]
                                         ) -> None:
    """Every (state, report) pair, from any peer, any attempt: no exception, terminal states
    stay terminal, the run's status agrees with its jobs'."""
    s = make(src=[A, B], mid=[B, D], end=[C])
    s.start(0.0)
    now = 0.0
    final: dict[str, JobStatus] = {}
    for peer_index, kind, job, attempt, delivery, dt, action in steps:
        now += dt
        if action == 0:
            s.cancel(now)
        elif action == 1:
            s.report_failure(job, attempt, "orchestrator says no", now)
        elif action == 2:
            s.handle_timer(now)
        else:
            s.receive(PEERS[peer_index], _report(kind, job, attempt, delivery), now)  # type: ignore[arg-type]
        drain(s)
        for record in s.jobs:
            if record.job in final:
                assert record.status is final[record.job], "a terminal job changed"
            elif record.is_terminal:
                final[record.job] = record.status
    if s.run.status is RunStatus.COMPLETED:
        assert all(j.status is JobStatus.COMPLETED for j in s.jobs)
    if s.run.is_terminal:
        assert all(j.is_terminal for j in s.jobs)


STREAMED = """\
name: pipe
jobs:
  - {name: prod, service: tool, retry: {attempts: 2}}
  - {name: cons, service: tool, retry: {attempts: 2}}
connections:
  - {from: prod.STDOUT, to: cons.STDIN, stream: true}
  - {from: cons.STDOUT, to: self, file: out.txt}
"""


def _start_pipe() -> tuple[Scheduler, StartJob]:
    s = make(STREAMED, prod=[A], cons=[B])
    s.start(0.0)
    (start_prod,) = accept_all(s)
    assert isinstance(start_prod, StartJob) and start_prod.job == "prod"
    (route,) = start_prod.outputs
    assert route.stream and (route.target_peer, route.target) == (B, "STDIN")
    return s, start_prod


def test_streamed_consumer_starts_when_its_producer_runs_not_before() -> None:
    s, _start = _start_pipe()
    assert s.job("cons").status is JobStatus.ACCEPTED  # producer READY, not yet running
    s.receive(A, JobStatusReported(RUN, "prod", 1, ExecState.RUNNING), 1.0)
    (start_cons,) = drain(s)
    assert isinstance(start_cons, StartJob) and start_cons.job == "cons" and start_cons.peer == B
    (inp,) = start_cons.inputs
    assert inp.stream and inp.source_peer == A and inp.source_job == "prod"
    # both run at once; the consumer finishes after the producer's stream ends
    s.receive(B, JobStatusReported(RUN, "cons", 1, ExecState.RUNNING), 1.5)
    s.receive(A, JobExited(RUN, "prod", 1, 0), 5.0)
    s.receive(A, OutputsDelivered(RUN, "prod", 1, 0, (OutputDigest("STDOUT", 3, "ab" * 32),)), 5.1)
    s.receive(B, JobExited(RUN, "cons", 1, 0), 5.2)
    s.receive(B, OutputsDelivered(RUN, "cons", 1, 0, (OutputDigest("STDOUT", 3, "cd" * 32),)), 5.3)
    assert s.run.status is RunStatus.COMPLETED


def test_batch_connection_still_waits_for_the_producer_to_complete() -> None:
    s = make(STREAMED.replace(", stream: true", ""), prod=[A], cons=[B])
    s.start(0.0)
    (start_prod,) = accept_all(s)
    assert isinstance(start_prod, StartJob) and not start_prod.outputs[0].stream
    s.receive(A, JobStatusReported(RUN, "prod", 1, ExecState.RUNNING), 1.0)
    assert drain(s) == [] and s.job("cons").status is JobStatus.ACCEPTED


def test_producer_failing_mid_stream_fails_the_consumer_it_fed() -> None:
    s, _start = _start_pipe()
    s.receive(A, JobStatusReported(RUN, "prod", 1, ExecState.RUNNING), 1.0)
    drain(s)
    s.receive(B, JobStatusReported(RUN, "cons", 1, ExecState.RUNNING), 1.2)
    s.receive(A, JobExited(RUN, "prod", 1, 3, "boom"), 2.0)
    commands = drain(s)
    # the producer is retried; the consumer's attempt, fed a broken stream, is cancelled
    assert s.job("cons").attempt == 2 or s.job("cons").status is not JobStatus.RUNNING
    assert any(isinstance(c, CancelJob) and c.job == "cons" and c.attempt == 1
               and "streamed input from 'prod' failed: exited with code 3: boom" in c.reason
               for c in commands)
    assert {(c.job, c.attempt) for c in commands if isinstance(c, RequestJob)} == {
        ("prod", 2), ("cons", 2)}
    s.receive(A, JobAccepted(RUN, "prod", 2), 2.1)
    s.receive(B, JobAccepted(RUN, "cons", 2), 2.1)
    (restart,) = drain(s)
    assert isinstance(restart, StartJob) and restart.job == "prod" and restart.attempt == 2
    # the new producer attempt pipes into the consumer's new attempt, once it runs
    s.receive(A, JobStatusReported(RUN, "prod", 2, ExecState.RUNNING), 2.5)
    (start_cons,) = drain(s)
    assert isinstance(start_cons, StartJob) and start_cons.attempt == 2


def test_consumer_retried_after_its_producer_completed_gets_a_batch_delivery() -> None:
    s, _start = _start_pipe()
    s.receive(A, JobStatusReported(RUN, "prod", 1, ExecState.RUNNING), 1.0)
    drain(s)
    s.receive(A, JobExited(RUN, "prod", 1, 0), 2.0)
    s.receive(A, OutputsDelivered(RUN, "prod", 1, 0, (OutputDigest("STDOUT", 3, "ab" * 32),)), 2.1)
    assert s.job("prod").status is JobStatus.COMPLETED
    s.receive(B, JobExited(RUN, "cons", 1, 1, "crashed"), 2.5)
    (retry,) = drain(s)
    assert isinstance(retry, RequestJob) and retry.job == "cons" and retry.attempt == 2
    s.receive(B, JobAccepted(RUN, "cons", 2), 2.6)
    (redeliver,) = drain(s)
    assert isinstance(redeliver, DeliverOutputs) and redeliver.job == "prod"
    assert redeliver.outputs[0].target_peer == B
    s.receive(A, OutputsDelivered(RUN, "prod", 1, redeliver.delivery), 2.8)
    (start_cons,) = drain(s)
    assert isinstance(start_cons, StartJob) and start_cons.job == "cons" and start_cons.attempt == 2


REDUNDANT = """\
name: red
jobs:
  - {name: calc, service: tool, redundancy: 3}
  - {name: use, service: tool}
connections:
  - {from: calc.STDOUT, to: use.STDIN}
  - {from: use.STDOUT, to: self, file: out.txt}
"""


def _redundant() -> tuple[Scheduler, dict[str, StartJob]]:
    s = make(REDUNDANT, calc=[A, B, C], use=[D])
    s.start(0.0)
    requests = [c for c in drain(s) if isinstance(c, RequestJob)]
    placed = {(c.job, c.peer) for c in requests}
    assert placed == {("calc", A), ("calc#2", B), ("calc#3", C), ("use", D)}
    for req in requests:
        s.receive(req.peer, JobAccepted(RUN, req.job, req.attempt), 0.1)
    starts = {c.job: c for c in drain(s) if isinstance(c, StartJob)}
    assert set(starts) == {"calc", "calc#2", "calc#3"}
    # only the job itself ships its output; the replicas hash and sign theirs
    assert starts["calc#2"].outputs == () and starts["calc#2"].hash_only == ("STDOUT",)
    assert starts["calc"].outputs[0].target_job == "use"
    return s, starts


def _done(s: Scheduler, start: StartJob, sha: str, now: float) -> None:
    s.receive(start.peer, JobStatusReported(RUN, start.job, 1, ExecState.RUNNING), now)
    s.receive(start.peer, JobExited(RUN, start.job, 1, 0), now)
    s.receive(start.peer, OutputsDelivered(RUN, start.job, 1, 0,
                                           (OutputDigest("STDOUT", 3, sha),)), now)


def test_redundant_job_completes_when_a_majority_agrees() -> None:
    s, starts = _redundant()
    _done(s, starts["calc"], "aa" * 32, 1.0)
    assert s.job("calc").status is JobStatus.DELIVERING  # waits for a second vote
    assert not any(isinstance(c, StartJob) and c.job == "use" for c in drain(s))
    s.handle_timer(1.5)  # calc waits for votes, not heartbeats
    _done(s, starts["calc#2"], "aa" * 32, 2.0)
    assert s.job("calc").status is JobStatus.COMPLETED
    assert "2 of 3 replicas, on 2 distinct peers, agree" in s.job("calc").reason
    commands = drain(s)
    assert any(isinstance(c, StartJob) and c.job == "use" for c in commands)
    # the third replica is no longer needed
    assert s.job("calc#3").status is JobStatus.CANCELLED
    assert any(isinstance(c, CancelJob) and c.job == "calc#3" for c in commands)
    (start_use,) = [c for c in commands if isinstance(c, StartJob)]
    _done(s, start_use, "bb" * 32, 3.0)
    assert s.run.status is RunStatus.COMPLETED


def test_redundant_job_errors_naming_every_hash_when_no_quorum_is_possible() -> None:
    s, starts = _redundant()
    _done(s, starts["calc"], "aa" * 32, 1.0)
    _done(s, starts["calc#2"], "bb" * 32, 1.1)
    assert s.job("calc").status is JobStatus.DELIVERING
    _done(s, starts["calc#3"], "cc" * 32, 1.2)
    record = s.job("calc")
    assert record.status is JobStatus.ERRORED
    assert record.reason.startswith("outputs disagree: ")
    for peer, sha in ((A, "aa"), (B, "bb"), (C, "cc")):
        assert f"peer {peer.short} sha {sha * 8}" in record.reason
    assert "need 2 of 3, on distinct peers, to agree" in record.reason
    assert s.job("use").status is JobStatus.CANCELLED
    assert s.run.status is RunStatus.FAILED and "outputs disagree" in s.run.reason


def test_a_failed_replica_is_a_missing_vote_not_a_failed_run() -> None:
    s, starts = _redundant()
    s.receive(C, JobExited(RUN, "calc#3", 1, 2, "crashed"), 0.5)
    assert s.job("calc#3").status is JobStatus.ERRORED and s.run.status is RunStatus.RUNNING
    _done(s, starts["calc"], "aa" * 32, 1.0)
    _done(s, starts["calc#2"], "aa" * 32, 1.1)
    assert s.job("calc").status is JobStatus.COMPLETED


def test_redundancy_needs_as_many_distinct_peers() -> None:
    with pytest.raises(LocalProtocolError, match="redundancy 3 needs as many distinct peers"):
        make(REDUNDANT, calc=[A, B], use=[D])


def test_redundant_run_survives_a_requester_restart() -> None:
    s, starts = _redundant()
    _done(s, starts["calc"], "aa" * 32, 1.0)
    drain(s)
    wf = load_workflow(REDUNDANT).workflow
    candidates = {"calc": [Candidate(p, "svc-tool") for p in (A, B, C)],
                  "use": [Candidate(D, "svc-tool")]}
    again = Scheduler.restore(s.snapshot(), wf, REQUESTER, candidates, 10.0,
                              config=SchedulerConfig(request_timeout=5, heartbeat_timeout=4))
    drain(again)
    assert again.job("calc").status is JobStatus.DELIVERING and again.has_job("calc#2")
    again.handle_timer(100.0)  # calc waits for votes, not heartbeats; the replicas time out
    assert again.job("calc").status is JobStatus.ERRORED
    assert "replica(s) produced nothing" in again.job("calc").reason


MIXED = """\
name: mixed
jobs:
  - {name: src, service: data, retry: {attempts: 2}}
  - {name: mid, service: tool, redundancy: 2, retry: {attempts: 2, other_peer: true}}
  - {name: end, service: tool, retry: {attempts: 2}}
connections:
  - {from: src.STDOUT, to: mid.STDIN, stream: true}
  - {from: mid.STDOUT, to: end.STDIN}
  - {from: end.STDOUT, to: self, file: out.txt}
"""


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.sampled_from(REPORT_KINDS),
                          st.sampled_from(["src", "mid", "mid#2", "end"]), st.integers(0, 3),
                          st.integers(0, 2), st.sampled_from([0.0, 0.5, 3.0, 10.0]),
                          st.integers(0, 30)), max_size=60))
def test_streams_and_replicas_absorb_any_report_sequence(
        steps: list[tuple[int, str, str, int, int, float, int]]) -> None:
    """The same properties with a streamed pipe and a redundant job: no exception, terminal
    states stay terminal, a completed run has every workflow job completed."""
    s = make(MIXED, src=[A, B], mid=[B, D, C], end=[C])
    s.start(0.0)
    now = 0.0
    final: dict[str, JobStatus] = {}
    for peer_index, kind, job, attempt, delivery, dt, action in steps:
        now += dt
        if action == 0:
            s.cancel(now)
        elif action == 1:
            s.report_failure(job, attempt, "orchestrator says no", now)
        elif action == 2:
            s.handle_timer(now)
        else:
            s.receive(PEERS[peer_index], _report(kind, job, attempt, delivery), now)  # type: ignore[arg-type]
        drain(s)
        for record in s.jobs:
            if record.job in final:
                assert record.status is final[record.job], "a terminal job changed"
            elif record.is_terminal:
                final[record.job] = record.status
    if s.run.status is RunStatus.COMPLETED:
        assert all(s.job(n).status is JobStatus.COMPLETED for n in ("src", "mid", "end"))
    if s.run.is_terminal:
        assert all(j.is_terminal for j in s.jobs)


def test_a_live_pipe_survives_a_requester_restart() -> None:
    s, _start = _start_pipe()
    from rnn_tui.workflow.snapshot import SchedulerSnapshot

    snapshot = SchedulerSnapshot.from_json(s.snapshot().to_json())
    assert snapshot.streaming and snapshot.streaming[0][:2] == ("prod", "cons")
    wf = load_workflow(STREAMED).workflow
    again = Scheduler.restore(snapshot, wf, REQUESTER,
                              {"prod": [Candidate(A, "svc-tool")],
                               "cons": [Candidate(B, "svc-tool")]}, 5.0)
    drain(again)  # the StartJob to prod is repeated
    again.receive(A, JobStatusReported(RUN, "prod", 1, ExecState.RUNNING), 6.0)
    (start_cons,) = drain(again)
    assert isinstance(start_cons, StartJob) and start_cons.job == "cons"
    assert start_cons.inputs[0].stream


def test_one_executor_cannot_meet_a_redundancy_quorum_alone() -> None:
    """A replica retried onto the peer that ran the primary agrees with it, but one
    executor's word twice is not two confirmations: the quorum needs distinct peers."""
    from rnn_tui.workflow.messages import OutputDigest
    from rnn_tui.workflow.redundancy import Vote, tally

    a, b = Identity.generate().peer_id, Identity.generate().peer_id
    outputs = (OutputDigest("STDOUT", 3, "ab" * 32),)
    same_peer = tally(Vote(a, outputs, True), [Vote(a, outputs, True)], ["STDOUT"], 2)
    assert same_peer.decided and not same_peer.agreed
    assert "on distinct peers" in same_peer.reason
    two_peers = tally(Vote(a, outputs, True), [Vote(b, outputs, True)], ["STDOUT"], 2)
    assert two_peers.decided and two_peers.agreed
