"""Secure transport: one UDP socket, identity-bound QUIC (aioquic), framing, messages.

Public API (see docs/TRANSPORT.md)::

    transport = Transport(identity)
    await transport.start("0.0.0.0", 30609)
    conn = await transport.dial(("198.51.100.7", 30609), expected_peer_id=peer)
    reply = await conn.request(Ping(b"x"), timeout=5)
"""

from rnn_tui.transport.connection import PathSender, QuicLink
from rnn_tui.transport.endpoint import EndpointStats, UdpEndpoint
from rnn_tui.transport.errors import ConnectionClosed, RemoteError
from rnn_tui.transport.manager import (
    PeerConnected,
    PeerDisconnected,
    Transport,
    TransportEvent,
    TransportSettings,
)
from rnn_tui.transport.messages import REGISTRY, Message, register_message
from rnn_tui.transport.session import HandlerTable, PeerConnection, ReplyStream, SessionLimits

__all__ = [
    "Transport",
    "TransportSettings",
    "TransportEvent",
    "PeerConnected",
    "PeerDisconnected",
    "PeerConnection",
    "ReplyStream",
    "HandlerTable",
    "SessionLimits",
    "UdpEndpoint",
    "EndpointStats",
    "QuicLink",
    "PathSender",
    "ConnectionClosed",
    "RemoteError",
    "Message",
    "REGISTRY",
    "register_message",
]
