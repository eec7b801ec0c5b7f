"""What a DHT node stores for others: announced peers (BEP 5) and BEP 44 items.

Why bounded: any host on the Internet can write here.  Every structure has a cap (per
infohash, per source IP, in total) and an expiry, so memory stays bounded whatever
peers send.  Nothing here is persisted: after a restart, publishers re-announce (peers
every 30 minutes, BEP 44 items hourly), so stored data is soft state.

| what              | key                      | kept for | caps                            |
|-------------------|--------------------------|----------|---------------------------------|
| peers             | infohash -> (ip, port)   | 30 min   | 100 per infohash, 2000 hashes   |
| BEP 44 items      | target (sha1)            | 2 h      | 32 per source IP, 4096 in total |
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from rnn_tui.dht.messages import Addr, pack_addr

PEER_TTL = 30 * 60.0
ITEM_TTL = 2 * 60 * 60.0


class PeerStore:
    def __init__(self, max_per_infohash: int = 100, max_infohashes: int = 2000,
                 ttl: float = PEER_TTL) -> None:
        self.max_per_infohash = max_per_infohash
        self.max_infohashes = max_infohashes
        self.ttl = ttl
        # infohash -> (compact addr -> expiry); insertion order = age (oldest first)
        self._peers: OrderedDict[bytes, OrderedDict[bytes, float]] = OrderedDict()

    def announce(self, infohash: bytes, addr: Addr, now: float) -> bool:
        try:
            compact = pack_addr(addr)
        except ValueError:
            return False
        peers = self._peers.get(infohash)
        if peers is None:
            if len(self._peers) >= self.max_infohashes:
                self._peers.popitem(last=False)
            peers = self._peers[infohash] = OrderedDict()
        else:
            self._peers.move_to_end(infohash)
        peers.pop(compact, None)
        peers[compact] = now + self.ttl
        if len(peers) > self.max_per_infohash:
            peers.popitem(last=False)
        return True

    def get(self, infohash: bytes, now: float, limit: int = 50) -> list[bytes]:
        """Compact addresses (6 bytes) of live peers, freshest first."""
        peers = self._peers.get(infohash)
        if not peers:
            return []
        out = []
        for compact, expiry in reversed(peers.items()):
            if expiry > now:
                out.append(compact)
                if len(out) >= limit:
                    break
        return out

    def expire(self, now: float) -> None:
        for infohash in list(self._peers):
            peers = self._peers[infohash]
            for compact in [c for c, exp in peers.items() if exp <= now]:
                del peers[compact]
            if not peers:
                del self._peers[infohash]

    def __len__(self) -> int:
        return sum(len(p) for p in self._peers.values())

    def infohashes(self) -> int:
        return len(self._peers)


@dataclass(frozen=True, slots=True)
class StoredItem:
    """A BEP 44 item as stored; ``public_key`` is None for immutable items."""

    value: Any
    public_key: bytes | None
    salt: bytes
    seq: int
    signature: bytes
    source_ip: str
    expires: float


class ItemStore:
    def __init__(self, max_items: int = 4096, max_per_ip: int = 32, ttl: float = ITEM_TTL) -> None:
        self.max_items = max_items
        self.max_per_ip = max_per_ip
        self.ttl = ttl
        self._items: OrderedDict[bytes, StoredItem] = OrderedDict()  # oldest write first
        self._per_ip: dict[str, int] = {}

    def get(self, target: bytes, now: float) -> StoredItem | None:
        item = self._items.get(target)
        if item is None:
            return None
        if item.expires <= now:
            self._drop(target)
            return None
        return item

    def put(self, target: bytes, item: StoredItem) -> None:
        """Store or replace; validity (signature, seq, cas) is checked by the caller."""
        if target in self._items:
            self._drop(target)
        ip = item.source_ip
        if self._per_ip.get(ip, 0) >= self.max_per_ip:
            # Evict this source's oldest item: a greedy IP only competes with itself.
            for old_target, old in self._items.items():
                if old.source_ip == ip:
                    self._drop(old_target)
                    break
        if len(self._items) >= self.max_items:
            self._drop(next(iter(self._items)))
        self._items[target] = item
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1

    def _drop(self, target: bytes) -> None:
        item = self._items.pop(target)
        count = self._per_ip[item.source_ip] - 1
        if count:
            self._per_ip[item.source_ip] = count
        else:
            del self._per_ip[item.source_ip]

    def expire(self, now: float) -> None:
        for target in [t for t, item in self._items.items() if item.expires <= now]:
            self._drop(target)

    def __len__(self) -> int:
        return len(self._items)

    def sources(self) -> int:
        return len(self._per_ip)
