"""A simulated datagram network with a virtual clock (after py-ipv8's mock endpoint).

Why: sans-IO cores are fed ``(data, addr, now)`` and return datagrams and timers, so
thousands of them can share one process.  This module delivers their datagrams with
per-link latency and loss, on a virtual clock that jumps from event to event: a
10,000-node DHT lookup costs CPU time only, never wall-clock waiting.

Determinism: all randomness comes from the ``random.Random`` passed in.

Usage::

    net = SimNetwork(rng=random.Random(1), latency=lambda a, b: 0.05, loss=0.0)
    net.attach(addr, on_datagram)        # on_datagram(data, src_addr, now)
    net.send(src, dst, data)             # queued for delivery after latency
    net.call_at(when, callback)          # timers; callback(now)
    net.run_until(lambda: done, max_time=60.0)
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

Addr = tuple[str, int]
DatagramHandler = Callable[[bytes, Addr, float], None]


class VirtualClock:
    """Monotonic simulated time in seconds."""

    __slots__ = ("now",)

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class SimStats:
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    undeliverable: int = 0
    bytes_sent: int = 0
    per_sender: dict[Addr, int] = field(default_factory=dict)


class SimNetwork:
    """Delivers datagrams between attached handlers on a virtual clock."""

    def __init__(
        self,
        rng: random.Random,
        latency: Callable[[Addr, Addr], float] | float = 0.05,
        loss: float = 0.0,
        clock: VirtualClock | None = None,
        count_per_sender: bool = False,
    ) -> None:
        self.rng = rng
        self.clock = clock or VirtualClock()
        self._latency = latency
        self.loss = loss
        self._handlers: dict[Addr, DatagramHandler] = {}
        self._queue: list[tuple[float, int, Callable[[float], None]]] = []
        self._seq = itertools.count()
        self.stats = SimStats()
        self._count_per_sender = count_per_sender

    @property
    def now(self) -> float:
        return self.clock.now

    def attach(self, addr: Addr, handler: DatagramHandler) -> None:
        self._handlers[addr] = handler

    def detach(self, addr: Addr) -> None:
        """The host at ``addr`` goes offline: datagrams to it are silently dropped."""
        self._handlers.pop(addr, None)

    def is_attached(self, addr: Addr) -> bool:
        return addr in self._handlers

    def latency(self, src: Addr, dst: Addr) -> float:
        lat = self._latency
        return lat(src, dst) if callable(lat) else float(lat)

    def send(self, src: Addr, dst: Addr, data: bytes) -> None:
        self.stats.sent += 1
        self.stats.bytes_sent += len(data)
        if self._count_per_sender:
            self.stats.per_sender[src] = self.stats.per_sender.get(src, 0) + 1
        if self.loss and self.rng.random() < self.loss:
            self.stats.lost += 1
            return
        when = self.clock.now + self.latency(src, dst)

        def deliver(now: float, data: bytes = data, src: Addr = src, dst: Addr = dst) -> None:
            handler = self._handlers.get(dst)
            if handler is None:
                self.stats.undeliverable += 1
                return
            self.stats.delivered += 1
            handler(data, src, now)

        heapq.heappush(self._queue, (when, next(self._seq), deliver))

    def call_at(self, when: float, callback: Callable[[float], None]) -> None:
        heapq.heappush(self._queue, (max(when, self.clock.now), next(self._seq), callback))

    def call_later(self, delay: float, callback: Callable[[float], None]) -> None:
        self.call_at(self.clock.now + delay, callback)

    def step(self) -> bool:
        """Run the next event; False when nothing is left."""
        if not self._queue:
            return False
        when, _, callback = heapq.heappop(self._queue)
        self.clock.now = max(self.clock.now, when)
        callback(self.clock.now)
        return True

    def run_until(self, predicate: Callable[[], bool], max_time: float = float("inf"),
                  max_events: int = 100_000_000) -> bool:
        """Run events until ``predicate()`` holds; False if time or events ran out first."""
        events = 0
        while not predicate():
            if not self._queue or self._queue[0][0] > max_time or events >= max_events:
                return predicate()
            self.step()
            events += 1
        return True

    def run_for(self, duration: float) -> None:
        end = self.clock.now + duration
        while self._queue and self._queue[0][0] <= end:
            self.step()
        self.clock.now = max(self.clock.now, end)

    def pending(self) -> int:
        return len(self._queue)
