"""Issue 8: an executor restarted mid-job (SIGTERM or kill -9) loses nothing silently.

The heartbeat here is long (30 s, so the requester's heartbeat timeout is a minute, longer
than the runs are waited for): the runs react because the executor itself told the
requester (``JobLost``), at shutdown or when it came back and read its journal — the
reasons recorded say so.  After each restart no container of the executor is left.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.workflow_cluster import (
    control,
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

HEARTBEAT_S = 30.0


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, base_image: str,
         docker_client: Any) -> Iterator[tuple[NodeProcess, list[NodeProcess]]]:
    home = tmp_path_factory.mktemp("wf-exec-restart")
    with workflow_cluster(home, 190, base_image, 2, {}, heartbeat_s=HEARTBEAT_S,
                          docker_client=docker_client) as pair:
        yield pair




def _restart(node: NodeProcess, requester: NodeProcess) -> None:
    node.start()
    node.wait_ready()
    control(requester, "connect", target=node.addr)


def test_sigterm_executor_tells_the_requester_and_the_job_is_retried(
        mesh: tuple[NodeProcess, list[NodeProcess]], tmp_path: Path, docker_client: Any) -> None:
    requester, nodes = mesh
    spec = single_job_workflow(tmp_path, "termed", "echo begin; sleep 6; echo done",
                     "    retry: {attempts: 3, other_peer: true}")
    run_id = start_run(requester, spec)
    job = wait_job(requester, run_id, "slow", ("RUNNING",))
    victim = node_by_peer(nodes, job["executor"])
    assert victim.stop() == 0
    assert not node_containers(docker_client, victim), "SIGTERM left a container behind"
    status = wait_run(requester, run_id, timeout=60)
    assert status["status"] == "COMPLETED", status
    final = status["jobs"][0]
    assert final["attempt"] >= 2 and final["executor"] != victim.peer_id
    # the first attempt ended on the executor's own word, not on a heartbeat timeout
    told = "lost the job: the executor node shut down while the job ran; its container " \
           "was stopped and removed; retrying"
    assert told in requester.log_path.read_text(errors="replace"), requester.tail()
    results = requester.call("run", "results", run_id)
    assert Path(results["files"][0]["path"]).read_text() == "begin\ndone\n"
    _restart(victim, requester)
    assert not node_containers(docker_client, victim)


def test_killed_executor_reports_the_lost_job_when_it_comes_back(
        mesh: tuple[NodeProcess, list[NodeProcess]], tmp_path: Path, docker_client: Any) -> None:
    requester, nodes = mesh
    spec = single_job_workflow(tmp_path, "killed", "echo begin; sleep 40; echo never")
    run_id = start_run(requester, spec)
    job = wait_job(requester, run_id, "slow", ("RUNNING",))
    victim = node_by_peer(nodes, job["executor"])
    # RUNNING is reported while the container is being created: wait until it exists
    wait_for(lambda: node_containers(docker_client, victim), timeout=20,
             what="the job's container", on_fail=victim.tail)
    victim.kill()
    assert node_containers(docker_client, victim), "kill -9 should leave the container running"
    _restart(victim, requester)
    status = wait_run(requester, run_id, timeout=60)
    assert status["status"] == "FAILED", status
    final = status["jobs"][0]
    assert final["status"] == "ERRORED"
    assert "container lost" in final["reason"] and "restarted" in final["reason"], final
    assert "heartbeat timeout" not in final["reason"]
    wait_for(lambda: not node_containers(docker_client, victim), timeout=20,
             what="the restarted executor to remove the orphan", on_fail=victim.tail)
    jobs = victim.data_dir / "jobs"
    assert not (jobs.exists() and any(jobs.iterdir())), "the lost job's workspace was kept"
