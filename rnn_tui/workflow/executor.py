"""The executor side of a workflow: answer requests, run jobs in Docker, ship outputs, sign.

Why it lives apart from the requester's orchestrator: a node is an executor for other
peers' runs and a requester for its own, and the two never share state.  The executor trusts
nothing it is told beyond what the transport proved (who is asking) and what it checks
itself (its own services, its policy, its capacity, the routing it was given).

Life of a job here::

    RequestJob  → checks (enabled, capacity, service exists, policy.decide, visibility)
                  → JobAccepted (a workspace is reserved) | JobRefused(reason)
    inputs      ← XferOffer from upstream executors, landed in the workspace: STDIN as a file
                  fed to the container, MOUNT files in their (read-only) input directories
    StartJob    → inputs checked against the routing; RUNNING; DockerRuntime.run (or a DATA
                  service's file); outputs hashed; a signed receipt; JobExited; outputs
                  pushed straight to the next executors (or the requester for ``self``);
                  OutputsDelivered
    CancelJob   → container stopped, transfers dropped, workspace removed
    ReleaseJob  → the run is over: the kept outputs are removed

A heartbeat goes to the requester for every job held, so it notices a dead executor; if the
requester stays unreachable for ``orphan_after`` heartbeats, the job is cancelled here.

Restarts.  Every job held is written to a journal (the store's ``executor_jobs``) as its
state changes, so that nothing held is silently lost when this node stops:

* on a clean shutdown, each requester is told at once (``JobLost``, with what became of the
  container) before the containers are stopped and removed;
* after a crash (kill -9), ``recover`` reads the journal back when the node starts, removes
  any container left for those jobs (noting whether it was still running or how it had
  exited: its output streamed through a socket that died with us, so it cannot be
  collected), removes the workspaces, and tells each requester ``JobLost`` with that reason.

The requester's retry policy then applies without waiting for a heartbeat timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import posixpath
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from rnn_tui.errors import RnnError, ServiceError, WorkflowError
from rnn_tui.identity.keys import Identity, PeerId
from rnn_tui.services.model import Interface, InterfaceType, MountDirection, Service, ServiceKind
from rnn_tui.services.policy import ExecutorPolicy, JobRefused, decide
from rnn_tui.services.runtime import DockerRuntime, JobOutcome, JobRequest, OutputChunk, Workspace
from rnn_tui.transport.session import PeerConnection
from rnn_tui.util.tasks import TaskManager
from rnn_tui.workflow import messages as wm
from rnn_tui.workflow.executor_journal import (
    SHUTDOWN_REASONS,
    ExecutorJournal,
    JournalEntry,
    executor_job_id,
    lost_reason,
)
from rnn_tui.workflow.live_logs import LiveLog
from rnn_tui.workflow.output_cache import OutputCache
from rnn_tui.workflow.receipts import Digest, Receipt, params_digest, sign_receipt
from rnn_tui.workflow.stdin_feed import StdinFeed
from rnn_tui.workflow.transfer import PathEscape, confine_path, hash_file
from rnn_tui.workflow.transfer_driver import (
    Landing,
    SendOutcome,
    StreamSource,
    TransferService,
    transfer_id_for,
)
from rnn_tui.workflow.wire import WfCommand, WfLog, WfReceipt, WfReply, WfReport, XferOffer

__all__ = ["ExecutorJournal", "ExecutorService", "ExecutorSettings", "JournalEntry"]

log = logging.getLogger(__name__)
Connect = Callable[[PeerId], Awaitable[PeerConnection]]
GetService = Callable[[str], Awaitable[Service]]
STDIN_FILE = "stdin.in"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True, slots=True)
class ExecutorSettings:
    enabled: bool = True
    heartbeat_s: float = 5.0
    max_reservations: int = 16
    orphan_after: int = 30


@dataclass(slots=True)
class _Input:
    peer: PeerId
    source_job: str
    target: str
    size: int
    sha256: str
    path: Path


@dataclass(eq=False, slots=True)
class _Held:
    requester: PeerId
    request: wm.RequestJob
    service: Service
    workspace: Workspace
    logs: LiveLog                # live log lines to the requester, within a budget
    state: str = "accepted"      # accepted | running | delivering | done | cancelled
    inputs: dict[int, _Input] = field(default_factory=dict)
    outputs: dict[str, tuple[Path, int, str]] = field(default_factory=dict)
    routes: tuple[wm.OutputRoute, ...] = ()
    silent: int = 0
    resume: bool = False
    reused: bool = False
    feed: StdinFeed | None = None                  # STDIN as it lands (read live if streamed)
    streamed_in: frozenset[int] = frozenset()  # connections fed while the job runs
    hash_only: tuple[str, ...] = ()            # outputs to sign though no route ships them
    live: dict[int, tuple[StreamSource, asyncio.Future[SendOutcome]]] = field(
        default_factory=dict)                  # streamed outputs being sent, by connection
    marks: list[tuple[str, float]] = field(default_factory=list)

    def mark(self, phase: str) -> None:
        """Time a step of the job (logged once per job: the benchmark's timeline)."""
        self.marks.append((phase, time.time()))

    @property
    def job_id(self) -> str:
        return self.workspace.root.name

    @property
    def key(self) -> tuple[str, str]:
        return (self.request.run_id, self.request.job)


def _with_mounts(service: Service, mounts: tuple[tuple[str, MountDirection], ...]) -> Service:
    """The service plus the mounts the workflow declares for this job (only job dirs bind)."""
    have = {i.path for i in service.mounts()}
    extra = tuple(Interface(InterfaceType.MOUNT, path, direction)
                  for path, direction in mounts if path not in have)
    return replace(service, interfaces=service.interfaces + extra) if extra else service


def _hashed(path: Path, size: int, sha256: bytes | None) -> tuple[Path, int, str]:
    """An output entry; without a hash ``_collect_outputs`` hashes the file."""
    return (path, size, sha256.hex()) if sha256 is not None else (path, 0, "")


def _mount_target(ws: Workspace, key: str, file: str | None) -> tuple[Path, str, MountDirection]:
    """``MOUNT:/data/in`` + ``a.csv`` → (host dir of the mount, ``a.csv``, direction)."""
    path = key.split(":", 1)[1]
    for cpath, host, direction in sorted(ws.items(), key=lambda i: -len(i[0])):
        if path == cpath or path.startswith(cpath.rstrip("/") + "/"):
            rel = path[len(cpath):].strip("/")
            name = posixpath.join(rel, file) if file else rel
            if not name:
                raise WorkflowError(f"{key}: name a file inside the mount (a 'file:' for it)")
            return host, name, direction
    raise WorkflowError(f"{key} is not inside any mount of this job")


class ExecutorService:
    """Runs other peers' jobs on this node (see the module docstring)."""

    def __init__(self, identity: Identity, get_service: GetService, runtime: DockerRuntime,
                 policy: ExecutorPolicy, transfers: TransferService, connect: Connect,
                 existing: Callable[[PeerId], PeerConnection | None],
                 settings: ExecutorSettings | None = None,
                 journal: ExecutorJournal | None = None) -> None:
        self.identity = identity
        self.get_service = get_service
        self.runtime = runtime
        self.policy = policy
        self.transfers = transfers
        self.connect = connect
        self.existing = existing
        self.settings = settings or ExecutorSettings()
        self.tasks = TaskManager("executor")
        self._held: dict[tuple[str, str], _Held] = {}
        self.cache = OutputCache(runtime.jobs_root.parent / "cache")
        self.journal = journal
        self._writes: asyncio.Queue[tuple[JournalEntry | tuple[str, str, int],
                                          asyncio.Future[None]]] = asyncio.Queue()

    def install(self, handlers: object) -> None:
        handlers.on_request(WfCommand, self._on_command)  # type: ignore[attr-defined]

    async def start(self) -> None:
        self.tasks.every("heartbeat", self.settings.heartbeat_s, self._heartbeat)
        if self.journal is not None:
            self.tasks.spawn("journal", self._journal_writer())
            self.tasks.spawn("recover", self.recover())

    async def close(self) -> None:
        dropped = await self._shutdown_held()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._writes.join(), 5.0)
        await self.tasks.shutdown()  # run tasks end here: their containers are removed
        for job_id in dropped:  # the delayed discards were cancelled with the tasks
            await asyncio.to_thread(self.runtime.discard_workspace, job_id)
        await self.runtime.drain()  # prepared containers, background removals

    @property
    def held_count(self) -> int:
        return len(self._held)

    # ------------------------------------------------------------------ commands
    async def _on_command(self, conn: PeerConnection, msg: WfCommand) -> WfReply:
        peer = conn.peer_id
        assert peer is not None
        cmd = msg.command
        if isinstance(cmd, wm.RequestJob):
            return WfReply(await self._request(peer, cmd, resume=msg.resume))
        held = self._held.get((cmd.run_id, cmd.job))
        if held is None or held.requester != peer:
            if isinstance(cmd, wm.CancelJob | wm.ReleaseJob):
                return WfReply()  # already gone; nothing to undo
            raise WorkflowError(f"no job {cmd.job!r} of run {cmd.run_id} is held here for you")
        if cmd.attempt != held.request.attempt:
            raise WorkflowError(f"job {cmd.job!r}: attempt {cmd.attempt} is not the one held "
                                f"({held.request.attempt})")
        if isinstance(cmd, wm.StartJob):
            if held.state != "accepted":
                return WfReply()  # a repeated start (requester restarted): already running
            held.state = "running"
            held.mark("start")
            held.routes = cmd.outputs
            held.streamed_in = frozenset(r.connection for r in cmd.inputs if r.stream)
            held.hash_only = cmd.hash_only
            self._record(held)
            self.tasks.spawn(f"run:{held.job_id}", self._run(held, cmd))
        elif isinstance(cmd, wm.DeliverOutputs):
            self.tasks.spawn(f"deliver:{held.job_id}:{cmd.delivery}",
                             self._deliver(held, cmd.outputs, cmd.delivery))
        elif isinstance(cmd, wm.CancelJob):
            await self._drop(held, cmd.reason)
        elif isinstance(cmd, wm.ReleaseJob):
            await self._drop(held, "released")
        return WfReply()

    async def _request(self, requester: PeerId, cmd: wm.RequestJob, *,
                       resume: bool = False) -> wm.Report:
        def refuse(reason: str) -> wm.JobRefused:
            log.info("refused job %s of run %s for %s: %s", cmd.job, cmd.run_id,
                     requester.short, reason)
            return wm.JobRefused(cmd.run_id, cmd.job, cmd.attempt, reason)

        if not self.settings.enabled:
            return refuse("this node does not run jobs for others (executor.enabled is off)")
        old = self._held.get((cmd.run_id, cmd.job))
        if old is not None:
            if old.requester != requester:
                return refuse("that run id is in use by another requester")
            if old.request.attempt == cmd.attempt and old.state != "cancelled":
                return wm.JobAccepted(cmd.run_id, cmd.job, cmd.attempt)  # a repeat: same answer
            await self._drop(old, f"superseded by attempt {cmd.attempt}")
        if len(self._held) >= self.settings.max_reservations:
            return refuse(f"executor busy: {len(self._held)} jobs held, at most "
                          f"{self.settings.max_reservations}")
        try:
            service = _with_mounts(await self.get_service(cmd.service), cmd.mounts)
        except ServiceError:
            return refuse(f"no service {cmd.service!r} here")
        try:
            if service.kind is ServiceKind.DATA:
                if not service.visibility.admits(requester, service.owner):
                    return refuse(f"service {service.name!r} is not visible to you")
                if not service.data_path or not await asyncio.to_thread(os.path.isfile,
                                                                       service.data_path):
                    return refuse(f"data service {service.name!r} has no file to serve")
            else:
                timeout = None if cmd.timeout_s is None else max(1, math.ceil(cmd.timeout_s))
                decide(service, requester, self.policy, timeout,
                       overrides_command=bool(cmd.args))
        except JobRefused as exc:
            return refuse(exc.reason)
        job_id = executor_job_id(requester, cmd.run_id, cmd.job, cmd.attempt)
        try:
            ws = await asyncio.to_thread(self.runtime.workspace, job_id, service)
        except (RnnError, OSError) as exc:
            return refuse(f"cannot prepare a workspace: {exc}")
        logs = LiveLog(lambda stream, lines: self._send_log(requester, cmd, stream, lines))
        held = _Held(requester, cmd, service, ws, logs, resume=resume)
        self._held[(cmd.run_id, cmd.job)] = held
        held.mark("accepted")
        await self._record(held)  # accepted only once the journal knows it
        if self._held.get(held.key) is not held:  # cancelled (and dropped) meanwhile
            return refuse("the job was cancelled while it was being accepted")
        self._prepare(held)
        log.info("accepted job %s of run %s from %s (service %s)", cmd.job, cmd.run_id,
                 requester.short, service.name)
        return wm.JobAccepted(cmd.run_id, cmd.job, cmd.attempt)

    # ------------------------------------------------------------------ inputs
    async def accept_input(self, peer: PeerId, offer: XferOffer) -> Landing:
        """Where an upstream executor's output lands, or ``WorkflowError`` with the reason."""
        held = self._held.get((offer.run_id, offer.target_job or ""))
        if held is None:
            raise WorkflowError(f"output not in the routing: no job {offer.target_job!r} of "
                                f"run {offer.run_id} is held here")
        if held.state != "accepted" and offer.connection not in held.streamed_in:
            raise WorkflowError(f"job {offer.target_job!r} already started; inputs are closed")
        target = offer.target or ""
        feed: StdinFeed | None = None
        if target == "STDIN":
            if not held.service.has_interface(InterfaceType.STDIN):
                raise WorkflowError(f"service {held.service.name!r} has no STDIN")
            root, name = held.workspace.root / "stdin", STDIN_FILE
            if held.feed is None:
                held.feed = StdinFeed(root / f"{STDIN_FILE}.part", root / STDIN_FILE)
            feed = held.feed
        elif target.startswith("MOUNT:"):
            root, name, direction = _mount_target(held.workspace, target, offer.offer.name
                                                  if self._is_dir_target(held, target) else None)
            if direction is MountDirection.OUTPUT:
                raise WorkflowError(f"{target} is an OUTPUT mount; it takes no input")
        else:
            raise WorkflowError(f"{target!r} is not an input interface")
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        connection = offer.connection

        def done(size: int, sha: str) -> None:
            path = confine_path(root, name)
            held.inputs[connection] = _Input(peer, offer.source_job, target, size, sha, path)
            if feed is not None:
                feed.finish(size)

        if feed is None:
            return Landing(root, name, self.policy.max_output_bytes, done)
        return Landing(root, name, self.policy.max_output_bytes, done,
                       on_failed=lambda reason: self._stream_failed(held, feed, reason),
                       on_progress=feed.progress, live=True)

    def _stream_failed(self, held: _Held, feed: StdinFeed, reason: str) -> None:
        """A streamed input broke (its producer failed or vanished): stop this attempt."""
        feed.fail(reason)
        if held.state == "running" and held.streamed_in:
            self.tasks.spawn(f"stream-failed:{held.job_id}", self.runtime.cancel(
                held.job_id, f"streamed input failed: {reason}"), replace=True)

    @staticmethod
    def _is_dir_target(held: _Held, target: str) -> bool:
        path = target.split(":", 1)[1]
        return any(i.path == path for i in held.service.mounts())

    def _check_inputs(self, held: _Held, routes: tuple[wm.InputRoute, ...]) -> str:
        """Why the received inputs do not match the routing, or ``""``."""
        wanted = {r.connection: r for r in routes}
        for connection, got in list(held.inputs.items()):
            route = wanted.get(connection)
            if route is None or route.source_peer != got.peer or route.source_job != got.source_job:
                log.warning("job %s: dropping input %d from %s: not in the routing",
                            held.request.job, connection, got.peer.short)
                with contextlib.suppress(OSError):
                    got.path.unlink()
                del held.inputs[connection]
        for connection, route in wanted.items():
            if connection not in held.inputs and not route.stream:
                return (f"input {route.target} from job {route.source_job!r} on "
                        f"{route.source_peer.short} was not received")
        return ""

    # ------------------------------------------------------------------ running
    async def _run(self, held: _Held, cmd: wm.StartJob) -> None:
        req = held.request
        problem = self._check_inputs(held, cmd.inputs)
        started = time.time()
        if problem:
            await self._exit(held, started, 125, problem)
            return
        # reports travel while the job runs: no round trip on the job's critical path
        running = asyncio.ensure_future(self._report(held, wm.JobStatusReported(
            req.run_id, req.job, req.attempt, wm.ExecState.RUNNING)))
        try:
            if held.service.kind is ServiceKind.DATA:
                assert held.service.data_path is not None
                held.outputs["STDOUT"] = (Path(held.service.data_path), 0, "")
                code, reason = 0, ""
            elif held.resume and await self._reuse(held):
                code, reason = 0, ""
            else:
                self._start_streams(held, cmd)
                code, reason = await self._run_container(held)
                self._end_streams(held, code, reason)
        finally:
            await running
        if held.state == "cancelled":
            return
        if code != 0:
            await self.runtime.wait_removed(held.job_id)
        if code == 0:
            reason = await self._collect_outputs(held)
            held.mark("hashed")
            if reason:
                code = 125
            elif held.resume and not held.reused and held.service.kind is not ServiceKind.DATA:
                await asyncio.to_thread(self.cache.store, self._cache_key(held), held.outputs)
        exited = asyncio.ensure_future(self._exit(held, started, code, reason))
        try:
            if code == 0 and held.state != "cancelled":
                # outputs leave at once; OutputsDelivered waits for the exit report
                await self._deliver(held, cmd.outputs, cmd.delivery, after=exited)
        finally:
            await exited

    def _job_request(self, held: _Held, *, running: bool) -> JobRequest:
        """The runtime's request for a held job (``running``: with its stdin and routing)."""
        req = held.request
        stdin_path = held.workspace.root / "stdin" / STDIN_FILE
        stdin: Path | Iterator[bytes] | None = stdin_path if stdin_path.is_file() else None
        if not running:
            stdin = None  # a container prepared ahead gets its stdin when it runs
        elif held.streamed_in:
            if held.feed is None:  # nothing offered yet: the producer's offer is on its way
                root = held.workspace.root / "stdin"
                root.mkdir(mode=0o700, parents=True, exist_ok=True)
                held.feed = StdinFeed(root / f"{STDIN_FILE}.part", root / STDIN_FILE)
            stdin = held.feed.chunks()
        return JobRequest(
            job_id=held.job_id, service=held.service, requester=held.requester,
            stdin=stdin,
            command=req.args or None, env=dict(req.env),
            timeout_s=None if req.timeout_s is None else max(1, math.ceil(req.timeout_s)),
            # engine logs (timestamped, json-file driver) only when a route ships LOGS: that
            # driver throttles small lines, so it stays off for every other job
            engine_logs=any(r.source == "LOGS" for r in held.routes),
            on_output=(lambda chunk: self._forward_output(held, chunk)) if running else None)

    def _prepare(self, held: _Held) -> None:
        """Create the container of an accepted job now, while the run is still being placed
        and its inputs travel, so that only ``start`` is left on the job's critical path."""
        if held.service.kind is ServiceKind.DATA or held.resume:
            return  # no container, or maybe none (a resumed job may reuse cached outputs)
        try:
            self.runtime.prepare(self._job_request(held, running=False))
        except (RnnError, JobRefused) as exc:  # run() will say it again, to the requester
            log.info("job %s: container not prepared ahead: %s", held.request.job, exc)

    async def _run_container(self, held: _Held) -> tuple[int, str]:
        request = self._job_request(held, running=True)
        try:
            # the container is removed in the background: outputs are hashed and shipped
            # meanwhile, and OutputsDelivered waits for the removal (no container outlives
            # the job's report)
            result = await self.runtime.run(request, remove_later=True)
        except JobRefused as exc:
            return 125, f"refused at start: {exc.reason}"
        except RnnError as exc:
            return 125, str(exc)
        held.marks.extend(result.phases)
        held.mark("run_returned")
        held.logs.flush()
        if held.feed is not None and held.feed.failed:
            # even if the container exited 0: it saw EOF on a truncated input
            return 125, f"streamed input failed: {held.feed.failed}"
        # hashed by the runtime while the job wrote them: no second pass over the files
        held.outputs["STDOUT"] = _hashed(result.stdout_path, result.stdout_bytes,
                                         result.stdout_sha256)
        held.outputs["STDERR"] = _hashed(result.stderr_path, result.stderr_bytes,
                                         result.stderr_sha256)
        if result.logs_path is not None:
            held.outputs["LOGS"] = (result.logs_path, 0, "")
        if result.outcome is JobOutcome.COMPLETED:
            return 0, ""
        code = result.exit_code if result.exit_code not in (None, 0) else 1
        assert code is not None
        if result.outcome is JobOutcome.TIMED_OUT:
            code = 124
        return code, result.explanation

    # ------------------------------------------------------------------ resume cache
    @staticmethod
    def _cache_key(held: _Held) -> str:
        inputs = {f"{i.target}:{i.path.name}": i.sha256 for i in held.inputs.values()}
        return OutputCache.key(held.service, held.request.env, held.request.args, inputs)

    async def _reuse(self, held: _Held) -> bool:
        """Nextflow-style resume: outputs of an identical earlier job, re-hashed, if any."""
        key = self._cache_key(held)
        outputs = await self.cache.lookup(key, {r.source for r in held.routes} | {"STDOUT"})
        if outputs is None:
            return False
        held.outputs.update(outputs)
        held.reused = True
        held.logs.send("stderr", [f"[resume] reused the outputs of an identical earlier job "
                                  f"(cache key {key[:16]})"])
        log.info("job %s of run %s: reused cached outputs %s", held.request.job,
                 held.request.run_id, key[:16])
        return True

    async def _collect_outputs(self, held: _Held) -> str:
        """Find and hash every output a route ships; ``""`` or why one is missing."""
        for source in (*(r.source for r in held.routes), *held.hash_only):
            if source in held.outputs or not source.startswith("MOUNT:"):
                continue
            try:
                root, name, _direction = _mount_target(held.workspace, source, None)
                path = confine_path(root, name)
            except (WorkflowError, PathEscape) as exc:
                return f"output {source}: {exc}"
            if not path.is_file():
                return f"output {source} was not written by the job"
            held.outputs[source] = (path, 0, "")
        for source, (path, _size, sha) in list(held.outputs.items()):
            if sha:
                continue  # reused from the cache: already hashed
            try:
                size, digest = await asyncio.to_thread(hash_file, path)
            except OSError as exc:
                return f"output {source}: {exc.strerror}"
            held.outputs[source] = (path, size, digest.hex())
        return ""

    async def _exit(self, held: _Held, started: float, code: int, reason: str) -> None:
        req = held.request
        held.state = "delivering" if code == 0 else "done"
        self._record(held)
        service = held.service
        receipt = Receipt(
            run_id=req.run_id, job=req.job, attempt=req.attempt, requester=held.requester,
            executor=self.identity.peer_id, service_id=service.id, service_name=service.name,
            image_digest=service.image_digest or service.content_hash or "",
            inputs=tuple(Digest(f"{i.target}:{i.path.name}", i.size, i.sha256)
                         for _, i in sorted(held.inputs.items())),
            outputs=tuple(Digest(source, size, sha)
                          for source, (_p, size, sha) in sorted(held.outputs.items())),
            exit_code=code, started_ms=int(started * 1000), ended_ms=int(time.time() * 1000),
            params_sha256=params_digest(req.env, req.args))
        signed = sign_receipt(self.identity, receipt)
        held.mark("signed")

        async def send_receipt() -> None:
            with contextlib.suppress(RnnError):
                conn = await self.connect(held.requester)
                await conn.request(WfReceipt(signed.body, signed.signature), timeout=10.0)

        await asyncio.gather(send_receipt(), self._report(
            held, wm.JobExited(req.run_id, req.job, req.attempt, code, reason)))
        held.mark("exit_reported")

    async def _deliver(self, held: _Held, routes: tuple[wm.OutputRoute, ...],
                       delivery: int, after: asyncio.Future[None] | None = None) -> None:
        req = held.request

        async def one(route: wm.OutputRoute) -> tuple[int, str] | None:
            live = held.live.pop(route.connection, None) if delivery == 0 else None
            if live is not None:  # piped while the job ran: wait for its end
                sent = await live[1]
                return None if sent.ok else (route.connection, sent.reason)
            entry = held.outputs.get(route.source)
            if entry is None:
                return route.connection, f"{route.source} is not an output of this job"
            path, size, sha = entry
            name = route.file or _SAFE.sub("_", f"{req.job}-{route.source}")
            tid = transfer_id_for(req.run_id, req.job, req.attempt, route.connection, delivery,
                                  route.target_peer)
            outcome = await self.transfers.send_file(
                route.target_peer, path, transfer_id=tid, name=name, run_id=req.run_id,
                source_job=req.job, attempt=req.attempt, connection=route.connection,
                target_job=route.target_job, target=route.target,
                known=(size, bytes.fromhex(sha)))
            held.mark(f"sent{route.connection}")
            return None if outcome.ok else (route.connection, outcome.reason)

        results = await asyncio.gather(*(one(r) for r in routes))
        failed = tuple(r for r in results if r is not None)
        digests = tuple(wm.OutputDigest(s, size, sha)
                        for s, (_p, size, sha) in sorted(held.outputs.items()))
        if after is not None:
            await asyncio.shield(after)
        await self.runtime.wait_removed(held.job_id)
        if held.state != "cancelled":
            held.state = "done"
            self._record(held)
        await self._report(held, wm.OutputsDelivered(req.run_id, req.job, req.attempt, delivery,
                                                     digests, failed))
        held.mark("delivered_reported")
        if delivery == 0:
            log.info("job %s of run %s phases: %s", req.job, req.run_id,
                     " ".join(f"{phase}={at:.4f}" for phase, at in held.marks))

    # ------------------------------------------------------------------ reporting
    async def _report(self, held: _Held, report: wm.Report, tries: int = 4) -> None:
        """Deliver a report; retried with backoff so a requester restart does not lose it."""
        for attempt in range(tries):
            try:
                conn = await self.connect(held.requester)
                await conn.request(WfReport(report), timeout=10.0)
                return
            except RnnError as exc:
                log.warning("could not report %s for job %s to %s (try %d): %s",
                            type(report).__name__, held.request.job, held.requester.short,
                            attempt + 1, exc)
            if held.state == "cancelled":
                return
            await asyncio.sleep(min(8.0, 1.0 * 2 ** attempt))

    def _forward_output(self, held: _Held, chunk: OutputChunk) -> None:
        """A container read: to the streamed output routes it feeds (``held.live``), and as
        live log lines to the requester (``LiveLog``: within the job's budget)."""
        for route in held.routes:
            live = held.live.get(route.connection)
            if live is not None and route.source == chunk.stream.upper():
                live[0].feed(chunk.data)
        held.logs.feed(chunk.stream, chunk.data, time.monotonic())

    def _send_log(self, requester: PeerId, req: wm.RequestJob, stream: str,
                  lines: list[str]) -> None:
        """One batch of live lines, one-way, only if the requester is connected: streamed
        jobs talk to a requester we are connected to, and never block the job on it."""
        for connection in self._open_connections(requester):
            with contextlib.suppress(RnnError):
                connection.send(WfLog(req.run_id, req.job, req.attempt, stream.upper(),
                                      tuple(lines)))

    def _open_connections(self, peer: PeerId) -> list[PeerConnection]:
        conn = self.existing(peer)
        return [conn] if conn is not None and conn.is_open else []

    async def _heartbeat(self) -> None:
        for held in list(self._held.values()):
            req = held.request
            conns = self._open_connections(held.requester)
            if not conns:
                held.silent += 1
                if held.silent >= self.settings.orphan_after:
                    await self._drop(held, f"requester {held.requester.short} unreachable for "
                                           f"{held.silent} heartbeats")
                continue
            held.silent = 0
            if held.state == "done":
                continue  # finished here; kept outputs wait for ReleaseJob
            with contextlib.suppress(RnnError):
                conns[0].send(WfReport(wm.Heartbeat(req.run_id, req.job, req.attempt)))

    async def _drop(self, held: _Held, reason: str, *, forget: bool = True) -> None:
        if self._held.get(held.key) is held:
            del self._held[held.key]
        previous, held.state = held.state, "cancelled"
        if forget:
            self._record(held)
        if held.feed is not None:
            held.feed.fail(reason)
        for source, _sending in held.live.values():
            source.fail(f"the producing job was stopped: {reason}")
        root = held.workspace.root
        self.transfers.abort_incoming(lambda landing: root in landing.root.parents
                                      or landing.root == root, reason)
        if previous == "running":
            await self.runtime.cancel(held.job_id, reason)
            self.tasks.spawn(f"discard:{held.job_id}", self._discard_later(held), replace=True)
        else:
            await self.runtime.discard_prepared(held.job_id)
            await asyncio.to_thread(self.runtime.discard_workspace, held.job_id)
        log.info("dropped job %s of run %s: %s", held.request.job, held.request.run_id, reason)

    async def _discard_later(self, held: _Held) -> None:
        runner = f"run:{held.job_id}"
        for _ in range(600):
            if not self.tasks.is_running(runner):
                break
            await asyncio.sleep(0.1)
        await asyncio.to_thread(self.runtime.discard_workspace, held.job_id)

    # ------------------------------------------------------------------ streamed pipes
    def _start_streams(self, held: _Held, cmd: wm.StartJob) -> None:
        """Open a live transfer for every streamed output route before the container starts.

        ``_forward_output`` feeds them as the container writes; ``_end_streams`` ends them
        when it exits (a failed job aborts them, so the consumers fail with its reason).
        """
        req = held.request
        for route in cmd.outputs:
            if not route.stream or route.target_job is None or route.source not in (
                    "STDOUT", "STDERR"):
                continue
            source = StreamSource()
            tid = transfer_id_for(req.run_id, req.job, req.attempt, route.connection, 0,
                                  route.target_peer, "stream")
            sending = self.tasks.spawn(f"stream:{held.job_id}:{route.connection}",
                                       self.transfers.send_stream(
                route.target_peer, source, transfer_id=tid,
                name=_SAFE.sub("_", f"{req.job}-{route.source}"), run_id=req.run_id,
                source_job=req.job, attempt=req.attempt, connection=route.connection,
                target_job=route.target_job, target=route.target), replace=True)
            held.live[route.connection] = (source, sending)

    @staticmethod
    def _end_streams(held: _Held, code: int, reason: str) -> None:
        for source, _sending in held.live.values():
            if code == 0:
                source.end()
            else:
                source.fail(f"the producer exited with code {code}"
                            + (f": {reason}" if reason else ""))

    # ------------------------------------------------------------------ journal and restarts
    def _record(self, held: _Held) -> asyncio.Future[None]:
        """Queue a journal write of ``held`` as it is now; writes keep their order.

        Only the acceptance is awaited (a job is accepted once it is on disk); later states
        are written behind the job so the store never sits on its critical path.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.journal is None:
            done.set_result(None)
            return done
        req = held.request
        item: JournalEntry | tuple[str, str, int]
        if held.state == "cancelled":
            item = (req.run_id, req.job, req.attempt)
        else:
            item = JournalEntry(req.run_id, req.job, req.attempt, held.requester, held.job_id,
                                held.service.name, held.state,
                                tuple((r.connection, r.source, str(r.target_peer))
                                      for r in held.routes))
        self._writes.put_nowait((item, done))
        return done

    async def _journal_writer(self) -> None:
        assert self.journal is not None
        while True:
            item, done = await self._writes.get()
            try:
                if isinstance(item, JournalEntry):
                    await self.journal.save(item)
                else:
                    await self.journal.forget(*item)
            except RnnError as exc:
                log.error("executor journal: cannot record %s: %s", item, exc)
            finally:
                if not done.done():
                    done.set_result(None)
                self._writes.task_done()

    async def recover(self) -> list[tuple[JournalEntry, str]]:
        """After a restart: clean up every journalled job and tell its requester it is lost.

        Returns ``(entry, reason)`` for every job found (the requesters are told in the
        background, with retries, since they may still be reconnecting to us).
        """
        if self.journal is None:
            return []
        found = []
        for entry in await self.journal.load():
            live = self._held.get((entry.run_id, entry.job))
            if live is not None and live.request.attempt == entry.attempt:
                continue  # accepted by this process already
            try:
                state = await asyncio.to_thread(self.runtime.reclaim, entry.job_id)
            except RnnError as exc:
                state = {"Error": str(exc)}
            await asyncio.to_thread(self.runtime.discard_workspace, entry.job_id)
            reason = lost_reason(entry.state, state)
            log.warning("job %s of run %s (attempt %d) was held when this node stopped: %s",
                        entry.job, entry.run_id, entry.attempt, reason)
            found.append((entry, reason))
            self.tasks.spawn(f"lost:{entry.job_id}", self._report_lost(entry, reason))
        return found

    async def _report_lost(self, entry: JournalEntry, reason: str) -> None:
        told = await self._tell_lost(entry.requester, wm.JobLost(
            entry.run_id, entry.job, entry.attempt, reason), tries=8, wait_s=10.0)
        if not told:
            log.warning("could not tell %s that job %s of run %s is lost; its heartbeat "
                        "timeout will", entry.requester.short, entry.job, entry.run_id)
        assert self.journal is not None
        with contextlib.suppress(RnnError):
            await self.journal.forget(entry.run_id, entry.job, entry.attempt)

    async def _tell_lost(self, requester: PeerId, report: wm.JobLost, *, tries: int,
                         wait_s: float) -> bool:
        for attempt in range(tries):
            try:
                conn = await asyncio.wait_for(self.connect(requester), wait_s)
                await conn.request(WfReport(report), timeout=wait_s)
                return True
            except (TimeoutError, RnnError) as exc:
                log.info("cannot tell %s that job %s is lost yet (try %d): %s",
                         requester.short, report.job, attempt + 1, exc)
            if attempt + 1 < tries:
                await asyncio.sleep(min(4.0, 0.5 * 2 ** attempt))
        return False

    async def _shutdown_held(self) -> list[str]:
        """A clean stop: tell every requester now, then stop and remove what we held.

        A job whose requester could not be told keeps its journal row, so the next start
        tells it (``recover``).
        """
        held = [h for h in self._held.values() if h.state != "cancelled"]
        reasons = [SHUTDOWN_REASONS.get(h.state, SHUTDOWN_REASONS["accepted"]) for h in held]
        told = await asyncio.gather(*(
            self._tell_lost(h.requester, wm.JobLost(h.request.run_id, h.request.job,
                                                    h.request.attempt, why), tries=1, wait_s=3.0)
            for h, why in zip(held, reasons, strict=True)))
        for h, ok in zip(held, told, strict=True):
            await self._drop(h, "the executor node is shutting down", forget=ok)
        return [h.job_id for h in held]

