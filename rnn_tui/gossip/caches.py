"""Bounded memory of the gossip core: what we have seen, what we can serve, who may send.

Every structure here has a hard size cap, because every one of them is filled by peers:
an unbounded seen-cache or author table is a memory exhaustion attack.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from dataclasses import dataclass

from rnn_tui.gossip.wire import SignedMessage

__all__ = ["SeenCache", "MessageCache", "CachedMessage", "SequenceWindows", "LruSet", "TokenBucket",
           "AuthorBudgets"]


class SeenCache:
    """Message ids with an expiry; the oldest are evicted first when full.

    Insertion order equals expiry order (one TTL, monotone ``now``), so a plain dict is
    both the index and the queue.
    """

    __slots__ = ("_ttl", "_max", "_expiry", "evicted")

    def __init__(self, ttl: float, max_entries: int) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._expiry: dict[bytes, float] = {}
        self.evicted = 0

    def __contains__(self, msg_id: bytes) -> bool:
        return msg_id in self._expiry

    def __len__(self) -> int:
        return len(self._expiry)

    def add(self, msg_id: bytes, now: float) -> None:
        if msg_id in self._expiry:
            return
        if len(self._expiry) >= self._max:
            del self._expiry[next(iter(self._expiry))]
            self.evicted += 1
        self._expiry[msg_id] = now + self._ttl

    def expire(self, now: float) -> None:
        expiry = self._expiry
        while expiry:
            first = next(iter(expiry))
            if expiry[first] > now:
                break
            del expiry[first]


@dataclass(slots=True)
class CachedMessage:
    message: SignedMessage
    hops: int                           # hops at which it reached us (0: we authored it)
    served: dict[bytes, int]            # peer key -> times served through IWANT


class MessageCache:
    """Recent full messages in heartbeat windows (GossipSub's mcache).

    The newest ``gossip`` windows are advertised in IHAVE; all ``history`` windows can be
    served on IWANT.  ``shift()`` once per heartbeat drops the oldest window.
    """

    __slots__ = ("_windows", "_gossip", "_entries")

    def __init__(self, history: int, gossip: int) -> None:
        self._windows: deque[list[bytes]] = deque([[] for _ in range(history)], maxlen=history)
        self._gossip = gossip
        self._entries: dict[bytes, CachedMessage] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, message: SignedMessage, hops: int) -> None:
        if message.msg_id in self._entries:
            return
        self._entries[message.msg_id] = CachedMessage(message, hops, {})
        self._windows[0].append(message.msg_id)

    def get(self, msg_id: bytes) -> CachedMessage | None:
        return self._entries.get(msg_id)

    def gossip_ids(self, topic: str) -> list[bytes]:
        ids: list[bytes] = []
        for i, window in enumerate(self._windows):
            if i >= self._gossip:
                break
            ids.extend(m for m in window if self._entries[m].message.topic == topic)
        return ids

    def shift(self) -> None:
        oldest = self._windows[-1]
        for msg_id in oldest:
            self._entries.pop(msg_id, None)
        self._windows.appendleft([])


class SequenceWindows:
    """Per-author sliding window of accepted sequence numbers (replay/stale protection).

    We keep the ``window`` highest sequences seen from each author.  A sequence already
    in the window is a replay; one below the window's floor (once the window is full) is
    stale.  Authors are kept in LRU order up to ``max_authors``; a forgotten author's old
    messages are still refused by the message-age check.
    """

    __slots__ = ("_window", "_max_authors", "_authors")

    def __init__(self, window: int, max_authors: int) -> None:
        self._window = window
        self._max_authors = max_authors
        self._authors: OrderedDict[bytes, tuple[list[int], set[int]]] = OrderedDict()

    def check(self, author: bytes, seq: int) -> str | None:
        """None if acceptable, else the drop reason (``"replayed_seq"`` or ``"stale_seq"``)."""
        state = self._authors.get(author)
        if state is None:
            return None
        heap, members = state
        if seq in members:
            return "replayed_seq"
        if len(heap) >= self._window and seq < heap[0]:
            return "stale_seq"
        return None

    def accept(self, author: bytes, seq: int) -> None:
        state = self._authors.get(author)
        if state is None:
            if len(self._authors) >= self._max_authors:
                self._authors.popitem(last=False)
            state = ([], set())
            self._authors[author] = state
        else:
            self._authors.move_to_end(author)
        heap, members = state
        if seq in members:
            return
        heapq.heappush(heap, seq)
        members.add(seq)
        if len(heap) > self._window:
            members.discard(heapq.heappop(heap))


class LruSet:
    """A set that forgets its oldest members beyond ``max_entries``."""

    __slots__ = ("_max", "_items")

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._items: OrderedDict[bytes, None] = OrderedDict()

    def __contains__(self, item: bytes) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: bytes) -> None:
        self._items[item] = None
        self._items.move_to_end(item)
        if len(self._items) > self._max:
            self._items.popitem(last=False)


class TokenBucket:
    """Rate budget: ``rate`` tokens per second, at most ``burst`` saved up."""

    __slots__ = ("_rate", "_burst", "_tokens", "_last")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._last = now

    def take(self, now: float, amount: float = 1.0) -> bool:
        if now > self._last:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
            self._last = now
        if self._tokens >= amount:
            self._tokens -= amount
            return True
        return False


class AuthorBudgets:
    """One token bucket per author, for the ``max_authors`` most recently active authors.

    A forgotten author starts again with a full burst, which is no worse than a new one.
    """

    __slots__ = ("_rate", "_burst", "_max", "_buckets")

    def __init__(self, rate: float, burst: float, max_authors: int) -> None:
        self._rate = rate
        self._burst = burst
        self._max = max_authors
        self._buckets: OrderedDict[bytes, TokenBucket] = OrderedDict()

    def take(self, author: bytes, now: float) -> bool:
        bucket = self._buckets.get(author)
        if bucket is None:
            bucket = self._buckets[author] = TokenBucket(self._rate, self._burst, now)
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(author)
        return bucket.take(now)
