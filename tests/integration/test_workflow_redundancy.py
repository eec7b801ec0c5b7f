"""Issue 8: k-way redundancy with real nodes and Docker — one job on two peers, output hashes
compared from their receipt-checked reports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.workflow_cluster import start_run, wait_run, workflow_cluster
from tests.nodes import NodeProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, base_image: str,
         docker_client: Any) -> Iterator[tuple[NodeProcess, list[NodeProcess]]]:
    home = tmp_path_factory.mktemp("wf-redundancy")
    # finished runs leave memory after 1 s here: everything below reads them back
    with workflow_cluster(home, 210, base_image, 2, {}, heartbeat_s=2.0,
                          docker_client=docker_client,
                          RNN_WORKFLOW_FINISHED_RETAIN_S="1") as pair:
        yield pair


def _workflow(tmp_path: Path, name: str, script: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""\
name: {name}
jobs:
  - name: calc
    service: busybox
    args: [sh, -c, "{script}"]
    redundancy: 2
connections:
  - {{from: calc.STDOUT, to: self, file: out.txt}}
""")
    return path


def test_agreeing_replicas_complete_the_job(mesh: tuple[NodeProcess, list[NodeProcess]],
                                            tmp_path: Path) -> None:
    requester, nodes = mesh
    run_id = start_run(requester, _workflow(tmp_path, "agree", "echo 42"))
    status = wait_run(requester, run_id, timeout=90)
    assert status["status"] == "COMPLETED", status
    jobs = {j["job"]: j for j in status["jobs"]}
    assert set(jobs) == {"calc", "calc#2"}
    assert jobs["calc"]["executor"] != jobs["calc#2"]["executor"]
    assert "2 of 2 replicas, on 2 distinct peers, agree" in jobs["calc"]["reason"]
    results = requester.call("run", "results", run_id)
    assert Path(results["files"][0]["path"]).read_text() == "42\n"
    res = requester.rnn("run", "receipts", run_id, "--verify", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    receipts = {r["job"]: r for r in json.loads(res.stdout)["receipts"]}
    # two executors signed the same output hash
    assert receipts["calc"]["outputs"]["STDOUT"] == receipts["calc#2"]["outputs"]["STDOUT"]
    assert receipts["calc"]["executor"] != receipts["calc#2"]["executor"]


def test_disagreeing_replicas_fail_the_job_naming_the_hashes(
        mesh: tuple[NodeProcess, list[NodeProcess]], tmp_path: Path) -> None:
    requester, nodes = mesh
    # every container has its own hostname: the two outputs differ
    run_id = start_run(requester, _workflow(tmp_path, "disagree", "hostname"))
    status = wait_run(requester, run_id, timeout=90)
    assert status["status"] == "FAILED", status
    calc = next(j for j in status["jobs"] if j["job"] == "calc")
    assert calc["status"] == "ERRORED"
    assert calc["reason"].startswith("outputs disagree: peer "), calc
    assert calc["reason"].count(" sha ") == 2 and "need 2 of 2, on distinct peers, to agree" in calc["reason"]


def test_a_finished_run_is_evicted_from_memory_and_read_back(
        mesh: tuple[NodeProcess, list[NodeProcess]], tmp_path: Path) -> None:
    requester, _nodes = mesh
    run_id = start_run(requester, _workflow(tmp_path, "evicted", "echo line-one; echo 7"))
    assert wait_run(requester, run_id, timeout=90)["status"] == "COMPLETED"
    logs = requester.data_dir / "runs" / run_id / "logs.jsonl"
    wait_for(logs.exists, timeout=20, what="the finished run to leave memory",
             on_fail=requester.tail)
    status = requester.call("run", "status", run_id)
    assert status["status"] == "COMPLETED" and {j["job"] for j in status["jobs"]} == {
        "calc", "calc#2"}
    res = requester.rnn("run", "logs", run_id, "calc")
    assert res.returncode == 0 and "line-one" in res.stdout, res.stdout + res.stderr
    assert requester.rnn("run", "receipts", run_id, "--verify").returncode == 0
