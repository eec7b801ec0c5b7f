"""Keeps a NATed node reserved on its best relays: chosen by RTT, renewed, replaced.

Why: a reservation is what makes a node behind a filtering NAT reachable at all.  Relays
come and go, so the node keeps ``want`` reservations, on the candidates with the lowest
measured ping RTT, renews each before its TTL runs out, and when a relay's connection
drops it reserves on the next best candidate and reports the new set (``on_change``) so
the node republishes its metadata.  Candidates that refuse or fail are set aside for
``retry_after`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rnn_tui.errors import RnnError
from rnn_tui.identity import PeerId
from rnn_tui.nat.model import Addr
from rnn_tui.nat.relay_driver import RelayClient
from rnn_tui.transport import PeerConnection, PeerDisconnected, Transport, TransportEvent
from rnn_tui.util.tasks import TaskManager

__all__ = ["RelayManager", "ActiveRelay", "pick_relays"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ActiveRelay:
    """A relay we hold a reservation on (what the BEP 44 metadata advertises)."""

    peer: PeerId
    addr: Addr
    rtt: float
    expires: float


def pick_relays(rtts: dict[PeerId, float], want: int, exclude: Iterable[PeerId]) -> list[PeerId]:
    """The ``want`` candidates with the lowest RTT, skipping ``exclude`` (ties by id)."""
    skip = set(exclude)
    ranked = sorted((rtt, peer.key, peer) for peer, rtt in rtts.items() if peer not in skip)
    return [peer for _, _, peer in ranked[:want]]


class RelayManager:
    def __init__(self, transport: Transport, client: RelayClient, *, want: int = 2,
                 renew_fraction: float = 0.8, retry_after: float = 300.0,
                 request_timeout: float = 5.0,
                 on_change: Callable[[list[ActiveRelay]], None] = lambda relays: None) -> None:
        if want < 1:
            raise ValueError("want must be at least 1 relay")
        self.transport = transport
        self.client = client
        self.want = want
        self.renew_fraction = renew_fraction
        self.retry_after = retry_after
        self.request_timeout = request_timeout
        self.on_change = on_change
        self._loop = asyncio.get_running_loop()
        self._candidates: dict[PeerId, Addr] = {}
        self._rtts: dict[PeerId, float] = {}
        self._failed: dict[PeerId, float] = {}
        self._active: dict[PeerId, ActiveRelay] = {}
        self._conns: dict[PeerId, PeerConnection] = {}
        self._tasks = TaskManager("nat-relays")
        self._refresh_lock = asyncio.Lock()
        self._closed = False
        transport.add_listener(self._on_transport_event)

    @property
    def active(self) -> list[ActiveRelay]:
        return sorted(self._active.values(), key=lambda r: r.rtt)

    def add_candidates(self, candidates: Iterable[tuple[Addr, PeerId]]) -> None:
        """Public nodes offering relay service (from metadata, identify capabilities...)."""
        for addr, peer in candidates:
            if peer != self.transport.identity.peer_id:
                self._candidates[peer] = addr

    def start(self, interval: float = 30.0) -> None:
        """Refresh now, then every ``interval`` seconds (renewals and replacements)."""
        async def tick() -> None:
            await self.refresh()

        self._tasks.every("refresh", interval, tick, delay=0.0)

    async def close(self) -> None:
        self._closed = True  # relays dropping while the node stops are not replaced
        await self._tasks.shutdown()

    async def refresh(self) -> list[ActiveRelay]:
        """Renew what is due, fill missing slots with the best candidates; report changes."""
        async with self._refresh_lock:
            before = set(self._active)
            now = self._loop.time()
            for peer, relay in list(self._active.items()):
                ttl_left = relay.expires - now
                conn = self._conns.get(peer)
                if conn is None or not conn.is_open:
                    self._lose(peer, now)
                elif ttl_left < (1 - self.renew_fraction) * self._ttl(relay, now):
                    await self._reserve(peer, conn, now)
            if len(self._active) < self.want:
                await self._measure(now)
                excluded = set(self._active) | {p for p, t in self._failed.items()
                                                if now - t < self.retry_after}
                for peer in pick_relays(self._rtts, len(self._rtts), excluded):
                    if len(self._active) >= self.want:
                        break
                    conn = self._conns.get(peer)
                    if conn is not None and conn.is_open:
                        await self._reserve(peer, conn, now)
            if set(self._active) != before:
                self.on_change(self.active)
            return self.active

    @staticmethod
    def _ttl(relay: ActiveRelay, now: float) -> float:
        return max(relay.expires - now, 1.0)

    async def _measure(self, now: float) -> None:
        for peer, addr in self._candidates.items():
            if peer in self._rtts or now - self._failed.get(peer, -1e18) < self.retry_after:
                continue
            try:
                conn = self._conns.get(peer)
                if conn is None or not conn.is_open:
                    conn = await self.transport.dial(addr, expected_peer_id=peer,
                                                     timeout=self.request_timeout)
                    self._conns[peer] = conn
                self._rtts[peer] = await self.transport.ping(conn, timeout=self.request_timeout)
            except RnnError as exc:
                log.info("relay candidate %s unusable: %s", peer.short, exc)
                self._failed[peer] = now

    async def _reserve(self, peer: PeerId, conn: PeerConnection, now: float) -> None:
        try:
            accepted = await self.client.reserve(conn, timeout=self.request_timeout)
        except RnnError as exc:
            log.info("relay %s refused or failed a reservation: %s", peer.short, exc)
            self._failed[peer] = now
            self._active.pop(peer, None)
            return
        self._active[peer] = ActiveRelay(peer, self._candidates.get(peer, conn.remote_addr),
                                         self._rtts.get(peer, float("inf")), now + accepted.ttl)

    def _lose(self, peer: PeerId, now: float) -> None:
        self._active.pop(peer, None)
        self._conns.pop(peer, None)
        self._rtts.pop(peer, None)
        self._failed[peer] = now

    def _on_transport_event(self, event: TransportEvent) -> None:
        if self._closed:
            return
        if isinstance(event, PeerDisconnected) and event.peer_id in self._active:
            self._lose(event.peer_id, self._loop.time())
            self.on_change(self.active)
            if not self._tasks.is_running("replace"):
                self._tasks.spawn("replace", self.refresh())
