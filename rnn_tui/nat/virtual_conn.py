"""QUIC connections over paths the transport's endpoint does not own.

Why: two NAT paths carry a full QUIC connection outside the node's shared socket: a
relay circuit (packets wrapped in ``CircuitData``) and, after a birthday punch, the
extra socket whose NAT mapping won.  Both need the same thing: our Ed25519 mutual-TLS
QUIC with the peer id checked, sending through a callable and fed by hand.  The
transport's ``PeerConnection`` already takes a path sender; this module builds one for
either direction, so the relay and the punch drivers do not repeat it.
"""

from __future__ import annotations

from collections.abc import Callable

from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.packet import QuicPacketType, pull_quic_header

from rnn_tui.identity import PeerId
from rnn_tui.transport import PathSender, PeerConnection, Transport
from rnn_tui.transport.tls import MutualTlsConnection, make_configuration

__all__ = ["VirtualConnector", "initial_dcid", "CID_LENGTH"]

CID_LENGTH = 8  # aioquic's default host connection id length
Addr = tuple[str, int]


def initial_dcid(packet: bytes) -> bytes | None:
    """The original destination CID when ``packet`` is a client Initial, else None."""
    try:
        header = pull_quic_header(Buffer(data=packet), host_cid_length=CID_LENGTH)
    except ValueError:
        return None
    if header.packet_type != QuicPacketType.INITIAL:
        return None
    return bytes(header.destination_cid)


class VirtualConnector:
    """Makes client or server ``PeerConnection``s of ``transport``'s identity on any path."""

    def __init__(self, transport: Transport, max_datagram_size: int | None = None) -> None:
        self.transport = transport
        ident = transport.identity
        self._client: QuicConfiguration = make_configuration(
            ident, is_client=True, max_datagram_size=max_datagram_size,
            idle_timeout=transport.settings.idle_timeout)
        self._server: QuicConfiguration = make_configuration(
            ident, is_client=False, max_datagram_size=max_datagram_size,
            idle_timeout=transport.settings.idle_timeout)

    def client(self, path: PathSender, remote: Addr, expected: PeerId,
               on_terminated: Callable[[object], None] = lambda link: None) -> PeerConnection:
        """An outbound connection; call ``connect()`` on it to start the handshake."""
        quic = MutualTlsConnection(configuration=self._client)
        return self._wrap(quic, path, remote, expected, True, on_terminated)

    def server(self, path: PathSender, remote: Addr, expected: PeerId | None, dcid: bytes,
               on_terminated: Callable[[object], None] = lambda link: None) -> PeerConnection:
        """An inbound connection for the Initial whose destination CID was ``dcid``."""
        quic = MutualTlsConnection(configuration=self._server,
                                   original_destination_connection_id=dcid)
        return self._wrap(quic, path, remote, expected, False, on_terminated)

    def _wrap(self, quic: MutualTlsConnection, path: PathSender, remote: Addr,
              expected: PeerId | None, outbound: bool,
              on_terminated: Callable[[object], None]) -> PeerConnection:
        t = self.transport
        return PeerConnection(quic, path, remote_addr=remote, handlers=t.handlers,
                              limits=t.settings.limits, outbound=outbound,
                              expected_peer_id=expected,
                              keepalive_interval=t.settings.keepalive_interval,
                              on_terminated=on_terminated)
