"""Issue 8 fault acceptance with real node processes and Docker (heartbeat 1 s).

* ``kill -9`` of an executor mid-job: the job is retried on another peer, or (without a
  retry policy) the run ends FAILED naming the heartbeat timeout, within 2 intervals;
* a restart of the requester mid-run: the run carries on from its stored snapshot and
  completes, with its result and receipt.

(A transfer cut halfway and resumed is tested over real QUIC in
``test_workflow_transfer_quic.py``.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.workflow_cluster import (
    node_by_peer,
    node_containers,
    single_job_workflow,
    start_run,
    wait_job,
    wait_run,
    workflow_cluster,
)
from tests.nodes import NodeProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.slow]

HEARTBEAT_S = 1.0


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, base_image: str,
         docker_client: Any) -> Iterator[tuple[NodeProcess, list[NodeProcess]]]:
    home = tmp_path_factory.mktemp("wf-faults")
    with workflow_cluster(home, 150, base_image, 4, {}, heartbeat_s=HEARTBEAT_S,
                          docker_client=docker_client) as pair:
        yield pair




def test_killed_executor_job_is_retried_on_another_peer(
        mesh: tuple[NodeProcess, list[NodeProcess]], tmp_path: Path) -> None:
    requester, nodes = mesh
    spec = single_job_workflow(tmp_path, "retried", "echo begin; sleep 4; echo done",
                     "    retry: {attempts: 3, other_peer: true}")
    run_id = start_run(requester, spec)
    job = wait_job(requester, run_id, "slow", ("RUNNING",))
    victim = node_by_peer(nodes, job["executor"])
    victim.kill()
    status = wait_run(requester, run_id, timeout=60)
    assert status["status"] == "COMPLETED", status
    final = status["jobs"][0]
    assert final["attempt"] >= 2 and final["executor"] != victim.peer_id
    results = requester.call("run", "results", run_id)
    assert Path(results["files"][0]["path"]).read_text() == "begin\ndone\n"


def test_killed_executor_fails_the_run_within_two_heartbeats(
        mesh: tuple[NodeProcess, list[NodeProcess]], tmp_path: Path) -> None:
    requester, nodes = mesh
    spec = single_job_workflow(tmp_path, "doomed", "echo begin; sleep 30; echo never")
    run_id = start_run(requester, spec)
    job = wait_job(requester, run_id, "slow", ("RUNNING",))
    victim = node_by_peer(nodes, job["executor"])
    killed_at = time.time()
    victim.kill()
    status = wait_run(requester, run_id, timeout=30)
    assert status["status"] == "FAILED"
    final = status["jobs"][0]
    assert final["status"] == "ERRORED"
    assert "heartbeat timeout" in final["reason"] and "heartbeat timeout" in status["reason"]
    # the requester's own clock stamps the failure; same host as ours
    assert final["ended_at"] - killed_at <= 2 * HEARTBEAT_S + 0.5


def test_cancel_reaches_the_executor(mesh: tuple[NodeProcess, list[NodeProcess]],
                                     tmp_path: Path, docker_client: Any) -> None:
    requester, nodes = mesh
    spec = single_job_workflow(tmp_path, "cancelled", "echo begin; sleep 60")
    run_id = start_run(requester, spec)
    job = wait_job(requester, run_id, "slow", ("RUNNING",))
    executor = node_by_peer(nodes, job["executor"])
    res = requester.rnn("run", "cancel", run_id)
    assert res.returncode == 0 and "CANCELLED" in res.stdout
    status = wait_run(requester, run_id, timeout=10)
    assert status["status"] == "CANCELLED"
    assert [j["status"] for j in status["jobs"]] == ["CANCELLED"]
    wait_for(lambda: not node_containers(docker_client, executor), timeout=20,
             what="the executor to stop the cancelled job's container", on_fail=executor.tail)


def test_requester_restart_mid_run_carries_the_run_on(
        mesh: tuple[NodeProcess, list[NodeProcess]], tmp_path: Path, docker_client: Any) -> None:
    requester, nodes = mesh
    spec = single_job_workflow(tmp_path, "interrupted", "echo begin; sleep 15; echo end")
    run_id = start_run(requester, spec)
    job = wait_job(requester, run_id, "slow", ("RUNNING",))
    executor = node_by_peer(nodes, job["executor"])
    # RUNNING is reported while the container is being created: wait until it exists
    wait_for(lambda: node_containers(docker_client, executor), timeout=20,
             what="the job's container", on_fail=executor.tail)
    assert requester.stop() == 0
    requester.start()
    requester.wait_ready()
    # the restored run goes on: the executor's heartbeats, exit and result reach the new process
    status = wait_run(requester, run_id, timeout=90)
    assert status["status"] == "COMPLETED", status
    assert status["jobs"][0]["attempt"] == 1 and status["jobs"][0]["executor"] == executor.peer_id
    results = requester.call("run", "results", run_id)
    assert Path(results["files"][0]["path"]).read_text() == "begin\nend\n"
    assert requester.rnn("run", "receipts", run_id, "--verify").returncode == 0
    assert not node_containers(docker_client, executor)
