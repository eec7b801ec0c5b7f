"""``rnn dht ping|lookup|get|put|stats``: debug the Mainline DHT from the terminal.

Each command starts a throwaway DHT node on its own UDP socket (``--port``, default 0 =
any free port, so it never collides with a running node), bootstraps from ``--bootstrap``
(or the configured routers), does one thing and exits.  ``put`` signs with the node's
identity from the keystore.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rnn_tui.commands.common import config_from_args, load_identity, print_json
from rnn_tui.config import parse_hostport
from rnn_tui.dht.bep44 import mutable_target
from rnn_tui.dht.udp import DhtUdpEndpoint, open_dht_endpoint
from rnn_tui.errors import ConfigError, RnnError
from rnn_tui.identity import PeerId


def register(sub: Any) -> None:
    dht = sub.add_parser("dht", help="debug the Mainline DHT (ping, lookup, get, put, stats)")
    dsub = dht.add_subparsers(dest="dht_command", metavar="ACTION", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                            help="give up after this long (default 30)")
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    ping = dsub.add_parser("ping", help="ping one DHT node")
    ping.add_argument("target", metavar="HOST:PORT")
    common(ping)
    ping.set_defaults(func=cmd_ping)

    lookup = dsub.add_parser("lookup", help="find peers for an infohash (get_peers)")
    lookup.add_argument("infohash", metavar="INFOHASH", help="40 hex digits")
    common(lookup)
    lookup.set_defaults(func=cmd_lookup)

    get = dsub.add_parser("get", help="fetch a BEP 44 item")
    get.add_argument("key", metavar="PUBKEY|TARGET",
                     help="public key (peer id or 64 hex) of a mutable item, or with --immutable a 40-hex target")
    get.add_argument("--salt", default="", help="salt of the mutable item (text)")
    get.add_argument("--immutable", action="store_true", help="KEY is the target of an immutable item")
    common(get)
    get.set_defaults(func=cmd_get)

    put = dsub.add_parser("put", help="store a BEP 44 item, signed with the node key")
    put.add_argument("value", metavar="VALUE", help="the value (text, stored as a bencoded string)")
    put.add_argument("--salt", default="", help="salt (text, at most 64 bytes)")
    put.add_argument("--seq", type=int, default=None, help="sequence number (default: current + 1)")
    put.add_argument("--immutable", action="store_true", help="store an immutable item instead")
    common(put)
    put.set_defaults(func=cmd_put)

    stats = dsub.add_parser("stats", help="bootstrap and show the routing table and traffic")
    common(stats)
    stats.set_defaults(func=cmd_stats)


# ------------------------------------------------------------------------ plumbing


def _bootstrap_addrs(args: argparse.Namespace) -> list[tuple[str, int]]:
    return list(config_from_args(args).bootstrap)


def _run(args: argparse.Namespace, action: Callable[[DhtUdpEndpoint], Awaitable[int]],
         *, bootstrap: bool = True) -> int:
    config = config_from_args(args)
    port = int(args.port) if getattr(args, "port", None) is not None else 0
    host = config.listen_host

    async def main() -> int:
        endpoint = await open_dht_endpoint(host, port, timeout=args.timeout)
        try:
            if bootstrap:
                seeds = _bootstrap_addrs(args)
                if not seeds:
                    raise ConfigError("no bootstrap nodes: pass --bootstrap HOST:PORT")
                size = await endpoint.node.bootstrap(seeds)
                if size == 0:
                    raise RnnError(f"no DHT node answered at {', '.join(f'{h}:{p}' for h, p in seeds)}")
            return await action(endpoint)
        finally:
            endpoint.close()

    return asyncio.run(main())


def _parse_hex(text: str, length: int, what: str) -> bytes:
    try:
        data = bytes.fromhex(text.strip())
    except ValueError:
        raise ConfigError(f"{what} must be {length * 2} hex digits, got {text!r}") from None
    if len(data) != length:
        raise ConfigError(f"{what} must be {length * 2} hex digits, got {len(text.strip())}")
    return data


def _show_value(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.hex()
    return repr(value)


# ------------------------------------------------------------------------ commands


def cmd_ping(args: argparse.Namespace) -> int:
    try:
        target = parse_hostport(args.target)
    except ValueError as exc:
        raise ConfigError(f"dht ping: {exc}") from None

    async def action(endpoint: DhtUdpEndpoint) -> int:
        started = time.monotonic()
        node_id = await endpoint.node.ping(target, timeout=args.timeout)
        rtt_ms = (time.monotonic() - started) * 1000
        if node_id is None:
            raise RnnError(f"no answer from {target[0]}:{target[1]}")
        if args.json:
            print_json({"node_id": node_id.hex(), "rtt_ms": round(rtt_ms, 2)})
        else:
            print(f"{target[0]}:{target[1]}  node id {node_id.hex()}  rtt {rtt_ms:.1f} ms")
        return 0

    return _run(args, action, bootstrap=False)


def cmd_lookup(args: argparse.Namespace) -> int:
    infohash = _parse_hex(args.infohash, 20, "INFOHASH")

    async def action(endpoint: DhtUdpEndpoint) -> int:
        peers = await endpoint.node.get_peers(infohash, timeout=args.timeout)
        if args.json:
            print_json({"infohash": infohash.hex(), "peers": [f"{h}:{p}" for h, p in peers]})
        else:
            print(f"{len(peers)} peer(s) for {infohash.hex()}")
            for host, port in peers:
                print(f"  {host}:{port}")
        return 0

    return _run(args, action)


def cmd_get(args: argparse.Namespace) -> int:
    salt = args.salt.encode()

    async def action(endpoint: DhtUdpEndpoint) -> int:
        if args.immutable:
            target = _parse_hex(args.key, 20, "TARGET")
            value = await endpoint.node.get_immutable(target, timeout=args.timeout)
            if value is None:
                raise RnnError(f"no immutable item {target.hex()} found")
            seq = None
        else:
            try:
                public_key = PeerId.parse(args.key).key
            except ValueError as exc:
                raise ConfigError(f"dht get: {exc}") from None
            found = await endpoint.node.get_mutable(public_key, salt, timeout=args.timeout)
            if found is None:
                raise RnnError(f"no mutable item for key {public_key.hex()} salt {args.salt!r}")
            value, seq = found
            target = mutable_target(public_key, salt)
        if args.json:
            print_json({"target": target.hex(), "seq": seq, "value": _show_value(value)})
        else:
            print(f"target {target.hex()}" + (f"  seq {seq}" if seq is not None else ""))
            print(_show_value(value))
        return 0

    return _run(args, action)


def cmd_put(args: argparse.Namespace) -> int:
    salt = args.salt.encode()
    if len(salt) > 64:
        raise ConfigError(f"dht put: --salt is {len(salt)} bytes; BEP 44 allows at most 64")
    value_obj = args.value.encode()  # stored as a bencoded string, like libtorrent does
    identity = None if args.immutable else load_identity(config_from_args(args))[0]

    async def action(endpoint: DhtUdpEndpoint) -> int:
        if identity is None:
            target = await endpoint.node.put_immutable(value_obj, timeout=args.timeout)
            seq, stored = None, None
        else:
            result = await endpoint.node.put_mutable(identity, value_obj, salt, args.seq,
                                                     timeout=args.timeout)
            target, seq, stored = result.target, result.seq, result.stored
        if args.json:
            print_json({"target": target.hex(), "seq": seq, "stored": stored,
                        "public_key": identity.public_key.hex() if identity else None})
        else:
            print(f"stored {target.hex()}" + (f"  seq {seq}  on {stored} node(s)" if identity else ""))
            if identity is not None:
                print(f"read it with: rnn dht get {identity.public_key.hex()}"
                      + (f" --salt {args.salt}" if args.salt else ""))
        return 0

    return _run(args, action)


def cmd_stats(args: argparse.Namespace) -> int:
    async def action(endpoint: DhtUdpEndpoint) -> int:
        stats = endpoint.node.stats()
        if args.json:
            print_json(stats)
            return 0
        print(f"node id       {stats['node_id']}")
        print(f"routing table {stats['routing_table']} nodes in {len(stats['buckets'])} buckets")
        for index, nodes, good, replacements in stats["buckets"]:
            print(f"  bucket {index:3d}: {nodes} nodes ({good} good), {replacements} replacements")
        print(f"traffic       {stats['packets_in']} packets in ({stats['bytes_in']} B), "
              f"{stats['packets_out']} out ({stats['bytes_out']} B)")
        print(f"queries       {stats['queries_out']} sent, {stats['responses_in']} answered, "
              f"{stats['timeouts']} timed out")
        return 0

    return _run(args, action)
