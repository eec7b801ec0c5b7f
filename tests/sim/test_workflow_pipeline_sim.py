"""The workflow cores composed, in one process: the example workflows scheduled over four
simulated peers, jobs run with busybox, outputs moved by the transfer core (cut and resumed
once each), receipts signed by each executor and checked by the requester.

Why: each core has its own tests; this one shows they fit together the way the orchestrator
uses them, without sockets or Docker — scheduler commands become executor actions, every
output crosses ``TransferSender``/``TransferReceiver`` into a confined job directory, and a
job only completes once its receipt verifies against the routing and its results.  The
expected results come from ``tests/unit/test_workflow_examples.py``'s local runner, which is
itself checked against independent Python computations.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest

from rnn_tui.identity.keys import Identity, PeerId
from rnn_tui.workflow import messages as wm
from rnn_tui.workflow.model import JobStatus, RunStatus, Workflow
from rnn_tui.workflow.receipts import (
    Digest,
    Receipt,
    check_outputs,
    open_receipt,
    params_digest,
    sign_receipt,
    verify_output_file,
    verify_receipt,
)
from rnn_tui.workflow.scheduler import Candidate, Scheduler
from rnn_tui.workflow.transfer import (
    Chunk,
    TransferReceiver,
    TransferSender,
    TransferState,
    WriteChunk,
    open_destination,
)
from rnn_tui.workflow.yaml_io import load_workflow_file

ROOT = Path(__file__).resolve().parents[2]
BUSYBOX = Path("/bin/busybox")
pytestmark = pytest.mark.skipif(not BUSYBOX.exists(), reason="busybox is not installed")


def _examples_module() -> ModuleType:
    path = ROOT / "tests" / "unit" / "test_workflow_examples.py"
    spec = importlib.util.spec_from_file_location("workflow_examples_runner", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXAMPLES = _examples_module()
RUN = "sim-run"
PEERS = [Identity(bytes([40 + i]) * 32) for i in range(4)]
REQUESTER = Identity(b"\x33" * 32)


def move(data: bytes, root: Path, name: str, transfer_id: str) -> tuple[Path, int]:
    """Send ``data`` through the transfer core into ``root/name``, cutting the link once
    halfway; returns the landed path and how many chunks crossed twice (must be 0)."""
    sha = hashlib.sha256(data).digest()
    sender = TransferSender(transfer_id, name, chunk_size=64, window=4, size=len(data),
                            sha256=sha)
    receiver = TransferReceiver(transfer_id, max_size=1 << 24, expected_name=name,
                                expected_sha256=sha)
    fd = open_destination(root, name, truncate=True)
    sent: list[int] = []
    cut_at = max(1, len(data) // 64 // 2)
    cut_done = False
    try:
        while not (sender.finished and receiver.finished):
            want = sender.wants_data()
            if want:
                offset = sender.read_offset
                piece = data[offset:offset + want]
                sender.push(piece) if piece else sender.finish()
            for msg in sender.messages_to_send():
                if isinstance(msg, Chunk):
                    sent.append(msg.index)
                receiver.receive(msg)
                while (event := receiver.next_event()) is not None:
                    if isinstance(event, WriteChunk):
                        os.pwrite(fd, event.data, event.offset)
            for msg in receiver.messages_to_send():
                sender.receive(msg)
            if not cut_done and len(sent) >= cut_at and not sender.finished:
                cut_done = True
                sender.connection_lost()
                receiver.connection_lost()
                sender.reconnected()
    finally:
        os.close(fd)
    assert receiver.state is TransferState.DONE, receiver.failure
    resent = len(sent) - len(set(sent))
    return root / name, resent


@dataclass
class SimPeer:
    identity: Identity
    workdir: Path
    path_env: str
    tamper: set[str] = field(default_factory=set)   # jobs whose self-results it falsifies
    requests: dict[tuple[str, int], wm.RequestJob] = field(default_factory=dict)

    def inbox(self, job: str, attempt: int) -> Path:
        return self.workdir / f"{job}-{attempt}" / "in"


@dataclass
class World:
    workflow: Workflow
    scheduler: Scheduler
    peers: dict[PeerId, SimPeer]
    results: Path
    receipts: dict[tuple[str, int], tuple[bytes, bytes]] = field(default_factory=dict)
    resent_chunks: int = 0
    refusals: list[str] = field(default_factory=list)
    kept: dict[tuple[str, int], dict[str, bytes]] = field(default_factory=dict)
    redeliveries: int = 0

    def run(self) -> None:
        self.scheduler.start(0.0)
        now = 0.0
        queue = self.scheduler.commands_to_send()
        while queue:
            now += 0.01
            command = queue.pop(0)
            self.execute(command, now)
            queue.extend(self.scheduler.commands_to_send())

    # ---- the executor side
    def execute(self, cmd: wm.Command, now: float) -> None:
        peer = self.peers[cmd.peer]
        s = self.scheduler
        if isinstance(cmd, wm.RequestJob):
            peer.requests[(cmd.job, cmd.attempt)] = cmd
            s.receive(cmd.peer, wm.JobAccepted(RUN, cmd.job, cmd.attempt), now)
        elif isinstance(cmd, wm.StartJob):
            self.run_job(peer, cmd, now)
        elif isinstance(cmd, wm.DeliverOutputs):  # a consumer moved: send the kept outputs
            self.redeliveries += 1
            self.ship(cmd.job, self.kept[(cmd.job, cmd.attempt)], cmd.outputs, tamper=False)
            s.receive(cmd.peer, wm.OutputsDelivered(RUN, cmd.job, cmd.attempt, cmd.delivery),
                      now)

    def run_job(self, peer: SimPeer, cmd: wm.StartJob, now: float) -> None:
        s = self.scheduler
        job = self.workflow.job(cmd.job)
        request = peer.requests[(cmd.job, cmd.attempt)]
        inbox = peer.inbox(cmd.job, cmd.attempt)
        inbox.mkdir(parents=True, exist_ok=True)
        s.receive(cmd.peer, wm.JobStatusReported(RUN, cmd.job, cmd.attempt,
                                                 wm.ExecState.RUNNING), now)
        inputs = [Digest(route.target + (f"/{route.file}" if route.file else ""),
                         *_size_sha((inbox / _landing(route.target, route.file)).read_bytes()))
                  for route in cmd.inputs]
        produced = self.produce(peer, cmd, job.service.service, request, inbox)
        outputs = tuple(Digest(key, *_size_sha(data)) for key, data in sorted(produced.items()))
        receipt = Receipt(RUN, cmd.job, cmd.attempt, REQUESTER.peer_id, peer.identity.peer_id,
                          request.service, job.service.service, "sha256:" + "0" * 64,
                          tuple(inputs), outputs, 0, 1000, 2000,
                          params_digest(request.env, request.args))
        signed = sign_receipt(peer.identity, receipt)
        self.receipts[(cmd.job, cmd.attempt)] = (signed.body, signed.signature)
        s.receive(cmd.peer, wm.JobExited(RUN, cmd.job, cmd.attempt, 0), now)
        self.kept[(cmd.job, cmd.attempt)] = produced
        self.ship(cmd.job, produced, cmd.outputs, tamper=cmd.job in peer.tamper)
        report = wm.OutputsDelivered(RUN, cmd.job, cmd.attempt, 0,
                                     tuple(wm.OutputDigest(d.name, d.size, d.sha256)
                                           for d in outputs))
        self.requester_checks(cmd, report, now)

    def ship(self, job: str, produced: dict[str, bytes], routes: tuple[wm.OutputRoute, ...],
             tamper: bool) -> None:
        s = self.scheduler
        for route in routes:
            data = produced[route.source]
            if route.target_job is None and tamper:
                data = data.replace(b"1", b"7")  # a dishonest executor
            if route.target_job is None:
                root, name = self.results, route.file or "result"
            else:
                target = self.peers[route.target_peer]
                attempt = s.job(route.target_job).attempt
                root = target.inbox(route.target_job, attempt)
                root.mkdir(parents=True, exist_ok=True)
                name = _landing(route.target or "", route.file)
            _, resent = move(data, root, name, f"{job}-{route.connection}")
            self.resent_chunks += resent

    def produce(self, peer: SimPeer, cmd: wm.StartJob, service: str,
                request: wm.RequestJob, inbox: Path) -> dict[str, bytes]:
        if service != "busybox":  # a DATA service: its STDOUT is the file
            return {"STDOUT": (EXAMPLES.DATA / service).read_bytes()}
        job_dir = peer.workdir / f"{cmd.job}-{cmd.attempt}"
        local = {path: job_dir / "mnt" / path.strip("/") for path, _ in request.mounts}
        for directory in local.values():
            directory.mkdir(parents=True, exist_ok=True)
        stdin = b""
        for route in cmd.inputs:
            data = (inbox / _landing(route.target, route.file)).read_bytes()
            if route.target == "STDIN":
                stdin = data
            else:
                mount = route.target.removeprefix("MOUNT:")
                (local[mount] / (route.file or "input")).write_bytes(data)
        env = {"PATH": peer.path_env, "LC_ALL": "C"}
        env.update({k: str(local.get(v, v)) for k, v in request.env})
        proc = subprocess.run([str(BUSYBOX), *request.args], input=stdin, capture_output=True,
                              env=env, cwd=job_dir, timeout=60, check=True)
        out = {"STDOUT": proc.stdout, "STDERR": proc.stderr}
        for route in cmd.outputs:
            if route.source.startswith("MOUNT:"):
                path = route.source.removeprefix("MOUNT:")
                mount = max((m for m in local if path.startswith(m + "/")), key=len)
                out[route.source] = (local[mount] / os.path.relpath(path, mount)).read_bytes()
        return {key: out[key] for key in {r.source for r in cmd.outputs}}

    # ---- the requester side
    def requester_checks(self, cmd: wm.StartJob, report: wm.OutputsDelivered,
                         now: float) -> None:
        """What the orchestrator does before the scheduler may complete the job."""
        s = self.scheduler
        body, signature = self.receipts[(cmd.job, cmd.attempt)]
        try:
            receipt = verify_receipt(open_receipt(body, signature),
                                     executor=s.job(cmd.job).executor,
                                     requester=REQUESTER.peer_id, run_id=RUN, job=cmd.job,
                                     attempt=cmd.attempt)
            problems = check_outputs(receipt, {d.source: d.sha256 for d in report.outputs})
            for route in cmd.outputs:
                if route.target_job is None:
                    verify_output_file(receipt, route.source, self.results / (route.file or ""))
        except Exception as exc:  # noqa: BLE001 - any refusal becomes the attempt's failure
            problems = [str(exc)]
        if problems:
            self.refusals.append(problems[0])
            s.report_failure(cmd.job, cmd.attempt, problems[0], now)
        else:
            s.receive(cmd.peer, report, now)


def _landing(target: str, file: str | None) -> str:
    return "stdin.in" if target == "STDIN" else (file or "input")


def _size_sha(data: bytes) -> tuple[int, str]:
    return len(data), hashlib.sha256(data).hexdigest()


def make_world(name: str, tmp_path: Path, path_env: str, tamper: dict[int, set[str]] | None
               = None) -> World:
    workflow = load_workflow_file(str(ROOT / "workflows" / f"{name}.yaml")).workflow
    peers = {p.peer_id: SimPeer(p, tmp_path / f"peer{i}", path_env, (tamper or {}).get(i, set()))
             for i, p in enumerate(PEERS)}
    candidates = {job.name: [Candidate(PEERS[(k + j) % 4].peer_id, job.service.service)
                             for j in range(3)]
                  for k, job in enumerate(workflow.jobs)}
    scheduler = Scheduler(RUN, workflow, REQUESTER.peer_id, candidates, now=0.0)
    results = tmp_path / "results"
    results.mkdir()
    return World(workflow, scheduler, peers, results)


@pytest.fixture(scope="module")
def path_env(tmp_path_factory: pytest.TempPathFactory) -> str:
    bindir = tmp_path_factory.mktemp("bin")
    listing = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True)
    for applet in listing.stdout.split():
        (bindir / applet).symlink_to(BUSYBOX)
    return str(bindir)


@pytest.mark.parametrize("name", ["word-count", "pollinator-integration", "deforestation"])
def test_example_runs_across_simulated_peers(name: str, tmp_path: Path, path_env: str) -> None:
    world = make_world(name, tmp_path, path_env)
    world.run()
    assert world.scheduler.run.status is RunStatus.COMPLETED, world.scheduler.run.reason
    executors = {j.executor for j in world.scheduler.jobs}
    assert len(executors) >= 3, "the jobs should spread over at least three peers"
    local_dir = tmp_path / "local"
    local_dir.mkdir()
    expected = EXAMPLES.run_locally(world.workflow, local_dir, path_env)
    for file, data in expected.items():
        assert (world.results / file).read_bytes() == data, file
    assert world.resent_chunks == 0, "a verified chunk crossed twice after a cut"
    assert world.refusals == []


def test_tampered_result_is_caught_and_the_job_moves_to_an_honest_peer(
        tmp_path: Path, path_env: str) -> None:
    # word-count's "count" job starts on peer 2 (k=2); peer 2 falsifies what it sends to self
    world = make_world("word-count", tmp_path, path_env, tamper={2: {"count"}})
    world.run()
    assert world.refusals and "does not match its receipt" in world.refusals[0]
    count = world.scheduler.job("count")
    assert count.status is JobStatus.COMPLETED and count.attempt == 2
    assert count.executor != PEERS[2].peer_id
    assert world.redeliveries == 1  # tokenize's output went again, to count's new peer
    assert world.scheduler.run.status is RunStatus.COMPLETED
    local_dir = tmp_path / "local"
    local_dir.mkdir()
    expected = EXAMPLES.run_locally(world.workflow, local_dir, path_env)
    assert (world.results / "word-counts.txt").read_bytes() == expected["word-counts.txt"]
