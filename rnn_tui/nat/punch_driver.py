"""Hole punching over the transport: the asyncio driver around ``punch_core.HolePunch``.

Why a driver: the core decides *what* to send and *when*; this module owns the sockets
and the timer.  Punch messages ride the peers' existing (usually relayed) connection as
``PunchFrame`` one-way messages; probes leave from the node's one UDP socket (``via`` 0,
through the endpoint's raw-datagram hook) or, on the hard side of a birthday punch,
from extra sockets (``via`` 1..N) that live only for the attempt.

After a success the initiator opens a *direct* QUIC connection to the punched address:
from the shared socket through the transport (``via`` 0), or, when the winning mapping
belongs to an extra socket, over that socket with a ``VirtualConnector`` connection.
The responder accepts either way.  Both are the same Ed25519 identity as the relayed
connection, checked again by the direct handshake.  On failure the peers stay relayed.

Simultaneous starts: when both peers start a punch at once, the one with the larger
peer id yields and answers as responder, so exactly one session runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from rnn_tui.errors import RemoteProtocolError, RnnError
from rnn_tui.identity import PeerId
from rnn_tui.nat.model import Addr, NatType, PathType
from rnn_tui.nat.punch_core import (
    HolePunch,
    PunchConfig,
    PunchEvent,
    PunchFailed,
    PunchState,
    PunchSucceeded,
    Strategy,
)
from rnn_tui.nat.virtual_conn import VirtualConnector, initial_dcid
from rnn_tui.nat.wire import (
    PROBE_MAGIC,
    PunchConnect,
    PunchRefused,
    PunchSync,
    decode_message,
    decode_probe,
    encode_message,
)
from rnn_tui.transport import PeerConnection, Transport
from rnn_tui.transport.messages import register_message
from rnn_tui.util.tasks import TaskManager

__all__ = ["PunchFrame", "HolePuncher", "PunchOutcome"]

log = logging.getLogger(__name__)


@register_message
@dataclass(frozen=True, slots=True)
class PunchFrame:
    """A punch message (CONNECT/SYNC/REFUSED) between the two peers themselves."""

    TYPE: ClassVar[int] = 0x0403
    body: bytes

    def encode(self) -> bytes:
        return self.body

    @classmethod
    def decode(cls, body: bytes) -> PunchFrame:
        return cls(body)


@dataclass(frozen=True, slots=True)
class PunchOutcome:
    """What a punch achieved; ``rnn peers`` shows ``path`` per connection."""

    peer: PeerId
    path: PathType
    connection: PeerConnection | None  # the direct connection, when path is DIRECT
    remote: Addr | None
    strategy: Strategy
    time_to_direct: float | None  # from the first punch message to a verified direct QUIC
    attempts: int
    reason: str = ""
    duration: float = 0.0  # the whole session, success or not (its start is now - duration)


@dataclass(eq=False)
class _Session:
    peer: PeerId
    core: HolePunch
    conn: PeerConnection
    done: asyncio.Future[PunchOutcome]
    started: float
    aux: dict[int, socket.socket] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None
    success: PunchSucceeded | None = None
    side_conn: PeerConnection | None = None
    side_via: int | None = None  # the extra socket that carries the direct QUIC connection


class HolePuncher:
    """Runs punch sessions for one node; one session per peer at a time."""

    def __init__(self, transport: Transport, *, addresses: Callable[[], Sequence[Addr]],
                 nat_type: Callable[[], NatType], config: PunchConfig | None = None,
                 rng: random.Random | None = None,
                 rng_bytes: Callable[[int], bytes] = os.urandom,
                 direct_timeout: float = 10.0,
                 on_event: Callable[[PeerId, PunchEvent], None] = lambda p, e: None,
                 on_outcome: Callable[[PunchOutcome], None] = lambda o: None) -> None:
        self.transport = transport
        self.addresses = addresses
        self.nat_type = nat_type
        self.config = config or PunchConfig()
        self._rng = rng or random.Random()
        self._rng_bytes = rng_bytes
        self.direct_timeout = direct_timeout
        self.on_event = on_event
        self.on_outcome = on_outcome  # every finished session, initiator or responder
        self._loop = asyncio.get_running_loop()
        self._sessions: dict[PeerId, _Session] = {}
        self._direct: dict[PeerId, PeerConnection] = {}
        self._connector = VirtualConnector(transport)
        self._tasks = TaskManager("nat-punch")
        self.outcomes: list[PunchOutcome] = []
        self.max_sessions_per_minute = 6
        self._recent: dict[PeerId, list[float]] = {}
        transport.handlers.on_message(PunchFrame, self._on_frame)
        transport.endpoint.register_raw(PROBE_MAGIC, self._on_main_datagram)

    # -- API -------------------------------------------------------------------------
    async def punch(self, conn: PeerConnection, timeout: float = 20.0) -> PunchOutcome:  # noqa: ASYNC109
        """Try to upgrade the (relayed) ``conn`` to a direct connection to the same peer."""
        if conn.peer_id is None:
            raise RnnError("hole punch: the connection is not verified")
        peer = conn.peer_id
        existing = self._sessions.get(peer)
        if existing is not None and not existing.done.done():
            return await asyncio.wait_for(asyncio.shield(existing.done), timeout)
        session = self._new_session(peer, conn, initiator=True)
        session.core.start(self._loop.time())
        self._pump(session)
        try:
            return await asyncio.wait_for(asyncio.shield(session.done), timeout)
        except TimeoutError:
            outcome = self._finish(session, None, f"no outcome within {timeout:g}s")
            return outcome

    def _allow_session(self, peer: PeerId) -> bool:
        """A peer may start only a few sessions a minute: each may cost 256 sockets."""
        now = self._loop.time()
        recent = [t for t in self._recent.get(peer, []) if now - t < 60.0]
        if len(recent) >= self.max_sessions_per_minute:
            self._recent[peer] = recent
            return False
        recent.append(now)
        self._recent[peer] = recent
        return True

    def direct_connection(self, peer: PeerId) -> PeerConnection | None:
        conn = self._direct.get(peer)
        return conn if conn is not None and conn.is_open else None

    async def close(self) -> None:
        for session in list(self._sessions.values()):
            self._finish(session, None, "node shutting down")
        self.transport.endpoint.unregister_raw(PROBE_MAGIC)
        await self._tasks.shutdown()

    # -- sessions --------------------------------------------------------------------
    def _new_session(self, peer: PeerId, conn: PeerConnection, *, initiator: bool,
                     done: asyncio.Future[PunchOutcome] | None = None) -> _Session:
        core = HolePunch(initiator=initiator, local_addrs=list(self.addresses()),
                         nat_type=self.nat_type(), rng_bytes=self._rng_bytes, rng=self._rng,
                         config=self.config)
        session = _Session(peer, core, conn, done or self._loop.create_future(),
                           self._loop.time())
        old = self._sessions.get(peer)
        if old is not None:
            self._close_session(old)
        self._sessions[peer] = session
        return session

    async def _on_frame(self, conn: PeerConnection, frame: PunchFrame) -> None:
        if conn.peer_id is None:
            return
        try:
            msg = decode_message(frame.body)
        except RemoteProtocolError as exc:
            log.info("dropping a bad punch frame from %s: %s", conn.peer_id, exc)
            return
        if not isinstance(msg, PunchConnect | PunchSync | PunchRefused):
            return  # a relay message sent on the punch channel: not ours
        peer = conn.peer_id
        session = self._sessions.get(peer)
        if isinstance(msg, PunchConnect) and not msg.is_reply:
            own = self.transport.identity.peer_id
            if session is None or session.core.state in (PunchState.SUCCEEDED,
                                                         PunchState.FAILED):
                if not self._allow_session(peer):
                    log.info("ignoring a punch from %s: more than %d sessions a minute",
                             peer.short, self.max_sessions_per_minute)
                    return
                session = self._new_session(peer, conn, initiator=False)
            elif session.core.initiator and session.core.state is PunchState.AWAIT_CONNECT \
                    and own.key > peer.key:
                # Both started at once: the larger id yields and answers instead.
                session = self._new_session(peer, conn, initiator=False, done=session.done)
        if session is None:
            return
        session.core.receive_message(msg, self._loop.time())
        self._pump(session)

    def _on_main_datagram(self, data: bytes, addr: Addr) -> None:
        self._route_probe(data, addr, 0)

    def _route_probe(self, data: bytes, addr: Addr, via: int) -> None:
        probe = decode_probe(data)
        if probe is None:
            return
        for session in self._sessions.values():
            if session.core.attempt_id == probe.attempt_id:
                session.core.receive_probe(data, addr, via, self._loop.time())
                self._pump(session)
                return

    def _on_aux_readable(self, session: _Session, via: int) -> None:
        sock = session.aux.get(via)
        if sock is None:
            return
        for _ in range(64):
            try:
                data, raw_addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            addr = (str(raw_addr[0]), int(raw_addr[1]))
            if data.startswith(PROBE_MAGIC):
                self._route_probe(data, addr, via)
            elif session.success is not None and session.side_via in (None, via):
                # Several extra sockets can be hit in one birthday round, and the peer
                # dials the one whose ack reached it first: accept on any of them.
                self._side_datagram(session, via, sock, data, addr)

    def _pump(self, session: _Session) -> None:
        """Drain the core: messages, datagrams, events; re-arm its timer."""
        core = session.core
        for msg in core.messages_to_send():
            if session.conn.is_open:
                session.conn.send(PunchFrame(encode_message(msg)))
        for tx in core.datagrams_to_send():
            if tx.via == 0:
                self.transport.endpoint.send_raw(tx.data, tx.addr)
            else:
                sock = session.aux.get(tx.via) or self._open_aux(session, tx.via)
                try:
                    sock.sendto(tx.data, tx.addr)
                except OSError:
                    pass  # a full buffer or an unreachable address: one probe lost
        while (ev := core.next_event()) is not None:
            self.on_event(session.peer, ev)
            if isinstance(ev, PunchSucceeded) and session.success is None:
                session.success = ev
                self._after_success(session, ev)
            elif isinstance(ev, PunchFailed):
                self._finish(session, None, ev.reason)
        if core.state in (PunchState.SUCCEEDED, PunchState.FAILED):
            keep = session.side_via if session.side_via is not None else (
                session.success.via if session.success else None)
            self._close_aux(session, keep=keep)
        if session.timer is not None:
            session.timer.cancel()
            session.timer = None
        when = core.get_timer()
        if when is not None and self._sessions.get(session.peer) is session:
            session.timer = self._loop.call_at(when, self._on_timer, session)

    def _on_timer(self, session: _Session) -> None:
        session.timer = None
        session.core.handle_timer(self._loop.time())
        self._pump(session)

    def _open_aux(self, session: _Session, via: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        # Birthday sockets listen where the node listens: a node bound to one address
        # never opens extra ports on its other interfaces.
        host = self.transport.endpoint.local_addr[0]
        sock.bind(("0.0.0.0" if ":" in host or host in ("", "::") else host, 0))
        session.aux[via] = sock
        self._loop.add_reader(sock.fileno(), self._on_aux_readable, session, via)
        return sock

    def _close_aux(self, session: _Session, keep: int | None) -> None:
        for via, sock in list(session.aux.items()):
            if via != keep:
                self._loop.remove_reader(sock.fileno())
                sock.close()
                del session.aux[via]

    # -- after the punch -------------------------------------------------------------
    def _after_success(self, session: _Session, ev: PunchSucceeded) -> None:
        if ev.via != 0:
            sock = session.aux[ev.via]
            if session.core.initiator:
                session.side_via = ev.via
                conn = self._connector.client(
                    lambda data, addr: self._side_send(sock, data, addr), ev.remote, session.peer,
                    on_terminated=lambda link: self._side_closed(session))
                session.side_conn = conn
                conn.connect()
                self._tasks.spawn(f"direct:{session.peer.short}",
                                  self._await_direct(session, conn), replace=True)
            else:
                self._tasks.spawn(f"direct:{session.peer.short}",
                                  self._await_inbound(session), replace=True)
            return
        if session.core.initiator:
            self._tasks.spawn(f"direct:{session.peer.short}", self._dial_direct(session, ev),
                              replace=True)
        else:
            self._tasks.spawn(f"direct:{session.peer.short}", self._await_inbound(session),
                              replace=True)

    def _side_closed(self, session: _Session) -> None:
        """The direct connection on an extra socket ended: release that socket too."""
        if session.core.state in (PunchState.SUCCEEDED, PunchState.FAILED):
            self._close_aux(session, keep=None)
        if self._direct.get(session.peer) is session.side_conn:
            del self._direct[session.peer]

    @staticmethod
    def _side_send(sock: socket.socket, data: bytes, addr: Addr) -> None:
        try:
            sock.sendto(data, addr)
        except OSError:
            pass

    def _side_datagram(self, session: _Session, via: int, sock: socket.socket, data: bytes,
                       addr: Addr) -> None:
        if session.side_conn is None:
            dcid = initial_dcid(data)
            if dcid is None or session.success is None or addr[0] != session.success.remote[0]:
                return
            session.side_via = via
            session.side_conn = self._connector.server(
                lambda d, a: self._side_send(sock, d, a), addr, session.peer, dcid,
                on_terminated=lambda link: self._side_closed(session))
        session.side_conn.datagram_received(data, addr)

    async def _dial_direct(self, session: _Session, ev: PunchSucceeded) -> None:
        try:
            conn = await self.transport.dial(ev.remote, expected_peer_id=session.peer,
                                             timeout=self.direct_timeout)
        except RnnError as exc:
            self._finish(session, None, f"punched, but the direct QUIC dial failed: {exc}")
            return
        self._finish(session, conn, "")

    async def _await_direct(self, session: _Session, conn: PeerConnection) -> None:
        try:
            async with asyncio.timeout(self.direct_timeout):
                await conn.verified
        except (TimeoutError, RnnError) as exc:
            self._finish(session, None, f"punched, but the direct QUIC handshake failed: {exc!r}")
            return
        self._finish(session, conn, "")

    async def _await_inbound(self, session: _Session) -> None:
        """Responder: wait for the initiator's direct connection (shared or side socket)."""
        try:
            async with asyncio.timeout(self.direct_timeout):
                while True:
                    side = session.side_conn
                    if side is not None and side.verified.done() and not side.verified.exception():
                        self._finish(session, side, "")
                        return
                    direct = self._direct_from_transport(session)
                    if direct is not None:
                        self._finish(session, direct, "")
                        return
                    await asyncio.sleep(0.02)
        except TimeoutError:
            self._finish(session, None, "punched, but no direct QUIC connection arrived")

    def _direct_from_transport(self, session: _Session) -> PeerConnection | None:
        assert session.success is not None
        for conn in self.transport.connections():
            if conn.peer_id == session.peer and conn.remote_addr == session.success.remote:
                return conn
        return None

    def _finish(self, session: _Session, conn: PeerConnection | None, reason: str) -> PunchOutcome:
        ev = session.success
        direct = conn is not None
        outcome = PunchOutcome(
            session.peer, PathType.DIRECT if direct else PathType.RELAYED, conn,
            ev.remote if ev else None, session.core.strategy,
            self._loop.time() - session.started if direct else None, session.core.attempt,
            reason, self._loop.time() - session.started)
        if conn is not None:
            self._direct[session.peer] = conn
        if not session.done.done():
            session.done.set_result(outcome)
            self.outcomes.append(outcome)
            try:
                self.on_outcome(outcome)
            except Exception:
                log.exception("punch outcome callback failed")
        if not direct:
            self._close_session(session)
        # On success the core lingers (it acks the peer's late probes); _pump closes
        # the losing extra sockets once it is done, and keeps the winning one.
        return session.done.result()

    def _close_session(self, session: _Session) -> None:
        if session.timer is not None:
            session.timer.cancel()
            session.timer = None
        self._close_aux(session, keep=None)
