"""Service discovery over the QUIC transport: answer peers, ask peers.

The node calls ``install_handlers(transport.handlers, list_services)`` once, and gives
``ServiceControl`` ``peers=connected_peers(transport)`` and ``ask=make_ask(transport)``.
The requester's id comes from the connection (the TLS handshake proved it), never from
the message, so visibility checks cannot be fooled by a claimed id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from rnn_tui.errors import ServiceError
from rnn_tui.identity.keys import PeerId
from rnn_tui.services.messages import (
    ServiceCatalogQuery,
    ServiceCatalogReply,
    ServiceSearchQuery,
    ServiceSearchReply,
)
from rnn_tui.services.model import Service
from rnn_tui.services.remote import Ask, answer_request

__all__ = ["install_handlers", "make_ask", "connected_peers"]

ListServices = Callable[[], Awaitable[Iterable[Service]]]


class _Handlers(Protocol):
    def on_request(self, cls: Any, fn: Any) -> None: ...


class _Connection(Protocol):
    peer_id: PeerId | None

    async def request(self, msg: Any, timeout: float = ...) -> Any: ...  # noqa: ASYNC109


class _Transport(Protocol):
    def connections(self) -> Any: ...
    def connection_to(self, peer_id: PeerId) -> Any: ...


def install_handlers(handlers: _Handlers, list_services: ListServices) -> None:
    """Answer ``ServiceCatalogQuery`` and ``ServiceSearchQuery`` with what the peer may see."""

    async def on_catalog(conn: _Connection, msg: ServiceCatalogQuery) -> ServiceCatalogReply:
        return _reply(msg, await list_services(), conn)  # type: ignore[return-value]

    async def on_search(conn: _Connection, msg: ServiceSearchQuery) -> ServiceSearchReply:
        return _reply(msg, await list_services(), conn)  # type: ignore[return-value]

    handlers.on_request(ServiceCatalogQuery, on_catalog)
    handlers.on_request(ServiceSearchQuery, on_search)


def _reply(msg: ServiceCatalogQuery | ServiceSearchQuery, services: Iterable[Service],
           conn: _Connection) -> ServiceCatalogReply | ServiceSearchReply:
    if conn.peer_id is None:  # the session only delivers verified streams; be explicit
        raise ServiceError("request on an unverified connection")
    return answer_request(msg, services, conn.peer_id)


def make_ask(transport: _Transport, timeout_s: float = 5.0) -> Ask:
    """``ask(peer, message)`` over the open connection to ``peer``."""

    async def ask(peer: PeerId, message: ServiceSearchQuery) -> object:
        conn = transport.connection_to(peer)
        if conn is None:
            raise ServiceError(f"not connected to {peer.short}")
        return await conn.request(message, timeout=timeout_s)

    return ask


def connected_peers(transport: _Transport) -> Callable[[], list[PeerId]]:
    def peers() -> list[PeerId]:
        return sorted({c.peer_id for c in transport.connections() if c.peer_id is not None})

    return peers
