"""The node's transport: one UDP endpoint, identity-bound QUIC connections, built-in messages.

``node.py`` creates one :class:`Transport`, starts it on the node's port, hands the DHT
driver's ``datagram_received`` to ``transport.endpoint.dht_handler`` and the endpoint's
``send_raw`` to the DHT, and listens for :class:`PeerConnected` / :class:`PeerDisconnected`.
Other packages register message handlers on ``transport.handlers``.

Built-in request handlers: ``ping`` → ``pong``; ``identify`` → our identify (with the
address we observe for the asker); ``peer_exchange`` → verified records go to
``on_peer_records``, and we answer with ``peer_records()``; ``service_catalog`` → the
``service_catalog()`` provider (empty until the services issue).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.packet import QuicHeader

from rnn_tui.errors import LocalProtocolError, RemoteProtocolError, RequestTimeout
from rnn_tui.identity import Identity, PeerId
from rnn_tui.transport.connection import Addr, PathSender, QuicLink
from rnn_tui.transport.endpoint import UdpEndpoint
from rnn_tui.transport.errors import ConnectionClosed
from rnn_tui.transport.messages import (
    PROTOCOL_VERSION,
    Identify,
    PeerExchange,
    PeerRecord,
    Ping,
    Pong,
    ServiceCatalog,
    ServiceCatalogRequest,
    format_addr,
)
from rnn_tui.transport.session import HandlerTable, PeerConnection, SessionLimits
from rnn_tui.transport.tls import MutualTlsConnection, make_certificate, make_configuration

__all__ = ["Transport", "TransportSettings", "PeerConnected", "PeerDisconnected", "TransportEvent"]

log = logging.getLogger(__name__)
AGENT = "rnn/0.1"


@dataclass(frozen=True, slots=True)
class PeerConnected:
    """A connection passed the identity check (``outbound``: we dialled it)."""

    connection: PeerConnection
    peer_id: PeerId
    addr: Addr
    outbound: bool


@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    """A verified connection ended."""

    connection: PeerConnection
    peer_id: PeerId
    addr: Addr
    reason: str


TransportEvent = PeerConnected | PeerDisconnected


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """Tunables; the defaults are for real links, tests shrink the timeouts."""

    keepalive_interval: float | None = 15.0
    idle_timeout: float = 60.0
    handshake_timeout: float = 10.0
    max_connections: int = 1024
    max_pending_handshakes: int = 128
    max_datagram_size: int | None = None  # aioquic default 1200; 16383 only on loopback/jumbo
    limits: SessionLimits = field(default_factory=SessionLimits)


class Transport:
    """Owns the endpoint and every connection; the API the node uses."""

    def __init__(
        self,
        identity: Identity,
        *,
        settings: TransportSettings | None = None,
        handlers: HandlerTable | None = None,
        capabilities: Sequence[str] = (),
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self.settings = settings or TransportSettings()
        self.handlers = handlers or HandlerTable()
        self.capabilities: tuple[str, ...] = tuple(capabilities)
        #: Addresses we tell peers to dial; defaults to the bound address once started.
        self.listen_addrs: list[Addr] = []
        self.endpoint = UdpEndpoint()
        self.wall_clock = wall_clock
        #: ``peer_records() -> records`` we share in a peer exchange (default: our own).
        self.peer_records: Callable[[], Sequence[PeerRecord]] = self._own_record
        #: ``on_peer_records(conn, records)`` receives the *verified* records a peer sent.
        self.on_peer_records: Callable[[PeerConnection, tuple[PeerRecord, ...]], None] = \
            lambda conn, records: None
        #: ``service_catalog() -> ServiceCatalog`` (the services package replaces it).
        self.service_catalog: Callable[[], ServiceCatalog] = ServiceCatalog
        self._listeners: list[Callable[[TransportEvent], None]] = []
        self._connections: set[PeerConnection] = set()
        self._pending: set[PeerConnection] = set()
        self._cert = make_certificate(identity)
        self._client_config: QuicConfiguration | None = None
        self._server_config: QuicConfiguration | None = None
        self._install_builtin_handlers()

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "0.0.0.0", port: int = 30609, *,
                    dual_stack: bool = False) -> Addr:
        """Bind the shared UDP socket and accept connections; returns the bound address."""
        s = self.settings
        common = dict(certificate=self._cert, idle_timeout=s.idle_timeout,
                      max_datagram_size=s.max_datagram_size)
        self._client_config = make_configuration(self.identity, is_client=True, **common)  # type: ignore[arg-type]
        self._server_config = make_configuration(self.identity, is_client=False, **common)  # type: ignore[arg-type]
        self.endpoint.on_initial = self._accept
        addr = await self.endpoint.open(host, port, dual_stack=dual_stack)
        if not self.listen_addrs and host not in ("0.0.0.0", "::", ""):
            self.listen_addrs = [addr]
        return addr

    async def close(self) -> None:
        """Close every connection (bounded wait) and the socket."""
        conns = list(self._connections | self._pending)
        await asyncio.gather(*(c.close(reason="node shutting down") for c in conns),
                             return_exceptions=True)
        self.endpoint.close()

    def add_listener(self, fn: Callable[[TransportEvent], None]) -> None:
        """Call ``fn(event)`` for every PeerConnected / PeerDisconnected."""
        self._listeners.append(fn)

    def connections(self) -> list[PeerConnection]:
        """Verified, open connections."""
        return [c for c in self._connections if c.is_open]

    def connection_to(self, peer_id: PeerId) -> PeerConnection | None:
        for conn in self._connections:
            if conn.peer_id == peer_id and conn.is_open:
                return conn
        return None

    # ------------------------------------------------------------------ dialling

    async def dial(self, addr: Addr, expected_peer_id: PeerId | None = None,
                   timeout: float = 10.0,  # noqa: ASYNC109
                   path: PathSender | None = None) -> PeerConnection:
        """Connect to ``addr`` and prove the peer's id.

        ``path`` replaces the UDP socket as the way out for this connection's datagrams
        (a relay); its replies must come back through ``endpoint.inject``.

        Raises PeerIdMismatch when the peer's key is not ``expected_peer_id``,
        RequestTimeout when the handshake does not finish in ``timeout``, and
        ConnectionClosed when the peer refuses us.
        """
        if self._client_config is None or not self.endpoint.is_open:
            raise LocalProtocolError("transport is not started")
        target = addr if path is not None else await self._resolve(addr)
        quic = MutualTlsConnection(configuration=self._client_config)
        conn = self._make_connection(quic, target, outbound=True, expected_peer_id=expected_peer_id,
                                     path=path)
        self.endpoint.register_cid(quic.host_cid, conn)
        self._pending.add(conn)
        conn.connect()
        try:
            async with asyncio.timeout(timeout):
                # Awaited directly, not through shield(): the dial then resumes in the loop
                # iteration right after the one that verified the server, *before* the link's
                # deferred transmit of our Finished, so a request the caller makes at once
                # leaves in the same datagram.  A timeout cancels ``verified``; the link
                # tolerates that (it only ever resolves a future that is not done).
                await conn.verified
        except TimeoutError:
            self._pending.discard(conn)
            await conn.close(reason="handshake timed out", timeout=0.2)
            raise RequestTimeout(f"QUIC handshake with {format_addr(target)} took over {timeout:g}s") \
                from None
        except (RemoteProtocolError, ConnectionClosed):
            self._pending.discard(conn)
            await conn.close(reason="identity rejected", timeout=0.5)
            raise
        except asyncio.CancelledError:
            # the caller gave up: no half-open connection is left behind
            self._pending.discard(conn)
            conn.begin_close(reason="dial cancelled")
            raise
        self._promote(conn)
        return conn

    async def _resolve(self, addr: Addr) -> Addr:
        host, port = addr
        try:
            ipaddress.ip_address(host)
            return host, int(port)
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM, family=socket.AF_INET)
        if not infos:
            raise LocalProtocolError(f"cannot resolve {host!r}")
        return str(infos[0][4][0]), int(infos[0][4][1])

    # ------------------------------------------------------------------ accepting

    def _accept(self, header: QuicHeader, addr: Addr,
                path: PathSender | None = None) -> PeerConnection | None:
        if self._server_config is None:
            return None
        if len(self._pending) >= self.settings.max_pending_handshakes or \
                len(self._connections) >= self.settings.max_connections:
            log.info("refusing QUIC connection from %s: at capacity", format_addr(addr))
            return None
        quic = MutualTlsConnection(configuration=self._server_config,
                                   original_destination_connection_id=header.destination_cid)
        conn = self._make_connection(quic, addr, outbound=False, expected_peer_id=None, path=path)
        self.endpoint.register_cid(header.destination_cid, conn)
        self.endpoint.register_cid(quic.host_cid, conn)
        self._pending.add(conn)
        loop = asyncio.get_running_loop()
        deadline = loop.call_later(self.settings.handshake_timeout, self._handshake_expired, conn)

        def verified(fut: asyncio.Future[PeerId]) -> None:
            deadline.cancel()
            self._pending.discard(conn)
            if not fut.cancelled() and fut.exception() is None and not conn.closed.is_set():
                self._promote(conn)

        conn.verified.add_done_callback(verified)
        return conn

    def _handshake_expired(self, conn: PeerConnection) -> None:
        if not conn.verified.done():
            conn.begin_close(reason="handshake timed out")

    # ------------------------------------------------------------------ connections

    def _make_connection(self, quic: MutualTlsConnection, addr: Addr, *, outbound: bool,
                         expected_peer_id: PeerId | None,
                         path: PathSender | None = None) -> PeerConnection:
        endpoint = self.endpoint
        conn: PeerConnection

        def issued(cid: bytes) -> None:
            endpoint.register_cid(cid, conn)

        conn = PeerConnection(
            quic, path or endpoint.send_raw, remote_addr=addr, handlers=self.handlers,
            limits=self.settings.limits, outbound=outbound, expected_peer_id=expected_peer_id,
            keepalive_interval=self.settings.keepalive_interval,
            on_cid_issued=issued, on_cid_retired=endpoint.unregister_cid,
            on_terminated=self._terminated)
        return conn

    def _promote(self, conn: PeerConnection) -> None:
        self._pending.discard(conn)
        self._connections.add(conn)
        assert conn.peer_id is not None
        self._emit(PeerConnected(conn, conn.peer_id, conn.remote_addr, conn.outbound))

    def _terminated(self, link: QuicLink) -> None:
        self.endpoint.unregister_sink(link)
        self._pending.discard(link)
        if link in self._connections:
            self._connections.discard(link)
            assert link.peer_id is not None
            self._emit(PeerDisconnected(link, link.peer_id, link.remote_addr,
                                        link.close_reason))

    def _emit(self, event: TransportEvent) -> None:
        for fn in list(self._listeners):
            try:
                fn(event)
            except Exception:
                log.exception("transport listener failed on %s", type(event).__name__)

    # ------------------------------------------------------------------ built-in messages

    def _own_record(self) -> list[PeerRecord]:
        addrs = [format_addr(a) for a in self.listen_addrs]
        return [PeerRecord.create(self.identity, addrs, int(self.wall_clock()))]

    def _identify_message(self, observed: Addr) -> Identify:
        return Identify(PROTOCOL_VERSION, AGENT, tuple(format_addr(a) for a in self.listen_addrs),
                        format_addr(observed), self.capabilities)

    def _install_builtin_handlers(self) -> None:
        async def on_ping(conn: PeerConnection, msg: Ping) -> Pong:
            return Pong(msg.nonce)

        async def on_identify(conn: PeerConnection, msg: Identify) -> Identify:
            conn.peer_identify = msg
            return self._identify_message(conn.remote_addr)

        async def on_peer_exchange(conn: PeerConnection, msg: PeerExchange) -> PeerExchange:
            self.on_peer_records(conn, msg.verified())
            return PeerExchange(tuple(self.peer_records()))

        async def on_catalog(conn: PeerConnection, msg: ServiceCatalogRequest) -> ServiceCatalog:
            return self.service_catalog()

        self.handlers.on_request(Ping, on_ping)
        self.handlers.on_request(Identify, on_identify)
        self.handlers.on_request(PeerExchange, on_peer_exchange)
        self.handlers.on_request(ServiceCatalogRequest, on_catalog)

    async def ping(self, conn: PeerConnection, timeout: float = 5.0) -> float:  # noqa: ASYNC109
        """Round-trip time of a ping request in seconds (also stored on ``conn.rtt``)."""
        loop = asyncio.get_running_loop()
        nonce = os.urandom(8)
        start = loop.time()
        reply = await conn.request(Ping(nonce), timeout=timeout)
        if not isinstance(reply, Pong) or reply.nonce != nonce:
            raise RemoteProtocolError(f"bad ping reply {type(reply).__name__} from {conn.peer_id}")
        conn.rtt = loop.time() - start
        return conn.rtt

    async def identify(self, conn: PeerConnection, timeout: float = 5.0) -> Identify:  # noqa: ASYNC109
        """Exchange identify messages; the peer's answer is also kept on ``conn.peer_identify``."""
        reply = await conn.request(self._identify_message(conn.remote_addr), timeout=timeout)
        if not isinstance(reply, Identify):
            raise RemoteProtocolError(f"identify answered with {type(reply).__name__}")
        conn.peer_identify = reply
        return reply

    async def exchange_peers(self, conn: PeerConnection, timeout: float = 5.0  # noqa: ASYNC109
                             ) -> tuple[PeerRecord, ...]:
        """Send our records, return the peer's *verified* records (forged ones dropped)."""
        reply = await conn.request(PeerExchange(tuple(self.peer_records())), timeout=timeout)
        if not isinstance(reply, PeerExchange):
            raise RemoteProtocolError(f"peer_exchange answered with {type(reply).__name__}")
        return reply.verified()

    async def fetch_service_catalog(self, conn: PeerConnection,
                                    timeout: float = 5.0) -> ServiceCatalog:  # noqa: ASYNC109
        reply = await conn.request(ServiceCatalogRequest(), timeout=timeout)
        if not isinstance(reply, ServiceCatalog):
            raise RemoteProtocolError(f"service_catalog answered with {type(reply).__name__}")
        return reply
