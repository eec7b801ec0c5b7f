"""The requester side of a run: the asyncio driver around the sans-IO ``Scheduler``.

Why thin: every decision (who starts when, what a late report means, retries, failure
propagation) is the scheduler's.  This module only moves things: it resolves services to
candidate executors, sends the scheduler's commands over QUIC, feeds executors' reports
back in, arms one timer per run, and keeps what a requester must keep — the run and job
records (store + event bus), the live log lines, the results delivered to ``self``, and the
executors' signed receipts.

What it checks itself before the scheduler sees a report (because only it holds the bytes):

* a receipt must verify with the key of the job's current executor, name this run, job,
  attempt and requester — otherwise the attempt fails ("receipt ...");
* ``OutputsDelivered`` must list exactly the outputs the receipt signed, and every result
  delivered to ``self`` must hash to the receipt's value — otherwise the attempt fails;
* an incoming result must match a ``job → self`` connection of the run and come from the
  job's current executor — otherwise it is refused ("output not in the routing").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rnn_tui.api import LogLine, LogStream, RunInfo, RunUpdated
from rnn_tui.errors import RemoteProtocolError, RnnError, WorkflowError
from rnn_tui.identity.keys import Identity, PeerId
from rnn_tui.transport.session import PeerConnection
from rnn_tui.util.files import atomic_write
from rnn_tui.util.tasks import TaskManager
from rnn_tui.workflow import messages as wm
from rnn_tui.workflow.model import (
    JOB_TERMINAL,
    JobRecord,
    JobStatus,
    RunRecord,
    RunStatus,
    Workflow,
)
from rnn_tui.workflow.receipts import SignedReceipt, open_receipt
from rnn_tui.workflow.scheduler import (
    Candidate,
    JobStatusChanged,
    ReportIgnored,
    RunStatusChanged,
    Scheduler,
    SchedulerConfig,
)
from rnn_tui.workflow.snapshot import SchedulerSnapshot
from rnn_tui.workflow.transfer_driver import Landing
from rnn_tui.workflow.wire import WfCommand, WfLog, WfReceipt, WfReply, WfReport, XferOffer

__all__ = ["Orchestrator", "RunHandle", "RunPersistence", "result_name"]

log = logging.getLogger(__name__)
Connect = Callable[[PeerId], Awaitable[PeerConnection]]
LOG_KEEP = 5000


class RunPersistence(Protocol):
    """What the orchestrator needs from the store (``service.py`` adapts ``store/runs.py``)."""

    async def save_run(self, record: RunRecord, spec: dict[str, Any] | None) -> None: ...
    async def save_jobs(self, records: list[JobRecord]) -> None: ...
    async def save_receipt(self, signed: SignedReceipt, verified: bool) -> None: ...
    async def save_result(self, run_id: str, job: str, connection: int, peer: PeerId,
                          transfer_id: str, size: int, sha256: str) -> None: ...


def result_name(workflow: Workflow, index: int) -> str:
    """The file a ``job → self`` connection lands as under the run's results directory."""
    conn = workflow.connections[index]
    if conn.file:
        return conn.file
    return f"{conn.source.job}.{conn.source.key.replace('MOUNT:', '').strip('/').replace('/', '_')}"


@dataclass(eq=False)
class RunHandle:
    """One run in flight (or just finished) on this requester."""

    run_id: str
    workflow: Workflow
    scheduler: Scheduler
    results_dir: Path
    receipts: dict[tuple[str, int], SignedReceipt] = field(default_factory=dict)
    results: dict[int, tuple[Path, int, str]] = field(default_factory=dict)
    logs: deque[LogLine] = field(default_factory=lambda: deque(maxlen=LOG_KEEP))
    followers: set[asyncio.Queue[LogLine | None]] = field(default_factory=set)
    timer: asyncio.TimerHandle | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    spec: dict[str, Any] = field(default_factory=dict)

    def info(self) -> RunInfo:
        return RunInfo(self.scheduler.run, self.scheduler.jobs)


class Orchestrator:
    """Drives this node's runs (see the module docstring)."""

    def __init__(self, identity: Identity, connect: Connect, persistence: RunPersistence,
                 data_dir: Path, *, publish: Callable[[object], None] = lambda event: None,
                 config: SchedulerConfig | None = None,
                 clock: Callable[[], float] = time.time,
                 finished_retain_s: float = 600.0) -> None:
        self.identity = identity
        self.connect = connect
        self.persistence = persistence
        self.data_dir = data_dir
        self.publish = publish
        self.config = config or SchedulerConfig()
        self.clock = clock
        self.tasks = TaskManager("orchestrator")
        self.runs: dict[str, RunHandle] = {}
        self.ignored = 0
        self.finished_retain_s = finished_retain_s

    def install(self, handlers: Any) -> None:
        handlers.on_request(WfReport, self._on_report)
        handlers.on_message(WfReport, self._on_report_one_way)
        handlers.on_message(WfLog, self._on_log)
        handlers.on_request(WfReceipt, self._on_receipt)

    async def close(self) -> None:
        for handle in self.runs.values():
            if handle.timer is not None:
                handle.timer.cancel()
            for queue in handle.followers:
                queue.put_nowait(None)
        await self.tasks.shutdown()

    # ------------------------------------------------------------------ runs
    def start_run(self, workflow: Workflow, candidates: Mapping[str, list[Candidate]],
                  spec: dict[str, Any]) -> RunHandle:
        """Create the run and begin phase 1; returns at once (the run goes on in tasks)."""
        run_id = secrets.token_hex(8)
        now = self.clock()
        scheduler = Scheduler(run_id, workflow, self.identity.peer_id, candidates, now,
                              self.config)
        results = self.data_dir / "runs" / run_id / "results"
        results.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle = RunHandle(run_id, workflow, scheduler, results, spec=dict(spec))
        self.runs[run_id] = handle
        self.tasks.spawn(f"save:{run_id}", self.persistence.save_run(scheduler.run, spec))
        scheduler.start(now)
        self._pump(handle)
        return handle

    def restore_run(self, snapshot: SchedulerSnapshot, workflow: Workflow,
                    candidates: Mapping[str, list[Candidate]], spec: dict[str, Any],
                    receipts: Iterable[SignedReceipt],
                    results: Mapping[int, tuple[Path, int, str]]) -> RunHandle:
        """Carry on a run after a restart of this node (see ``Scheduler.restore``).

        Receipts and results that arrived before the restart come back from the store; the
        executors holding jobs are dialled so that their heartbeats reach us again.
        """
        run_id = snapshot.run.run_id
        scheduler = Scheduler.restore(snapshot, workflow, self.identity.peer_id, candidates,
                                      self.clock(), self.config)
        root = self.data_dir / "runs" / run_id / "results"
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle = RunHandle(run_id, workflow, scheduler, root, spec=dict(spec))
        for signed in receipts:
            handle.receipts[(signed.receipt.job, signed.receipt.attempt)] = signed
        handle.results.update(results)
        self.runs[run_id] = handle
        for peer in {j.executor for j in scheduler.jobs
                     if j.executor is not None and not j.is_terminal}:
            self.tasks.spawn(f"redial:{run_id}:{peer.short}", self._redial(peer))
        self._pump(handle, force_save=True)
        return handle

    async def _redial(self, peer: PeerId) -> None:
        for attempt in range(5):
            try:
                await self.connect(peer)
                return
            except RnnError as exc:
                log.info("cannot reach executor %s yet (%s)", peer.short, exc)
            await asyncio.sleep(1.0 + attempt)

    def cancel(self, run_id: str, reason: str = "cancelled by the requester") -> RunRecord:
        handle = self._handle(run_id)
        handle.scheduler.cancel(self.clock(), reason)
        self._pump(handle)
        return handle.scheduler.run

    def _handle(self, run_id: str) -> RunHandle:
        handle = self.runs.get(run_id)
        if handle is None:
            raise WorkflowError(f"no run {run_id!r} in flight on this node")
        return handle

    def running_jobs(self) -> int:
        return sum(1 for h in self.runs.values() for j in h.scheduler.jobs
                   if j.status is JobStatus.RUNNING)

    # ------------------------------------------------------------------ the pump
    def _pump(self, handle: RunHandle, force_save: bool = False) -> None:
        """Send what the scheduler wants sent, record what changed, re-arm the timer."""
        scheduler = handle.scheduler
        for command in scheduler.commands_to_send():
            name = f"cmd:{handle.run_id}:{command.job}:{type(command).__name__}:{command.attempt}"
            self.tasks.spawn(name, self._send(handle, command), replace=True)
        changed_jobs: list[JobRecord] = []
        run_changed = False
        while (event := scheduler.next_event()) is not None:
            if isinstance(event, JobStatusChanged):
                changed_jobs.append(event.record)
                log.info("run %s job %s: %s%s", handle.run_id, event.record.job,
                         event.record.status.value,
                         f" ({event.record.reason})" if event.record.reason else "")
            elif isinstance(event, RunStatusChanged):
                run_changed = True
                log.info("run %s: %s%s", handle.run_id, event.record.status.value,
                         f" ({event.record.reason})" if event.record.reason else "")
            elif isinstance(event, ReportIgnored):
                self.ignored += 1
                log.info("run %s: ignored %s from %s: %s", handle.run_id,
                         type(event.report).__name__, event.peer.short, event.reason)
        if changed_jobs or run_changed or force_save:
            # the snapshot is taken after the commands were drained, as restore() expects
            handle.spec["snapshot"] = scheduler.snapshot().to_json()
            self.tasks.spawn(f"persist:{handle.run_id}:{len(changed_jobs)}:{self.clock()}",
                             self._persist(handle, changed_jobs, dict(handle.spec)))
            self.publish(RunUpdated(handle.info()))
        if handle.timer is not None:
            handle.timer.cancel()
            handle.timer = None
        deadline = scheduler.get_timer()
        if deadline is not None:
            loop = asyncio.get_running_loop()
            handle.timer = loop.call_later(max(0.0, deadline - self.clock()) + 0.01,
                                           self._on_timer, handle)
        if scheduler.run.is_terminal and not handle.done.is_set():
            handle.done.set()
            for queue in handle.followers:
                queue.put_nowait(None)
            self.tasks.spawn(f"evict:{handle.run_id}", self._evict_later(handle), replace=True)

    def _on_timer(self, handle: RunHandle) -> None:
        handle.timer = None
        handle.scheduler.handle_timer(self.clock())
        self._pump(handle)

    async def _persist(self, handle: RunHandle, jobs: list[JobRecord],
                       spec: dict[str, Any]) -> None:
        try:
            if jobs:
                await self.persistence.save_jobs(jobs)
            await self.persistence.save_run(handle.scheduler.run, spec)
        except RnnError as exc:
            log.error("run %s: cannot save its state: %s", handle.run_id, exc)

    async def _send(self, handle: RunHandle, command: wm.Command) -> None:
        try:
            conn = await self.connect(command.peer)
            reply = await conn.request(WfCommand(command, bool(handle.spec.get("resume"))),
                                       timeout=self.config.request_timeout)
        except RnnError as exc:
            if isinstance(command, wm.RequestJob | wm.StartJob | wm.DeliverOutputs):
                handle.scheduler.report_failure(
                    command.job, command.attempt,
                    f"{type(command).__name__} to {command.peer.short} failed: {exc}",
                    self.clock())
                self._pump(handle)
            else:
                log.info("run %s: %s to %s failed: %s", handle.run_id, type(command).__name__,
                         command.peer.short, exc)
            return
        if isinstance(reply, WfReply) and reply.report is not None:
            handle.scheduler.receive(command.peer, reply.report, self.clock())
            self._pump(handle)

    # ------------------------------------------------------------------ executors' reports
    async def _on_report(self, conn: PeerConnection, msg: WfReport) -> WfReply:
        self._apply(conn, msg.report)
        return WfReply()

    async def _on_report_one_way(self, conn: PeerConnection, msg: WfReport) -> None:
        self._apply(conn, msg.report)

    def _apply(self, conn: PeerConnection, report: wm.Report) -> None:
        peer = conn.peer_id
        handle = self.runs.get(report.run_id)
        if handle is None or peer is None:
            return
        now = self.clock()
        if isinstance(report, wm.OutputsDelivered) and report.delivery == 0:
            problem = self._check_delivery(handle, peer, report)
            if problem:
                log.warning("run %s job %s: %s", handle.run_id, report.job, problem)
                handle.scheduler.report_failure(report.job, report.attempt, problem, now)
                self._pump(handle)
                return
        handle.scheduler.receive(peer, report, now)
        self._pump(handle)

    def _check_delivery(self, handle: RunHandle, peer: PeerId,
                        report: wm.OutputsDelivered) -> str:
        record = handle.scheduler.job(report.job)
        if record.executor != peer or record.attempt != report.attempt:
            return ""  # the scheduler ignores it with its own reason
        signed = handle.receipts.get((report.job, report.attempt))
        if signed is None:
            return f"{peer.short} delivered outputs without a valid signed receipt"
        receipt = signed.receipt
        for digest in report.outputs:
            signed_digest = receipt.output(digest.source)
            if signed_digest is None or (signed_digest.size, signed_digest.sha256) != (
                    digest.size, digest.sha256):
                return f"output {digest.source} differs from the one the receipt signed"
        failed = {index for index, _why in report.failed}
        for index, conn in enumerate(handle.workflow.connections):
            if conn.source.job != report.job or conn.target is not None or index in failed:
                continue
            got = handle.results.get(index)
            expected = receipt.output(conn.source.key)
            if got is None:
                return f"result {result_name(handle.workflow, index)!r} was not delivered"
            if expected is None or (got[1], got[2]) != (expected.size, expected.sha256):
                return (f"result {result_name(handle.workflow, index)!r} does not match the "
                        "hash in its receipt")
        return ""

    async def _on_receipt(self, conn: PeerConnection, msg: WfReceipt) -> WfReply:
        peer = conn.peer_id
        assert peer is not None
        try:
            signed = open_receipt(msg.body, msg.signature)
        except RemoteProtocolError as exc:
            self._receipt_problem(peer, msg.body, str(exc))
            raise
        receipt = signed.receipt
        handle = self.runs.get(receipt.run_id)
        if handle is None:
            raise WorkflowError(f"no run {receipt.run_id} here")
        record = handle.scheduler.job(receipt.job) if handle.scheduler.has_job(receipt.job) \
            else None
        problem = ""
        if record is None:
            problem = f"receipt names an unknown job {receipt.job!r}"
        elif receipt.executor != peer or record.executor != peer:
            problem = f"receipt for {receipt.job!r} is signed by {receipt.executor.short}, " \
                      f"not by its executor"
        elif receipt.requester != self.identity.peer_id:
            problem = "receipt names another requester"
        elif receipt.attempt != record.attempt:
            problem = f"receipt is for attempt {receipt.attempt}, not {record.attempt}"
        if problem:
            await self.persistence.save_receipt(signed, False)
            if record is not None:
                handle.scheduler.report_failure(receipt.job, receipt.attempt, problem,
                                                self.clock())
                self._pump(handle)
            raise WorkflowError(problem)
        handle.receipts[(receipt.job, receipt.attempt)] = signed
        # a good receipt is kept in memory (the checks above and OutputsDelivered use that)
        # and stored in the background: the store's queue is off the job's critical path.
        # A crash before the write lands loses it, and restore then fails that attempt for
        # want of a receipt: the job runs again; nothing wrong is ever accepted.
        self.tasks.spawn(f"receipt:{receipt.run_id}:{receipt.job}:{receipt.attempt}",
                         self._save_receipt(signed), replace=True)
        return WfReply()

    async def _save_receipt(self, signed: SignedReceipt) -> None:
        try:
            await self.persistence.save_receipt(signed, True)
        except RnnError as exc:
            log.error("cannot save the receipt of job %s: %s", signed.receipt.job, exc)

    def _receipt_problem(self, peer: PeerId, body: bytes, why: str) -> None:
        """A receipt that does not verify fails the attempt it claims to be about."""
        from rnn_tui.transport.messages import bdecode_dict

        try:
            fields = bdecode_dict(body, "receipt")
            run_id = fields[b"run_id"].decode()
            job = fields[b"job"].decode()
            attempt = int(fields[b"attempt"])
        except (RnnError, KeyError, ValueError, AttributeError, UnicodeDecodeError):
            return
        handle = self.runs.get(run_id)
        if handle is None or not handle.scheduler.has_job(job):
            return
        if handle.scheduler.job(job).executor == peer:
            handle.scheduler.report_failure(job, attempt, f"receipt rejected: {why}", self.clock())
            self._pump(handle)

    # ------------------------------------------------------------------ results to self
    async def accept_result(self, peer: PeerId, offer: XferOffer) -> Landing:
        """Landing for an output routed to ``self``, or a refusal naming why."""
        handle = self.runs.get(offer.run_id)
        if handle is None:
            raise WorkflowError(f"output not in the routing: no run {offer.run_id} here")
        workflow = handle.workflow
        index = offer.connection
        if not 0 <= index < len(workflow.connections):
            raise WorkflowError(f"output not in the routing: no connection {index}")
        conn = workflow.connections[index]
        if conn.target is not None or conn.source.job != offer.source_job:
            raise WorkflowError(f"output not in the routing: connection {index} is not "
                                f"{offer.source_job}'s result for the requester")
        record = handle.scheduler.job(offer.source_job)
        if record.executor != peer or record.attempt != offer.attempt:
            raise WorkflowError(f"output not in the routing: {peer.short} is not the executor "
                                f"of {offer.source_job!r} attempt {offer.attempt}")
        name = result_name(workflow, index)
        root = handle.results_dir

        def done(size: int, sha: str) -> None:
            handle.results[index] = (root / name, size, sha)
            self.tasks.spawn(f"result:{handle.run_id}:{index}", self.persistence.save_result(
                handle.run_id, offer.source_job, index, peer, offer.offer.transfer_id, size,
                sha), replace=True)

        return Landing(root, name, 1 << 40, done)

    # ------------------------------------------------------------------ live logs
    async def _on_log(self, conn: PeerConnection, msg: WfLog) -> None:
        handle = self.runs.get(msg.run_id)
        if handle is None or not handle.scheduler.has_job(msg.job):
            return
        record = handle.scheduler.job(msg.job)
        if record.executor != conn.peer_id or record.attempt != msg.attempt:
            return
        try:
            stream = LogStream(msg.stream)
        except ValueError:
            return
        now = self.clock()
        lines = [LogLine(msg.run_id, msg.job, stream, text, now) for text in msg.lines]
        handle.logs.extend(lines)
        for line in lines:
            for queue in handle.followers:
                if queue.qsize() < 10_000:
                    queue.put_nowait(line)
            self.publish(line)

    # ------------------------------------------------------------------ finished runs
    async def _evict_later(self, handle: RunHandle) -> None:
        """Drop a finished run from memory after a while; the store and a log file keep it.

        Why wait: late reports (the last ``OutputsDelivered``, receipts of cancelled jobs) and
        followers of a run that just ended still use the handle.  After that, the run is read
        from the store (``run status``) and its kept log lines from ``logs.jsonl`` beside its
        results, so memory holds only runs in flight and recently finished ones.
        """
        await asyncio.sleep(self.finished_retain_s)
        lines = [{"job": line.job, "stream": line.stream.value, "text": line.text,
                  "ts": line.ts} for line in handle.logs]
        path = self._log_file(handle.run_id)
        try:
            await asyncio.to_thread(atomic_write, path,
                                    "".join(json.dumps(x) + "\n" for x in lines).encode())
        except OSError as exc:
            log.warning("run %s: cannot keep its logs (%s); keeping the run in memory",
                        handle.run_id, exc)
            return
        if handle.timer is not None:
            handle.timer.cancel()
        if self.runs.get(handle.run_id) is handle:
            del self.runs[handle.run_id]
        log.info("run %s: finished %gs ago, evicted from memory", handle.run_id,
                 self.finished_retain_s)

    def _log_file(self, run_id: str) -> Path:
        return self.data_dir / "runs" / run_id / "logs.jsonl"

    def _stored_logs(self, run_id: str) -> list[LogLine] | None:
        try:
            text = self._log_file(run_id).read_text("utf-8")
        except (OSError, ValueError):
            return None
        out = []
        for raw in text.splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                item = json.loads(raw)
                out.append(LogLine(run_id, str(item["job"]), LogStream(item["stream"]),
                                   str(item["text"]), float(item["ts"])))
        return out

    async def follow_logs(self, run_id: str, job: str | None = None,
                          follow: bool = True) -> AsyncIterator[LogLine]:
        """The lines kept so far, then (with ``follow``) new ones until the run ends."""
        if run_id not in self.runs and re.fullmatch(r"[0-9a-f]{1,64}", run_id):
            stored = await asyncio.to_thread(self._stored_logs, run_id)
            if stored is not None:  # a finished run, evicted from memory
                for line in stored:
                    if job is None or line.job == job:
                        yield line
                return
        handle = self._handle(run_id)
        queue: asyncio.Queue[LogLine | None] = asyncio.Queue()
        backlog = list(handle.logs)
        if follow and not handle.done.is_set():
            handle.followers.add(queue)
        else:
            queue.put_nowait(None)
        try:
            for line in backlog:
                if job is None or line.job == job:
                    yield line
            while True:
                item = await queue.get()
                if item is None:
                    return
                if job is None or item.job == job:
                    yield item
        finally:
            handle.followers.discard(queue)

    async def wait(self, run_id: str, timeout: float | None = None) -> RunRecord:  # noqa: ASYNC109
        handle = self._handle(run_id)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await handle.done.wait()
        return handle.scheduler.run


def spread_candidates(jobs: Iterable[tuple[str, list[Candidate]]]) -> dict[str, list[Candidate]]:
    """Rotate each service's candidate list per job, so jobs of one service spread over peers.

    Without it every ``any`` job of a popular service would go to the same (first) peer.
    """
    seen: dict[tuple[Candidate, ...], int] = {}
    out: dict[str, list[Candidate]] = {}
    for name, options in jobs:
        key = tuple(options)
        turn = seen.get(key, 0)
        seen[key] = turn + 1
        shift = turn % len(options) if options else 0
        out[name] = options[shift:] + options[:shift]
    return out


TERMINAL_JOB = JOB_TERMINAL
TERMINAL_RUN = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})
