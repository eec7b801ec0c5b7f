"""One UDP socket shared by the DHT, the QUIC server and every outgoing QUIC connection.

Why one socket: NAT mappings and hole punching work per (address, port).  If the DHT,
inbound QUIC and outbound QUIC all use the node's one port, the address peers observe
for us in the DHT is the address they can dial, and a punched hole serves every use.

Demultiplexing (FACTS.md), in order, for each datagram:

1. first byte has the QUIC fixed bit (0x40) clear: never a QUIC v1 packet, never
   bencode; offered to the raw handlers by prefix (hole-punch probes, ...), else dropped;
2. a short-header packet whose bytes ``1 .. 1+CID_LEN`` are a connection id we issued:
   that QUIC connection;
3. starts with ``d``, ends with ``e`` and decodes to a bencoded dict: the DHT handler;
4. anything else: QUIC.  Long headers are routed by their destination connection id; a
   new Initial (>= 1200 bytes) goes to ``on_initial``, which may create a server-side
   connection; the rest is dropped.

Garbage never raises out of :meth:`UdpEndpoint.datagram_received`: every handler call
is guarded and counted in :class:`EndpointStats`.

Addresses are normalised to ``(host, port)``: on a dual-stack IPv6 socket an IPv4 peer
appears as ``("1.2.3.4", port)``, never as ``::ffff:1.2.3.4``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.quic.packet import (
    QuicHeader,
    QuicPacketType,
    encode_quic_version_negotiation,
    pull_quic_header,
)

from rnn_tui.dht import codec
from rnn_tui.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["Addr", "DatagramHandler", "EndpointStats", "UdpEndpoint", "QuicSink"]

log = logging.getLogger(__name__)

Addr = tuple[str, int]
DatagramHandler = Callable[[bytes, Addr], None]
QUIC_FIXED_BIT = 0x40
QUIC_LONG_HEADER = 0x80
MIN_INITIAL_SIZE = 1200
SUPPORTED_VERSIONS = [0x00000001]  # QUIC v1 (RFC 9000)



SOCKET_BUFFER = 4 << 20
"""Receive and send buffer asked for the one UDP socket.  Linux's default (208 KiB) holds
about 140 full packets: a burst from a fast peer, or a relay forwarding while our loop is
busy, overflows it and QUIC takes the losses as congestion.  The kernel caps the request at
``net.core.rmem_max``/``wmem_max``; operators of busy relays raise those (docs/TRANSPORT.md).
"""


def _grow_buffers(sock: socket.socket) -> None:
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            if sock.getsockopt(socket.SOL_SOCKET, option) < SOCKET_BUFFER:
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        except OSError as exc:  # a restricted sandbox: the default still works
            log.debug("cannot grow the UDP socket buffer: %s", exc)

class QuicSink(Protocol):
    """What the endpoint needs from a QUIC connection driver."""

    def datagram_received(self, data: bytes, addr: Addr) -> None: ...


@dataclass(slots=True)
class EndpointStats:
    """Counters for what arrived and where it went (for status and tests)."""

    quic: int = 0
    dht: int = 0
    raw: int = 0
    dropped: int = 0
    handler_errors: int = 0
    sent: int = 0
    send_errors: int = 0


class UdpEndpoint(asyncio.DatagramProtocol):
    """The node's single UDP socket and its demultiplexer."""

    def __init__(self, *, cid_length: int = 8) -> None:
        self.cid_length = cid_length
        self.stats = EndpointStats()
        #: ``dht_handler(data, addr)``: the DHT driver's ``datagram_received``.
        self.dht_handler: DatagramHandler | None = None
        #: ``on_initial(header, addr, path)``: may return a new server-side QUIC sink;
        #: ``path`` is None for the UDP socket, or the virtual path a datagram came over.
        self.on_initial: Callable[[QuicHeader, Addr, DatagramHandler | None],
                                  QuicSink | None] | None = None
        self._sinks: dict[bytes, QuicSink] = {}
        self._raw: list[tuple[bytes, DatagramHandler]] = []
        self._transport: asyncio.DatagramTransport | None = None
        self._family = socket.AF_INET
        # Destinations we sent to, oldest first (bounded): NAT dial-back asks "did this
        # datagram come from an address we never sent to?" (a NAT would have let a reply
        # from such an address in anyway).
        self._sent_to: dict[Addr, None] = {}
        self.sent_to_limit = 8192

    # ------------------------------------------------------------------ lifecycle

    async def open(self, host: str = "0.0.0.0", port: int = 0, *, dual_stack: bool = False) -> Addr:
        """Bind the socket; ``dual_stack`` binds ``::`` with IPv4 mapped in when possible.

        Returns the bound ``(host, port)``.  Port 0 picks a free port (tests).
        """
        loop = asyncio.get_running_loop()
        sock = self._make_socket(host, port, dual_stack)
        _grow_buffers(sock)
        await loop.create_datagram_endpoint(lambda: self, sock=sock)
        return self.local_addr

    def _make_socket(self, host: str, port: int, dual_stack: bool) -> socket.socket:
        if dual_stack and socket.has_ipv6:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                sock.bind(("::" if host in ("0.0.0.0", "", "::") else host, port))
                self._family = socket.AF_INET6
                return sock
            except OSError as exc:
                sock.close()
                log.warning("IPv6 dual-stack bind failed (%s); using IPv4 only", exc)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"cannot bind UDP {host}:{port}: {exc.strerror}") from None
        self._family = family
        return sock

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable, ...) surface here; QUIC's own timers handle loss.
        log.debug("UDP socket error: %s", exc)

    @property
    def local_addr(self) -> Addr:
        if self._transport is None:
            raise LocalProtocolError("the UDP endpoint is not open")
        name = self._transport.get_extra_info("sockname")
        return str(name[0]), int(name[1])

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._sinks.clear()

    # ------------------------------------------------------------------ registration

    def register_raw(self, prefix: bytes, handler: DatagramHandler) -> None:
        """Route datagrams starting with ``prefix`` to ``handler`` (hole punching, ...).

        The first byte must have bit 0x40 clear, so that no QUIC v1 packet (fixed bit
        set) and no bencoded DHT message (``d`` = 0x64) can ever match.
        """
        if not prefix or prefix[0] & QUIC_FIXED_BIT:
            raise LocalProtocolError(
                f"raw prefix {prefix!r} must be non-empty and start with a byte < 0x40 "
                "(bit 0x40 marks QUIC and DHT traffic)")
        for other, _ in self._raw:
            if other.startswith(prefix) or prefix.startswith(other):
                raise LocalProtocolError(f"raw prefix {prefix!r} overlaps {other!r}")
        self._raw.append((prefix, handler))

    def unregister_raw(self, prefix: bytes) -> None:
        self._raw = [(p, h) for p, h in self._raw if p != prefix]

    def register_cid(self, cid: bytes, sink: QuicSink) -> None:
        self._sinks[cid] = sink

    def unregister_cid(self, cid: bytes) -> None:
        self._sinks.pop(cid, None)

    def unregister_sink(self, sink: QuicSink) -> None:
        for cid in [c for c, s in self._sinks.items() if s is sink]:
            del self._sinks[cid]

    # ------------------------------------------------------------------ sending

    def send_raw(self, data: bytes, addr: Addr) -> None:
        """Send one datagram from the shared socket (QUIC, DHT, probes)."""
        if self._transport is None or self._transport.is_closing():
            self.stats.send_errors += 1
            return
        host, port = addr[0], addr[1]
        key = (host, port)
        if key not in self._sent_to:
            self._sent_to[key] = None
            if len(self._sent_to) > self.sent_to_limit:
                del self._sent_to[next(iter(self._sent_to))]
        target: tuple[Any, ...] = key
        if self._family == socket.AF_INET6 and ":" not in host:
            target = ("::ffff:" + host, port, 0, 0)
        try:
            self._transport.sendto(data, target)
            self.stats.sent += 1
        except (OSError, ValueError) as exc:  # e.g. an IPv6 target on an IPv4 socket
            self.stats.send_errors += 1
            log.debug("cannot send to %s: %s", addr, exc)

    def has_sent_to(self, addr: Addr) -> bool:
        """Whether a datagram left this socket for ``addr`` (among the last
        ``sent_to_limit`` distinct destinations): unsolicited-inbound test for dial-back."""
        return (addr[0], addr[1]) in self._sent_to

    # ------------------------------------------------------------------ receiving

    def datagram_received(self, data: bytes, addr: Any) -> None:
        host = str(addr[0])
        if host.startswith("::ffff:") and "." in host:
            host = host[7:]
        peer: Addr = (host, int(addr[1]))
        try:
            self._dispatch(data, peer)
        except Exception:
            self.stats.handler_errors += 1
            log.exception("handler failed for a datagram from %s", peer)

    def _dispatch(self, data: bytes, addr: Addr) -> None:
        if not data:
            self.stats.dropped += 1
            return
        first = data[0]
        if not first & QUIC_FIXED_BIT:
            for prefix, handler in self._raw:
                if data.startswith(prefix):
                    self.stats.raw += 1
                    handler(data, addr)
                    return
            self.stats.dropped += 1
            return
        if not first & QUIC_LONG_HEADER:
            sink = self._sinks.get(data[1:1 + self.cid_length])
            if sink is not None:
                self.stats.quic += 1
                sink.datagram_received(data, addr)
                return
        if first == 0x64 and data[-1] == 0x65 and self.dht_handler is not None \
                and _is_bencoded_dict(data):
            self.stats.dht += 1
            self.dht_handler(data, addr)
            return
        self._quic_unrouted(data, addr)

    def inject(self, data: bytes, addr: Addr, path: DatagramHandler) -> None:
        """A QUIC datagram that arrived over a virtual path (e.g. through a relay).

        Routed like a socket datagram (by connection id); a new Initial creates a
        server-side connection whose datagrams go back through ``path``.  ``addr`` is a
        stable pseudo-address of that path.  Never raises.
        """
        try:
            if data and data[0] & QUIC_FIXED_BIT and not data[0] & QUIC_LONG_HEADER:
                sink = self._sinks.get(data[1:1 + self.cid_length])
                if sink is not None:
                    self.stats.quic += 1
                    sink.datagram_received(data, addr)
                    return
            self._quic_unrouted(data, addr, path)
        except Exception:
            self.stats.handler_errors += 1
            log.exception("handler failed for a relayed datagram from %s", addr)

    def _quic_unrouted(self, data: bytes, addr: Addr, path: DatagramHandler | None = None) -> None:
        """A QUIC packet not matched by its short-header CID: long headers, new Initials."""
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=self.cid_length)
        except ValueError:
            self.stats.dropped += 1
            return
        sink = self._sinks.get(header.destination_cid)
        if sink is not None:
            self.stats.quic += 1
            sink.datagram_received(data, addr)
            return
        if header.packet_type is None or header.version is None or len(data) < MIN_INITIAL_SIZE:
            self.stats.dropped += 1  # short header for an unknown CID, or too small to answer
            return
        if header.packet_type != QuicPacketType.VERSION_NEGOTIATION \
                and header.version not in SUPPORTED_VERSIONS:
            (path or self.send_raw)(encode_quic_version_negotiation(
                source_cid=header.destination_cid, destination_cid=header.source_cid,
                supported_versions=SUPPORTED_VERSIONS), addr)
            return
        if header.packet_type == QuicPacketType.INITIAL and self.on_initial is not None:
            sink = self.on_initial(header, addr, path)
            if sink is not None:
                self.stats.quic += 1
                sink.datagram_received(data, addr)
                return
        self.stats.dropped += 1


def _is_bencoded_dict(data: bytes) -> bool:
    """Canonical bencoded dict of at most ``codec.MAX_DATAGRAM`` bytes (the DHT's limit)."""
    try:
        return isinstance(codec.decode(data), dict)
    except RemoteProtocolError:
        return False
