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

from rnn_tui.errors import PeerIdMismatch, RemoteProtocolError
from rnn_tui.identity import PeerId
from rnn_tui.transport.errors import ConnectionClosed
from rnn_tui.transport.tls import peer_id_from_connection

__all__ = ["Addr", "PathSender", "QuicLink", "IDENTITY_REJECTED"]

log = logging.getLogger(__name__)

Addr = tuple[str, int]
PathSender = Callable[[bytes, Addr], None]
#: QUIC application error code used when a peer fails the identity check.
IDENTITY_REJECTED = 0x1


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
        self._on_cid_issued = on_cid_issued
        self._on_cid_retired = on_cid_retired
        self._on_terminated = on_terminated
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._transmit_handle: asyncio.Handle | None = None
        self._ping_uid = 0

    # ------------------------------------------------------------------ inputs

    def connect(self) -> None:
        """Client side: start the handshake towards ``remote_addr``."""
        self.quic.connect(self.remote_addr, now=self._loop.time())
        self.transmit()

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        now = self._loop.time()
        self.last_received = now
        try:
            self.quic.receive_datagram(data, addr, now=now)
        except Exception:  # aioquic should not raise, but a peer must never crash us
            log.exception("QUIC rejected a datagram from %s", addr)
            return
        self._process_events()
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

    def _after_receive(self) -> None:
        """Called after each datagram (ACKs processed); the session wakes paced writers."""

    def _connection_closed(self, reason: str) -> None:
        """The connection is gone; the session fails pending work."""


def _retrieve_exception(fut: asyncio.Future[PeerId]) -> None:
    if not fut.cancelled():
        fut.exception()
