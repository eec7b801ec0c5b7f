"""Domain dataclasses the repositories return (never peewee rows)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PeerRecord:
    peer_id: bytes
    addresses: tuple[str, ...] = ()
    first_seen: float = 0.0
    last_seen: float = 0.0
    rtt_ms: float | None = None
    failures: int = 0
    blocked: bool = False
    metadata: dict[str, object] | None = field(default=None, compare=False)
    metadata_seq: int | None = None


@dataclass(frozen=True, slots=True)
class DhtNodeRecord:
    node_id: bytes
    host: str
    port: int
    last_seen: float


@dataclass(frozen=True, slots=True)
class StoredRow:
    """A generic JSON-bodied row (services, runs, jobs ...) keyed by ``key``."""

    key: str
    body: dict[str, object]
    updated: float
