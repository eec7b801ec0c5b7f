"""Events the DHT core emits, and the results of client operations.

Frozen, slotted dataclasses; event names are in the past tense.  The driver drains them
with ``DhtCore.next_event()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rnn_tui.dht.bep44 import MutableItem
from rnn_tui.dht.messages import Addr, NodeInfo

# ------------------------------------------------------------------ op results


@dataclass(frozen=True, slots=True)
class PingResult:
    """``node_id`` is None when the node did not answer."""

    node_id: bytes | None
    addr: Addr


@dataclass(frozen=True, slots=True)
class NodesFound:
    """A ``find_node`` lookup finished: the closest nodes that answered."""

    target: bytes
    nodes: tuple[NodeInfo, ...]
    queries: int


@dataclass(frozen=True, slots=True)
class PeersFound:
    infohash: bytes
    peers: tuple[Addr, ...]
    nodes: tuple[NodeInfo, ...]
    queries: int


@dataclass(frozen=True, slots=True)
class Announced:
    infohash: bytes
    stored: int
    nodes: tuple[NodeInfo, ...]
    queries: int


@dataclass(frozen=True, slots=True)
class MutableFound:
    """``item`` is the valid item with the highest seq seen, or None."""

    target: bytes
    item: MutableItem | None
    #: how many of the answering nodes returned a valid item
    copies: int
    queries: int


@dataclass(frozen=True, slots=True)
class ImmutableFound:
    target: bytes
    found: bool
    value: Any
    queries: int


@dataclass(frozen=True, slots=True)
class PutFailure:
    addr: Addr
    code: int
    message: str


@dataclass(frozen=True, slots=True)
class ItemPut:
    """A BEP 44 put finished: ``stored`` nodes acknowledged it."""

    target: bytes
    seq: int | None
    stored: int
    failures: tuple[PutFailure, ...]
    queries: int


OperationResult = PingResult | NodesFound | PeersFound | Announced | MutableFound | ImmutableFound | ItemPut

# ---------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class OperationCompleted:
    """The client operation ``op_id`` (returned by a ``start_*`` call) finished."""

    op_id: int
    result: OperationResult


@dataclass(frozen=True, slots=True)
class ExternalAddressChanged:
    """Enough peers agree (KRPC ``ip`` field) that this is our address as the world sees it."""

    ip: str
    port: int
    votes: int


@dataclass(frozen=True, slots=True)
class NodeIdChanged:
    """We took a new node id (BEP 42, derived from our external IP)."""

    old_id: bytes
    new_id: bytes
    ip: str


DhtEvent = OperationCompleted | ExternalAddressChanged | NodeIdChanged
