"""Client operations built on the iterative lookup: find_node, get_peers/announce, BEP 44.

Each operation is a small state machine the core drives: ``start()``, then one
``on_reply()`` per answer, error or timeout of a query it sent.  It finishes by calling
``ctx.complete(self, result)`` exactly once.  Operations send through ``QueryContext``
and never see sockets or clocks.

Two phases for writes (announce, put): a lookup collects the ``k`` closest nodes and their
write tokens (for a put, with ``get`` on the exact target, because libtorrent binds tokens
to the target), then the write goes to every one of them that gave a token.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

from rnn_tui.dht import bep44
from rnn_tui.dht.codec import BencodeError, encode
from rnn_tui.dht.events import (
    Announced,
    ImmutableFound,
    ItemPut,
    MutableFound,
    NodesFound,
    OperationResult,
    PeersFound,
    PingResult,
    PutFailure,
)
from rnn_tui.dht.lookup import Lookup
from rnn_tui.dht.messages import (
    COMPACT_PEER_LEN,
    Addr,
    ErrorReply,
    KrpcError,
    NodeInfo,
    Response,
    unpack_addr,
    unpack_nodes,
)


class QueryContext(Protocol):
    """What an operation may ask of the core."""

    @property
    def own_id(self) -> bytes: ...

    def send_query(self, op: Operation, node: NodeInfo | None, addr: Addr, method: bytes,
                   args: dict[bytes, Any], now: float, *, lookup: bool = False) -> bool: ...

    def closest_nodes(self, target: bytes, count: int) -> list[NodeInfo]: ...

    def heard_about(self, nodes: list[NodeInfo], now: float) -> None: ...

    def complete(self, op: Operation, result: OperationResult) -> None: ...


class Operation:
    """Base class: one client request from start to its result."""

    def __init__(self, op_id: int) -> None:
        self.op_id = op_id
        self.finished = False
        #: internal operations (bucket refresh) complete without an event
        self.internal = False
        self.queries = 0

    def start(self, ctx: QueryContext, now: float) -> None:
        raise NotImplementedError

    def on_reply(self, ctx: QueryContext, node: NodeInfo | None, addr: Addr,
                 reply: Response | None, error: ErrorReply | None, now: float) -> None:
        """``reply`` and ``error`` are both None on timeout."""
        raise NotImplementedError

    def send(self, ctx: QueryContext, node: NodeInfo | None, addr: Addr, method: bytes,
             args: dict[bytes, Any], now: float, *, lookup: bool = False) -> bool:
        self.queries += 1
        return ctx.send_query(self, node, addr, method, args, now, lookup=lookup)


class PingOp(Operation):
    def __init__(self, op_id: int, addr: Addr) -> None:
        super().__init__(op_id)
        self.addr = addr

    def start(self, ctx: QueryContext, now: float) -> None:
        if not self.send(ctx, None, self.addr, b"ping", {}, now):
            ctx.complete(self, PingResult(None, self.addr))

    def on_reply(self, ctx: QueryContext, node: NodeInfo | None, addr: Addr,
                 reply: Response | None, error: ErrorReply | None, now: float) -> None:
        ctx.complete(self, PingResult(reply.sender_id if reply else None, self.addr))


class LookupOp(Operation):
    """Iterative lookup with ``method``; subclasses read values and add a write phase."""

    method = b"find_node"

    def __init__(self, op_id: int, target: bytes, *, k: int, alpha: int,
                 seeds: tuple[Addr, ...] = ()) -> None:
        super().__init__(op_id)
        self.target = target
        self.k = k
        self.lookup = Lookup(target, k=k, alpha=alpha)
        self.seeds = seeds
        self._seeds_pending = 0
        self._lookup_over = False

    def query_args(self) -> dict[bytes, Any]:
        return {b"target": self.target}

    def start(self, ctx: QueryContext, now: float) -> None:
        self.lookup = Lookup(self.target, own_id=ctx.own_id, k=self.k, alpha=self.lookup.alpha)
        self.lookup.add_candidates(ctx.closest_nodes(self.target, self.k * 2))
        for addr in self.seeds:
            if self.send(ctx, None, addr, self.method, self.query_args(), now):
                self._seeds_pending += 1
        self._pump(ctx, now)

    def _pump(self, ctx: QueryContext, now: float) -> None:
        while not self.finished:
            batch = self.lookup.next_queries()
            if not batch:
                break
            for node in batch:
                if not self.send(ctx, node, node.addr, self.method, self.query_args(), now,
                                 lookup=True):
                    self.lookup.on_failure(node)
        if not self.finished and not self._lookup_over and self.lookup.done and not self._seeds_pending:
            self._lookup_over = True
            self.lookup_finished(ctx, now)

    def on_reply(self, ctx: QueryContext, node: NodeInfo | None, addr: Addr,
                 reply: Response | None, error: ErrorReply | None, now: float) -> None:
        if self._lookup_over:
            self.on_write_reply(ctx, addr, reply, error, now)
            return
        if node is None:
            self._seeds_pending -= 1
        if reply is not None:
            responder = NodeInfo(reply.sender_id, addr)
            try:
                nodes = unpack_nodes(reply.values.get(b"nodes", b"")) \
                    if type(reply.values.get(b"nodes", b"")) is bytes else []
            except KrpcError:
                nodes = []
            token = reply.values.get(b"token")
            ctx.heard_about(nodes, now)
            self.absorb(ctx, responder, reply, now)
            if self.finished:
                return
            self.lookup.on_response(node or responder,
                                    [n for n in nodes if n.node_id != ctx.own_id],
                                    token if type(token) is bytes else None)
        elif node is not None:
            self.lookup.on_failure(node)
        self._pump(ctx, now)

    def absorb(self, ctx: QueryContext, responder: NodeInfo, reply: Response, now: float) -> None:
        """Read values out of a lookup reply (peers, items).  Default: nothing."""

    def lookup_finished(self, ctx: QueryContext, now: float) -> None:
        ctx.complete(self, NodesFound(self.target, self._closest(), self.queries))

    def on_write_reply(self, ctx: QueryContext, addr: Addr, reply: Response | None,
                       error: ErrorReply | None, now: float) -> None:
        pass

    def _closest(self) -> tuple[NodeInfo, ...]:
        return tuple(n for n, _ in self.lookup.closest_responded())


class WriteMixin:
    """Counts acknowledgements of the write phase and completes when all are in."""

    _pending_writes = 0
    _stored = 0
    _failures: list[PutFailure]

    def _begin_writes(self) -> None:
        self._pending_writes = 0
        self._stored = 0
        self._failures = []

    def _record_write(self, addr: Addr, reply: Response | None, error: ErrorReply | None) -> bool:
        self._pending_writes -= 1
        if reply is not None:
            self._stored += 1
        elif error is not None:
            self._failures.append(PutFailure(addr, error.code, error.message))
        else:
            self._failures.append(PutFailure(addr, 0, "timeout"))
        return self._pending_writes <= 0


class GetPeersOp(LookupOp):
    method = b"get_peers"

    def __init__(self, op_id: int, infohash: bytes, *, k: int, alpha: int,
                 seeds: tuple[Addr, ...] = ()) -> None:
        super().__init__(op_id, infohash, k=k, alpha=alpha, seeds=seeds)
        self.peers: dict[Addr, None] = {}

    def query_args(self) -> dict[bytes, Any]:
        return {b"info_hash": self.target}

    def absorb(self, ctx: QueryContext, responder: NodeInfo, reply: Response, now: float) -> None:
        values = reply.values.get(b"values")
        if type(values) is list:
            for compact in values[:200]:
                if type(compact) is bytes and len(compact) == COMPACT_PEER_LEN and len(self.peers) < 1000:
                    self.peers[unpack_addr(compact)] = None

    def lookup_finished(self, ctx: QueryContext, now: float) -> None:
        ctx.complete(self, PeersFound(self.target, tuple(self.peers), self._closest(), self.queries))


class AnnounceOp(GetPeersOp, WriteMixin):
    def __init__(self, op_id: int, infohash: bytes, port: int | None, *, k: int, alpha: int,
                 seeds: tuple[Addr, ...] = ()) -> None:
        super().__init__(op_id, infohash, k=k, alpha=alpha, seeds=seeds)
        self.port = port

    def lookup_finished(self, ctx: QueryContext, now: float) -> None:
        self._begin_writes()
        for node, token in self.lookup.closest_responded():
            if token is None:
                continue
            args: dict[bytes, Any] = {b"info_hash": self.target, b"token": token,
                                      b"port": self.port or 0}
            if self.port is None:
                args[b"implied_port"] = 1
            if self.send(ctx, node, node.addr, b"announce_peer", args, now):
                self._pending_writes += 1
        if self._pending_writes == 0:
            self._finish(ctx)

    def on_write_reply(self, ctx: QueryContext, addr: Addr, reply: Response | None,
                       error: ErrorReply | None, now: float) -> None:
        if self._record_write(addr, reply, error):
            self._finish(ctx)

    def _finish(self, ctx: QueryContext) -> None:
        ctx.complete(self, Announced(self.target, self._stored, self._closest(), self.queries))


class GetImmutableOp(LookupOp):
    """Finishes as soon as one node returns a value whose hash is the target."""

    method = b"get"

    def absorb(self, ctx: QueryContext, responder: NodeInfo, reply: Response, now: float) -> None:
        if b"v" not in reply.values:
            return
        value = reply.values[b"v"]
        try:
            ok = hashlib.sha1(encode(value)).digest() == self.target
        except BencodeError:
            ok = False
        if ok and self.found_value(ctx, value):
            ctx.complete(self, ImmutableFound(self.target, True, value, self.queries))

    def found_value(self, ctx: QueryContext, value: Any) -> bool:
        return True

    def lookup_finished(self, ctx: QueryContext, now: float) -> None:
        ctx.complete(self, ImmutableFound(self.target, False, None, self.queries))


class PutImmutableOp(GetImmutableOp, WriteMixin):
    def __init__(self, op_id: int, value: Any, *, k: int, alpha: int,
                 seeds: tuple[Addr, ...] = ()) -> None:
        super().__init__(op_id, bep44.immutable_target(value), k=k, alpha=alpha, seeds=seeds)
        self.value = value

    def found_value(self, ctx: QueryContext, value: Any) -> bool:
        return False  # keep looking: we want every closest node's token

    def lookup_finished(self, ctx: QueryContext, now: float) -> None:
        self._begin_writes()
        for node, token in self.lookup.closest_responded():
            if token is not None and self.send(ctx, node, node.addr, b"put",
                                               {b"token": token, b"v": self.value}, now):
                self._pending_writes += 1
        if self._pending_writes == 0:
            self._finish(ctx)

    def on_write_reply(self, ctx: QueryContext, addr: Addr, reply: Response | None,
                       error: ErrorReply | None, now: float) -> None:
        if self._record_write(addr, reply, error):
            self._finish(ctx)

    def _finish(self, ctx: QueryContext) -> None:
        ctx.complete(self, ItemPut(self.target, None, self._stored, tuple(self._failures),
                                   self.queries))


class GetMutableOp(LookupOp):
    """Collects valid items from the closest nodes; the highest seq wins."""

    method = b"get"

    def __init__(self, op_id: int, public_key: bytes, salt: bytes, *, k: int, alpha: int,
                 seeds: tuple[Addr, ...] = ()) -> None:
        super().__init__(op_id, bep44.mutable_target(public_key, salt), k=k, alpha=alpha, seeds=seeds)
        self.public_key = public_key
        self.salt = salt
        self.best: bep44.MutableItem | None = None
        self.copies = 0
        self.seq_at: dict[Addr, int] = {}

    def absorb(self, ctx: QueryContext, responder: NodeInfo, reply: Response, now: float) -> None:
        values = reply.values
        seq, sig = values.get(b"seq"), values.get(b"sig")
        if values.get(b"k") != self.public_key or type(seq) is not int or b"v" not in values:
            return
        if type(sig) is not bytes or len(sig) != bep44.SIGNATURE_LEN:
            return
        if self.best is not None and seq < self.best.seq:
            self.seq_at[responder.addr] = seq
            return
        try:
            valid = bep44.verify_item(self.public_key, values[b"v"], seq, sig, self.salt)
        except BencodeError:
            valid = False
        if not valid:
            return
        self.seq_at[responder.addr] = seq
        self.copies += 1
        if self.best is None or seq > self.best.seq:
            self.best = bep44.MutableItem(self.public_key, self.salt, seq, values[b"v"], sig)

    def lookup_finished(self, ctx: QueryContext, now: float) -> None:
        ctx.complete(self, MutableFound(self.target, self.best, self.copies, self.queries))


class PutMutableOp(GetMutableOp, WriteMixin):
    """Get the exact target first (tokens, current seq), then put to the k closest."""

    def __init__(self, op_id: int, signer: bep44.Signer, value: Any, salt: bytes,
                 seq: int | None, *, k: int, alpha: int, seeds: tuple[Addr, ...] = ()) -> None:
        super().__init__(op_id, signer.public_key, salt, k=k, alpha=alpha, seeds=seeds)
        self.signer = signer
        self.value = value
        self.requested_seq = seq
        self.seq: int | None = None

    def lookup_finished(self, ctx: QueryContext, now: float) -> None:
        self._begin_writes()
        current = self.best.seq if self.best is not None else None
        if self.requested_seq is not None:
            self.seq = self.requested_seq
        else:
            self.seq = (current + 1) if current is not None else 1
        signature = bep44.sign_item(self.signer, self.value, self.seq, self.salt)
        for node, token in self.lookup.closest_responded():
            if token is None:
                continue
            args: dict[bytes, Any] = {b"token": token, b"v": self.value, b"k": self.public_key,
                                      b"seq": self.seq, b"sig": signature}
            if self.salt:
                args[b"salt"] = self.salt
            cas = self.seq_at.get(node.addr)
            if cas is not None and cas < self.seq:
                args[b"cas"] = cas
            if self.send(ctx, node, node.addr, b"put", args, now):
                self._pending_writes += 1
        if self._pending_writes == 0:
            self._finish(ctx)

    def on_write_reply(self, ctx: QueryContext, addr: Addr, reply: Response | None,
                       error: ErrorReply | None, now: float) -> None:
        if self._record_write(addr, reply, error):
            self._finish(ctx)

    def _finish(self, ctx: QueryContext) -> None:
        ctx.complete(self, ItemPut(self.target, self.seq, self._stored, tuple(self._failures),
                                   self.queries))
