"""Relay service and relay client over the transport (asyncio drivers around ``relay_core``).

Why two envelopes: a node can be a relay and a relay client at once, and circuit data
flows both ways.  ``ToRelay`` frames are addressed to a relay's ``RelayServer`` core;
``FromRelay`` frames come from a relay to its clients.  Both carry the binary messages
of :mod:`rnn_tui.nat.wire`; the sender's identity is the peer id the transport proved
on the connection, never a field.

Relayed connections: :meth:`RelayClient.dial_via` opens a circuit and runs a *new* QUIC
connection (ours, with Ed25519 mutual TLS and the expected peer id) whose every packet
travels to the relay in a QUIC DATAGRAM frame of the outer connection (channel
``DATAGRAM_TO_RELAY``, back on ``DATAGRAM_FROM_RELAY``), one inner packet per frame.
Why datagrams: a ``CircuitData`` message costs a new stream, framing and a handler
task at each hop, and a lost outer packet stalls the stream behind it; a datagram is
forwarded synchronously from the frame event, and a lost one is recovered by the inner
QUIC like any lost packet.  The inner connection's packets are sized to fit one frame
(``RELAYED_PACKET_SIZE``).  Control messages (reserve, connect, accept, close) stay on
streams.  Fallback: when the relay link has no DATAGRAM support (the peer did not
advertise the transport parameter) or a packet does not fit, packets are batched into
``CircuitData`` on a stream as before, and such circuits use 16 KiB inner packets.

The target accepts the relayed connection in :meth:`RelayClient._on_packets` with the
source id the relay named as the expected peer id, so a relay that lies about who is calling is caught by the inner handshake.
The relay sees only ciphertext; a relay that alters a byte makes the inner packet fail
authentication and be dropped by QUIC: data is never delivered altered.

When the relay connection dies, every circuit through it is closed at once with a reason
(``ConnectionClosed`` for pending requests), so nothing hangs on a vanished relay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rnn_tui.errors import RemoteProtocolError, RequestTimeout, RnnError
from rnn_tui.identity import PeerId
from rnn_tui.nat.model import PathType
from rnn_tui.nat.relay_core import RelayEvent, RelayLimits, RelayServer
from rnn_tui.nat.virtual_conn import VirtualConnector, initial_dcid
from rnn_tui.nat.wire import (
    CIRCUIT_DATAGRAM_HEADER,
    DATAGRAM_FROM_RELAY,
    DATAGRAM_TO_RELAY,
    MAX_CIRCUIT_PAYLOAD,
    CircuitAccept,
    CircuitClosed,
    CircuitData,
    CircuitReject,
    ConnectAccepted,
    ConnectRefused,
    ConnectRequest,
    IncomingCircuit,
    NatMessage,
    RelayMessage,
    ReserveAccepted,
    ReserveRefused,
    ReserveRequest,
    decode_circuit_datagram,
    decode_message,
    encode_circuit_datagram,
    encode_message,
)
from rnn_tui.transport import PeerConnection, PeerDisconnected, Transport, TransportEvent
from rnn_tui.transport.connection import DATAGRAM_LINK_ACK_DELAY, DATAGRAM_LINK_PACKET_SIZE
from rnn_tui.transport.messages import register_message

__all__ = ["ToRelay", "FromRelay", "RelayService", "RelayClient", "RelayRefused",
           "RELAY_CAPABILITY"]

log = logging.getLogger(__name__)
RELAY_CAPABILITY = "relay/1"
VIRTUAL_DATAGRAM_SIZE = 16383  # aioquic's hard maximum (FACTS.md): stream-carried circuits
#: Inner packet size of a circuit carried in DATAGRAM frames: one frame in one outer
#: packet of DATAGRAM_LINK_PACKET_SIZE (1452) minus the outer 1-RTT overhead with the
#: longest connection id (1 + 20 + 4 + 16 + frame type 1 + length 2 = 44) and our
#: channel + circuit id (9): 1399 bytes, above QUIC's 1200-byte minimum.
RELAYED_PACKET_SIZE = DATAGRAM_LINK_PACKET_SIZE - 44 - CIRCUIT_DATAGRAM_HEADER
#: ACK delay of a relayed connection once verified (not during the handshake, which it
#: would slow): an inner ACK costs an inner packet plus an outer one at both ends and
#: at the relay, so thinning them out is the cheapest CPU win on this path.
RELAYED_ACK_DELAY = DATAGRAM_LINK_ACK_DELAY


class RelayRefused(RnnError):
    """A relay refused a reservation or a circuit; the message carries its reason."""


@register_message
@dataclass(frozen=True, slots=True)
class ToRelay:
    """A NAT wire message addressed to a relay (reserve, connect, circuit data)."""

    TYPE: ClassVar[int] = 0x0401
    body: bytes

    def encode(self) -> bytes:
        return self.body

    @classmethod
    def decode(cls, body: bytes) -> ToRelay:
        return cls(body)


@register_message
@dataclass(frozen=True, slots=True)
class FromRelay:
    """A NAT wire message from a relay to one of its clients."""

    TYPE: ClassVar[int] = 0x0402
    body: bytes

    def encode(self) -> bytes:
        return self.body

    @classmethod
    def decode(cls, body: bytes) -> FromRelay:
        return cls(body)


def _decode(body: bytes, conn: PeerConnection) -> NatMessage | None:
    try:
        return decode_message(body)
    except RemoteProtocolError as exc:
        log.info("dropping a bad NAT frame from %s: %s", conn.peer_id, exc)
        return None


def _pack(packets: list[bytes]) -> bytes:
    return b"".join(len(p).to_bytes(2, "big") + p for p in packets)


def _unpack(payload: bytes) -> list[bytes]:
    """Split a batch of u16-length-prefixed QUIC packets; [] when it is malformed."""
    packets, i = [], 0
    while i < len(payload):
        if i + 2 > len(payload):
            return []
        n = int.from_bytes(payload[i:i + 2], "big")
        if n == 0 or i + 2 + n > len(payload):
            return []
        packets.append(payload[i + 2:i + 2 + n])
        i += 2 + n
    return packets


class RelayService:
    """Offers relay service on a transport: feeds ``RelayServer`` and sends its output."""

    def __init__(self, transport: Transport, limits: RelayLimits | None = None,
                 on_event: Callable[[RelayEvent], None] = lambda ev: None) -> None:
        self.transport = transport
        self.core = RelayServer(limits)
        self.on_event = on_event
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self.datagrams_dropped = 0  # relayed packets dropped: the next hop's queue was full
        self._links: dict[PeerId, PeerConnection] = {}  # circuit ends' connections (cache)
        transport.handlers.on_message(ToRelay, self._on_frame)
        transport.handlers.on_datagram(DATAGRAM_TO_RELAY, self._on_datagram)
        transport.add_listener(self._on_transport_event)
        if RELAY_CAPABILITY not in transport.capabilities:
            transport.capabilities += (RELAY_CAPABILITY,)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _on_frame(self, conn: PeerConnection, frame: ToRelay) -> None:
        msg = _decode(frame.body, conn)
        if msg is None or conn.peer_id is None:
            return
        self.core.receive_message(conn.peer_id, msg, self._loop.time())  # type: ignore[arg-type]
        self._flush()

    def _on_datagram(self, conn: PeerConnection, data: bytes) -> None:
        """One relayed packet: the core checks and counts it, then it goes straight on."""
        if conn.peer_id is None:
            return
        try:
            circuit_id, packet = decode_circuit_datagram(data)
        except RemoteProtocolError as exc:
            log.debug("dropping a bad circuit datagram from %s: %s", conn.peer_id, exc)
            return
        # quiet: a stray datagram (late after a circuit ended, or forged) is dropped and
        # counted, never answered: a message per datagram would be an amplifier.
        other = self.core.forward(conn.peer_id, circuit_id, len(packet), self._loop.time(),
                                  quiet=True)
        if other is not None:
            out = self._links.get(other)
            if out is None or not out.is_open:
                out = self.transport.connection_to(other)
            if out is not None:
                self._links[other] = out
                self.deliver_packet(out, circuit_id, packet)
        if self.core.has_output:
            self._flush()

    def _on_transport_event(self, event: TransportEvent) -> None:
        if isinstance(event, PeerDisconnected):
            self._links.pop(event.peer_id, None)
            self.core.peer_disconnected(event.peer_id, self._loop.time())
            self._flush()

    def _on_timer(self) -> None:
        self._timer = None
        self.core.handle_timer(self._loop.time())
        self._flush()

    def _flush(self) -> None:
        for peer, msg in self.core.messages_to_send():
            conn = self.transport.connection_to(peer)
            if conn is not None:
                self.deliver(conn, msg)
        while (ev := self.core.next_event()) is not None:
            self.on_event(ev)
        when = self.core.get_timer()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if when is not None:
            self._timer = self._loop.call_at(when, self._on_timer)

    def deliver(self, conn: PeerConnection, msg: RelayMessage) -> None:
        """Send one message to a client (a test overrides this to play a bad relay)."""
        try:
            conn.send(FromRelay(encode_message(msg)))
        except RnnError as exc:
            log.info("relay cannot reach %s: %s", conn.peer_id, exc)

    def deliver_packet(self, conn: PeerConnection, circuit_id: int, packet: bytes) -> None:
        """Send one relayed packet to a client: a datagram if it fits, else a message.

        A full datagram queue drops the packet (counted): a relay never buffers
        without bound, and the ends' QUIC retransmits and slows down.  A test
        overrides this to play a tampering relay.
        """
        data = encode_circuit_datagram(DATAGRAM_FROM_RELAY, circuit_id, packet)
        if len(data) <= conn.datagram_capacity:
            if not conn.send_datagram(data):
                self.datagrams_dropped += 1
        else:
            self.deliver(conn, CircuitData(circuit_id, _pack([packet])))


@dataclass(eq=False)
class _Circuit:
    relay: PeerConnection
    circuit_id: int
    peer: PeerId
    conn: PeerConnection | None = None


class RelayClient:
    """Reserves slots on relays, dials peers through them and accepts relayed peers."""

    def __init__(self, transport: Transport, *, max_inbound: int = 64,
                 accept: Callable[[PeerId], bool] = lambda peer: True,
                 on_connection: Callable[[PeerConnection, PeerId], None] = lambda c, r: None,
                 handshake_timeout: float = 10.0) -> None:
        self.transport = transport
        self.max_inbound = max_inbound
        self.accept = accept
        self.on_connection = on_connection  # (relayed connection, relay id), once verified
        self.handshake_timeout = handshake_timeout
        self._loop = asyncio.get_running_loop()
        # A circuit is a reliable byte path with no MTU: let the inner QUIC connection use
        # aioquic's largest packets, 13x fewer relay messages than 1200-byte packets.
        self._connector = VirtualConnector(transport, max_datagram_size=VIRTUAL_DATAGRAM_SIZE)
        # Circuits whose relay link takes DATAGRAM frames: one inner packet per frame.
        self._datagram_connector = VirtualConnector(transport,
                                                    max_datagram_size=RELAYED_PACKET_SIZE)
        self._reserve_waiters: dict[PeerId, asyncio.Future[ReserveAccepted]] = {}
        self._connect_waiters: dict[tuple[PeerId, PeerId], asyncio.Future[int]] = {}
        self._circuits: dict[tuple[PeerId, int], _Circuit] = {}
        self.reservations: dict[PeerId, ReserveAccepted] = {}
        transport.handlers.on_message(FromRelay, self._on_frame)
        transport.handlers.on_datagram(DATAGRAM_FROM_RELAY, self._on_datagram)
        transport.add_listener(self._on_transport_event)

    # -- API -------------------------------------------------------------------------
    async def reserve(self, relay: PeerConnection, timeout: float = 5.0) -> ReserveAccepted:  # noqa: ASYNC109
        """Reserve (or renew) a slot; RelayRefused with the relay's reason if it says no."""
        peer = self._peer(relay)
        fut: asyncio.Future[ReserveAccepted] = self._loop.create_future()
        self._reserve_waiters[peer] = fut
        relay.send(ToRelay(encode_message(ReserveRequest())))
        try:
            async with asyncio.timeout(timeout):
                accepted = await fut
        except TimeoutError:
            raise RequestTimeout(f"relay {peer.short} did not answer a reservation "
                                 f"within {timeout:g}s") from None
        finally:
            self._reserve_waiters.pop(peer, None)
        self.reservations[peer] = accepted
        return accepted

    async def dial_via(self, relay: PeerConnection, target: PeerId,
                       timeout: float = 10.0) -> PeerConnection:  # noqa: ASYNC109
        """A connection to ``target`` through ``relay``, with ``target``'s identity proved."""
        relay_id = self._peer(relay)
        key = (relay_id, target)
        if key in self._connect_waiters:
            raise RelayRefused(f"a circuit to {target.short} via {relay_id.short} is being opened")
        fut: asyncio.Future[int] = self._loop.create_future()
        self._connect_waiters[key] = fut
        relay.send(ToRelay(encode_message(ConnectRequest(target.key))))
        try:
            async with asyncio.timeout(timeout):
                cid = await fut
        except TimeoutError:
            raise RequestTimeout(f"relay {relay_id.short} did not open a circuit to "
                                 f"{target.short} within {timeout:g}s") from None
        finally:
            self._connect_waiters.pop(key, None)
        circuit = _Circuit(relay, cid, target)
        self._circuits[(relay_id, cid)] = circuit
        conn = self._make_conn(circuit, None)
        conn.connect()
        try:
            async with asyncio.timeout(timeout):
                await conn.verified
        except TimeoutError:
            conn.begin_close(reason="relayed handshake timed out")
            self._drop(circuit, "handshake timed out")
            raise RequestTimeout(f"relayed QUIC handshake with {target.short} via "
                                 f"{relay_id.short} took over {timeout:g}s") from None
        except RnnError:
            self._drop(circuit, "identity rejected")
            raise
        return conn

    def path_type(self, conn: PeerConnection) -> PathType:
        relayed = any(c.conn is conn for c in self._circuits.values())
        return PathType.RELAYED if relayed else PathType.DIRECT

    def relayed_connections(self) -> list[PeerConnection]:
        return [c.conn for c in self._circuits.values() if c.conn is not None and c.conn.is_open]

    # -- internals -------------------------------------------------------------------
    @staticmethod
    def _peer(conn: PeerConnection) -> PeerId:
        if conn.peer_id is None:
            raise RelayRefused("the relay connection is not verified")
        return conn.peer_id

    def _make_conn(self, circuit: _Circuit, dcid: bytes | None) -> PeerConnection:
        """Outbound when ``dcid`` is None, else inbound for that client Initial."""
        relay, cid = circuit.relay, circuit.circuit_id
        relay_id = self._peer(relay)
        pseudo = (f"relay.{relay_id.short}", 1 + cid % 65535)

        pending: list[bytes] = []
        # Negotiated per circuit: the relay advertised DATAGRAM support on our link.
        datagrams = relay.datagram_capacity >= RELAYED_PACKET_SIZE + CIRCUIT_DATAGRAM_HEADER

        def flush() -> None:
            # One CircuitData per burst: aioquic emits several packets per transmit, and
            # each relay message costs a stream on the outer connection.
            batch: list[bytes] = []
            size = 0
            while pending:
                if size + 2 + len(pending[0]) > MAX_CIRCUIT_PAYLOAD and batch:
                    self._send_batch(relay, cid, batch)
                    batch, size = [], 0
                packet = pending.pop(0)
                batch.append(packet)
                size += 2 + len(packet)
            if batch:
                self._send_batch(relay, cid, batch)

        def path(data: bytes, addr: tuple[str, int]) -> None:
            if datagrams:
                frame = encode_circuit_datagram(DATAGRAM_TO_RELAY, cid, data)
                if len(frame) <= relay.datagram_capacity:
                    relay.send_datagram(frame)  # False: dropped; the inner QUIC recovers
                    return
            if not pending:
                self._loop.call_soon(flush)
            pending.append(data)

        def terminated(link: object) -> None:
            self._circuits.pop((relay_id, cid), None)

        connector = self._datagram_connector if datagrams else self._connector
        if dcid is None:
            conn = connector.client(path, pseudo, circuit.peer, terminated)
        else:
            conn = connector.server(path, pseudo, circuit.peer, dcid, terminated)
        circuit.conn = conn

        def thin_acks(fut: asyncio.Future[PeerId]) -> None:
            if not fut.cancelled() and fut.exception() is None:
                conn.set_ack_delay(RELAYED_ACK_DELAY)
                conn.lazy_transmit = True

        conn.verified.add_done_callback(thin_acks)
        return conn

    @staticmethod
    def _send_batch(relay: PeerConnection, cid: int, packets: list[bytes]) -> None:
        if relay.is_open:
            relay.send(ToRelay(encode_message(CircuitData(cid, _pack(packets)))))

    def _drop(self, circuit: _Circuit, reason: str) -> None:
        relay_id = self._peer(circuit.relay)
        self._circuits.pop((relay_id, circuit.circuit_id), None)
        if circuit.relay.is_open:
            circuit.relay.send(ToRelay(encode_message(CircuitClosed(circuit.circuit_id, reason))))

    async def _on_frame(self, relay: PeerConnection, frame: FromRelay) -> None:
        msg = _decode(frame.body, relay)
        if msg is None or relay.peer_id is None:
            return
        relay_id = relay.peer_id
        match msg:
            case ReserveAccepted():
                fut = self._reserve_waiters.get(relay_id)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
            case ReserveRefused():
                fut = self._reserve_waiters.get(relay_id)
                if fut is not None and not fut.done():
                    fut.set_exception(RelayRefused(f"relay {relay_id.short}: {msg.reason}"))
            case ConnectAccepted() | ConnectRefused():
                waiter = self._connect_waiters.get((relay_id, PeerId(msg.target)))
                if waiter is None or waiter.done():
                    return
                if isinstance(msg, ConnectAccepted):
                    waiter.set_result(msg.circuit_id)
                else:
                    waiter.set_exception(RelayRefused(f"relay {relay_id.short}: {msg.reason}"))
            case IncomingCircuit():
                self._on_incoming(relay, msg)
            case CircuitData():
                self._on_incoming_data(relay, msg)
            case CircuitClosed():
                circuit = self._circuits.pop((relay_id, msg.circuit_id), None)
                if circuit is not None and circuit.conn is not None:
                    circuit.conn.begin_close(reason=f"relay closed the circuit: {msg.reason}")
            case _:
                log.info("unexpected %s from relay %s", type(msg).__name__, relay_id.short)

    def _on_incoming(self, relay: PeerConnection, msg: IncomingCircuit) -> None:
        relay_id = self._peer(relay)
        source = PeerId(msg.source)
        inbound = sum(1 for c in self._circuits.values() if not (c.conn and c.conn.outbound))
        if inbound >= self.max_inbound or not self.accept(source):
            reason = "too many relayed connections" if inbound >= self.max_inbound else "refused"
            relay.send(ToRelay(encode_message(CircuitReject(msg.circuit_id, reason))))
            return
        circuit = _Circuit(relay, msg.circuit_id, source)
        self._circuits[(relay_id, msg.circuit_id)] = circuit
        relay.send(ToRelay(encode_message(CircuitAccept(msg.circuit_id))))
        # A caller that never sends its Initial must not hold the slot forever.
        self._loop.call_later(self.handshake_timeout, self._expire_silent, circuit)

    def _expire_silent(self, circuit: _Circuit) -> None:
        relay_id = circuit.relay.peer_id
        if circuit.conn is None and relay_id is not None \
                and self._circuits.get((relay_id, circuit.circuit_id)) is circuit:
            self._drop(circuit, "no handshake from the caller")

    def _on_datagram(self, relay: PeerConnection, data: bytes) -> None:
        if relay.peer_id is None:
            return
        try:
            circuit_id, packet = decode_circuit_datagram(data)
        except RemoteProtocolError as exc:
            log.debug("dropping a bad circuit datagram from %s: %s", relay.peer_id, exc)
            return
        self._on_packets(relay, circuit_id, [packet])

    def _on_incoming_data(self, relay: PeerConnection, msg: CircuitData) -> None:
        packets = _unpack(msg.payload)
        if packets:  # else a malformed batch (a tampering relay): dropped whole
            self._on_packets(relay, msg.circuit_id, packets)

    def _on_packets(self, relay: PeerConnection, circuit_id: int, packets: list[bytes]) -> None:
        relay_id = self._peer(relay)
        circuit = self._circuits.get((relay_id, circuit_id))
        if circuit is None:
            return
        if circuit.conn is None:  # first packet of an inbound circuit: the client's Initial
            dcid = initial_dcid(packets[0])
            if dcid is None:
                return
            conn = self._make_conn(circuit, dcid)
            deadline = self._loop.call_later(self.handshake_timeout, self._expire, circuit)

            def verified(fut: asyncio.Future[PeerId]) -> None:
                deadline.cancel()
                if not fut.cancelled() and fut.exception() is None:
                    self.on_connection(conn, relay_id)

            conn.verified.add_done_callback(verified)
        assert circuit.conn is not None
        for packet in packets:
            circuit.conn.datagram_received(packet, circuit.conn.remote_addr)

    def _expire(self, circuit: _Circuit) -> None:
        if circuit.conn is not None and not circuit.conn.verified.done():
            circuit.conn.begin_close(reason="relayed handshake timed out")
            self._drop(circuit, "handshake timed out")

    def _on_transport_event(self, event: TransportEvent) -> None:
        if not isinstance(event, PeerDisconnected):
            return
        self.reservations.pop(event.peer_id, None)
        for fut in (self._reserve_waiters.get(event.peer_id),
                    *[f for (r, _), f in self._connect_waiters.items() if r == event.peer_id]):
            if fut is not None and not fut.done():
                fut.set_exception(RelayRefused(f"relay {event.peer_id.short} disconnected"))
        for (relay_id, cid), circuit in list(self._circuits.items()):
            if relay_id == event.peer_id:
                del self._circuits[(relay_id, cid)]
                if circuit.conn is not None:
                    # Nothing can leave through a dead relay: QUIC closes after its drain
                    # period, and pending requests fail with ConnectionClosed.
                    circuit.conn.begin_close(reason=f"relay {relay_id.short} vanished")
