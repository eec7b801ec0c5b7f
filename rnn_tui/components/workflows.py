"""Workflows in the node: the one component ``node.py`` creates.

It wires the three drivers to the node's parts — the transfer service (both ends of output
transfers), the executor (other peers' jobs on our Docker), the orchestrator (our own runs) —
and offers the ``run.*`` / ``workflow.*`` control methods the CLI uses and the methods the
TUI's facade calls (``runs``, ``start_run``, ``cancel_run``, ``job_logs``...).

Service resolution happens here, at run start: every connected peer is asked for its
catalog (``ServiceCatalogQuery``, 5 s each, concurrently); ``service: X`` jobs get every
peer offering X as candidates (rotated per job so jobs spread over peers), a job naming a
peer gets that peer.  The requester's own services are candidates too, like any peer's, when
its executor is enabled: commands, reports and transfers to itself
go through a QUIC connection to its own socket, the same path as between two peers.

A restart of the requester with runs in flight ends them as FAILED with the reason, and
asks their executors to cancel (best effort); nothing is left RUNNING forever in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnn_tui.api import LogLine, ReceiptInfo, RunInfo
from rnn_tui.errors import RnnError, WorkflowError
from rnn_tui.identity.keys import PeerId
from rnn_tui.services.messages import ServiceCatalogQuery, ServiceCatalogReply
from rnn_tui.services.model import Service, service_id
from rnn_tui.store import runs as R
from rnn_tui.transport.session import PeerConnection
from rnn_tui.util.tasks import TaskManager
from rnn_tui.workflow import messages as wm
from rnn_tui.workflow.executor import ExecutorService, ExecutorSettings
from rnn_tui.workflow.executor_journal import JournalEntry
from rnn_tui.workflow.model import JobRecord, JobStatus, RunRecord, RunStatus, Workflow
from rnn_tui.workflow.orchestrator import Orchestrator, result_name, spread_candidates
from rnn_tui.workflow.receipts import SignedReceipt, open_receipt
from rnn_tui.workflow.scheduler import Candidate, SchedulerConfig
from rnn_tui.workflow.snapshot import SchedulerSnapshot
from rnn_tui.workflow.transfer import hash_file
from rnn_tui.workflow.transfer_driver import Landing, TransferService
from rnn_tui.workflow.validate import ResolvedService, check_workflow
from rnn_tui.workflow.wire import WfCommand, XferOffer
from rnn_tui.workflow.yaml_io import LoadedWorkflow, dump_workflow, load_workflow

if TYPE_CHECKING:
    from rnn_tui.node import Node

__all__ = ["WorkflowComponent"]

log = logging.getLogger(__name__)
_SERVICE_ID = re.compile(r"^[0-9a-f]{32}$")
RESTART_REASON = ("the requester node restarted while the run was in flight; its executors "
                  "were asked to cancel")


def _heartbeat_s(node: Node) -> float:
    return float(node.config["workflow.heartbeat_s"])  # also RNN_WORKFLOW_HEARTBEAT_S


class _StorePersistence:
    """``RunPersistence`` over ``store/runs.py``."""

    def __init__(self, node: Node) -> None:
        self.node = node

    @property
    def store(self) -> Any:
        assert self.node.store is not None
        return self.node.store

    async def save_run(self, record: RunRecord, spec: dict[str, Any] | None) -> None:
        await self.store.call(R.save_run, self.store, record.run_id, record.workflow,
                              record.status.value, record.reason, spec)

    async def save_jobs(self, records: list[JobRecord]) -> None:
        rows = [R.JobRow(r.run_id, r.job, r.status.value, str(r.executor or ""), r.reason,
                         {"attempt": r.attempt, "exit_code": r.exit_code,
                          "started_at": r.started_at, "ended_at": r.ended_at,
                          "service_id": r.service_id}, r.updated_at) for r in records]
        await self.store.call(R.save_jobs, self.store, rows)

    async def save_receipt(self, signed: SignedReceipt, verified: bool) -> None:
        rc = signed.receipt
        rid = hashlib.sha256(signed.body).hexdigest()[:32]
        await self.store.call(R.save_receipt, self.store, R.ReceiptRow(
            rid, rc.run_id, rc.job, str(rc.executor), signed.body, signed.signature, verified,
            time.time()))

    async def save_result(self, run_id: str, job: str, connection: int, peer: PeerId,
                          transfer_id: str, size: int, sha256: str) -> None:
        # direction "in:<connection>": a result delivered to us for that connection
        await self.store.call(R.save_transfer, self.store, R.TransferRow(
            transfer_id, run_id, job, str(peer), f"in:{connection}", sha256, size, 0, "DONE"))


class _StoreJournal:
    """``ExecutorJournal`` over ``store/runs.py``: the jobs this node holds for others."""

    def __init__(self, node: Node) -> None:
        self.node = node

    @property
    def store(self) -> Any:
        assert self.node.store is not None
        return self.node.store

    async def save(self, entry: JournalEntry) -> None:
        await self.store.call(R.save_executor_job, self.store, R.ExecutorJobRow(
            entry.run_id, entry.job, entry.attempt, str(entry.requester), entry.job_id,
            entry.service, entry.state, {"outputs": [list(r) for r in entry.routing]},
            time.time()))

    async def forget(self, run_id: str, job: str, attempt: int) -> None:
        await self.store.call(R.forget_executor_job, self.store, run_id, job, attempt)

    async def load(self) -> list[JournalEntry]:
        entries = []
        for row in await self.store.call(R.list_executor_jobs, self.store):
            try:
                requester = PeerId.parse(row.requester)
                routing = tuple((int(c), str(src), str(peer))
                                for c, src, peer in row.routing.get("outputs", []))
            except (ValueError, TypeError) as exc:
                log.warning("executor journal: skipping a damaged row for job %s of run %s "
                            "(%s)", row.job, row.run_id, exc)
                await self.forget(row.run_id, row.job, row.attempt)
                continue
            entries.append(JournalEntry(row.run_id, row.job, row.attempt, requester,
                                        row.job_id, row.service, row.state, routing))
        return entries


class WorkflowComponent:
    def __init__(self, node: Node) -> None:
        assert node.identity is not None and node.transport is not None
        assert node.services is not None and node.store is not None
        self.node = node
        self.identity = node.identity
        self.transport = node.transport
        self.tasks = TaskManager("workflows")
        self._self_conn: PeerConnection | None = None
        self._self_lock = asyncio.Lock()
        heartbeat = _heartbeat_s(node)
        self.transfers = TransferService(self._connect, self._accept_transfer)
        self.executor = ExecutorService(
            node.identity, node.services.registry.get, node.services.runtime,
            node.services.policy, self.transfers, self._connect, self._existing,
            ExecutorSettings(enabled=bool(node.config["executor.enabled"]),
                             heartbeat_s=heartbeat), journal=_StoreJournal(node))
        self.orchestrator = Orchestrator(
            node.identity, self._connect, _StorePersistence(node), node.config.data_dir,
            publish=node.events.publish,
            config=SchedulerConfig(request_timeout=10.0, heartbeat_timeout=2 * heartbeat),
            finished_retain_s=float(node.config["workflow.finished_retain_s"]))
        handlers = node.transport.handlers
        self.transfers.install(handlers)
        self.executor.install(handlers)
        self.orchestrator.install(handlers)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self.executor.start()
        await self._recover()
        control = self.node.control
        for name, fn in (("run.start", self._ctl_start), ("run.status", self._ctl_status),
                         ("run.cancel", self._ctl_cancel), ("run.results", self._ctl_results),
                         ("run.receipts", self._ctl_receipts),
                         ("workflow.import", self._ctl_import),
                         ("workflow.export", self._ctl_export),
                         ("workflow.list", self._ctl_list)):
            control.register(name, fn)
        control.register_stream("run.logs", self._ctl_logs)

    async def close(self) -> None:
        await self.orchestrator.close()
        await self.executor.close()
        await self.transfers.close()
        await self.tasks.shutdown()

    # ------------------------------------------------------------------ plumbing
    def _existing(self, peer: PeerId) -> PeerConnection | None:
        conn = self.transport.connection_to(peer)
        return conn if conn is not None and conn.is_open else None

    async def _connect(self, peer: PeerId) -> PeerConnection:
        conn = self._existing(peer)
        if conn is not None:
            return conn
        if self.node.identity is not None and peer == self.node.identity.peer_id:
            # Two jobs of one run on this node: the transfer goes through a QUIC connection
            # to our own socket, so one code path (hashes, receipts, resume) serves both cases.
            return await self._self_connection()
        if self.node.peers is None:
            raise WorkflowError(f"not connected to {peer.short}")
        state = await self.node.peers.connect(str(peer))
        if state.connection is None or not state.connection.is_open:
            raise WorkflowError(f"cannot connect to {peer.short}")
        return state.connection

    async def _self_connection(self) -> PeerConnection:
        assert self.node.identity is not None and self.node.bound_addr is not None
        host, port = self.node.bound_addr
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        async with self._self_lock:
            if self._self_conn is None or not self._self_conn.is_open:
                self._self_conn = await self.transport.dial(
                    (host, port), expected_peer_id=self.node.identity.peer_id)
            return self._self_conn

    async def _accept_transfer(self, peer: PeerId, offer: XferOffer) -> Landing:
        if offer.target_job is None:
            return await self.orchestrator.accept_result(peer, offer)
        return await self.executor.accept_input(peer, offer)

    # ------------------------------------------------------------------ resolution
    async def _catalogs(self) -> dict[PeerId, list[Service]]:
        conns = [c for c in self.transport.connections() if c.is_open and c.peer_id is not None]

        async def ask(conn: PeerConnection) -> tuple[PeerId, list[Service]]:
            assert conn.peer_id is not None
            try:
                reply = await conn.request(ServiceCatalogQuery(), timeout=5.0)
            except RnnError as exc:
                log.info("catalog of %s unavailable: %s", conn.peer_id.short, exc)
                return conn.peer_id, []
            if not isinstance(reply, ServiceCatalogReply):
                return conn.peer_id, []
            return conn.peer_id, [s for s in reply.services if s.owner == conn.peer_id]

        return dict(await asyncio.gather(*(ask(c) for c in conns)))

    async def resolve(self, loaded: LoadedWorkflow) -> dict[str, list[Candidate]]:
        """Candidates per job; ``WorkflowInvalid`` (with lines) when a service is unknown."""
        catalogs = await self._catalogs()
        me = self.identity.peer_id
        if self.executor.settings.enabled:
            assert self.node.services is not None
            catalogs[me] = [s for s in await self.node.services.registry.list() if s.owner == me]
        found: dict[str, list[Candidate]] = {}
        interfaces: dict[str, tuple[Any, ...]] = {}
        errors: dict[str, str] = {}
        for job in loaded.workflow.jobs:
            ref = job.service
            if ref.peer is not None:
                if ref.peer == me and not self.executor.settings.enabled:
                    errors[job.name] = ("this node does not run jobs (executor.enabled is "
                                        "off), so it cannot run its own job")
                    continue
                sid = ref.service if _SERVICE_ID.match(ref.service) else service_id(ref.peer,
                                                                                   ref.service)
                found[job.name] = [Candidate(ref.peer, sid)]
                match = [s for s in catalogs.get(ref.peer, []) if s.id == sid]
                interfaces[job.name] = match[0].interfaces if match else ()
                continue
            # other peers first (sorted), this node's own offer last
            offers = sorted((s for services in catalogs.values()
                             for s in services if ref.service in (s.name, s.id)),
                            key=lambda s: (s.owner == me, s.owner))
            if not offers:
                errors[job.name] = (f"no connected peer offers service {ref.service!r} "
                                    f"({len(catalogs)} peers asked)")
                continue
            found[job.name] = [Candidate(s.owner, s.id) for s in offers]
            interfaces[job.name] = offers[0].interfaces
        by_ref = {loaded.workflow.job(n).service: n for n in found}

        def resolver(ref: Any) -> ResolvedService | str:
            for bad, why in errors.items():
                if loaded.workflow.job(bad).service == ref:
                    return why
            name = by_ref.get(ref)
            if name is None:
                return f"service {ref.service!r} could not be resolved"
            return ResolvedService(found[name][0].service_id, interfaces.get(name, ()),
                                   tuple(c.peer for c in found[name]))

        check_workflow(loaded.workflow, loaded.marks, loaded.source, resolver)
        return spread_candidates((j.name, found[j.name]) for j in loaded.workflow.jobs)

    # ------------------------------------------------------------------ runs (facade + CLI)
    async def start_workflow(self, text: str, source: str, resume: bool = False) -> RunInfo:
        loaded = load_workflow(text, source)
        candidates = await self.resolve(loaded)
        handle = self.orchestrator.start_run(loaded.workflow, candidates, {
            "yaml": text, "source": source, "resume": resume,
            "candidates": {job: [[str(c.peer), c.service_id] for c in cands]
                           for job, cands in candidates.items()}})
        return handle.info()

    async def start_run(self, workflow_name: str, resume: bool = False) -> RunInfo:
        store = self.node.store
        assert store is not None
        text = await store.call(store.get_workflow, workflow_name)
        if text is None:
            raise WorkflowError(f"no workflow named {workflow_name!r}; import it first")
        return await self.start_workflow(text, f"workflow {workflow_name}", resume)

    async def cancel_run(self, run_id: str) -> None:
        self.orchestrator.cancel(run_id)

    def running_jobs(self) -> int:
        return self.orchestrator.running_jobs()

    async def runs(self) -> list[RunInfo]:
        store = self.node.store
        assert store is not None
        out = []
        for row in await store.call(R.list_runs, store, 100):
            out.append(await self.run_info(row.run_id, row))
        return out

    async def run_info(self, run_id: str, row: R.RunRow | None = None) -> RunInfo:
        handle = self.orchestrator.runs.get(run_id)
        if handle is not None:
            return handle.info()
        store = self.node.store
        assert store is not None
        row = row or await store.call(R.get_run, store, run_id)
        if row is None:
            raise WorkflowError(f"no run {run_id!r}")
        jobs = await store.call(R.list_jobs, store, run_id)
        status = RunStatus(row.state)
        record = RunRecord(row.run_id, row.workflow, status, row.created,
                           ended_at=row.updated if status in (RunStatus.COMPLETED,
                                                              RunStatus.FAILED,
                                                              RunStatus.CANCELLED) else None,
                           reason=row.reason)
        return RunInfo(record, tuple(_job_record(j) for j in jobs))

    async def job_logs(self, run_id: str, job: str | None = None,
                       follow: bool = False) -> AsyncIterator[LogLine]:
        async for line in self.orchestrator.follow_logs(run_id, job, follow):
            yield line

    async def receipts_with(self, peer_id: str) -> list[ReceiptInfo]:
        store = self.node.store
        assert store is not None
        out = []
        for row in await store.call(R.list_receipts, store, None, peer_id):
            try:
                rc = open_receipt(row.body, row.signature).receipt
            except RnnError:
                continue
            out.append(ReceiptInfo(rc.run_id, rc.job, rc.service_name, "executed for us",
                                   JobStatus.COMPLETED if rc.exit_code == 0 else JobStatus.ERRORED,
                                   rc.ended_ms / 1000, row.verified))
        return out

    # ------------------------------------------------------------------ recovery
    async def _recover(self) -> None:
        store = self.node.store
        assert store is not None
        for row in await store.call(R.unfinished_runs, store):
            try:
                await self._restore(row)
                log.warning("run %s was in flight when this node stopped; carrying it on",
                            row.run_id)
                continue
            except (RnnError, KeyError, ValueError, TypeError) as exc:
                log.warning("run %s cannot be carried on (%s); ending it", row.run_id, exc)
            jobs = await store.call(R.list_jobs, store, row.run_id)
            now = time.time()
            cancels = []
            updated = []
            for job in jobs:
                if job.state in ("COMPLETED", "ERRORED", "CANCELLED"):
                    continue
                updated.append(R.JobRow(row.run_id, job.job, "CANCELLED", job.executor,
                                        RESTART_REASON, job.spec, now))
                if job.executor:
                    cancels.append((job.executor, job.job, int(job.spec.get("attempt") or 0)))
            await store.call(R.save_jobs, store, updated)
            await store.call(R.save_run, store, row.run_id, row.workflow, "FAILED",
                             RESTART_REASON, None)
            log.warning("run %s was in flight when this node stopped; marked FAILED",
                        row.run_id)
            if cancels:
                self.tasks.spawn(f"recover-cancel:{row.run_id}",
                                 self._cancel_orphans(row.run_id, cancels))

    async def _restore(self, row: R.RunRow) -> None:
        """Rebuild an unfinished run from its snapshot, receipts and delivered results."""
        store = self.node.store
        assert store is not None
        spec = row.spec
        snapshot = SchedulerSnapshot.from_json(spec["snapshot"])
        workflow = load_workflow(spec["yaml"], spec.get("source", "<workflow>")).workflow
        candidates = {job: [Candidate(PeerId.parse(peer), sid) for peer, sid in cands]
                      for job, cands in spec["candidates"].items()}
        receipts = []
        for rrow in await store.call(R.list_receipts, store, row.run_id):
            if rrow.verified:
                with contextlib.suppress(RnnError):
                    receipts.append(open_receipt(rrow.body, rrow.signature))
        root = self._results_dir(row.run_id)
        results: dict[int, tuple[Path, int, str]] = {}
        for trow in await store.call(R.list_transfers, store, row.run_id):
            if trow.direction.startswith("in:") and trow.state == "DONE":
                index = int(trow.direction[3:])
                name = result_name(workflow, index)
                results[index] = (root / name, trow.size, trow.object_hash)
        self.orchestrator.restore_run(snapshot, workflow, candidates, spec, receipts, results)

    async def _cancel_orphans(self, run_id: str, cancels: list[tuple[str, str, int]]) -> None:
        await asyncio.sleep(1.0)
        for executor, job, attempt in cancels:
            with contextlib.suppress(RnnError, ValueError):
                peer = PeerId.parse(executor)
                conn = await asyncio.wait_for(self._connect(peer), 15)
                await conn.request(WfCommand(wm.CancelJob(peer, run_id, job, attempt,
                                                          RESTART_REASON)), timeout=10)

    # ------------------------------------------------------------------ control API
    async def _ctl_start(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("yaml"):
            info = await self.start_workflow(str(params["yaml"]),
                                             str(params.get("source") or "<workflow>"),
                                             bool(params.get("resume")))
        else:
            info = await self.start_run(str(params.get("name", "")), bool(params.get("resume")))
        return _run_dict(info)

    async def _ctl_status(self, params: dict[str, Any]) -> Any:
        if params.get("run_id"):
            info = await self.run_info(await self._full_id(str(params["run_id"])))
            result = _run_dict(info)
            if params.get("wait"):
                with contextlib.suppress(WorkflowError):
                    await self.orchestrator.wait(info.run_id, float(params["wait"]))
                    result = _run_dict(await self.run_info(info.run_id))
            return result
        return [_run_dict(info) for info in await self.runs()]

    async def _full_id(self, prefix: str) -> str:
        if prefix in self.orchestrator.runs:
            return prefix
        store = self.node.store
        assert store is not None
        rows = [r.run_id for r in await store.call(R.list_runs, store, 1000)
                if r.run_id.startswith(prefix)]
        if len(rows) != 1:
            raise WorkflowError(f"no run {prefix!r}" if not rows else
                                f"{len(rows)} runs start with {prefix!r}")
        return rows[0]

    async def _ctl_cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        run_id = await self._full_id(str(params.get("run_id", "")))
        record = self.orchestrator.cancel(run_id, str(params.get("reason") or
                                                      "cancelled by the requester"))
        return {"run_id": run_id, "status": record.status.value, "reason": record.reason}

    async def _ctl_results(self, params: dict[str, Any]) -> dict[str, Any]:
        run_id = await self._full_id(str(params.get("run_id", "")))
        checks = await self._verify(run_id)
        return {"run_id": run_id, "dir": str(self._results_dir(run_id)),
                "files": checks["results"]}

    async def _ctl_receipts(self, params: dict[str, Any]) -> dict[str, Any]:
        run_id = await self._full_id(str(params.get("run_id", "")))
        return await self._verify(run_id)

    def _results_dir(self, run_id: str) -> Path:
        return self.node.config.data_dir / "runs" / run_id / "results"

    async def _verify(self, run_id: str) -> dict[str, Any]:
        """Re-check every stored receipt and every result file against its receipt."""
        store = self.node.store
        assert store is not None
        row = await store.call(R.get_run, store, run_id)
        if row is None:
            raise WorkflowError(f"no run {run_id!r}")
        loaded = load_workflow(row.spec.get("yaml", ""), row.spec.get("source", "<workflow>"))
        workflow = loaded.workflow
        jobs = {j.job: j for j in await store.call(R.list_jobs, store, run_id)}
        receipts: list[dict[str, Any]] = []
        by_job: dict[str, Any] = {}
        for rrow in await store.call(R.list_receipts, store, run_id):
            entry: dict[str, Any] = {"job": rrow.job, "executor": rrow.executor, "problems": []}
            try:
                rc = open_receipt(rrow.body, rrow.signature).receipt
            except RnnError as exc:
                entry["problems"].append(str(exc))
                entry["verified"] = False
                receipts.append(entry)
                continue
            job = jobs.get(rc.job)
            if rc.run_id != run_id or rc.job != rrow.job:
                entry["problems"].append("receipt names another run or job")
            if str(rc.executor) != rrow.executor:
                entry["problems"].append("receipt signed by another key than its executor")
            if rc.requester != self.identity.peer_id:
                entry["problems"].append("receipt names another requester")
            current = job is not None and int(job.spec.get("attempt") or 0) == rc.attempt \
                and job.executor == str(rc.executor)
            entry.update(attempt=rc.attempt, exit_code=rc.exit_code, service=rc.service_name,
                         started_ms=rc.started_ms, ended_ms=rc.ended_ms,
                         image_digest=rc.image_digest, current=current,
                         outputs={d.name: d.sha256 for d in rc.outputs},
                         inputs={d.name: d.sha256 for d in rc.inputs})
            entry["verified"] = not entry["problems"]
            if current and entry["verified"]:
                by_job[rc.job] = rc
            receipts.append(entry)
        results = []
        root = self._results_dir(run_id)
        for index, conn in enumerate(workflow.connections):
            if conn.target is not None:
                continue
            name = result_name(workflow, index)
            path = root / name
            item: dict[str, Any] = {"file": name, "path": str(path), "job": conn.source.job,
                                    "source": conn.source.key}
            if path.is_file():
                size, digest = await asyncio.to_thread(hash_file, path)
                item.update(size=size, sha256=digest.hex())
                signed_by = by_job.get(conn.source.job)
                expected = signed_by.output(conn.source.key) if signed_by is not None else None
                item["matches_receipt"] = expected is not None and expected.sha256 == digest.hex()
            else:
                item["matches_receipt"] = False
                item["missing"] = True
            results.append(item)
        ok = all(r["verified"] for r in receipts) and all(r["matches_receipt"] for r in results)
        return {"run_id": run_id, "ok": ok, "receipts": receipts, "results": results}

    async def _ctl_logs(self, params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        run_id = await self._full_id(str(params.get("run_id", "")))
        async for line in self.orchestrator.follow_logs(run_id, params.get("job") or None,
                                                        bool(params.get("follow"))):
            yield {"job": line.job, "stream": line.stream.value, "text": line.text,
                   "ts": line.ts}

    async def _ctl_import(self, params: dict[str, Any]) -> dict[str, Any]:
        text = str(params.get("yaml", ""))
        loaded = load_workflow(text, str(params.get("source") or "<workflow>"))
        check_workflow(loaded.workflow, loaded.marks, loaded.source)
        store = self.node.store
        assert store is not None
        await store.call(store.put_workflow, loaded.workflow.name, text)
        return {"name": loaded.workflow.name, "jobs": len(loaded.workflow.jobs)}

    async def _ctl_export(self, params: dict[str, Any]) -> dict[str, Any]:
        store = self.node.store
        assert store is not None
        name = str(params.get("name", ""))
        text = await store.call(store.get_workflow, name)
        if text is None:
            raise WorkflowError(f"no workflow named {name!r}")
        workflow: Workflow = load_workflow(text, f"workflow {name}").workflow
        return {"name": name, "yaml": text, "canonical": dump_workflow(workflow)}

    async def _ctl_list(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        store = self.node.store
        assert store is not None
        return [{"name": n, "updated": u} for n, u in await store.call(store.list_workflows)]


def _job_record(row: R.JobRow) -> JobRecord:
    spec = row.spec
    executor = None
    with contextlib.suppress(ValueError):
        executor = PeerId.parse(row.executor) if row.executor else None
    return JobRecord(row.run_id, row.job, JobStatus(row.state), int(spec.get("attempt") or 0),
                     executor, spec.get("service_id"), spec.get("exit_code"),
                     spec.get("started_at"), spec.get("ended_at"), row.updated, row.reason)


def _run_dict(info: RunInfo) -> dict[str, Any]:
    run = info.run
    return {
        "run_id": run.run_id, "workflow": run.workflow, "status": run.status.value,
        "reason": run.reason, "created_at": run.created_at, "started_at": run.started_at,
        "ended_at": run.ended_at,
        "jobs": [{"job": j.job, "status": j.status.value, "attempt": j.attempt,
                  "executor": str(j.executor) if j.executor else "", "exit_code": j.exit_code,
                  "reason": j.reason, "started_at": j.started_at, "ended_at": j.ended_at}
                 for j in info.jobs],
    }
