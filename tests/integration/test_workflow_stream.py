"""Issue 8: streamed pipes with real nodes and Docker — STDOUT into the next job's STDIN while
the producer still runs, on two different peers; and a producer failing mid-stream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.workflow_cluster import start_run, wait_run, workflow_cluster
from tests.nodes import NodeProcess

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, base_image: str,
         docker_client: Any) -> Iterator[tuple[NodeProcess, list[NodeProcess]]]:
    home = tmp_path_factory.mktemp("wf-stream")
    with workflow_cluster(home, 200, base_image, 2, {}, heartbeat_s=2.0,
                          docker_client=docker_client) as pair:
        yield pair


def _workflow(tmp_path: Path, name: str, producer: str, retry: str = "") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""\
name: {name}
jobs:
  - name: produce
    service: busybox
    args: [sh, -c, "{producer}"]
    timeout_s: 60
{retry}
  - name: consume
    service: busybox
    args: [sh, -c, "while read line; do echo got $line; done"]
    timeout_s: 60
connections:
  - {{from: produce.STDOUT, to: consume.STDIN, stream: true}}
  - {{from: consume.STDOUT, to: self, file: out.txt}}
""")
    return path


def _receipts(requester: NodeProcess, run_id: str) -> dict[str, dict[str, Any]]:
    res = requester.rnn("run", "receipts", run_id, "--verify", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    return {r["job"]: r for r in report["receipts"] if r["current"] and r["verified"]}


def test_consumer_runs_while_the_producer_still_streams(
        mesh: tuple[NodeProcess, list[NodeProcess]], tmp_path: Path) -> None:
    requester, _nodes = mesh
    spec = _workflow(tmp_path, "piped", "echo first; sleep 5; echo second")
    run_id = start_run(requester, spec)
    status = wait_run(requester, run_id, timeout=90)
    assert status["status"] == "COMPLETED", status
    executors = {j["job"]: j["executor"] for j in status["jobs"]}
    assert executors["produce"] != executors["consume"], "the pipe must cross two peers"
    results = requester.call("run", "results", run_id)
    assert Path(results["files"][0]["path"]).read_text() == "got first\ngot second\n"
    receipts = _receipts(requester, run_id)
    produce, consume = receipts["produce"], receipts["consume"]
    # the consumer started before the producer ended (it sleeps 5 s between its lines)
    assert consume["started_ms"] < produce["ended_ms"], (produce, consume)
    # both ends signed the same streamed bytes
    assert consume["inputs"] == {"STDIN:stdin.in": produce["outputs"]["STDOUT"]}


def test_producer_failing_mid_stream_fails_the_consumer_with_the_reason(
        mesh: tuple[NodeProcess, list[NodeProcess]], tmp_path: Path) -> None:
    requester, _nodes = mesh
    spec = _workflow(tmp_path, "broken", "echo first; sleep 3; exit 3",
                     "    retry: {attempts: 2}")
    run_id = start_run(requester, spec)
    status = wait_run(requester, run_id, timeout=90)
    assert status["status"] == "FAILED", status
    jobs = {j["job"]: j for j in status["jobs"]}
    assert jobs["consume"]["status"] in ("ERRORED", "CANCELLED"), jobs
    assert "streamed input from 'produce' failed: exited with code 3" in \
        jobs["consume"]["reason"], jobs["consume"]
