"""Carry gossip frames over the secure transport as one message type.

Why a separate module: the core and driver know nothing of QUIC; this file is the only
place where gossip meets the transport.  A gossip frame travels as the one-way message
``GossipFrame`` (type 0x0100, the gossip range of the transport's registry); its body is
the frame's bytes unchanged, since they are already canonical bencode.

The node wires it in three lines::

    driver = GossipDriver(core, transport_sender(transport))
    attach_to_transport(transport, driver)
    await driver.start()

The transport proves every peer's id in the TLS handshake, so ``conn.peer_id`` is the
authenticated author of whatever frame arrives on that connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rnn_tui.gossip.driver import GossipDriver, SendFn
from rnn_tui.identity import PeerId
from rnn_tui.transport import (
    PeerConnected,
    PeerConnection,
    PeerDisconnected,
    Transport,
    TransportEvent,
    register_message,
)
from rnn_tui.transport.errors import ConnectionClosed

__all__ = ["GossipFrame", "transport_sender", "attach_to_transport"]


@register_message
@dataclass(frozen=True, slots=True)
class GossipFrame:
    """One gossip frame (see ``rnn_tui.gossip.wire``); the body is the frame itself."""

    TYPE: ClassVar[int] = 0x0100
    data: bytes

    def encode(self) -> bytes:
        return self.data

    @classmethod
    def decode(cls, body: bytes) -> GossipFrame:
        return cls(body)


def transport_sender(transport: Transport) -> SendFn:
    """``send(peer, data)`` for the driver: a one-way message on the peer's connection."""

    async def send(peer: PeerId, data: bytes) -> None:
        conn = transport.connection_to(peer)
        if conn is None:
            raise ConnectionClosed(f"gossip: no open connection to {peer.short}")
        conn.send(GossipFrame(data))

    return send


def attach_to_transport(transport: Transport, driver: GossipDriver) -> None:
    """Feed the driver the transport's gossip frames and connection events."""

    async def on_frame(conn: PeerConnection, msg: GossipFrame) -> None:
        # A frame that was in flight when the connection closed must not re-register the
        # peer (the driver treats a frame from an unknown peer as a new connection).
        if conn.peer_id is not None and conn.is_open:
            driver.received(conn.peer_id, msg.data)

    def on_event(event: TransportEvent) -> None:
        if isinstance(event, PeerConnected):
            driver.peer_connected(event.peer_id, outbound=event.outbound)
        elif isinstance(event, PeerDisconnected) and transport.connection_to(event.peer_id) is None:
            driver.peer_disconnected(event.peer_id)   # its last connection is gone

    transport.handlers.on_message(GossipFrame, on_frame)
    transport.add_listener(on_event)
    for conn in transport.connections():
        if conn.peer_id is not None:
            driver.peer_connected(conn.peer_id, outbound=conn.outbound)
