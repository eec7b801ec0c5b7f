"""What the node gossips: topic names and the payloads carried on them (sans-IO).

Three uses from the issue, one topic each so a node can subscribe to what it needs:

* ``rnn/services/1``: ``ServiceAnnouncement`` — add, update or remove one service,
  carrying the compact summary remote search needs (built by ``rnn_tui.services``);
* ``rnn/meta/1``: ``PeerMetadataUpdate`` — new addresses/capabilities, a fast path
  ahead of the hourly DHT republish;
* ``rnn/events/1``: ``NodeLifecycle`` — a node started or is stopping.

The gossip message's signature already proves the author, so payloads never repeat the
author's id: whoever signed an announcement owns the service it describes.  Payloads are
canonical bencode dicts with a one-letter kind, decoded strictly (``ValueError`` naming
the field) so a malformed announcement is dropped by the receiver, never half-applied.

``AnnouncementCatalog`` applies service announcements in sequence order per author:
gossip may deliver an older update after a newer one, and a late "add" must not
resurrect a removed service (removals leave a bounded tombstone).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rnn_tui.dht import codec
from rnn_tui.identity import PeerId

__all__ = [
    "TOPIC_SERVICES",
    "TOPIC_PEERS",
    "TOPIC_LIFECYCLE",
    "ServiceAction",
    "ServiceAnnouncement",
    "PeerMetadataUpdate",
    "LifecycleEvent",
    "NodeLifecycle",
    "decode_payload",
    "AnnouncementCatalog",
    "CatalogEntry",
]

TOPIC_SERVICES = "rnn/services/1"
TOPIC_PEERS = "rnn/meta/1"      # same names as rnn_tui.components.gossip
TOPIC_LIFECYCLE = "rnn/events/1"

_MAX_PAYLOAD = 64 * 1024


class ServiceAction(StrEnum):
    ADD = "add"
    UPDATE = "update"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class ServiceAnnouncement:
    """One service of the author added, changed or removed; ``summary`` is bencode-able."""

    action: ServiceAction
    service_id: str
    summary: dict[bytes, Any]

    KIND = b"s"

    def __post_init__(self) -> None:
        if not self.service_id or len(self.service_id.encode()) > 128:
            raise ValueError("service announcement: service_id must be 1..128 bytes")
        if self.action is ServiceAction.REMOVE and self.summary:
            raise ValueError("service announcement: a removal carries no summary")

    def encode(self) -> bytes:
        return codec.encode({b"k": self.KIND, b"a": self.action.value.encode(),
                             b"i": self.service_id.encode(), b"s": self.summary})


@dataclass(frozen=True, slots=True)
class PeerMetadataUpdate:
    """The author's current addresses ("host:port") and capabilities."""

    addrs: tuple[str, ...]
    capabilities: tuple[str, ...] = ()

    KIND = b"p"

    def encode(self) -> bytes:
        return codec.encode({b"k": self.KIND, b"a": [a.encode() for a in self.addrs],
                             b"c": [c.encode() for c in self.capabilities]})


class LifecycleEvent(StrEnum):
    STARTED = "started"
    STOPPING = "stopping"


@dataclass(frozen=True, slots=True)
class NodeLifecycle:
    event: LifecycleEvent
    version: str = ""

    KIND = b"l"

    def encode(self) -> bytes:
        return codec.encode({b"k": self.KIND, b"e": self.event.value.encode(), b"v": self.version.encode()})


Payload = ServiceAnnouncement | PeerMetadataUpdate | NodeLifecycle


def _text(raw: dict[bytes, Any], key: bytes, what: str, max_len: int = 256) -> str:
    value = raw.get(key)
    if not isinstance(value, bytes) or len(value) > max_len:
        raise ValueError(f"{what}: field {key.decode()!r} must be a string of at most {max_len} bytes")
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise ValueError(f"{what}: field {key.decode()!r} is not UTF-8") from None


def _texts(raw: dict[bytes, Any], key: bytes, what: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or len(value) > 32:
        raise ValueError(f"{what}: field {key.decode()!r} must be a list of at most 32 strings")
    return tuple(_text({key: v}, key, what) for v in value)


def decode_payload(data: bytes) -> Payload:
    """Parse a payload from one of the node's topics; ``ValueError`` names what is wrong."""
    try:
        raw = codec.decode(data, max_size=_MAX_PAYLOAD)
    except codec.BencodeError as exc:
        raise ValueError(f"gossip payload: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError("gossip payload: not a dict")
    kind = raw.get(b"k")
    if kind == ServiceAnnouncement.KIND:
        what = "service announcement"
        try:
            action = ServiceAction(_text(raw, b"a", what))
        except ValueError:
            raise ValueError(f"{what}: action must be add, update or remove") from None
        summary = raw.get(b"s", {})
        if not isinstance(summary, dict):
            raise ValueError(f"{what}: summary must be a dict")
        return ServiceAnnouncement(action, _text(raw, b"i", what, 128), summary)
    if kind == PeerMetadataUpdate.KIND:
        what = "peer metadata"
        return PeerMetadataUpdate(_texts(raw, b"a", what), _texts(raw, b"c", what))
    if kind == NodeLifecycle.KIND:
        what = "lifecycle event"
        try:
            event = LifecycleEvent(_text(raw, b"e", what))
        except ValueError:
            raise ValueError(f"{what}: event must be started or stopping") from None
        return NodeLifecycle(event, _text(raw, b"v", what, 64))
    raise ValueError(f"gossip payload: unknown kind {kind!r}")


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    owner: PeerId
    service_id: str
    summary: dict[bytes, Any]
    seq: int
    updated_at: float


class AnnouncementCatalog:
    """Remote services learned from gossip, applied in per-author sequence order."""

    def __init__(self, max_entries: int = 100_000, max_tombstones: int = 10_000) -> None:
        self._entries: OrderedDict[tuple[PeerId, str], CatalogEntry] = OrderedDict()
        self._last_seq: OrderedDict[tuple[PeerId, str], int] = OrderedDict()
        self._max_entries = max_entries
        self._max_tombstones = max_tombstones

    def apply(self, author: PeerId, seq: int, announcement: ServiceAnnouncement, now: float) -> bool:
        """Apply one announcement; False when an equal or newer one was already applied."""
        key = (author, announcement.service_id)
        last = self._last_seq.get(key)
        if last is not None and seq <= last:
            return False
        self._last_seq[key] = seq
        self._last_seq.move_to_end(key)
        while len(self._last_seq) > self._max_entries + self._max_tombstones:
            self._last_seq.popitem(last=False)
        if announcement.action is ServiceAction.REMOVE:
            self._entries.pop(key, None)
            return True
        self._entries[key] = CatalogEntry(author, announcement.service_id, announcement.summary, seq, now)
        self._entries.move_to_end(key)
        if len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return True

    def forget_peer(self, peer: PeerId) -> None:
        for key in [k for k in self._entries if k[0] == peer]:
            del self._entries[key]

    def entries(self) -> list[CatalogEntry]:
        return sorted(self._entries.values(), key=lambda e: (e.owner.key, e.service_id))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: tuple[PeerId, str]) -> bool:
        return key in self._entries
