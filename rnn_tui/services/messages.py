"""Wire messages for service discovery, registered in the transport's message registry.

Codes come from the services range 0x02xx (see ``rnn_tui.transport.messages``).  Bodies
are canonical bencode.  A service travels in its *public* dict form
(``Service.to_dict(public=True)``): no host paths, no allowlist.  On receipt every entry is
validated with ``Service.from_dict``, which also checks that the id matches owner and
name; a bad entry is dropped and counted, never raised out of the decoder, so one
malformed service cannot hide a peer's whole catalog.

Requests and replies:
- ``ServiceCatalogQuery`` → ``ServiceCatalogReply`` (everything the asker may see);
- ``ServiceSearchQuery(phrase, kind, interface, limit)`` → ``ServiceSearchReply``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rnn_tui.errors import RemoteProtocolError
from rnn_tui.services.model import Service, ServiceSpecError
from rnn_tui.services.search import MAX_RESULTS, SearchQuery
from rnn_tui.transport.framing import FrameError
from rnn_tui.transport.messages import bdecode_dict, bencode, register_message

__all__ = ["ServiceCatalogQuery", "ServiceCatalogReply", "ServiceSearchQuery", "ServiceSearchReply",
           "decode_services", "MAX_CATALOG"]

MAX_CATALOG = 500


def _to_text(obj: Any) -> Any:
    """Bencode gives bytes for keys and strings; our dict form wants str."""
    if isinstance(obj, dict):
        return {(k.decode("utf-8", "replace") if isinstance(k, bytes) else k): _to_text(v)
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_text(v) for v in obj]
    if isinstance(obj, bytes):
        try:
            return obj.decode("utf-8")
        except UnicodeDecodeError:
            return obj
    return obj


def decode_services(raw: Any, what: str) -> tuple[tuple[Service, ...], int]:
    """Valid services from a bencoded list, and how many entries were dropped as invalid."""
    if not isinstance(raw, list):
        raise RemoteProtocolError(f"{what}: 's' is not a list", FrameError.BAD_BODY)
    if len(raw) > MAX_CATALOG:
        raise RemoteProtocolError(f"{what}: {len(raw)} services, at most {MAX_CATALOG}",
                                  FrameError.BAD_BODY)
    good: list[Service] = []
    dropped = 0
    for item in raw:
        try:
            good.append(Service.from_dict(_to_text(item), what))
        except ServiceSpecError:
            dropped += 1
    return tuple(good), dropped


@register_message
@dataclass(frozen=True, slots=True)
class ServiceCatalogQuery:
    """Ask a peer for every service it lets us see."""

    TYPE: ClassVar[int] = 0x0201

    def encode(self) -> bytes:
        return bencode({})

    @classmethod
    def decode(cls, body: bytes) -> ServiceCatalogQuery:
        bdecode_dict(body, "service_catalog")
        return cls()


@register_message
@dataclass(frozen=True, slots=True)
class ServiceCatalogReply:
    TYPE: ClassVar[int] = 0x0202
    services: tuple[Service, ...] = ()
    dropped: int = 0

    def encode(self) -> bytes:
        return bencode({"s": [s.to_dict(public=True) for s in self.services[:MAX_CATALOG]]})

    @classmethod
    def decode(cls, body: bytes) -> ServiceCatalogReply:
        d = bdecode_dict(body, "service_catalog reply")
        services, dropped = decode_services(d.get(b"s"), "service_catalog reply")
        return cls(services, dropped)


@register_message
@dataclass(frozen=True, slots=True)
class ServiceSearchQuery:
    TYPE: ClassVar[int] = 0x0203
    query: SearchQuery = SearchQuery()

    def encode(self) -> bytes:
        return bencode(self.query.to_dict())

    @classmethod
    def decode(cls, body: bytes) -> ServiceSearchQuery:
        d = _to_text(bdecode_dict(body, "service_search"))
        try:
            return cls(SearchQuery.from_dict(d))
        except ServiceSpecError as exc:
            raise RemoteProtocolError(f"service_search: {exc}", FrameError.BAD_BODY) from None


@register_message
@dataclass(frozen=True, slots=True)
class ServiceSearchReply:
    TYPE: ClassVar[int] = 0x0204
    services: tuple[Service, ...] = ()
    dropped: int = 0

    def encode(self) -> bytes:
        return bencode({"s": [s.to_dict(public=True) for s in self.services[:MAX_RESULTS]]})

    @classmethod
    def decode(cls, body: bytes) -> ServiceSearchReply:
        d = bdecode_dict(body, "service_search reply")
        services, dropped = decode_services(d.get(b"s"), "service_search reply")
        if len(services) + dropped > MAX_RESULTS:
            raise RemoteProtocolError(f"service_search reply: more than {MAX_RESULTS} results",
                                      FrameError.BAD_BODY)
        return cls(services, dropped)
