"""The asyncio driver of one QUIC connection (after aioquic's ``QuicConnectionProtocol``).

Why not aioquic's protocol class: it owns a whole UDP transport per connection and hides
stream events behind ``StreamReader``s that buffer without limit.  This driver does
only what a driver should: feed datagrams in, drain events, send datagrams through a
*path sender*, re-arm one timer and verify the peer's identity.  The session layer on
top (:mod:`rnn_tui.transport.session`) sees raw stream events and applies framing,
limits and backpressure itself.

The path sender hook
--------------------
Every datagram this connection emits goes through ``path(data, addr)``.  For direct
connections that is the shared UDP endpoint's ``send_raw``.  A relay (the NAT package)
can instead pass a callable that wraps the datagram into a relay message on another
connection, and feed the datagrams coming back into :meth:`QuicLink.datagram_received`
with a stable pseudo-address.  The QUIC session, its encryption and the peer-id check
are then end to end through the relay.  See docs/TRANSPORT.md, "Relayed connections".

DATAGRAM frames (RFC 9221)
--------------------------
Every connection advertises ``max_datagram_frame_size`` (see ``tls.py``).  Once verified,
:attr:`QuicLink.datagram_capacity` says how large a datagram this link can carry (0 when
the peer did not advertise support: sending one would kill the connection), and
:meth:`QuicLink.send_datagram` queues one.  Datagrams are unreliable and unordered; a
full queue drops instead of growing (``MAX_PENDING_DATAGRAMS``), so a congested link
cannot make us buffer without bound.  A link that sends datagrams raises its packet
size to ``DATAGRAM_LINK_PACKET_SIZE`` (1452 B: a 1500-byte MTU minus IPv6 and UDP
headers), so that one datagram can carry a whole inner QUIC packet of a relay circuit,
which is at least 1200 bytes.  Received datagrams go to :meth:`QuicLink._datagram_frame`
after verification only.

Identity gate
-------------
``verified`` resolves with the peer id once *this side's* TLS handshake completed and
the peer's certificate proved an Ed25519 key equal to ``expected_peer_id`` (when given).
Until then no stream data is delivered upward, and nothing upward sends any.  A failed
check closes the connection with an application error and fails ``verified``.

A client does not wait for HANDSHAKE_DONE (the server's acceptance of the client's
certificate): what it sends after verifying the server reaches only that server, which
cannot decrypt 1-RTT data before it has the client's Finished and delivers none before
its own check of the client passed.  Waiting would cost half a round trip plus the
server's processing on every dial.  docs/TRANSPORT.md, "Identity", gives the argument.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aioquic.quic import events
from aioquic.quic.connection import QuicConnection

from rnn_tui.errors import LocalProtocolError, PeerIdMismatch, RemoteProtocolError
from rnn_tui.identity import PeerId
from rnn_tui.transport.errors import ConnectionClosed
from rnn_tui.transport.tls import peer_id_from_connection

__all__ = ["Addr", "PathSender", "QuicLink", "IDENTITY_REJECTED", "DATAGRAM_LINK_PACKET_SIZE",
           "MAX_PENDING_DATAGRAMS"]

log = logging.getLogger(__name__)

Addr = tuple[str, int]
PathSender = Callable[[bytes, Addr], None]
#: QUIC application error code used when a peer fails the identity check.
IDENTITY_REJECTED = 0x1
#: A verified connection whose peer sent nothing for this long while we had data in flight
#: (a request, a transfer, a keepalive PING) is closed as dead; see ``_declare_dead``.
DISCONNECT_TIMEOUT = 10.0
#: UDP payload of a link once it carries DATAGRAM frames: 1500 (MTU) - 40 (IPv6) - 8 (UDP).
DATAGRAM_LINK_PACKET_SIZE = 1452
#: Datagrams waiting in aioquic (congestion window full) beyond this are dropped.
MAX_PENDING_DATAGRAMS = 64
#: How long a link that carries datagrams may hold back an ACK-only packet (aioquic's
#: default is 1 ms; we advertise max_ack_delay 25 ms, so peers allow for it).  Relayed
#: packets arrive one per outer packet, so with 1 ms nearly each one drew its own ACK:
#: a packet built, sent, received and parsed at both ends for nothing but the outer
#: congestion controller.
DATAGRAM_LINK_ACK_DELAY = 0.020
#: A 1-RTT packet around one DATAGRAM frame, without the peer's connection id: first
#: byte, packet number (at most 4), AEAD tag (16), frame type (1), length varint (2).
_DATAGRAM_OVERHEAD = 1 + 4 + 16 + 1 + 2


class QuicLink:
    """Owns one ``QuicConnection``: datagrams, timer, events, identity verification."""

    def __init__(
        self,
        quic: QuicConnection,
        path: PathSender,
        *,
        remote_addr: Addr,
        expected_peer_id: PeerId | None = None,
        keepalive_interval: float | None = 15.0,
        on_cid_issued: Callable[[bytes], None] = lambda cid: None,
        on_cid_retired: Callable[[bytes], None] = lambda cid: None,
        on_terminated: Callable[[QuicLink], None] = lambda link: None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.quic = quic
        self.path = path
        self.remote_addr = remote_addr
        self.expected_peer_id = expected_peer_id
        self.peer_id: PeerId | None = None  # set once verified: the gate for stream data
        self.keepalive_interval = keepalive_interval
        self.verified: asyncio.Future[PeerId] = self._loop.create_future()
        # Nobody may await a failed inbound handshake: mark its exception as seen.
        self.verified.add_done_callback(_retrieve_exception)
        self.closed = asyncio.Event()
        self.close_reason = ""
        self.last_received = self._loop.time()
        self.last_heard = self.last_received  # only real packets move this (not keepalives)
        self._on_cid_issued = on_cid_issued
        self._on_cid_retired = on_cid_retired
        self._on_terminated = on_terminated
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._transmit_handle: asyncio.Handle | None = None
        self._ping_uid = 0
        self.datagrams_dropped = 0  # send_datagram calls refused because the queue was full
        #: Skip the transmit after a received datagram that acknowledged nothing (set on
        #: links carrying datagrams and on relayed connections): there, nearly every
        #: datagram is one-way data whose ACK is delayed anyway, and the empty transmit
        #: (aioquic builds and discards a packet) was a large share of the receiver's CPU.
        #: Our own writes still transmit at once (``transmit_soon``).
        self.lazy_transmit = False

    # ------------------------------------------------------------------ inputs

    def connect(self) -> None:
        """Client side: start the handshake towards ``remote_addr``."""
        self.quic.connect(self.remote_addr, now=self._loop.time())
        self.transmit()

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        now = self._loop.time()
        self.last_received = self.last_heard = now
        in_flight = self.quic._loss.bytes_in_flight
        try:
            self.quic.receive_datagram(data, addr, now=now)
        except Exception:  # aioquic should not raise, but a peer must never crash us
            log.exception("QUIC rejected a datagram from %s", addr)
            return
        self._process_events()
        if (self.lazy_transmit and self.peer_id is not None and self._transmit_handle is None
                and self.quic._loss.bytes_in_flight == in_flight):
            # Nothing newly acknowledged or lost, so no window opened: only ACKs and
            # flow-control updates could go, and the timer (re-armed here) sends those.
            self._arm_timer()
        else:
            # Deferred to the end of this loop iteration: handlers woken by this datagram
            # reply first, so the ACK and the reply leave in one packet, and a burst of
            # datagrams read in one iteration costs one transmit.
            self.transmit_soon()
        self._after_receive()

    def transmit(self) -> None:
        """Send what the connection wants to send; re-arm the single timer."""
        self._transmit_handle = None
        now = self._loop.time()
        for data, addr in self.quic.datagrams_to_send(now=now):
            try:
                self.path(data, addr)
            except Exception:  # a broken path sender is a bug elsewhere, not a crash here
                log.exception("path sender failed for %s", addr)
        self._arm_timer()

    def _arm_timer(self) -> None:
        """Re-arm the single timer at aioquic's next deadline (or the keepalive)."""
        timer_at = None if self.closed.is_set() else self.quic.get_timer()
        if self.keepalive_interval is not None and not self.closed.is_set() \
                and self.peer_id is not None:
            keepalive_at = self.last_received + self.keepalive_interval
            timer_at = keepalive_at if timer_at is None else min(timer_at, keepalive_at)
        if self._timer is not None and self._timer_at != timer_at:
            self._timer.cancel()
            self._timer = None
        if self._timer is None and timer_at is not None:
            self._timer = self._loop.call_at(timer_at, self._handle_timer)
        self._timer_at = timer_at

    @property
    def datagram_capacity(self) -> int:
        """The largest datagram :meth:`send_datagram` takes now; 0 if the peer has none.

        Computed for a packet of ``DATAGRAM_LINK_PACKET_SIZE`` (or the configured size if
        larger) holding nothing but the frame.  aioquic keeps an oversize datagram at the
        head of its queue forever, blocking every later one, hence the exact bound.
        """
        remote = self.quic._remote_max_datagram_frame_size
        if remote is None or self.peer_id is None or self.closed.is_set():
            return 0
        size = max(self.quic._max_datagram_size, DATAGRAM_LINK_PACKET_SIZE)
        fits = size - _DATAGRAM_OVERHEAD - len(self.quic._peer_cid.cid)
        return max(0, min(fits, remote - 1 - 4))  # the peer counts type + length varint

    def send_datagram(self, data: bytes) -> bool:
        """Queue one DATAGRAM frame; False when it was dropped (queue full).

        Raises LocalProtocolError when ``data`` exceeds :attr:`datagram_capacity`.
        """
        if len(data) > self.datagram_capacity:
            raise LocalProtocolError(
                f"datagram of {len(data)} bytes exceeds the {self.datagram_capacity} bytes "
                f"the link to {self.remote_addr[0]}:{self.remote_addr[1]} can carry")
        if len(self.quic._datagrams_pending) >= MAX_PENDING_DATAGRAMS:
            self.datagrams_dropped += 1
            return False
        if self.quic._max_datagram_size < DATAGRAM_LINK_PACKET_SIZE:
            self.quic._max_datagram_size = DATAGRAM_LINK_PACKET_SIZE
            self.set_ack_delay(DATAGRAM_LINK_ACK_DELAY)
            self.lazy_transmit = True
        self.quic.send_datagram_frame(data)
        self.transmit_soon()
        return True

    def set_ack_delay(self, seconds: float) -> None:
        """Delay ACK-only packets by up to ``seconds`` (at most the advertised 25 ms).

        ACKs still ride at once on any packet we send anyway; this only thins out the
        packets that carry nothing else (aioquic's private ``_ack_delay``).
        """
        self.quic._ack_delay = min(max(seconds, 0.001), 0.025)

    def transmit_soon(self) -> None:
        """Coalesce many writes made in one loop iteration into one transmit."""
        if self._transmit_handle is None:
            self._transmit_handle = self._loop.call_soon(self.transmit)

    def begin_close(self, error_code: int = 0, reason: str = "") -> None:
        """Send CONNECTION_CLOSE; ``closed`` is set once aioquic reports termination."""
        if not self.closed.is_set():
            self.quic.close(error_code=error_code, reason_phrase=reason)
            self.transmit()

    # ------------------------------------------------------------------ internals

    def _handle_timer(self) -> None:
        now = max(self._timer_at or 0.0, self._loop.time())
        self._timer = None
        self._timer_at = None
        self.quic.handle_timer(now=now)
        if (self.peer_id is not None and not self.closed.is_set()
                and self.quic._loss.bytes_in_flight > 0
                and now - self.last_heard >= DISCONNECT_TIMEOUT):
            self._declare_dead(now)
            return
        if (self.keepalive_interval is not None and self.peer_id is not None
                and not self.closed.is_set()
                and now >= self.last_received + self.keepalive_interval):
            # A PING elicits an ACK, which refreshes last_received and NAT mappings.
            self._ping_uid += 1
            self.quic.send_ping(self._ping_uid)
            self.last_received = now  # do not ping again before the next interval
        self._process_events()
        self.transmit()

    def _process_events(self) -> None:
        event = self.quic.next_event()
        while event is not None:
            if isinstance(event, events.StreamDataReceived):
                if self.peer_id is not None:
                    self._stream_data(event.stream_id, event.data, event.end_stream)
                # before verification: dropped (nothing may flow before the id check)
            elif isinstance(event, events.StreamReset):
                if self.peer_id is not None:
                    self._stream_reset(event.stream_id, event.error_code)
            elif isinstance(event, events.StopSendingReceived):
                if self.peer_id is not None:
                    self._stream_stopped(event.stream_id, event.error_code)
            elif isinstance(event, events.DatagramFrameReceived):
                if self.peer_id is not None:
                    self._datagram_frame(event.data)
            elif isinstance(event, events.HandshakeCompleted):
                self._handshake_completed()
            elif isinstance(event, events.ConnectionIdIssued):
                self._on_cid_issued(event.connection_id)
            elif isinstance(event, events.ConnectionIdRetired):
                self._on_cid_retired(event.connection_id)
            elif isinstance(event, events.ConnectionTerminated):
                self._terminate(event.reason_phrase or f"closed with code {event.error_code}")
            event = self.quic.next_event()

    def _handshake_completed(self) -> None:
        try:
            peer_id = peer_id_from_connection(self.quic)
            if self.expected_peer_id is not None and peer_id != self.expected_peer_id:
                raise PeerIdMismatch(
                    f"{self.remote_addr[0]}:{self.remote_addr[1]} proved peer id {peer_id}, "
                    f"expected {self.expected_peer_id}")
        except RemoteProtocolError as exc:
            log.info("rejecting QUIC peer at %s: %s", self.remote_addr, exc)
            if not self.verified.done():
                self.verified.set_exception(exc)
            self.quic.close(error_code=IDENTITY_REJECTED, reason_phrase="identity rejected")
            return
        self.peer_id = peer_id
        if not self.verified.done():
            self.verified.set_result(self.peer_id)

    def _declare_dead(self, now: float) -> None:
        """The peer stopped answering while we wait for acknowledgements: close now.

        Why: aioquic only gives up at the idle timeout (60 s), so a crashed peer, or a relay
        that vanished under a relayed connection, would hold every request on it for a
        minute.  Loss recovery keeps probing (PTOs) while data is unacknowledged; when
        nothing at all came back for ``DISCONNECT_TIMEOUT`` the path is dead, as msquic's
        disconnect timeout decides.
        """
        reason = (f"peer stopped answering: nothing received for {now - self.last_heard:.0f} s "
                  f"with data unacknowledged")
        self.quic.close(error_code=0, reason_phrase=reason)
        self.transmit()  # the CONNECTION_CLOSE, in case the path comes back
        self._terminate(reason)

    def _terminate(self, reason: str) -> None:
        if self.closed.is_set():
            return
        self.close_reason = reason
        if not self.verified.done():
            self.verified.set_exception(ConnectionClosed(
                f"connection to {self.remote_addr[0]}:{self.remote_addr[1]} closed "
                f"before the handshake completed: {reason}"))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.closed.set()
        self._on_terminated(self)
        self._connection_closed(reason)

    # ------------------------------------------------------------------ hooks for the session

    def _stream_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """Verified stream data; the session overrides this."""

    def _stream_reset(self, stream_id: int, error_code: int) -> None:
        """The peer reset a stream; the session overrides this."""

    def _stream_stopped(self, stream_id: int, error_code: int) -> None:
        """The peer asked us to stop sending on a stream; the session overrides this."""

    def _datagram_frame(self, data: bytes) -> None:
        """A DATAGRAM frame from the verified peer; the session overrides this."""

    def _after_receive(self) -> None:
        """Called after each datagram (ACKs processed); the session wakes paced writers."""

    def _connection_closed(self, reason: str) -> None:
        """The connection is gone; the session fails pending work."""


def _retrieve_exception(fut: asyncio.Future[PeerId]) -> None:
    if not fut.cancelled():
        fut.exception()
