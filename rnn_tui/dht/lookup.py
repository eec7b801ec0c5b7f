"""Iterative Kademlia lookup as a pure object (after py-ipv8's ``Crawl``).

The lookup never sends anything: the operation that owns it asks ``next_queries()`` for
nodes to query, and feeds back ``on_response()`` / ``on_failure()``.  It converges on the
``k`` closest nodes that answered.

Parallelism: at most ``alpha`` queries in flight while answers keep bringing closer nodes.
When an answer brings nothing closer than the closest node already seen, the lookup
*widens* (Kademlia paper, section 2.3): every unqueried node among the ``k`` closest is
queried at once.  That final round is what keeps a lookup at ~4 round trips in a
10,000-node network instead of ~6 with a strict alpha of 3.

Done when no query is in flight and every one of the ``k`` closest non-failed candidates
has answered, or when ``max_queries`` have been sent.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from rnn_tui.dht.messages import NodeInfo

NEW, IN_FLIGHT, RESPONDED, FAILED = range(4)


class Candidate:
    __slots__ = ("node", "distance", "state", "token")

    def __init__(self, node: NodeInfo, distance: int) -> None:
        self.node = node
        self.distance = distance
        self.state = NEW
        self.token: bytes | None = None

    def __lt__(self, other: Candidate) -> bool:
        return self.distance < other.distance


class Lookup:
    def __init__(self, target: bytes, *, own_id: bytes | None = None, k: int = 8, alpha: int = 3,
                 max_candidates: int = 64, max_queries: int = 128) -> None:
        self.target = target
        self.k = k
        self.alpha = alpha
        self.max_candidates = max_candidates
        self.max_queries = max_queries
        self._target_int = int.from_bytes(target, "big")
        self._own_id = own_id
        self._candidates: list[Candidate] = []  # sorted by distance
        self._by_id: dict[bytes, Candidate] = {}
        self._in_flight = 0
        self._closest_seen: int | None = None
        self.widened = False
        self.queries_sent = 0
        self.responses = 0

    # ------------------------------------------------------------------ inputs

    def add_candidates(self, nodes: Iterable[NodeInfo]) -> bool:
        """Add nodes learnt from a reply or the routing table; True if one is closer."""
        improved = False
        for node in nodes:
            if node.node_id in self._by_id or node.node_id == self._own_id:
                continue
            cand = self._insert(node)
            if cand is not None and (self._closest_seen is None or cand.distance < self._closest_seen):
                self._closest_seen = cand.distance
                improved = True
        return improved

    def _insert(self, node: NodeInfo) -> Candidate | None:
        dist = int.from_bytes(node.node_id, "big") ^ self._target_int
        cands = self._candidates
        if len(cands) >= self.max_candidates and dist >= cands[-1].distance:
            return None
        cand = Candidate(node, dist)
        bisect.insort(cands, cand)
        self._by_id[node.node_id] = cand
        if len(cands) > self.max_candidates:
            for i in range(len(cands) - 1, -1, -1):
                if cands[i].state != IN_FLIGHT:
                    del self._by_id[cands[i].node.node_id]
                    del cands[i]
                    break
        return cand if cand.node.node_id in self._by_id else None

    def on_response(self, node: NodeInfo, nodes: Iterable[NodeInfo], token: bytes | None = None) -> None:
        cand = self._by_id.get(node.node_id)
        if cand is None:
            # A node we did not pick (a bootstrap address answering with its id).
            cand = self._insert(node)
            if cand is None:
                self.add_candidates(nodes)
                return
        elif cand.state == IN_FLIGHT:
            self._in_flight -= 1
        elif cand.state in (RESPONDED, FAILED):
            return
        cand.state = RESPONDED
        cand.token = token
        self.responses += 1
        if self._closest_seen is None or cand.distance < self._closest_seen:
            self._closest_seen = cand.distance
        if not self.add_candidates(nodes):
            self.widened = True

    def on_failure(self, node: NodeInfo) -> None:
        cand = self._by_id.get(node.node_id)
        if cand is None or cand.state != IN_FLIGHT:
            return
        self._in_flight -= 1
        cand.state = FAILED

    # ----------------------------------------------------------------- outputs

    def next_queries(self) -> list[NodeInfo]:
        """Nodes to query now (marked in flight)."""
        limit = self.k if self.widened else self.alpha
        out: list[NodeInfo] = []
        considered = 0
        for cand in self._candidates:
            if self._in_flight >= limit or self.queries_sent >= self.max_queries:
                break
            if cand.state == FAILED:
                continue
            considered += 1
            if considered > self.k:
                break
            if cand.state == NEW:
                cand.state = IN_FLIGHT
                self._in_flight += 1
                self.queries_sent += 1
                out.append(cand.node)
        return out

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def done(self) -> bool:
        if self._in_flight:
            return False
        if self.queries_sent >= self.max_queries:
            return True
        considered = 0
        for cand in self._candidates:
            if cand.state == FAILED:
                continue
            if cand.state == NEW:
                return False
            considered += 1
            if considered >= self.k:
                break
        return True

    def closest_responded(self, count: int | None = None) -> list[tuple[NodeInfo, bytes | None]]:
        """The closest nodes that answered, with the token each gave (closest first)."""
        count = self.k if count is None else count
        out = []
        for cand in self._candidates:
            if cand.state == RESPONDED:
                out.append((cand.node, cand.token))
                if len(out) >= count:
                    break
        return out
