"""The workflow model: port references, graph helpers and guarded state transitions."""

from __future__ import annotations

import pytest

from rnn_tui.errors import LocalProtocolError
from rnn_tui.workflow.model import (
    JOB_CANCELABLE,
    JOB_IN_PROGRESS,
    JOB_TERMINAL,
    RUN_TERMINAL,
    Connection,
    InterfaceType,
    Job,
    JobRecord,
    JobStatus,
    MountDirection,
    MountSpec,
    PortRef,
    RetryPolicy,
    RunRecord,
    RunStatus,
    ServiceRef,
    Workflow,
    can_transition_job,
    is_input,
    is_output,
)


def test_port_ref_parses_and_prints_back() -> None:
    for text in ("count.STDOUT", "a.STDIN", "x.LOGS", "m.MOUNT:/data/out/r.csv"):
        assert str(PortRef.parse(text)) == text
    ref = PortRef.parse("m.mount:/data//in/")
    assert ref.interface is InterfaceType.MOUNT and ref.path == "/data/in"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("nodot", "job.INTERFACE"),
        ("a.STDWHAT", "unknown interface"),
        ("a.MOUNT", "needs a path"),
        ("a.STDOUT:/x", "only MOUNT"),
        ("a.MOUNT:rel", "absolute"),
        ("a.MOUNT:/data/../etc", "'..'"),
        ("1bad.STDOUT", "not a valid job name"),
    ],
)
def test_port_ref_errors_say_what_is_wrong(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        PortRef.parse(text)


def test_directions() -> None:
    assert is_output(InterfaceType.STDOUT) and not is_input(InterfaceType.STDOUT)
    assert is_input(InterfaceType.STDIN) and not is_output(InterfaceType.STDIN)
    assert is_output(InterfaceType.MOUNT, MountDirection.BOTH)
    assert is_input(InterfaceType.MOUNT, MountDirection.BOTH)
    assert not is_output(InterfaceType.MOUNT, MountDirection.INPUT)
    assert not is_input(InterfaceType.MOUNT, MountDirection.OUTPUT)


def test_mount_for_picks_longest_containing_mount() -> None:
    job = Job("j", ServiceRef("s"), mounts=(MountSpec("/data", MountDirection.INPUT),
                                            MountSpec("/data/out", MountDirection.OUTPUT)))
    assert job.mount_for("/data/out/x.csv") == MountSpec("/data/out", MountDirection.OUTPUT)
    assert job.mount_for("/data/in.csv") == MountSpec("/data", MountDirection.INPUT)
    assert job.mount_for("/datax/in.csv") is None


def _three_jobs() -> Workflow:
    jobs = tuple(Job(n, ServiceRef("busybox")) for n in ("a", "b", "c"))
    conns = (Connection(PortRef.parse("a.STDOUT"), PortRef.parse("b.STDIN")),
             Connection(PortRef.parse("b.STDOUT"), PortRef.parse("c.STDIN")),
             Connection(PortRef.parse("c.STDOUT"), None, "out.txt"))
    return Workflow("w", jobs, conns)


def test_graph_helpers_and_editing() -> None:
    wf = _three_jobs()
    assert wf.upstream_of("b") == {"a"} and wf.downstream_of("b") == {"c"}
    assert wf.downstream_of("c") == frozenset()
    smaller = wf.without_job("b")
    assert smaller.job_names == ("a", "c") and len(smaller.connections) == 1
    replaced = wf.with_job(Job("b", ServiceRef("other")))
    assert replaced.job("b").service.service == "other" and replaced.job_names == ("a", "b", "c")
    assert wf.with_job(Job("d", ServiceRef("x"))).job_names[-1] == "d"
    with pytest.raises(KeyError):
        wf.job("zz")


def test_state_sets_partition_job_states() -> None:
    assert JOB_TERMINAL.isdisjoint(JOB_IN_PROGRESS)
    assert JOB_TERMINAL.isdisjoint(JOB_CANCELABLE)
    assert set(JobStatus) == JOB_TERMINAL | JOB_CANCELABLE


def test_terminal_states_are_final() -> None:
    for old in JOB_TERMINAL:
        assert not any(can_transition_job(old, new) for new in JobStatus)
    run = RunRecord("r1", "w").with_status(RunStatus.RUNNING, 1.0)
    done = run.with_status(RunStatus.COMPLETED, 2.0)
    assert done.started_at == 1.0 and done.ended_at == 2.0 and done.status in RUN_TERMINAL
    with pytest.raises(LocalProtocolError, match="COMPLETED -> RUNNING"):
        done.with_status(RunStatus.RUNNING, 3.0)


def test_job_record_with_status_is_immutable_and_guarded() -> None:
    rec = JobRecord("r1", "a")
    req = rec.with_status(JobStatus.REQUESTED, 1.0, attempt=1)
    assert rec.status is JobStatus.IDLE and req.attempt == 1 and req.updated_at == 1.0
    with pytest.raises(LocalProtocolError, match="REQUESTED -> RUNNING"):
        req.with_status(JobStatus.RUNNING, 2.0)
    run = (req.with_status(JobStatus.ACCEPTED, 2.0).with_status(JobStatus.READY, 3.0)
           .with_status(JobStatus.RUNNING, 4.0))
    assert run.started_at == 4.0
    retry = run.with_status(JobStatus.IDLE, 5.0, "exit 1")
    assert retry.started_at is None and retry.reason == "exit 1"


def test_retry_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(backoff_s=-1)
