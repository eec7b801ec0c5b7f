"""A run whose jobs all land on one executor: outputs still travel (hashed, receipted) from
job to job, through a QUIC connection the executor makes to its own socket."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.test_workflow_e2e import WORKFLOWS, expected_word_count
from tests.integration.workflow_cluster import control, start_run, wait_run, workflow_cluster
from tests.nodes import NodeProcess

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory, base_image: str,
           docker_client: Any) -> Iterator[tuple[NodeProcess, list[NodeProcess]]]:
    home = tmp_path_factory.mktemp("wf-single")
    with workflow_cluster(home, 150, base_image, 1, {0: ["wordcount-corpus.txt"]},
                          busybox_on=(0,), docker_client=docker_client) as pair:
        yield pair


def test_word_count_with_every_job_on_one_executor(single: tuple[NodeProcess, list[NodeProcess]]
                                                   ) -> None:
    requester, (executor,) = single
    run_id = start_run(requester, WORKFLOWS / "word-count.yaml")
    status = wait_run(requester, run_id)
    assert status["status"] == "COMPLETED", status
    where = Counter(j["executor"] for j in status["jobs"])
    assert where == Counter({executor.peer_id: len(status["jobs"])})
    listing = requester.call("run", "results", run_id)
    assert all(f["matches_receipt"] for f in listing["files"]), listing
    files = {f["file"]: open(f["path"]).read() for f in listing["files"]}
    table, top = expected_word_count()
    assert files["word-counts.txt"] == table and files["top10.txt"] == top
    # the executor never lists itself as a peer
    assert executor.peer_id not in {p["peer_id"] for p in executor.call("peers")}


def test_a_job_runs_on_the_requester_itself(single: tuple[NodeProcess, list[NodeProcess]],
                                            base_image: str, tmp_path: Any) -> None:
    requester, (executor,) = single
    control(requester, "service.add", local_image=base_image, name="busybox")
    spec = tmp_path / "on-self.yaml"
    spec.write_text(f"""\
name: on-self
jobs:
  - name: here
    service: {{name: busybox, peer: {requester.peer_id}}}
    args: [sh, -c, "echo from the requester"]
  - name: there
    service: {{name: busybox, peer: {executor.peer_id}}}
    args: [sh, -c, "tr a-z A-Z"]
connections:
  - {{from: here.STDOUT, to: there.STDIN}}
  - {{from: there.STDOUT, to: self, file: out.txt}}
""")
    run_id = start_run(requester, spec)
    status = wait_run(requester, run_id)
    assert status["status"] == "COMPLETED", status
    where = {j["job"]: j["executor"] for j in status["jobs"]}
    assert where == {"here": requester.peer_id, "there": executor.peer_id}
    listing = requester.call("run", "results", run_id)
    assert all(f["matches_receipt"] for f in listing["files"]), listing
    assert open(listing["files"][0]["path"]).read() == "FROM THE REQUESTER\n"
    assert requester.rnn("run", "receipts", run_id, "--verify").returncode == 0
