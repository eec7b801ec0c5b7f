"""Per-source-IP token buckets, so one flooding host cannot starve the node.

Bounded: at most ``max_sources`` IPs are tracked; when full, the least recently seen
source is forgotten (a flooder cycling through spoofed IPs only evicts itself).
"""

from __future__ import annotations

from collections import OrderedDict


class RateLimiter:
    __slots__ = ("rate", "burst", "max_sources", "_buckets", "dropped")

    def __init__(self, rate: float = 50.0, burst: float = 100.0, max_sources: int = 4096) -> None:
        self.rate = rate
        self.burst = burst
        self.max_sources = max_sources
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()
        self.dropped = 0

    def allow(self, ip: str, now: float) -> bool:
        bucket = self._buckets.get(ip)
        if bucket is None:
            if len(self._buckets) >= self.max_sources:
                self._buckets.popitem(last=False)
            self._buckets[ip] = [self.burst - 1.0, now]
            return True
        self._buckets.move_to_end(ip)
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            self.dropped += 1
            return False
        bucket[0] = tokens - 1.0
        return True

    def __len__(self) -> int:
        return len(self._buckets)

    def forget_idle(self, now: float) -> None:
        """Drop sources whose bucket has refilled: they are back at the burst anyway."""
        refill = self.burst / self.rate if self.rate > 0 else float("inf")
        for ip in [ip for ip, (_, last) in self._buckets.items() if now - last >= refill]:
            del self._buckets[ip]
