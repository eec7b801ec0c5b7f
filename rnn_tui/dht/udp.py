"""A standalone UDP socket running one ``DhtNode`` (debug CLI, tests, benchmarks).

In the full node the transport owns the socket and shares it with QUIC; here the DHT is
alone on it.  ``open_dht_endpoint`` binds (port 0 = ephemeral) and returns the endpoint;
``close()`` stops the node and closes the socket.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rnn_tui.dht.driver import DhtNode
from rnn_tui.dht.messages import Addr


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.node: DhtNode | None = None

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if self.node is not None:
            self.node.datagram_received(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:  # ICMP errors: the query will time out
        pass


class DhtUdpEndpoint:
    def __init__(self, transport: asyncio.DatagramTransport, node: DhtNode) -> None:
        self.transport = transport
        self.node = node

    @property
    def addr(self) -> Addr:
        host, port = self.transport.get_extra_info("sockname")[:2]
        return (host, port)

    def close(self) -> None:
        self.node.close()
        self.transport.close()


async def open_dht_endpoint(host: str = "127.0.0.1", port: int = 0, **node_kwargs: Any) -> DhtUdpEndpoint:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_Protocol, local_addr=(host, port))
    assert isinstance(protocol, _Protocol)

    def send(data: bytes, addr: Addr) -> None:
        transport.sendto(data, addr)

    node = DhtNode(send, **node_kwargs)
    protocol.node = node
    return DhtUdpEndpoint(transport, node)
