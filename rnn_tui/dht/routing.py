"""Kademlia routing table for the Mainline DHT (BEP 5).

Layout: buckets indexed by the length of the prefix a node id shares with ours.  Bucket
``i`` (``i < len(buckets) - 1``) holds nodes sharing exactly ``i`` leading bits; the last
bucket holds everyone closer.  Splitting the bucket that contains our own id is then
"append a bucket and move the nodes that now belong there" (as libtorrent does), which is
equivalent to BEP 5's tree of ranges and needs no tree.

Node states (BEP 5): *good* if it answered one of our queries in the last 15 minutes (or
answered once and queried us in the last 15 minutes); *questionable* after 15 minutes of
silence or if it never answered; *bad* after ``BAD_FAILURES`` failed queries in a row.
A full bucket keeps newcomers in a bounded replacement cache; when a member turns bad
the freshest replacement takes its place.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from rnn_tui.dht.messages import Addr, NodeInfo, pack_addr

K = 8
ID_BITS = 160
GOOD_WINDOW = 15 * 60.0
BAD_FAILURES = 2
REPLACEMENTS = 8


def distance(a: bytes, b: bytes) -> int:
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def shared_prefix_bits(a: bytes, b: bytes) -> int:
    return ID_BITS - distance(a, b).bit_length()


class NodeEntry:
    """One routing-table entry.  Mutable on purpose: its timestamps change all the time."""

    __slots__ = ("node_id", "addr", "last_response", "last_query", "failures", "_compact")

    def __init__(self, node_id: bytes, addr: Addr) -> None:
        self.node_id = node_id
        self.addr = addr
        self._compact: bytes | None = None
        self.last_response: float | None = None
        self.last_query: float | None = None
        self.failures = 0

    def is_good(self, now: float) -> bool:
        if self.last_response is None or self.failures:
            return False
        last = max(self.last_response, self.last_query or 0.0)
        return now - last < GOOD_WINDOW

    def is_bad(self) -> bool:
        return self.failures >= BAD_FAILURES or (self.failures >= 1 and self.last_response is None)

    def info(self) -> NodeInfo:
        return NodeInfo(self.node_id, self.addr)

    def compact(self) -> bytes:
        """26-byte compact node info, computed once (it is in every reply we send)."""
        if self._compact is None:
            self._compact = self.node_id + pack_addr(self.addr)
        return self._compact

    def __repr__(self) -> str:
        return f"NodeEntry({self.node_id.hex()[:8]}, {self.addr})"


class Bucket:
    __slots__ = ("nodes", "replacements", "last_changed")

    def __init__(self, now: float) -> None:
        self.nodes: list[NodeEntry] = []
        self.replacements: list[NodeEntry] = []
        self.last_changed = now


@dataclass(frozen=True, slots=True)
class BucketStats:
    index: int
    nodes: int
    good: int
    replacements: int
    last_changed: float


class RoutingTable:
    """Buckets of at most ``k`` nodes around ``own_id``."""

    def __init__(self, own_id: bytes, now: float, k: int = K) -> None:
        self.own_id = own_id
        self.k = k
        self.buckets: list[Bucket] = [Bucket(now)]
        self._by_id: dict[bytes, NodeEntry] = {}

    # -------------------------------------------------------------- lookups

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._by_id

    def get(self, node_id: bytes) -> NodeEntry | None:
        return self._by_id.get(node_id)

    def entries(self) -> Iterator[NodeEntry]:
        for bucket in self.buckets:
            yield from bucket.nodes

    def bucket_index(self, node_id: bytes) -> int:
        return min(shared_prefix_bits(self.own_id, node_id), len(self.buckets) - 1)

    def closest(self, target: bytes, count: int | None = None,
                exclude_bad: bool = True) -> list[NodeInfo]:
        """The ``count`` (default k) known nodes closest to ``target``, closest first."""
        return [e.info() for e in self.closest_entries(target, count, exclude_bad)]

    def closest_entries(self, target: bytes, count: int | None = None,
                        exclude_bad: bool = True) -> list[NodeEntry]:
        count = self.k if count is None else count
        t = int.from_bytes(target, "big")
        # Scanning every entry (~8 per bucket, ~20 buckets) is cheap and always correct.
        entries: Iterable[NodeEntry] = self._by_id.values()
        if exclude_bad:
            entries = [e for e in entries if not e.is_bad()]
        return heapq.nsmallest(count, entries, key=lambda e: int.from_bytes(e.node_id, "big") ^ t)

    def closest_compact(self, target: bytes, count: int | None = None) -> bytes:
        """Compact node info of the closest nodes, ready for a ``nodes`` reply field."""
        return b"".join(e.compact() for e in self.closest_entries(target, count))

    # -------------------------------------------------------------- updates

    def heard_from(self, node_id: bytes, addr: Addr, now: float, *, responded: bool) -> NodeEntry | None:
        """Record traffic from a node; add it if there is room.

        ``responded`` is True for a reply to our query (proof the address is real), False
        for a query it sent us.  Returns the entry if the node is (now) in the table.
        """
        if node_id == self.own_id:
            return None
        try:
            compact_addr = pack_addr(addr)
        except ValueError:
            return None  # IPv6 or a name: cannot appear in compact node info (IPv4 only)
        entry = self._by_id.get(node_id)
        if entry is not None:
            if entry.addr != addr:
                # Same id from another address: keep the proven one (anti-hijack), unless the
                # old one is failing.
                if not entry.is_bad():
                    return None
                entry.addr = addr
                entry._compact = None
            if responded:
                entry.last_response = now
                entry.failures = 0
            else:
                entry.last_query = now
            return entry
        new = NodeEntry(node_id, addr)
        new._compact = node_id + compact_addr
        if responded:
            new.last_response = now
        else:
            new.last_query = now
        return self._insert(new, now)

    def heard_about(self, node_id: bytes, addr: Addr, now: float) -> None:
        """A node named in someone's reply: take it only into a bucket with free room.

        It enters unconfirmed (questionable); it never displaces a member and never goes to
        the replacement cache, and one failed query makes it bad.
        """
        if node_id == self.own_id or node_id in self._by_id:
            return
        index = self.bucket_index(node_id)
        bucket = self.buckets[index]
        if len(bucket.nodes) >= self.k and index != len(self.buckets) - 1:
            return
        try:
            compact = node_id + pack_addr(addr)
        except ValueError:
            return
        entry = NodeEntry(node_id, addr)
        entry._compact = compact
        inserted = self._insert(entry, now)
        if inserted is None:  # went to a replacement cache after a split: take it back out
            bucket = self.buckets[self.bucket_index(node_id)]
            bucket.replacements = [e for e in bucket.replacements if e is not entry]

    def _insert(self, new: NodeEntry, now: float) -> NodeEntry | None:
        while True:
            index = self.bucket_index(new.node_id)
            bucket = self.buckets[index]
            if len(bucket.nodes) < self.k:
                bucket.nodes.append(new)
                bucket.last_changed = now
                self._by_id[new.node_id] = new
                return new
            for i, old in enumerate(bucket.nodes):
                if old.is_bad():
                    del self._by_id[old.node_id]
                    bucket.nodes[i] = new
                    bucket.last_changed = now
                    self._by_id[new.node_id] = new
                    return new
            if index == len(self.buckets) - 1 and len(self.buckets) < ID_BITS:
                self._split_last(now)
                continue
            self._add_replacement(bucket, new)
            return None

    def _add_replacement(self, bucket: Bucket, new: NodeEntry) -> None:
        reps = bucket.replacements
        for i, old in enumerate(reps):
            if old.node_id == new.node_id:
                del reps[i]
                break
        reps.append(new)
        if len(reps) > REPLACEMENTS:
            del reps[0]

    def _split_last(self, now: float) -> None:
        last = self.buckets[-1]
        new = Bucket(now)
        new.last_changed = last.last_changed
        self.buckets.append(new)
        depth = len(self.buckets) - 2  # index of the bucket being split
        stay: list[NodeEntry] = []
        for entry in last.nodes:
            (stay if shared_prefix_bits(self.own_id, entry.node_id) == depth else new.nodes).append(entry)
        last.nodes = stay
        keep: list[NodeEntry] = []
        for entry in last.replacements:
            (keep if shared_prefix_bits(self.own_id, entry.node_id) == depth else new.replacements).append(entry)
        last.replacements = keep

    def failed(self, node_id: bytes, now: float) -> None:
        """A query to this node timed out.  A bad node is swapped for a fresh replacement."""
        entry = self._by_id.get(node_id)
        if entry is None:
            return
        entry.failures += 1
        if entry.is_bad():
            bucket = self.buckets[self.bucket_index(node_id)]
            if bucket.replacements:
                bucket.nodes.remove(entry)
                del self._by_id[node_id]
                replacement = bucket.replacements.pop()
                bucket.nodes.append(replacement)
                self._by_id[replacement.node_id] = replacement
                bucket.last_changed = now

    def remove(self, node_id: bytes) -> None:
        entry = self._by_id.pop(node_id, None)
        if entry is not None:
            self.buckets[self.bucket_index(node_id)].nodes.remove(entry)

    # ---------------------------------------------------------- maintenance

    def stale_buckets(self, now: float, max_age: float = GOOD_WINDOW) -> list[int]:
        return [i for i, b in enumerate(self.buckets) if now - b.last_changed >= max_age]

    def touch_bucket(self, index: int, now: float) -> None:
        self.buckets[index].last_changed = now

    def random_id_in_bucket(self, index: int, random_bits: int) -> bytes:
        """An id that falls into bucket ``index``; ``random_bits`` is 160 random bits."""
        own = int.from_bytes(self.own_id, "big")
        if index == len(self.buckets) - 1:
            prefix_len = index  # anything sharing >= index bits
            mask = (1 << (ID_BITS - prefix_len)) - 1
            value = (own & ~mask) | (random_bits & mask)
        else:
            flip = 1 << (ID_BITS - 1 - index)
            mask = flip - 1
            value = ((own ^ flip) & ~mask) | (random_bits & mask)
        return value.to_bytes(20, "big")

    def questionable(self, now: float) -> list[NodeEntry]:
        return [e for e in self.entries() if not e.is_good(now) and not e.is_bad()]

    def stats(self, now: float) -> list[BucketStats]:
        return [BucketStats(i, len(b.nodes), sum(1 for e in b.nodes if e.is_good(now)),
                            len(b.replacements), b.last_changed)
                for i, b in enumerate(self.buckets)]

    def rebuild(self, own_id: bytes, now: float) -> None:
        """Our id changed (BEP 42): re-insert every known node around the new id."""
        old = list(self.entries())
        self.own_id = own_id
        self.buckets = [Bucket(now)]
        self._by_id = {}
        for entry in old:
            if entry.node_id != own_id:
                self._insert(entry, now)

    def add_many(self, nodes: Iterable[tuple[bytes, Addr]], now: float) -> None:
        """Seed entries (e.g. saved nodes) as unconfirmed; they must still answer a ping."""
        for node_id, addr in nodes:
            if node_id not in self._by_id and node_id != self.own_id:
                try:
                    compact = node_id + pack_addr(addr)
                except ValueError:
                    continue
                entry = NodeEntry(node_id, addr)
                entry._compact = compact
                self._insert(entry, now)
