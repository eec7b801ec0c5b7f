"""KRPC message model (BEP 5): parse decoded dicts into typed messages, build replies.

Why a separate module: the core must treat every field of a peer's packet as hostile.
All type and length checks live here, so handlers receive values they can trust and
turn a ``KrpcError`` into the matching KRPC error reply (or a silent drop).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from rnn_tui.dht.codec import BencodeError, decode, encode
from rnn_tui.errors import RemoteProtocolError

Addr = tuple[str, int]

# KRPC error codes (BEP 5, BEP 44).
GENERIC_ERROR = 201
SERVER_ERROR = 202
PROTOCOL_ERROR = 203
METHOD_UNKNOWN = 204
VALUE_TOO_BIG = 205
INVALID_SIGNATURE = 206
SALT_TOO_BIG = 207
CAS_MISMATCH = 301
SEQ_TOO_LOW = 302

ID_LEN = 20
COMPACT_NODE_LEN = 26
COMPACT_PEER_LEN = 6

#: Our client version, sent in the top-level ``v`` key (BEP 20 style: 2 letters + 2 bytes).
CLIENT_VERSION = b"RN\x00\x01"


class KrpcError(RemoteProtocolError):
    """A peer's query is invalid; ``code`` is the KRPC error code to answer with."""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A DHT node as it appears in compact node info: 20-byte id and IPv4 address."""

    node_id: bytes
    addr: Addr


@dataclass(frozen=True, slots=True)
class Query:
    tid: bytes
    method: bytes
    args: dict[bytes, Any]
    sender_id: bytes
    read_only: bool


@dataclass(frozen=True, slots=True)
class Response:
    tid: bytes
    values: dict[bytes, Any]
    sender_id: bytes
    #: our address as the responder saw it (top-level ``ip``, BEP 42), if present
    reported_addr: Addr | None


@dataclass(frozen=True, slots=True)
class ErrorReply:
    tid: bytes
    code: int
    message: str


Message = Query | Response | ErrorReply


# ------------------------------------------------------------------- compact encodings


def pack_addr(addr: Addr) -> bytes:
    """6-byte compact IPv4 address + port.  Raises ValueError for non-IPv4 addresses."""
    host, port = addr
    parts = host.split(".")
    if len(parts) == 4 and all(p.isdigit() and len(p) <= 3 for p in parts):
        octets = [int(p) for p in parts]
        if max(octets) <= 255 and 0 <= port <= 0xFFFF:
            return bytes(octets) + port.to_bytes(2, "big")
    # Slow path: gives the precise error (IPv6, names, out-of-range port).
    return ipaddress.IPv4Address(host).packed + port.to_bytes(2, "big")


def unpack_addr(data: bytes) -> Addr:
    if len(data) != COMPACT_PEER_LEN:
        raise ValueError("a compact address is 6 bytes")
    return (f"{data[0]}.{data[1]}.{data[2]}.{data[3]}", int.from_bytes(data[4:6], "big"))


def pack_node(node: NodeInfo) -> bytes:
    return node.node_id + pack_addr(node.addr)


def pack_nodes(nodes: list[NodeInfo]) -> bytes:
    return b"".join(n.node_id + pack_addr(n.addr) for n in nodes)


def unpack_nodes(data: bytes) -> list[NodeInfo]:
    """Compact node info list; entries with port 0 are skipped (unusable)."""
    if len(data) % COMPACT_NODE_LEN:
        raise KrpcError(f"'nodes' length {len(data)} is not a multiple of 26", PROTOCOL_ERROR)
    out = []
    for off in range(0, len(data), COMPACT_NODE_LEN):
        port = (data[off + 24] << 8) | data[off + 25]
        if port == 0:
            continue
        out.append(NodeInfo(data[off:off + 20],
                            (f"{data[off + 20]}.{data[off + 21]}.{data[off + 22]}.{data[off + 23]}", port)))
    return out


# ------------------------------------------------------------------------- parsing


def parse_message(data: bytes) -> Message:
    """Decode and validate a datagram.  Raises ``KrpcError`` (with the tid when known)."""
    try:
        obj = decode(data)
    except BencodeError as exc:
        raise KrpcError(f"malformed packet: {exc}", PROTOCOL_ERROR) from None
    if type(obj) is not dict:
        raise KrpcError("a KRPC message is a dict", PROTOCOL_ERROR)
    tid = obj.get(b"t")
    if type(tid) is not bytes or len(tid) > 32:
        raise KrpcError("missing or invalid transaction id 't'", PROTOCOL_ERROR)
    kind = obj.get(b"y")
    if kind == b"q":
        method = obj.get(b"q")
        args = obj.get(b"a")
        if type(method) is not bytes:
            raise TidKrpcError(tid, "query without method name 'q'", PROTOCOL_ERROR)
        if type(args) is not dict:
            raise TidKrpcError(tid, "query without argument dict 'a'", PROTOCOL_ERROR)
        sender = args.get(b"id")
        if type(sender) is not bytes or len(sender) != ID_LEN:
            raise TidKrpcError(tid, "query argument 'id' must be a 20-byte string", PROTOCOL_ERROR)
        return Query(tid, method, args, sender, obj.get(b"ro") == 1)
    if kind == b"r":
        values = obj.get(b"r")
        if type(values) is not dict:
            raise KrpcError("response without dict 'r'", PROTOCOL_ERROR)
        sender = values.get(b"id")
        if type(sender) is not bytes or len(sender) != ID_LEN:
            raise KrpcError("response 'id' must be a 20-byte string", PROTOCOL_ERROR)
        reported = None
        ip = obj.get(b"ip")
        if type(ip) is bytes and len(ip) == COMPACT_PEER_LEN:
            reported = unpack_addr(ip)
        return Response(tid, values, sender, reported)
    if kind == b"e":
        err = obj.get(b"e")
        code, message = 0, ""
        if type(err) is list and len(err) >= 2 and type(err[0]) is int and type(err[1]) is bytes:
            code, message = err[0], err[1].decode("utf-8", "replace")
        return ErrorReply(tid, code, message)
    raise TidKrpcError(tid, "message type 'y' must be q, r or e", PROTOCOL_ERROR)


class TidKrpcError(KrpcError):
    """A ``KrpcError`` raised after the transaction id was read, so we can answer it."""

    def __init__(self, tid: bytes, message: str, code: int) -> None:
        super().__init__(message, code)
        self.tid = tid


# ------------------------------------------------------------------ argument helpers


def arg_bytes(args: dict[bytes, Any], key: bytes, length: int | None = None,
              *, max_len: int | None = None, optional: bool = False) -> bytes | None:
    value = args.get(key)
    if value is None and optional:
        return None
    if type(value) is not bytes:
        raise KrpcError(f"argument '{key.decode()}' must be a string", PROTOCOL_ERROR)
    if length is not None and len(value) != length:
        raise KrpcError(f"argument '{key.decode()}' must be {length} bytes, not {len(value)}",
                        PROTOCOL_ERROR)
    if max_len is not None and len(value) > max_len:
        raise KrpcError(f"argument '{key.decode()}' is longer than {max_len} bytes", PROTOCOL_ERROR)
    return value


def arg_int(args: dict[bytes, Any], key: bytes, *, optional: bool = False) -> int | None:
    value = args.get(key)
    if value is None and optional:
        return None
    if type(value) is not int:
        raise KrpcError(f"argument '{key.decode()}' must be an integer", PROTOCOL_ERROR)
    return value


# ------------------------------------------------------------------------ building


def build_query(tid: bytes, method: bytes, args: dict[bytes, Any], *, read_only: bool) -> bytes:
    msg: dict[bytes, Any] = {b"t": tid, b"y": b"q", b"q": method, b"a": args, b"v": CLIENT_VERSION}
    if read_only:
        msg[b"ro"] = 1
    return encode(msg)


def build_response(tid: bytes, values: dict[bytes, Any], requester: Addr) -> bytes:
    msg: dict[bytes, Any] = {b"t": tid, b"y": b"r", b"r": values, b"v": CLIENT_VERSION}
    try:
        msg[b"ip"] = pack_addr(requester)
    except ValueError:
        pass
    return encode(msg)


def build_error(tid: bytes, code: int, message: str) -> bytes:
    return encode({b"t": tid, b"y": b"e", b"e": [code, message.encode()[:200]],
                   b"v": CLIENT_VERSION})
