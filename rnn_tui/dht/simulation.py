"""Run many ``DhtCore``s on a ``SimNetwork`` (virtual clock, latency, loss, churn).

Why here and not in tests: the simulation test and ``bench/dht_sim.py`` share it.  A
``SimHost`` is the sim-side equivalent of the asyncio driver: it feeds datagrams in,
flushes datagrams out through the simulated network, re-arms the core's single timer and
collects completed operations.  Everything goes through the real codec.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from rnn_tui.dht.core import DhtConfig, DhtCore
from rnn_tui.dht.events import OperationCompleted, OperationResult
from rnn_tui.dht.messages import Addr
from rnn_tui.sim.network import SimNetwork


class SimHost:
    __slots__ = ("core", "addr", "net", "results", "_armed", "online")

    def __init__(self, net: SimNetwork, addr: Addr, rng: random.Random, config: DhtConfig) -> None:
        self.net = net
        self.addr = addr
        self.core = DhtCore(rng, net.now, config)
        self.results: dict[int, OperationResult] = {}
        self._armed: float | None = None
        self.online = True
        net.attach(addr, self._on_datagram)

    def _on_datagram(self, data: bytes, src: Addr, now: float) -> None:
        self.core.receive_datagram(data, src, now)
        self.pump()

    def pump(self) -> None:
        core = self.core
        send = self.net.send
        for data, dst in core.datagrams_to_send():
            send(self.addr, dst, data)
        while True:
            event = core.next_event()
            if event is None:
                break
            if type(event) is OperationCompleted:
                self.results[event.op_id] = event.result
        when = core.get_timer()
        if self._armed is None or when < self._armed:
            self._armed = when
            self.net.call_at(when, self._timer_callback(when))

    def _timer_callback(self, when: float) -> Callable[[float], None]:
        return lambda now: self._fire(when, now)

    def _fire(self, when: float, now: float) -> None:
        if self._armed != when or not self.online:
            return
        self._armed = None
        self.core.handle_timer(now)
        self.pump()

    def start(self, method: str, *args: Any, **kwargs: Any) -> int:
        """Call ``core.start_<method>(*args, now=..., **kwargs)`` and flush."""
        fn: Callable[..., int] = getattr(self.core, f"start_{method}")
        op_id = fn(*args, now=self.net.now, **kwargs)
        self.pump()
        return op_id

    def go_offline(self) -> None:
        self.online = False
        self.net.detach(self.addr)


def wait_all(net: SimNetwork, pending: list[tuple[SimHost, int]], timeout: float) -> bool:
    """Run the network until every (host, op_id) has a result, or ``timeout`` passes."""
    position = 0

    def finished() -> bool:
        nonlocal position
        while position < len(pending):
            host, op_id = pending[position]
            if op_id not in host.results:
                return False
            position += 1
        return True

    return net.run_until(finished, max_time=net.now + timeout)


def sim_address(index: int) -> Addr:
    """A distinct IPv4 address per node (10.x.y.z), so per-IP limits behave as on the Internet."""
    n = index + 1
    return (f"10.{(n >> 16) & 0xFF}.{(n >> 8) & 0xFF}.{n & 0xFF}", 6881)


def build_network(net: SimNetwork, count: int, rng: random.Random, config: DhtConfig,
                  *, batch: int = 50, settle: float = 5.0) -> list[SimHost]:
    """Create ``count`` hosts and bootstrap them in batches through already-joined nodes."""
    hosts: list[SimHost] = []
    for i in range(count):
        host = SimHost(net, sim_address(i), random.Random(rng.getrandbits(64)), config)
        hosts.append(host)
    first = hosts[0]
    pending: list[tuple[SimHost, int]] = []
    for start in range(1, count, batch):
        joined = hosts[:start]
        for host in hosts[start:start + batch]:
            seeds = [h.addr for h in rng.sample(joined, min(3, len(joined)))]
            pending.append((host, host.start("bootstrap", seeds)))
        wait_all(net, pending, 60.0)
        pending.clear()
    # The first node joined alone: let it look itself up now that others exist.
    op = first.start("bootstrap", [hosts[-1].addr])
    net.run_until(lambda: op in first.results, max_time=net.now + 60.0)
    net.run_for(settle)
    return hosts
