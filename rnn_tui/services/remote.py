"""Network-wide service search, independent of how requests travel.

Three parts, so that the node only has to plug in its transport:

- ``answer_request``: a peer's ``ServiceCatalogQuery``/``ServiceSearchQuery`` → our reply,
  filtered by what that (authenticated) peer may see;
- ``RemoteCatalogCache``: catalogs learned from replies and gossip, per peer, expiring;
  searched with the same rules as local search;
- ``fan_out_search``: ask many peers at once through an ``ask(peer, message)`` coroutine,
  each with its own timeout, and yield each peer's answer as soon as it arrives (so the
  CLI/TUI can stream results instead of waiting for the slowest peer).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass

from rnn_tui.errors import RnnError
from rnn_tui.identity.keys import PeerId
from rnn_tui.services.messages import (
    ServiceCatalogQuery,
    ServiceCatalogReply,
    ServiceSearchQuery,
    ServiceSearchReply,
)
from rnn_tui.services.model import Service
from rnn_tui.services.search import SearchQuery, catalog_for, search

__all__ = ["answer_request", "RemoteCatalogCache", "PeerAnswer", "fan_out_search",
           "CATALOG_TTL_S"]

CATALOG_TTL_S = 2 * 3600  # like BEP 44 items: two hours without a refresh and it is gone

Ask = Callable[[PeerId, ServiceSearchQuery], Awaitable[object]]


def answer_request(message: ServiceCatalogQuery | ServiceSearchQuery, services: Iterable[Service],
                   requester: PeerId) -> ServiceCatalogReply | ServiceSearchReply:
    """Our reply to ``requester`` (whose id the transport proved)."""
    if isinstance(message, ServiceCatalogQuery):
        return ServiceCatalogReply(tuple(catalog_for(services, requester)))
    return ServiceSearchReply(tuple(search(services, message.query, requester)))


@dataclass(frozen=True, slots=True)
class PeerAnswer:
    """One peer's answer to a fanned-out search: services, or why there are none."""

    peer: PeerId
    services: tuple[Service, ...] = ()
    error: str | None = None


class RemoteCatalogCache:
    """Services other peers offer us, keyed by peer, with the time we learned them.

    Entries whose owner is not the peer that sent them are dropped: a peer speaks for its
    own services only (gossip relays signed items; those are checked before they get here).
    """

    def __init__(self, ttl_s: float = CATALOG_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._by_peer: dict[PeerId, tuple[float, tuple[Service, ...]]] = {}

    def update(self, peer: PeerId, services: Iterable[Service], now: float) -> int:
        """Replace ``peer``'s catalog; returns how many entries were kept."""
        own = tuple(s for s in services if s.owner == peer)
        self._by_peer[peer] = (now, own)
        return len(own)

    def expire(self, now: float) -> None:
        for peer in [p for p, (t, _) in self._by_peer.items() if now - t > self.ttl_s]:
            del self._by_peer[peer]

    def peers(self) -> list[PeerId]:
        return sorted(self._by_peer)

    def services(self, now: float) -> list[Service]:
        self.expire(now)
        return [s for _, (_, entries) in sorted(self._by_peer.items()) for s in entries]

    def search(self, query: SearchQuery, now: float) -> list[Service]:
        return search(self.services(now), query)


async def fan_out_search(peers: Iterable[PeerId], ask: Ask, query: SearchQuery, *,
                         timeout_s: float = 5.0) -> AsyncIterator[PeerAnswer]:
    """Ask every peer concurrently; yield answers in arrival order, errors included.

    Every request has ``timeout_s``; leaving the loop early cancels the rest.
    """
    message = ServiceSearchQuery(query)

    async def one(peer: PeerId) -> PeerAnswer:
        try:
            reply = await asyncio.wait_for(ask(peer, message), timeout_s)
        except TimeoutError:
            return PeerAnswer(peer, error=f"no answer within {timeout_s:g}s")
        except RnnError as exc:
            return PeerAnswer(peer, error=str(exc))
        if not isinstance(reply, ServiceSearchReply):
            return PeerAnswer(peer, error=f"unexpected reply {type(reply).__name__}")
        return PeerAnswer(peer, tuple(s for s in reply.services if s.owner == peer))

    tasks = [asyncio.ensure_future(one(peer)) for peer in peers]
    try:
        for next_done in asyncio.as_completed(tasks):
            yield await next_done
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
