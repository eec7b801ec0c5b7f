"""The sans-IO Mainline DHT node (BEP 5, 42, 43, 44).

Only three inputs change its state, as in aioquic's ``QuicConnection``:

- ``receive_datagram(data, addr, now)``: a packet from the socket owner;
- ``handle_timer(now)``: the deadline from ``get_timer()`` passed;
- API calls (``start_ping``, ``start_get_peers``, ``start_put_mutable`` ...) that take ``now``.

Outputs are drained by the driver: ``datagrams_to_send()``, ``next_event()``,
``get_timer()``.  There is no socket, clock or randomness inside: node id, token secrets
and transaction ids come from the injected ``random.Random``.

Hostile input never raises out of the core: a malformed query gets a KRPC error reply,
anything else malformed is dropped and counted (``stats()``).  Every structure is bounded:
routing table (k per bucket), transactions (``max_transactions``), rate-limiter sources,
peer and item stores.
"""

from __future__ import annotations

import random
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from heapq import heappop, heappush
from typing import Any

from rnn_tui.dht import secure_id
from rnn_tui.dht.bep44 import MAX_VALUE_SIZE, Signer
from rnn_tui.dht.codec import encode
from rnn_tui.dht.events import (
    DhtEvent,
    ExternalAddressChanged,
    NodeIdChanged,
    OperationCompleted,
    OperationResult,
)
from rnn_tui.dht.messages import (
    ID_LEN,
    PROTOCOL_ERROR,
    SERVER_ERROR,
    Addr,
    ErrorReply,
    KrpcError,
    NodeInfo,
    Query,
    Response,
    TidKrpcError,
    build_error,
    build_query,
    build_response,
    parse_message,
)
from rnn_tui.dht.operations import (
    AnnounceOp,
    GetImmutableOp,
    GetMutableOp,
    GetPeersOp,
    LookupOp,
    Operation,
    PingOp,
    PutImmutableOp,
    PutMutableOp,
)
from rnn_tui.dht.ratelimit import RateLimiter
from rnn_tui.dht.routing import RoutingTable
from rnn_tui.dht.server import QueryServer
from rnn_tui.dht.storage import ItemStore, PeerStore
from rnn_tui.dht.tokens import TokenManager
from rnn_tui.errors import LocalProtocolError


@dataclass(frozen=True, slots=True)
class DhtConfig:
    k: int = 8
    alpha: int = 3
    query_timeout: float = 2.0
    query_retries: int = 1
    #: lookup queries: a shorter timeout and no retry (other candidates cover a loss),
    #: so one dead node does not hold a lookup for two full timeouts
    lookup_timeout: float = 1.0
    #: BEP 43: we are not reachable; mark our queries ``ro=1`` and answer nothing
    read_only: bool = False
    rate_limit: float = 50.0
    rate_burst: float = 100.0
    max_transactions: int = 4096
    max_items: int = 4096
    max_items_per_ip: int = 32
    max_peers_per_infohash: int = 100
    max_infohashes: int = 2000
    #: distinct reporters that must agree on our external IP before we believe it
    ip_votes_needed: int = 3
    #: regenerate our id from a global external IP (BEP 42)
    secure_ids: bool = True
    #: nodes named in replies fill free bucket slots (unconfirmed), as libtorrent does
    learn_from_replies: bool = True
    maintenance_interval: float = 60.0
    bucket_refresh_after: float = 15 * 60.0


@dataclass
class DhtStats:
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    queries_in: dict[str, int] = field(default_factory=dict)
    queries_out: int = 0
    responses_in: int = 0
    errors_in: int = 0
    errors_out: int = 0
    timeouts: int = 0
    retries: int = 0
    dropped_rate_limited: int = 0
    dropped_malformed: int = 0
    dropped_unmatched: int = 0
    dropped_read_only: int = 0


class Transaction:
    __slots__ = ("tid", "addr", "node", "method", "payload", "deadline", "attempts", "op",
                 "retries", "timeout")

    def __init__(self, tid: bytes, addr: Addr, node: NodeInfo | None, method: bytes,
                 payload: bytes, deadline: float, op: Operation | None, retries: int,
                 timeout: float) -> None:
        self.retries = retries
        self.timeout = timeout
        self.tid = tid
        self.addr = addr
        self.node = node
        self.method = method
        self.payload = payload
        self.deadline = deadline
        self.attempts = 1
        self.op = op


class DhtCore:
    """One DHT node.  See the module docstring for the contract."""

    def __init__(self, rng: random.Random, now: float, config: DhtConfig | None = None,
                 node_id: bytes | None = None) -> None:
        self.config = config or DhtConfig()
        self._rng = rng
        if node_id is not None and len(node_id) != ID_LEN:
            raise LocalProtocolError(f"node id must be {ID_LEN} bytes, not {len(node_id)}")
        self.node_id = node_id if node_id is not None else rng.randbytes(ID_LEN)
        cfg = self.config
        self.routing = RoutingTable(self.node_id, now, cfg.k)
        self.tokens = TokenManager(rng.randbytes, now)
        self.peer_store = PeerStore(cfg.max_peers_per_infohash, cfg.max_infohashes)
        self.item_store = ItemStore(cfg.max_items, cfg.max_items_per_ip)
        self.server = QueryServer(own_id=lambda: self.node_id,
                                  closest=lambda target: self.routing.closest_compact(target),
                                  tokens=self.tokens, peers=self.peer_store, items=self.item_store)
        self.rate_limiter = RateLimiter(cfg.rate_limit, cfg.rate_burst)
        self.stats = DhtStats()
        self.external_ip: str | None = None
        self._ip_votes: OrderedDict[str, str] = OrderedDict()  # reporter ip -> reported ip
        #: (responder, the address it says it sees us at) per reply with an ``ip`` field,
        #: for NAT detection, which needs every report and not just the agreed IP; the
        #: driver drains it; bounded so an undrained core cannot grow
        self.address_reports: deque[tuple[Addr, Addr]] = deque(maxlen=64)
        self._outbox: list[tuple[bytes, Addr]] = []
        self._events: deque[DhtEvent] = deque()
        self._transactions: dict[bytes, Transaction] = {}
        self._deadlines: list[tuple[float, bytes]] = []
        self._ops: dict[int, Operation] = {}
        self._next_op_id = 1
        self._next_maintenance = now + cfg.maintenance_interval

    # ================================================================ outputs

    @property
    def own_id(self) -> bytes:
        return self.node_id

    def datagrams_to_send(self) -> list[tuple[bytes, Addr]]:
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> DhtEvent | None:
        return self._events.popleft() if self._events else None

    def set_read_only(self, read_only: bool) -> None:
        """Enter or leave BEP 43 read-only mode (the node learned it is (un)reachable).

        Why at runtime: a node learns whether it is reachable only after it has talked to
        peers (NAT detection, dial-back); an unreachable node that answers queries gets
        into routing tables where it is dead weight for everyone else.
        """
        if read_only != self.config.read_only:
            self.config = replace(self.config, read_only=read_only)

    def get_timer(self) -> float:
        deadlines = self._deadlines
        while deadlines:
            when, tid = deadlines[0]
            txn = self._transactions.get(tid)
            if txn is not None and txn.deadline == when:
                return min(when, self._next_maintenance)
            heappop(deadlines)  # stale entry
        return self._next_maintenance

    def _send(self, data: bytes, addr: Addr) -> None:
        self.stats.packets_out += 1
        self.stats.bytes_out += len(data)
        self._outbox.append((data, addr))

    # ================================================================ input

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        stats = self.stats
        stats.packets_in += 1
        stats.bytes_in += len(data)
        if not self.rate_limiter.allow(addr[0], now):
            stats.dropped_rate_limited += 1
            return
        try:
            message = parse_message(data)
        except TidKrpcError as exc:
            stats.dropped_malformed += 1
            if not self.config.read_only:
                stats.errors_out += 1
                self._send(build_error(exc.tid, exc.code, str(exc)), addr)
            return
        except KrpcError:
            stats.dropped_malformed += 1
            return
        if type(message) is Query:
            self._on_query(message, addr, now)
        elif type(message) is Response:
            self._on_response(message, addr, now)
        else:
            assert isinstance(message, ErrorReply)
            self._on_error(message, addr, now)

    def _on_query(self, query: Query, addr: Addr, now: float) -> None:
        stats = self.stats
        name = query.method.decode("ascii", "replace")[:20]
        if name in ("ping", "find_node", "get_peers", "announce_peer", "get", "put"):
            stats.queries_in[name] = stats.queries_in.get(name, 0) + 1
        else:
            stats.queries_in["other"] = stats.queries_in.get("other", 0) + 1
        if self.config.read_only:
            stats.dropped_read_only += 1
            return  # BEP 43: a read-only node does not answer
        if not query.read_only:
            self.routing.heard_from(query.sender_id, addr, now, responded=False)
        try:
            values = self.server.handle(query, addr, now)
        except KrpcError as exc:
            stats.errors_out += 1
            self._send(build_error(query.tid, exc.code or PROTOCOL_ERROR, str(exc)), addr)
            return
        except Exception as exc:  # a bug in a handler must not take the node down
            stats.errors_out += 1
            self._send(build_error(query.tid, SERVER_ERROR, f"server error: {type(exc).__name__}"), addr)
            return
        self._send(build_response(query.tid, values, addr), addr)

    def _match(self, tid: bytes, addr: Addr) -> Transaction | None:
        txn = self._transactions.get(tid)
        if txn is None or txn.addr != addr:
            self.stats.dropped_unmatched += 1
            return None
        del self._transactions[tid]
        return txn

    def _on_response(self, response: Response, addr: Addr, now: float) -> None:
        txn = self._match(response.tid, addr)
        if txn is None:
            return
        self.stats.responses_in += 1
        self.routing.heard_from(response.sender_id, addr, now, responded=True)
        if response.reported_addr is not None:
            self._vote_external(addr[0], response.reported_addr, now)
            self.address_reports.append((addr, response.reported_addr))
        self._dispatch(txn, response, None, now)

    def _on_error(self, error: ErrorReply, addr: Addr, now: float) -> None:
        txn = self._match(error.tid, addr)
        if txn is None:
            return
        self.stats.errors_in += 1
        if txn.node is not None:
            self.routing.heard_from(txn.node.node_id, addr, now, responded=True)
        self._dispatch(txn, None, error, now)

    def _dispatch(self, txn: Transaction, response: Response | None, error: ErrorReply | None,
                  now: float) -> None:
        op = txn.op
        if op is None or op.finished:
            return
        try:
            op.on_reply(self, txn.node, txn.addr, response, error, now)
        except (KrpcError, ValueError, TypeError, KeyError):
            # A reply shaped in a way an operation did not expect: treat it as a failure.
            if not op.finished:
                op.on_reply(self, txn.node, txn.addr, None, None, now)

    # ============================================================== timers

    def handle_timer(self, now: float) -> None:
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            when, tid = heappop(deadlines)
            txn = self._transactions.get(tid)
            if txn is None or txn.deadline != when:
                continue
            if txn.attempts <= txn.retries:
                txn.attempts += 1
                txn.deadline = now + txn.timeout
                heappush(deadlines, (txn.deadline, tid))
                self.stats.retries += 1
                self._send(txn.payload, txn.addr)
                continue
            del self._transactions[tid]
            self.stats.timeouts += 1
            if txn.node is not None:
                self.routing.failed(txn.node.node_id, now)
            self._dispatch(txn, None, None, now)
        if now >= self._next_maintenance:
            self._next_maintenance = now + self.config.maintenance_interval
            self._maintain(now)

    def _maintain(self, now: float) -> None:
        self.tokens.maybe_rotate(now)
        self.peer_store.expire(now)
        self.item_store.expire(now)
        self.rate_limiter.forget_idle(now)
        if len(self.routing) == 0:
            return
        # Refresh buckets nobody touched for 15 minutes (BEP 5), at most two per round.
        for index in self.routing.stale_buckets(now, self.config.bucket_refresh_after)[:2]:
            self.routing.touch_bucket(index, now)
            target = self.routing.random_id_in_bucket(index, self._rng.getrandbits(160))
            self._start(LookupOp(self._new_op_id(), target, k=self.config.k,
                                 alpha=self.config.alpha), now, internal=True)
        # Ping questionable nodes in full buckets, so bad ones make room for replacements.
        pings = 0
        for entry in self.routing.questionable(now):
            if pings >= 8:
                break
            bucket = self.routing.buckets[self.routing.bucket_index(entry.node_id)]
            if bucket.replacements or len(bucket.nodes) >= self.config.k:
                self.send_query(None, entry.info(), entry.addr, b"ping", {}, now)
                pings += 1

    # ======================================================= query context

    def send_query(self, op: Operation | None, node: NodeInfo | None, addr: Addr, method: bytes,
                   args: dict[bytes, Any], now: float, *, lookup: bool = False) -> bool:
        """Send a query as part of ``op``; False if it cannot be sent (too many in flight).

        ``lookup`` queries use the short ``lookup_timeout`` and are not retried.
        """
        if len(self._transactions) >= self.config.max_transactions:
            return False
        tid = self._rng.randbytes(2)
        while tid in self._transactions:
            tid = self._rng.randbytes(2)
        args = dict(args)
        args[b"id"] = self.node_id
        payload = build_query(tid, method, args, read_only=self.config.read_only)
        cfg = self.config
        timeout, retries = (cfg.lookup_timeout, 0) if lookup else (cfg.query_timeout, cfg.query_retries)
        txn = Transaction(tid, addr, node, method, payload, now + timeout, op, retries, timeout)
        self._transactions[tid] = txn
        heappush(self._deadlines, (txn.deadline, tid))
        self.stats.queries_out += 1
        self._send(payload, addr)
        return True

    def closest_nodes(self, target: bytes, count: int) -> list[NodeInfo]:
        return self.routing.closest(target, count)

    def heard_about(self, nodes: list[NodeInfo], now: float) -> None:
        if self.config.learn_from_replies:
            for node in nodes:
                self.routing.heard_about(node.node_id, node.addr, now)

    def complete(self, op: Operation, result: OperationResult) -> None:
        if op.finished:
            return
        op.finished = True
        self._ops.pop(op.op_id, None)
        if not op.internal:
            self._events.append(OperationCompleted(op.op_id, result))

    # ========================================================== client API

    def _new_op_id(self) -> int:
        op_id = self._next_op_id
        self._next_op_id += 1
        return op_id

    def _start(self, op: Operation, now: float, *, internal: bool = False) -> int:
        op.internal = internal
        self._ops[op.op_id] = op
        op.start(self, now)
        return op.op_id

    def cancel_operation(self, op_id: int) -> None:
        """Forget an operation (its driver gave up); late replies are then ignored."""
        op = self._ops.pop(op_id, None)
        if op is not None:
            op.finished = True

    def _seeds(self, bootstrap: list[Addr] | None) -> tuple[Addr, ...]:
        return tuple(bootstrap or ())

    def start_ping(self, addr: Addr, now: float) -> int:
        return self._start(PingOp(self._new_op_id(), addr), now)

    def start_find_node(self, target: bytes, now: float, bootstrap: list[Addr] | None = None) -> int:
        _check_id(target, "target")
        cfg = self.config
        return self._start(LookupOp(self._new_op_id(), target, k=cfg.k, alpha=cfg.alpha,
                                    seeds=self._seeds(bootstrap)), now)

    def start_bootstrap(self, addrs: list[Addr], now: float) -> int:
        """Look up our own id through ``addrs`` (and whatever the table already knows)."""
        return self.start_find_node(self.node_id, now, bootstrap=addrs)

    def start_get_peers(self, infohash: bytes, now: float, bootstrap: list[Addr] | None = None) -> int:
        _check_id(infohash, "infohash")
        cfg = self.config
        return self._start(GetPeersOp(self._new_op_id(), infohash, k=cfg.k, alpha=cfg.alpha,
                                      seeds=self._seeds(bootstrap)), now)

    def start_announce(self, infohash: bytes, port: int | None, now: float,
                       bootstrap: list[Addr] | None = None) -> int:
        """Announce ``port`` for ``infohash``; ``port=None`` means implied (our source port)."""
        _check_id(infohash, "infohash")
        if port is not None and not 0 < port < 65536:
            raise LocalProtocolError(f"port {port} out of range 1..65535")
        cfg = self.config
        return self._start(AnnounceOp(self._new_op_id(), infohash, port, k=cfg.k, alpha=cfg.alpha,
                                      seeds=self._seeds(bootstrap)), now)

    def start_get_immutable(self, target: bytes, now: float, bootstrap: list[Addr] | None = None) -> int:
        _check_id(target, "target")
        cfg = self.config
        return self._start(GetImmutableOp(self._new_op_id(), target, k=cfg.k, alpha=cfg.alpha,
                                          seeds=self._seeds(bootstrap)), now)

    def start_put_immutable(self, value: Any, now: float, bootstrap: list[Addr] | None = None) -> int:
        _check_value(value)
        cfg = self.config
        return self._start(PutImmutableOp(self._new_op_id(), value, k=cfg.k, alpha=cfg.alpha,
                                          seeds=self._seeds(bootstrap)), now)

    def start_get_mutable(self, public_key: bytes, salt: bytes, now: float,
                          bootstrap: list[Addr] | None = None) -> int:
        if len(public_key) != 32:
            raise LocalProtocolError(f"public key must be 32 bytes, not {len(public_key)}")
        _check_salt(salt)
        cfg = self.config
        return self._start(GetMutableOp(self._new_op_id(), public_key, salt, k=cfg.k, alpha=cfg.alpha,
                                        seeds=self._seeds(bootstrap)), now)

    def start_put_mutable(self, signer: Signer, value: Any, salt: bytes, now: float,
                          seq: int | None = None, bootstrap: list[Addr] | None = None) -> int:
        _check_value(value)
        _check_salt(salt)
        if seq is not None and seq < 0:
            raise LocalProtocolError(f"seq must be >= 0, not {seq}")
        cfg = self.config
        return self._start(PutMutableOp(self._new_op_id(), signer, value, salt, seq, k=cfg.k,
                                        alpha=cfg.alpha, seeds=self._seeds(bootstrap)), now)

    # ============================================================ BEP 42

    def _vote_external(self, reporter_ip: str, reported: Addr, now: float) -> None:
        votes = self._ip_votes
        votes.pop(reporter_ip, None)
        votes[reporter_ip] = reported[0]
        if len(votes) > 32:
            votes.popitem(last=False)
        ip = reported[0]
        count = sum(1 for v in votes.values() if v == ip)
        if count < self.config.ip_votes_needed or ip == self.external_ip:
            return
        self.external_ip = ip
        self._events.append(ExternalAddressChanged(ip, reported[1], count))
        if (self.config.secure_ids and not secure_id.is_exempt(ip)
                and not secure_id.is_secure_for(self.node_id, ip)):
            old = self.node_id
            self.node_id = secure_id.secure_node_id(ip, self._rng.randbytes(20))
            self.routing.rebuild(self.node_id, now)
            self._events.append(NodeIdChanged(old, self.node_id, ip))

    # ============================================================ state

    def routing_nodes(self) -> list[tuple[bytes, str, int]]:
        """Nodes worth saving for the next start: (node_id, host, port)."""
        return [(e.node_id, e.addr[0], e.addr[1]) for e in self.routing.entries()
                if e.last_response is not None and not e.is_bad()]

    def add_saved_nodes(self, nodes: list[tuple[bytes, str, int]], now: float) -> list[int]:
        """Ping saved nodes; those that answer enter the table.  Returns the ping op ids."""
        ops = []
        for node_id, host, port in nodes:
            if len(node_id) == ID_LEN and 0 < port < 65536:
                ops.append(self.start_ping((host, port), now))
        return ops

    def pending_transactions(self) -> int:
        return len(self._transactions)

    def pending_operations(self) -> int:
        return len(self._ops)


def _check_id(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != ID_LEN:
        raise LocalProtocolError(f"{what} must be {ID_LEN} bytes")


def _check_salt(salt: bytes) -> None:
    if len(salt) > 64:
        raise LocalProtocolError(f"salt is {len(salt)} bytes; BEP 44 allows at most 64")


def _check_value(value: Any) -> None:
    if len(encode(value)) > MAX_VALUE_SIZE:
        raise LocalProtocolError("value is larger than 1000 bytes once bencoded (BEP 44 limit)")
