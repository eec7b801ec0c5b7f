"""Answers to other nodes' queries: ping, find_node, get_peers, announce_peer, get, put.

Why apart from the core: this is the part hostile input reaches first.  Each handler
validates its arguments (``messages.arg_*`` raise ``KrpcError`` with the right code) and
returns the reply dict; the core turns a ``KrpcError`` into a KRPC error reply.  The
dispatch table maps method names to handlers; a missing entry is error 204.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from rnn_tui.dht import bep44
from rnn_tui.dht.codec import BencodeError, encode
from rnn_tui.dht.messages import (
    CAS_MISMATCH,
    ID_LEN,
    INVALID_SIGNATURE,
    METHOD_UNKNOWN,
    PROTOCOL_ERROR,
    SALT_TOO_BIG,
    SEQ_TOO_LOW,
    VALUE_TOO_BIG,
    Addr,
    KrpcError,
    Query,
    arg_bytes,
    arg_int,
)
from rnn_tui.dht.storage import ItemStore, PeerStore, StoredItem
from rnn_tui.dht.tokens import TokenManager

Handler = Callable[[Query, Addr, float], dict[bytes, Any]]


class QueryServer:
    def __init__(self, *, own_id: Callable[[], bytes], closest: Callable[[bytes], bytes],
                 tokens: TokenManager, peers: PeerStore, items: ItemStore) -> None:
        self._own_id = own_id
        self._closest = closest
        self.tokens = tokens
        self.peers = peers
        self.items = items
        self.handlers: dict[bytes, Handler] = {
            b"ping": self.ping,
            b"find_node": self.find_node,
            b"get_peers": self.get_peers,
            b"announce_peer": self.announce_peer,
            b"get": self.get,
            b"put": self.put,
        }

    def handle(self, query: Query, addr: Addr, now: float) -> dict[bytes, Any]:
        handler = self.handlers.get(query.method)
        if handler is None:
            raise KrpcError(f"Method Unknown: {query.method[:32]!r}", METHOD_UNKNOWN)
        return handler(query, addr, now)

    # ---------------------------------------------------------------- BEP 5

    def ping(self, query: Query, addr: Addr, now: float) -> dict[bytes, Any]:
        return {b"id": self._own_id()}

    def _nodes(self, target: bytes) -> bytes:
        return self._closest(target)

    def find_node(self, query: Query, addr: Addr, now: float) -> dict[bytes, Any]:
        target = arg_bytes(query.args, b"target", ID_LEN)
        assert target is not None
        return {b"id": self._own_id(), b"nodes": self._nodes(target)}

    def get_peers(self, query: Query, addr: Addr, now: float) -> dict[bytes, Any]:
        infohash = arg_bytes(query.args, b"info_hash", ID_LEN)
        assert infohash is not None
        reply: dict[bytes, Any] = {b"id": self._own_id(), b"token": self.tokens.issue(addr[0], now),
                                   b"nodes": self._nodes(infohash)}
        peers = self.peers.get(infohash, now)
        if peers:
            reply[b"values"] = peers
        return reply

    def announce_peer(self, query: Query, addr: Addr, now: float) -> dict[bytes, Any]:
        args = query.args
        infohash = arg_bytes(args, b"info_hash", ID_LEN)
        token = arg_bytes(args, b"token", max_len=64)
        implied = arg_int(args, b"implied_port", optional=True)
        port = addr[1] if implied else arg_int(args, b"port")
        assert infohash is not None and token is not None and port is not None
        if not 0 < port < 65536:
            raise KrpcError(f"port {port} out of range", PROTOCOL_ERROR)
        if not self.tokens.check(token, addr[0], now):
            raise KrpcError("invalid token", PROTOCOL_ERROR)
        self.peers.announce(infohash, (addr[0], port), now)
        return {b"id": self._own_id()}

    # --------------------------------------------------------------- BEP 44

    def get(self, query: Query, addr: Addr, now: float) -> dict[bytes, Any]:
        target = arg_bytes(query.args, b"target", ID_LEN)
        since = arg_int(query.args, b"seq", optional=True)
        assert target is not None
        reply: dict[bytes, Any] = {b"id": self._own_id(), b"token": self.tokens.issue(addr[0], now),
                                   b"nodes": self._nodes(target)}
        item = self.items.get(target, now)
        if item is None:
            return reply
        if item.public_key is None:
            reply[b"v"] = item.value
            return reply
        reply[b"k"] = item.public_key
        reply[b"seq"] = item.seq
        if since is None or item.seq > since:
            reply[b"v"] = item.value
            reply[b"sig"] = item.signature
        return reply

    def put(self, query: Query, addr: Addr, now: float) -> dict[bytes, Any]:
        args = query.args
        if b"v" not in args:
            raise KrpcError("put without value 'v'", PROTOCOL_ERROR)
        value = args[b"v"]
        try:
            encoded = encode(value)
        except BencodeError:
            raise KrpcError("value 'v' cannot be bencoded", PROTOCOL_ERROR) from None
        if len(encoded) > bep44.MAX_VALUE_SIZE:
            raise KrpcError("Message (v field) too big.", VALUE_TOO_BIG)
        token = arg_bytes(args, b"token", max_len=64)
        assert token is not None
        public_key = arg_bytes(args, b"k", bep44.PUBLIC_KEY_LEN, optional=True)
        if public_key is None:
            return self._put_immutable(value, encoded, token, addr, now)
        salt = args.get(b"salt", b"")
        if type(salt) is not bytes:
            raise KrpcError("argument 'salt' must be a string", PROTOCOL_ERROR)
        if len(salt) > bep44.MAX_SALT_SIZE:
            raise KrpcError("salt (salt field) too big.", SALT_TOO_BIG)
        seq = arg_int(args, b"seq")
        signature = arg_bytes(args, b"sig", bep44.SIGNATURE_LEN)
        cas = arg_int(args, b"cas", optional=True)
        assert seq is not None and signature is not None
        if not self.tokens.check(token, addr[0], now):
            raise KrpcError("invalid token", PROTOCOL_ERROR)
        if not bep44.verify_item(public_key, value, seq, signature, salt):
            raise KrpcError("Invalid signature", INVALID_SIGNATURE)
        target = bep44.mutable_target(public_key, salt)
        current = self.items.get(target, now)
        if current is not None:
            if cas is not None and cas != current.seq:
                raise KrpcError("CAS mismatch, re-read value and try again.", CAS_MISMATCH)
            if seq < current.seq or (seq == current.seq and encode(current.value) != encoded):
                raise KrpcError("sequence number less than current", SEQ_TOO_LOW)
        self.items.put(target, StoredItem(value, public_key, salt, seq, signature, addr[0],
                                          now + self.items.ttl))
        return {b"id": self._own_id()}

    def _put_immutable(self, value: Any, encoded: bytes, token: bytes, addr: Addr,
                       now: float) -> dict[bytes, Any]:
        if not self.tokens.check(token, addr[0], now):
            raise KrpcError("invalid token", PROTOCOL_ERROR)
        target = hashlib.sha1(encoded).digest()
        self.items.put(target, StoredItem(value, None, b"", 0, b"", addr[0], now + self.items.ttl))
        return {b"id": self._own_id()}
