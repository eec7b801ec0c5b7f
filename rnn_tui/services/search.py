"""Local search over services, the catalog a peer may see, and a compact summary.

Pure functions over ``Service`` values: the node feeds them the registry's list (for
answering peers) or the cache of remote catalogs (for the operator), so local and remote
search rank and filter the same way.

Visibility is applied *before* matching: a peer that is not allowed to see a service gets
no hint that it exists, not even through a search that names it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rnn_tui.identity.keys import PeerId
from rnn_tui.services.model import InterfaceType, Service, ServiceKind, ServiceSpecError

__all__ = ["SearchQuery", "search", "catalog_for", "compact_summary", "MAX_RESULTS",
           "SUMMARY_MAX_BYTES"]

MAX_RESULTS = 200
MAX_PHRASE = 256
SUMMARY_MAX_BYTES = 1000  # a BEP 44 value holds at most 1000 bytes


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """Every given criterion must match: all words of ``phrase`` (case-insensitive, in name,
    description, kind or interface labels), the ``kind``, and having an ``interface``."""

    phrase: str = ""
    kind: ServiceKind | None = None
    interface: InterfaceType | None = None
    limit: int = MAX_RESULTS

    def __post_init__(self) -> None:
        if len(self.phrase) > MAX_PHRASE:
            raise ServiceSpecError(f"search phrase longer than {MAX_PHRASE} characters")
        if not 1 <= self.limit <= MAX_RESULTS:
            raise ServiceSpecError(f"search limit {self.limit} must be 1..{MAX_RESULTS}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"phrase": self.phrase, "limit": self.limit}
        if self.kind is not None:
            out["kind"] = self.kind.value
        if self.interface is not None:
            out["interface"] = self.interface.value
        return out

    @classmethod
    def from_dict(cls, data: Any) -> SearchQuery:
        if not isinstance(data, dict):
            raise ServiceSpecError("search query: expected a mapping")
        phrase = data.get("phrase", "")
        if not isinstance(phrase, str):
            raise ServiceSpecError("search query.phrase: expected text")
        limit = data.get("limit", MAX_RESULTS)
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise ServiceSpecError("search query.limit: expected an integer")
        try:
            kind = ServiceKind(str(data["kind"]).upper()) if data.get("kind") else None
            interface = (InterfaceType(str(data["interface"]).upper())
                         if data.get("interface") else None)
        except ValueError as exc:
            raise ServiceSpecError(f"search query: {exc}") from None
        return cls(phrase, kind, interface, min(limit, MAX_RESULTS))


def _haystack(service: Service) -> str:
    parts = [service.name, service.description, service.kind.value, service.version]
    parts += [i.label for i in service.interfaces]
    parts += [i.description for i in service.interfaces if i.description]
    return " ".join(parts).lower()


def catalog_for(services: Iterable[Service], requester: PeerId | None) -> list[Service]:
    """The services ``requester`` may see (``None`` = the local operator: all of them)."""
    if requester is None:
        return list(services)
    return [s for s in services if s.visibility.admits(requester, s.owner)]


def search(services: Iterable[Service], query: SearchQuery,
           requester: PeerId | None = None) -> list[Service]:
    """Matching services visible to ``requester``; name matches rank before others."""
    words = query.phrase.lower().split()
    hits: list[tuple[int, str, str, Service]] = []
    for service in catalog_for(services, requester):
        if query.kind is not None and service.kind is not query.kind:
            continue
        if query.interface is not None and not service.has_interface(query.interface):
            continue
        hay = _haystack(service)
        if not all(word in hay for word in words):
            continue
        name = service.name.lower()
        rank = 0 if words and all(w in name for w in words) else 1
        hits.append((rank, name, service.id, service))
    hits.sort(key=lambda h: h[:3])
    return [h[3] for h in hits[:query.limit]]


def compact_summary(services: Iterable[Service], requester: PeerId | None = None,
                    max_bytes: int = SUMMARY_MAX_BYTES) -> dict[str, Any]:
    """A bencode-able summary for gossip and BEP 44 metadata, at most ``max_bytes`` encoded.

    ``{"n": total visible, "s": [{"i": id[:16], "n": name, "k": kind letter,
    "f": interface letters}...]}``: enough to decide whether to ask for the full catalog.
    Entries that would overflow ``max_bytes`` are left out (``n`` still counts them).
    Only public services go in when ``requester`` is None: metadata is world-readable.
    """
    from rnn_tui.transport.messages import bencode

    if requester is None:
        visible = [s for s in services if s.visibility.mode.value == "public"]
    else:
        visible = catalog_for(services, requester)
    visible.sort(key=lambda s: (s.name, s.id))
    letters = {InterfaceType.STDIN: "i", InterfaceType.STDOUT: "o", InterfaceType.STDERR: "e",
               InterfaceType.LOGS: "l", InterfaceType.MOUNT: "m"}
    entries: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"n": len(visible), "s": entries}
    for service in visible:
        entry = {"i": service.id[:16], "n": service.name[:48], "k": service.kind.value[:2],
                 "f": "".join(sorted({letters[i.type] for i in service.interfaces}))}
        entries.append(entry)
        if len(bencode(summary)) > max_bytes:
            entries.pop()
            break
    return summary
