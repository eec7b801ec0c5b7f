"""Runs, jobs, receipts and transfers of workflow runs (the requester's records), and the
jobs this node holds as an executor for other peers (its journal, read back after a restart).

Functions take the ``Store`` and run on its DB thread: call them as
``await store.call(save_run, store, ...)``.  Rows stay here; callers get plain dicts and
tuples with the fields they stored (the workflow package turns them into its records), so
nothing outside ``store/`` sees peewee.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from rnn_tui.store.db import Store

__all__ = ["RunRow", "JobRow", "ReceiptRow", "TransferRow", "save_run", "save_jobs",
           "get_run", "list_runs", "list_jobs", "save_receipt", "list_receipts",
           "set_receipt_verified", "save_transfer", "list_transfers", "unfinished_runs",
           "ExecutorJobRow", "save_executor_job", "forget_executor_job", "list_executor_jobs"]

_TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


@dataclass(frozen=True, slots=True)
class RunRow:
    run_id: str
    workflow: str
    state: str
    reason: str
    spec: dict[str, Any]
    created: float
    updated: float


@dataclass(frozen=True, slots=True)
class JobRow:
    run_id: str
    job: str
    state: str
    executor: str
    reason: str
    spec: dict[str, Any]
    updated: float


@dataclass(frozen=True, slots=True)
class ReceiptRow:
    receipt_id: str
    run_id: str
    job: str
    executor: str
    body: bytes
    signature: bytes
    verified: bool
    created: float


@dataclass(frozen=True, slots=True)
class TransferRow:
    transfer_id: str
    run_id: str
    job: str
    peer: str
    direction: str
    object_hash: str
    size: int
    verified_chunks: int
    state: str


def save_run(store: Store, run_id: str, workflow: str, state: str, reason: str,
             spec: dict[str, Any] | None = None) -> None:
    m = store.m
    now = time.time()
    row = m.Run.get_or_none(m.Run.id == run_id)
    if row is None:
        m.Run.insert(id=run_id, workflow_name=workflow, state=state, reason=reason,
                     spec=json.dumps(spec or {}, sort_keys=True), created=now,
                     updated=now).execute()
        return
    changes: dict[Any, Any] = {m.Run.state: state, m.Run.reason: reason, m.Run.updated: now}
    if spec is not None:
        changes[m.Run.spec] = json.dumps(spec, sort_keys=True)
    m.Run.update(changes).where(m.Run.id == run_id).execute()


def save_jobs(store: Store, rows: list[JobRow]) -> None:
    m = store.m
    for r in rows:
        m.Job.insert(run_id=r.run_id, name=r.job, state=r.state, executor=r.executor,
                     reason=r.reason, spec=json.dumps(r.spec, sort_keys=True),
                     updated=r.updated).on_conflict_replace().execute()


def _run(row: Any) -> RunRow:
    return RunRow(row.id, row.workflow_name, row.state, row.reason, json.loads(row.spec),
                  row.created, row.updated)


def get_run(store: Store, run_id: str) -> RunRow | None:
    row = store.m.Run.get_or_none(store.m.Run.id == run_id)
    return None if row is None else _run(row)


def list_runs(store: Store, limit: int = 100) -> list[RunRow]:
    m = store.m
    return [_run(r) for r in m.Run.select().order_by(m.Run.created.desc()).limit(limit)]


def unfinished_runs(store: Store) -> list[RunRow]:
    m = store.m
    return [_run(r) for r in m.Run.select().where(m.Run.state.not_in(_TERMINAL))]


def list_jobs(store: Store, run_id: str) -> list[JobRow]:
    m = store.m
    return [JobRow(r.run_id, r.name, r.state, r.executor, r.reason, json.loads(r.spec), r.updated)
            for r in m.Job.select().where(m.Job.run_id == run_id)]


def save_receipt(store: Store, row: ReceiptRow) -> None:
    store.m.Receipt.insert(id=row.receipt_id, run_id=row.run_id, job=row.job,
                           executor=row.executor, body=row.body, signature=row.signature,
                           verified=int(row.verified), created=row.created
                           ).on_conflict_replace().execute()


def list_receipts(store: Store, run_id: str | None = None,
                  executor: str | None = None) -> list[ReceiptRow]:
    m = store.m
    query = m.Receipt.select().order_by(m.Receipt.created)
    if run_id is not None:
        query = query.where(m.Receipt.run_id == run_id)
    if executor is not None:
        query = query.where(m.Receipt.executor == executor)
    return [ReceiptRow(r.id, r.run_id, r.job, r.executor, bytes(r.body), bytes(r.signature),
                       bool(r.verified), r.created) for r in query]


def set_receipt_verified(store: Store, receipt_id: str, verified: bool) -> None:
    m = store.m
    m.Receipt.update({m.Receipt.verified: int(verified)}).where(
        m.Receipt.id == receipt_id).execute()


def save_transfer(store: Store, row: TransferRow) -> None:
    store.m.Transfer.insert(id=row.transfer_id, run_id=row.run_id, job=row.job, peer=row.peer,
                            direction=row.direction, object_hash=row.object_hash, size=row.size,
                            verified_chunks=row.verified_chunks, state=row.state,
                            updated=time.time()).on_conflict_replace().execute()


def list_transfers(store: Store, run_id: str) -> list[TransferRow]:
    m = store.m
    return [TransferRow(r.id, r.run_id, r.job, r.peer, r.direction, r.object_hash, r.size,
                        r.verified_chunks, r.state)
            for r in m.Transfer.select().where(m.Transfer.run_id == run_id)]


@dataclass(frozen=True, slots=True)
class ExecutorJobRow:
    """A job held here for a requester; ``job_id`` names its workspace and labels its container."""

    run_id: str
    job: str
    attempt: int
    requester: str
    job_id: str
    service: str
    state: str
    routing: dict[str, Any]
    updated: float


def save_executor_job(store: Store, row: ExecutorJobRow) -> None:
    store.m.ExecutorJob.insert(run_id=row.run_id, job=row.job, attempt=row.attempt,
                               requester=row.requester, job_id=row.job_id, service=row.service,
                               state=row.state, routing=json.dumps(row.routing, sort_keys=True),
                               updated=row.updated).on_conflict_replace().execute()


def forget_executor_job(store: Store, run_id: str, job: str, attempt: int) -> None:
    """Remove the row of that attempt (a newer attempt of the same job stays)."""
    m = store.m
    m.ExecutorJob.delete().where((m.ExecutorJob.run_id == run_id) & (m.ExecutorJob.job == job)
                                 & (m.ExecutorJob.attempt == attempt)).execute()


def list_executor_jobs(store: Store) -> list[ExecutorJobRow]:
    m = store.m
    return [ExecutorJobRow(r.run_id, r.job, r.attempt, r.requester, r.job_id, r.service, r.state,
                           json.loads(r.routing), r.updated)
            for r in m.ExecutorJob.select().order_by(m.ExecutorJob.updated)]
