"""A requester plus executors as real ``rnn start --headless`` processes, for workflow tests.

Executors offer the offline base image as the ``busybox`` service (allowing workflow
``args``) and the example data sets as DATA services; everyone is connected to everyone
so outputs can travel executor to executor.  Containers a killed node leaves behind are
removed by its label at the end.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rnn_tui.control import client
from rnn_tui.services.runtime import NODE_LABEL
from tests.conftest import rnn_env
from tests.nodes import NodeProcess, cluster, wait_for

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "workflows" / "data"


@contextlib.contextmanager
def workflow_cluster(home: Path, base: int, image: str, executors: int,
                     data: dict[int, list[str]], heartbeat_s: float = 2.0,
                     busybox_on: tuple[int, ...] | None = None,
                     docker_client: Any = None, **extra_env: str,
                     ) -> Iterator[tuple[NodeProcess, list[NodeProcess]]]:
    for sub in ("config", "data", "cache"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    env = rnn_env(home, RNN_WORKFLOW_HEARTBEAT_S=str(heartbeat_s),
                  RNN_EXECUTOR_ALLOW_COMMAND_OVERRIDE="true", **extra_env)
    with cluster(home, base=base) as c:
        requester = c.add(bootstrap="", env=env)
        requester.wait_ready()
        nodes = [c.add(bootstrap=requester.addr, env=env) for _ in range(executors)]
        try:
            for node in nodes:
                node.wait_ready()
            for index, files in data.items():
                for name in files:
                    control(nodes[index], "service.add", data=str(DATA / name))
            for index in busybox_on if busybox_on is not None else range(executors):
                control(nodes[index], "service.add", local_image=image, name="busybox")
            for node in nodes:
                control(requester, "connect", target=node.addr)
            for i, node in enumerate(nodes):
                for other in nodes[i + 1:]:
                    control(node, "connect", target=other.addr)
            yield requester, nodes
        finally:
            if docker_client is not None:
                for node in nodes:
                    if node.peer_id:
                        for container in docker_client.containers.list(
                                all=True, filters={"label": f"{NODE_LABEL}={node.peer_id}"}):
                            container.remove(force=True)


def control(node: NodeProcess, method: str, timeout: float = 60.0, **params: Any) -> Any:
    """Call the node's control API in-process (no CLI start-up per call)."""
    return client.call(node.data_dir / "control.sock", method, params, timeout=timeout)


def start_run(requester: NodeProcess, workflow: Path | str) -> str:
    path = Path(workflow)
    run = control(requester, "run.start", yaml=path.read_text(), source=str(path))
    return str(run["run_id"])


def wait_run(requester: NodeProcess, run_id: str, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = control(requester, "run.status", timeout=40, run_id=run_id, wait=10)
        if status["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            return dict(status)
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {status['status']} after {timeout}s:\n"
                                 f"{json.dumps(status, indent=1)}\n{requester.tail()}")


def wait_job(requester: NodeProcess, run_id: str, job: str, states: tuple[str, ...],
             timeout: float = 60.0) -> dict[str, Any]:
    def current() -> dict[str, Any] | None:
        status = control(requester, "run.status", run_id=run_id)
        for entry in status["jobs"]:
            if entry["job"] == job and entry["status"] in states:
                return dict(entry)
        return None

    return dict(wait_for(current, timeout=timeout, interval=0.2,
                         what=f"job {job} of run {run_id} to reach {states}",
                         on_fail=requester.tail))


def node_by_peer(nodes: list[NodeProcess], peer_id: str) -> NodeProcess:
    return next(n for n in nodes if n.peer_id == peer_id)


def single_job_workflow(tmp_path: Path, name: str, script: str, retry: str = "") -> Path:
    """A one-job workflow (``slow``: busybox ``sh -c script``) whose STDOUT comes to us."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""\
name: {name}
jobs:
  - name: slow
    service: busybox
    args: [sh, -c, "{script}"]
    timeout_s: 60
{retry}
connections:
  - {{from: slow.STDOUT, to: self, file: out.txt}}
""")
    return path


def node_containers(docker_client: Any, node: NodeProcess) -> list[Any]:
    """Every container (running or not) the node's runtime labelled as its own."""
    return list(docker_client.containers.list(
        all=True, filters={"label": f"{NODE_LABEL}={node.peer_id}"}))
