"""Hole-punch history: every attempt's peer, start, strategy, outcome, time to direct, error.

Why persisted: "attempts, outcomes and timings are recorded and shown" — an operator
debugging one peer's connectivity wants the last attempts after a restart too.  Bounded:
``record_punch`` keeps the newest ``keep`` rows per peer, so a flapping peer cannot grow
the database.  Functions run on the store's DB thread:
``await store.call(record_punch, store, row)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from rnn_tui.store.db import Store

__all__ = ["PunchRow", "record_punch", "list_punches", "KEEP_PER_PEER"]

KEEP_PER_PEER = 20


@dataclass(frozen=True, slots=True)
class PunchRow:
    peer: str  # the peer id's text form
    started: float  # wall-clock seconds
    strategy: str
    outcome: str  # "direct" | "relayed"
    time_to_direct: float | None  # seconds, when the outcome is direct
    attempts: int
    remote: str = ""  # host:port of the direct path, when one was found
    error: str = ""  # why it stayed relayed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_punch(store: Store, row: PunchRow, keep: int = KEEP_PER_PEER) -> None:
    """Insert ``row`` and drop that peer's rows beyond the newest ``keep``."""
    m = store.m.PunchAttempt
    m.insert(**row.to_dict()).execute()
    stale = (m.select(m.id).where(m.peer == row.peer)
             .order_by(m.started.desc(), m.id.desc()).offset(keep))
    m.delete().where(m.id.in_(stale)).execute()


def list_punches(store: Store, peer: str, limit: int = KEEP_PER_PEER) -> list[PunchRow]:
    """That peer's attempts, newest first."""
    m = store.m.PunchAttempt
    rows = (m.select().where(m.peer == peer)
            .order_by(m.started.desc(), m.id.desc()).limit(limit))
    return [PunchRow(r.peer, r.started, r.strategy, r.outcome, r.time_to_direct, r.attempts,
                     r.remote, r.error) for r in rows]
