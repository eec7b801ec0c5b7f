# ruff: noqa: ASYNC109  (a timeout argument is part of each operation: it cancels the core op)
"""asyncio driver for ``DhtCore``: futures for client operations, one timer, no socket.

Why no socket: the node's single UDP port carries both QUIC and the DHT.  Whoever owns the
socket (``transport/`` in the node, ``dht/udp.py`` for standalone use) passes ``send`` in
and calls ``datagram_received()`` for packets its demux classifies as DHT.

Like aioquic's ``QuicConnectionProtocol``: feed input to the core, transmit, drain events
(resolving futures), re-arm the one timer.  Every public coroutine has a timeout and
cancels its core operation when it gives up.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable
from typing import Any

from rnn_tui.dht.bep44 import Signer
from rnn_tui.dht.core import DhtConfig, DhtCore
from rnn_tui.dht.events import (
    Announced,
    ExternalAddressChanged,
    ImmutableFound,
    ItemPut,
    MutableFound,
    NodeIdChanged,
    NodesFound,
    OperationCompleted,
    OperationResult,
    PeersFound,
    PingResult,
)
from rnn_tui.dht.messages import Addr
from rnn_tui.errors import RequestTimeout, RnnError

log = logging.getLogger(__name__)

SendFn = Callable[[bytes, Addr], None]


class DhtOperationFailed(RnnError):
    """A DHT operation completed but achieved nothing (e.g. no node stored our item)."""


class DhtNode:
    """One DHT node on the running event loop.  See the module docstring."""

    def __init__(self, send: SendFn, *, config: DhtConfig | None = None,
                 rng: random.Random | None = None, node_id: bytes | None = None,
                 timeout: float = 30.0,
                 on_external_address: Callable[[str, int], None] | None = None,
                 on_node_id_changed: Callable[[bytes, bytes], None] | None = None,
                 on_address_reported: Callable[[Addr, Addr], None] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._send = send
        self.core = DhtCore(rng or random.SystemRandom(), self._loop.time(), config, node_id)
        self.timeout = timeout
        self._futures: dict[int, asyncio.Future[OperationResult]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = False
        self.on_external_address = on_external_address
        self.on_node_id_changed = on_node_id_changed
        #: ``fn(responder, reported)`` for each reply's KRPC ``ip`` field (NAT detection)
        self.on_address_reported = on_address_reported

    # ------------------------------------------------------------ plumbing

    @property
    def node_id(self) -> bytes:
        return self.core.node_id

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        if self._closed:
            return
        self.core.receive_datagram(data, (addr[0], addr[1]), self._loop.time())
        self._process()

    def _process(self) -> None:
        for data, addr in self.core.datagrams_to_send():
            try:
                self._send(data, addr)
            except OSError as exc:  # unreachable host, buffer full: the query will time out
                log.debug("dht: send to %s failed: %s", addr, exc)
        reports = self.core.address_reports
        while reports:
            responder, reported = reports.popleft()
            if self.on_address_reported is not None:
                self.on_address_reported(responder, reported)
        while (event := self.core.next_event()) is not None:
            if isinstance(event, OperationCompleted):
                future = self._futures.pop(event.op_id, None)
                if future is not None and not future.done():
                    future.set_result(event.result)
            elif isinstance(event, ExternalAddressChanged):
                if self.on_external_address is not None:
                    self.on_external_address(event.ip, event.port)
            elif isinstance(event, NodeIdChanged):
                log.info("dht: node id changed to %s (BEP 42, ip %s)", event.new_id.hex(), event.ip)
                if self.on_node_id_changed is not None:
                    self.on_node_id_changed(event.old_id, event.new_id)
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._closed:
            return
        when = self.core.get_timer()
        if self._timer is not None and self._timer_at == when:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.core.handle_timer(self._loop.time())
        self._process()

    async def _run(self, start: Callable[[float], int], timeout: float | None) -> OperationResult:
        if self._closed:
            raise RnnError("the DHT node is closed")
        op_id = start(self._loop.time())
        future: asyncio.Future[OperationResult] = self._loop.create_future()
        self._futures[op_id] = future
        self._process()
        limit = self.timeout if timeout is None else timeout
        try:
            return await asyncio.wait_for(future, limit)
        except TimeoutError:
            raise RequestTimeout(f"DHT operation did not finish within {limit:.1f}s") from None
        finally:
            if not future.done():
                future.cancel()
            self._futures.pop(op_id, None)
            self.core.cancel_operation(op_id)

    def close(self) -> None:
        """Stop timers and fail pending operations.  The socket owner closes the socket."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for future in self._futures.values():
            if not future.done():
                future.cancel()
        self._futures.clear()

    # ------------------------------------------------------------ lifecycle

    async def start(self, saved_nodes: Iterable[tuple[bytes, str, int]] = (),
                    bootstrap: Iterable[Addr] = (), timeout: float | None = None) -> int:
        """Ping saved nodes first; bootstrap from ``bootstrap`` only if too few answer.

        Returns the routing table size afterwards.
        """
        saved = list(saved_nodes)
        if saved:
            await asyncio.gather(*(self.ping((host, port), timeout=timeout or 5.0)
                                   for _, host, port in saved[:64]), return_exceptions=True)
        addrs = list(bootstrap)
        if len(self.core.routing) >= self.core.config.k or not addrs:
            if len(self.core.routing):
                await self._run(lambda now: self.core.start_bootstrap([], now), timeout)
        else:
            await self.bootstrap(addrs, timeout=timeout)
        return len(self.core.routing)

    async def bootstrap(self, addrs: Iterable[Addr], timeout: float | None = None) -> int:
        addr_list = [(a[0], int(a[1])) for a in addrs]
        result = await self._run(lambda now: self.core.start_bootstrap(addr_list, now), timeout)
        assert isinstance(result, NodesFound)
        return len(self.core.routing)

    # ------------------------------------------------------------ client API

    async def ping(self, addr: Addr, timeout: float | None = None) -> bytes | None:
        """The node id answering at ``addr``, or None if nobody answered."""
        result = await self._run(lambda now: self.core.start_ping((addr[0], int(addr[1])), now),
                                 timeout)
        assert isinstance(result, PingResult)
        return result.node_id

    async def find_node(self, target: bytes, timeout: float | None = None) -> NodesFound:
        result = await self._run(lambda now: self.core.start_find_node(target, now), timeout)
        assert isinstance(result, NodesFound)
        return result

    async def get_peers(self, infohash: bytes, timeout: float | None = None) -> list[Addr]:
        result = await self._run(lambda now: self.core.start_get_peers(infohash, now), timeout)
        assert isinstance(result, PeersFound)
        return list(result.peers)

    async def announce(self, infohash: bytes, port: int | None = None,
                       timeout: float | None = None) -> int:
        """Announce ``port`` (None: implied, our UDP source port).  Returns nodes that stored it."""
        result = await self._run(lambda now: self.core.start_announce(infohash, port, now), timeout)
        assert isinstance(result, Announced)
        if result.stored == 0:
            raise DhtOperationFailed("no DHT node accepted the announce")
        return result.stored

    async def get_mutable(self, public_key: bytes, salt: bytes = b"",
                          timeout: float | None = None) -> tuple[Any, int] | None:
        """``(value, seq)`` of the highest valid seq among the closest nodes, or None."""
        result = await self._run(lambda now: self.core.start_get_mutable(public_key, salt, now),
                                 timeout)
        assert isinstance(result, MutableFound)
        return None if result.item is None else (result.item.value, result.item.seq)

    async def put_mutable(self, signer: Signer, value: Any, salt: bytes = b"",
                          seq: int | None = None, timeout: float | None = None) -> ItemPut:
        """Sign and store; ``seq=None`` takes the highest seq found + 1."""
        result = await self._run(
            lambda now: self.core.start_put_mutable(signer, value, salt, now, seq=seq), timeout)
        assert isinstance(result, ItemPut)
        if result.stored == 0:
            why = "; ".join(f"{f.addr[0]}:{f.addr[1]} {f.code} {f.message}" for f in result.failures[:4])
            raise DhtOperationFailed(f"no DHT node stored the item{': ' + why if why else ''}")
        return result

    async def get_immutable(self, target: bytes, timeout: float | None = None) -> Any | None:
        result = await self._run(lambda now: self.core.start_get_immutable(target, now), timeout)
        assert isinstance(result, ImmutableFound)
        return result.value if result.found else None

    async def put_immutable(self, value: Any, timeout: float | None = None) -> bytes:
        """Store ``value``; returns its target (sha1 of the bencoded value)."""
        result = await self._run(lambda now: self.core.start_put_immutable(value, now), timeout)
        assert isinstance(result, ItemPut)
        if result.stored == 0:
            raise DhtOperationFailed("no DHT node stored the immutable item")
        return result.target

    # ------------------------------------------------------------ state

    def routing_nodes(self) -> list[tuple[bytes, str, int]]:
        return self.core.routing_nodes()

    def local_peers(self, infohash: bytes) -> list[Addr]:
        """Peers that announced ``infohash`` to this node (a lookup never queries itself)."""
        from rnn_tui.dht.messages import unpack_addr

        return [unpack_addr(p) for p in self.core.peer_store.get(infohash, self._loop.time())]

    def set_read_only(self, read_only: bool) -> None:
        """BEP 43 read-only mode on or off (the node decides from its reachability)."""
        self.core.set_read_only(read_only)

    @property
    def read_only(self) -> bool:
        return self.core.config.read_only

    def stats(self) -> dict[str, Any]:
        core = self.core
        s = core.stats
        now = self._loop.time()
        return {
            "node_id": core.node_id.hex(),
            "external_ip": core.external_ip,
            "routing_table": len(core.routing),
            "read_only": core.config.read_only,
            "buckets": [(b.index, b.nodes, b.good, b.replacements) for b in core.routing.stats(now)],
            "peers_stored": len(core.peer_store),
            "items_stored": len(core.item_store),
            "packets_in": s.packets_in, "packets_out": s.packets_out,
            "bytes_in": s.bytes_in, "bytes_out": s.bytes_out,
            "queries_in": dict(s.queries_in), "queries_out": s.queries_out,
            "responses_in": s.responses_in, "errors_in": s.errors_in, "errors_out": s.errors_out,
            "timeouts": s.timeouts, "retries": s.retries,
            "dropped_rate_limited": s.dropped_rate_limited,
            "dropped_malformed": s.dropped_malformed,
            "dropped_unmatched": s.dropped_unmatched,
            "pending_transactions": core.pending_transactions(),
        }
