"""Relay service state (sans-IO): reservations, circuits, limits, refusals with reasons.

Why: a node behind a NAT that filters cannot be dialled.  It keeps a connection to a
public node and *reserves* a slot there; a dialer asks that relay for a *circuit* to it.
The relay then shuttles opaque bytes (the two ends' own end-to-end QUIC packets) and
nothing else.  It never needs to read them, and it cannot forge them: identity is proved
end to end by the inner handshake.

Who is who: every input carries ``peer``, the id the *transport* proved with mutual TLS
on the connection the message arrived on.  No message carries its own sender id, so a
peer cannot reserve, dial or send under another peer's id.  Circuit data is forwarded
only between the two authenticated ends of an accepted circuit.

Limits (``RelayLimits``): reservations, concurrent circuits (total and per peer), bytes
and duration per circuit, a token bucket per peer for control requests (a flood of
reservations or dials costs the relay a refusal each and nothing more) and one per peer
over the circuit bytes it sends (excess is dropped, as by a congested link).

Inputs: ``receive_message(peer, msg, now)``, ``forward(peer, circuit_id, size, now)``
(circuit data that arrived as a DATAGRAM frame: the core decides and counts, the driver
moves the bytes without building a message), ``peer_disconnected(peer, now)``,
``handle_timer(now)``.  Outputs: ``messages_to_send()`` as (peer, message) pairs,
``next_event()``, ``get_timer()``.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from rnn_tui.identity import PeerId
from rnn_tui.nat.wire import (
    CircuitAccept,
    CircuitClosed,
    CircuitData,
    CircuitReject,
    ConnectAccepted,
    ConnectRefused,
    ConnectRequest,
    IncomingCircuit,
    RelayMessage,
    ReserveAccepted,
    ReserveRefused,
    ReserveRequest,
)

__all__ = [
    "RelayServer", "RelayLimits", "RelayEvent", "ReservationAccepted", "ReservationRefused",
    "CircuitOpened", "CircuitRefused", "CircuitEnded", "ForwardRefused",
]


@dataclass(frozen=True, slots=True)
class RelayLimits:
    max_reservations: int = 128
    reservation_ttl: float = 3600.0
    max_circuits: int = 256
    max_circuits_per_peer: int = 8
    max_circuit_bytes: int = 256 * 1024 * 1024
    max_circuit_seconds: float = 1800.0
    accept_timeout: float = 10.0  # the target must accept an incoming circuit within this
    request_rate: float = 2.0  # control requests per second per peer (token bucket)
    request_burst: int = 8
    peer_bytes_per_second: float = 32 * 1024 * 1024  # relayed bytes a peer may send
    peer_bytes_burst: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_reservations", "max_circuits", "max_circuits_per_peer",
                     "max_circuit_bytes", "request_burst", "peer_bytes_burst"):
            if getattr(self, name) < 1:
                raise ValueError(f"relay limit {name} must be at least 1")
        for name in ("reservation_ttl", "max_circuit_seconds", "accept_timeout", "request_rate",
                     "peer_bytes_per_second"):
            if getattr(self, name) <= 0:
                raise ValueError(f"relay limit {name} must be positive")


# -- events --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReservationAccepted:
    peer: PeerId
    expires: float
    renewed: bool


@dataclass(frozen=True, slots=True)
class ReservationRefused:
    peer: PeerId
    reason: str


@dataclass(frozen=True, slots=True)
class CircuitOpened:
    circuit_id: int
    source: PeerId
    target: PeerId


@dataclass(frozen=True, slots=True)
class CircuitRefused:
    source: PeerId
    target: PeerId
    reason: str


@dataclass(frozen=True, slots=True)
class CircuitEnded:
    circuit_id: int
    reason: str
    bytes_relayed: int
    duration: float


@dataclass(frozen=True, slots=True)
class ForwardRefused:
    """``peer`` sent circuit traffic it has no right to; it was dropped."""

    peer: PeerId
    circuit_id: int
    reason: str


RelayEvent = (ReservationAccepted | ReservationRefused | CircuitOpened | CircuitRefused
              | CircuitEnded | ForwardRefused)


class _CircuitState(enum.Enum):
    PENDING = "pending"
    ACTIVE = "active"


@dataclass(slots=True)
class _Circuit:
    circuit_id: int
    source: PeerId
    target: PeerId
    state: _CircuitState
    created: float
    started: float = 0.0
    bytes_relayed: int = 0

    def other_end(self, peer: PeerId) -> PeerId | None:
        if peer == self.source:
            return self.target
        if peer == self.target:
            return self.source
        return None


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RelayServer:
    """The relay side.  One instance per node offering relay service."""

    def __init__(self, limits: RelayLimits | None = None) -> None:
        self.limits = limits or RelayLimits()
        self._reservations: dict[PeerId, float] = {}  # peer -> expiry
        self._circuits: dict[int, _Circuit] = {}
        self._buckets: dict[PeerId, _Bucket] = {}
        self._byte_buckets: dict[PeerId, _Bucket] = {}
        self._next_circuit = 1
        self._out: list[tuple[PeerId, RelayMessage]] = []
        self._events: deque[RelayEvent] = deque()
        self.bytes_relayed = 0
        self.refusals = 0
        self.dropped_over_rate = 0  # circuit bytes dropped by the per-peer byte rate
        self.stray_datagrams = 0  # datagrams for no circuit of theirs (dropped, not answered)

    # -- inputs ----------------------------------------------------------------------
    def receive_message(self, peer: PeerId, msg: RelayMessage, now: float) -> None:
        """``peer`` is the id the transport authenticated, never one claimed in ``msg``."""
        match msg:
            case ReserveRequest():
                self._on_reserve(peer, now)
            case ConnectRequest():
                self._on_connect(peer, msg, now)
            case CircuitAccept():
                self._on_accept(peer, msg.circuit_id, now)
            case CircuitReject():
                self._on_reject(peer, msg, now)
            case CircuitData():
                self._on_data(peer, msg, now)
            case CircuitClosed():
                self._on_close(peer, msg, now)
            case _:
                self._refused_forward(peer, 0, f"{type(msg).__name__} is not a request to a relay")

    def peer_disconnected(self, peer: PeerId, now: float) -> None:
        """The connection to ``peer`` closed: its reservation and circuits go with it."""
        self._reservations.pop(peer, None)
        self._buckets.pop(peer, None)
        self._byte_buckets.pop(peer, None)
        for circuit in [c for c in self._circuits.values() if c.other_end(peer) is not None]:
            self._end(circuit, f"peer {peer.short} disconnected", now, notify_except=peer)

    def handle_timer(self, now: float) -> None:
        for peer, expiry in list(self._reservations.items()):
            if now >= expiry:
                del self._reservations[peer]
        for circuit in list(self._circuits.values()):
            if circuit.state is _CircuitState.PENDING:
                if now >= circuit.created + self.limits.accept_timeout:
                    self._out.append((circuit.source, ConnectRefused(
                        circuit.target.key, "the target did not answer the relay in time")))
                    self._circuit_refused(circuit.source, circuit.target,
                                          "target did not answer", count=True)
                    del self._circuits[circuit.circuit_id]
            elif now >= circuit.started + self.limits.max_circuit_seconds:
                self._end(circuit, f"duration limit of {self.limits.max_circuit_seconds:.0f}s"
                          " reached", now)

    # -- outputs ---------------------------------------------------------------------
    def messages_to_send(self) -> list[tuple[PeerId, RelayMessage]]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> RelayEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        times = list(self._reservations.values())
        for c in self._circuits.values():
            times.append(c.created + self.limits.accept_timeout if c.state is _CircuitState.PENDING
                         else c.started + self.limits.max_circuit_seconds)
        return min(times) if times else None

    @property
    def has_output(self) -> bool:
        """Messages or events are waiting (cheap: the datagram path asks per packet)."""
        return bool(self._out or self._events)

    def has_reservation(self, peer: PeerId, now: float) -> bool:
        expiry = self._reservations.get(peer)
        return expiry is not None and now < expiry

    @property
    def reservation_count(self) -> int:
        return len(self._reservations)

    @property
    def circuit_count(self) -> int:
        return len(self._circuits)

    # -- handlers --------------------------------------------------------------------
    def _allow(self, peer: PeerId, now: float) -> bool:
        """Token bucket per peer for control requests."""
        lim = self.limits
        bucket = self._buckets.get(peer)
        if bucket is None:
            bucket = self._buckets[peer] = _Bucket(float(lim.request_burst), now)
        bucket.tokens = min(float(lim.request_burst),
                            bucket.tokens + (now - bucket.at) * lim.request_rate)
        bucket.at = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def _allow_bytes(self, peer: PeerId, size: int, now: float) -> bool:
        """Token bucket per peer over the circuit bytes it sends (all its circuits)."""
        lim = self.limits
        bucket = self._byte_buckets.get(peer)
        if bucket is None:
            bucket = self._byte_buckets[peer] = _Bucket(float(lim.peer_bytes_burst), now)
        bucket.tokens = min(float(lim.peer_bytes_burst),
                            bucket.tokens + (now - bucket.at) * lim.peer_bytes_per_second)
        bucket.at = now
        if bucket.tokens < size:
            return False
        bucket.tokens -= size
        return True

    def _on_reserve(self, peer: PeerId, now: float) -> None:
        lim = self.limits
        reason = None
        renewed = self.has_reservation(peer, now)
        if not self._allow(peer, now):
            reason = f"rate limit: more than {lim.request_rate:g} requests/s"
        elif not renewed:
            self._reservations.pop(peer, None)  # an expired one
            if len(self._reservations) >= lim.max_reservations:
                self._expire_reservations(now)
            if len(self._reservations) >= lim.max_reservations:
                reason = f"relay full: {lim.max_reservations} reservations"
        if reason is not None:
            self.refusals += 1
            self._out.append((peer, ReserveRefused(reason)))
            self._events.append(ReservationRefused(peer, reason))
            return
        expiry = now + lim.reservation_ttl
        self._reservations[peer] = expiry
        self._out.append((peer, ReserveAccepted(int(lim.reservation_ttl), lim.max_circuit_bytes,
                                                int(lim.max_circuit_seconds))))
        self._events.append(ReservationAccepted(peer, expiry, renewed))

    def _expire_reservations(self, now: float) -> None:
        for p, expiry in list(self._reservations.items()):
            if now >= expiry:
                del self._reservations[p]

    def _circuits_of(self, peer: PeerId) -> int:
        return sum(1 for c in self._circuits.values() if c.other_end(peer) is not None)

    def _on_connect(self, source: PeerId, msg: ConnectRequest, now: float) -> None:
        lim = self.limits
        target = PeerId(msg.target)
        if not self._allow(source, now):
            reason = f"rate limit: more than {lim.request_rate:g} requests/s"
        elif target == source:
            reason = "cannot open a circuit to yourself"
        elif not self.has_reservation(target, now):
            reason = f"no reservation for {target.short} on this relay"
        elif len(self._circuits) >= lim.max_circuits:
            reason = f"relay busy: {lim.max_circuits} circuits"
        elif self._circuits_of(source) >= lim.max_circuits_per_peer:
            reason = f"too many circuits for {source.short} (max {lim.max_circuits_per_peer})"
        elif self._circuits_of(target) >= lim.max_circuits_per_peer:
            reason = f"too many circuits for {target.short} (max {lim.max_circuits_per_peer})"
        else:
            reason = None
        if reason is not None:
            self._out.append((source, ConnectRefused(msg.target, reason)))
            self._circuit_refused(source, target, reason, count=True)
            return
        cid = self._next_circuit
        self._next_circuit += 1
        self._circuits[cid] = _Circuit(cid, source, target, _CircuitState.PENDING, now)
        self._out.append((target, IncomingCircuit(cid, source.key)))

    def _on_accept(self, peer: PeerId, cid: int, now: float) -> None:
        circuit = self._circuits.get(cid)
        if circuit is None or circuit.target != peer or circuit.state is not _CircuitState.PENDING:
            self._refused_forward(peer, cid, "no pending circuit to you with this id")
            return
        circuit.state = _CircuitState.ACTIVE
        circuit.started = now
        self._out.append((circuit.source, ConnectAccepted(cid, circuit.target.key)))
        self._events.append(CircuitOpened(cid, circuit.source, circuit.target))

    def _on_reject(self, peer: PeerId, msg: CircuitReject, now: float) -> None:
        circuit = self._circuits.get(msg.circuit_id)
        if circuit is None or circuit.target != peer or circuit.state is not _CircuitState.PENDING:
            self._refused_forward(peer, msg.circuit_id, "no pending circuit to you with this id")
            return
        del self._circuits[msg.circuit_id]
        reason = f"the target refused: {msg.reason}"[:200]
        self._out.append((circuit.source, ConnectRefused(circuit.target.key, reason)))
        self._circuit_refused(circuit.source, circuit.target, reason, count=False)

    def forward(self, peer: PeerId, circuit_id: int, size: int, now: float, *,
                quiet: bool = False) -> PeerId | None:
        """Whether ``size`` bytes from ``peer`` on ``circuit_id`` go through, and to whom.

        The one gate for circuit data, whichever way it arrived (a ``CircuitData``
        message on a stream, or a DATAGRAM frame): the sender must be an end of an
        accepted circuit, within its byte rate and the circuit's byte limit.  The bytes
        are counted when it returns the other end; the driver then sends them.  None
        means dropped (with an event, a ``CircuitClosed`` reply or a circuit end queued
        where the message-based path would have produced one).  ``quiet`` (datagrams):
        data that is not from an end of an active circuit is only counted in
        ``stray_datagrams``: packets still in flight when a circuit ends would each draw
        a reply and an event, and forged ones would make the relay an amplifier.
        """
        circuit = self._circuits.get(circuit_id)
        other = None if circuit is None else circuit.other_end(peer)
        if circuit is None or other is None or circuit.state is not _CircuitState.ACTIVE:
            if quiet:
                self.stray_datagrams += 1
            elif circuit is None or other is None:
                self._refused_forward(peer, circuit_id, "not an end of this circuit")
                self._out.append((peer, CircuitClosed(circuit_id, "no such circuit for you")))
            else:
                self._refused_forward(peer, circuit_id, "circuit not accepted yet")
            return None
        if not self._allow_bytes(peer, size, now):
            # Over its byte rate: drop like a congested link would.  The ends' QUIC
            # congestion control slows down; no event per packet (that would be a flood).
            self.dropped_over_rate += size
            return None
        if circuit.bytes_relayed + size > self.limits.max_circuit_bytes:
            self._end(circuit, f"byte limit of {self.limits.max_circuit_bytes} reached", now)
            return None
        circuit.bytes_relayed += size
        self.bytes_relayed += size
        return other

    def _on_data(self, peer: PeerId, msg: CircuitData, now: float) -> None:
        other = self.forward(peer, msg.circuit_id, len(msg.payload), now)
        if other is not None:
            self._out.append((other, msg))

    def _on_close(self, peer: PeerId, msg: CircuitClosed, now: float) -> None:
        circuit = self._circuits.get(msg.circuit_id)
        if circuit is None or circuit.other_end(peer) is None:
            self._refused_forward(peer, msg.circuit_id, "not an end of this circuit")
            return
        self._end(circuit, f"closed by {peer.short}: {msg.reason}"[:200], now, notify_except=peer)

    # -- helpers ---------------------------------------------------------------------
    def _end(self, circuit: _Circuit, reason: str, now: float,
             notify_except: PeerId | None = None) -> None:
        self._circuits.pop(circuit.circuit_id, None)
        for end in (circuit.source, circuit.target):
            if end != notify_except:
                if circuit.state is _CircuitState.PENDING and end == circuit.source:
                    self._out.append((end, ConnectRefused(circuit.target.key, reason[:200])))
                else:
                    self._out.append((end, CircuitClosed(circuit.circuit_id, reason[:200])))
        duration = now - circuit.started if circuit.state is _CircuitState.ACTIVE else 0.0
        self._events.append(CircuitEnded(circuit.circuit_id, reason, circuit.bytes_relayed,
                                         duration))

    def _circuit_refused(self, source: PeerId, target: PeerId, reason: str, count: bool) -> None:
        if count:
            self.refusals += 1
        self._events.append(CircuitRefused(source, target, reason))

    def _refused_forward(self, peer: PeerId, cid: int, reason: str) -> None:
        self.refusals += 1
        self._events.append(ForwardRefused(peer, cid, reason))
