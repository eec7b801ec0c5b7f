"""``rnn start``, ``rnn status``, ``rnn stop``, and the peer commands that talk to a running node."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from rnn_tui.commands.common import config_from_args, control_call, print_json


def register(sub: Any) -> None:
    start = sub.add_parser("start", help="start the node (with the terminal UI unless --headless)")
    start.add_argument("--headless", action="store_true", help="run without UI, logging to stdout")
    start.add_argument("--readonly", action="store_true", help="UI: browse only, no changes")
    start.add_argument("--demo", action="store_true", help="UI: a demo scene, no network")
    start.set_defaults(func=cmd_start)

    status = sub.add_parser("status", help="the running node's identity, addresses and reachability")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    stop = sub.add_parser("stop", help="ask the running node to shut down")
    stop.set_defaults(func=lambda a: (control_call(a, "stop"), 0)[1])
    register_peer_commands(sub)


def cmd_start(args: argparse.Namespace) -> int:
    from rnn_tui.logsetup import setup_logging
    from rnn_tui.node import Node, run_headless

    config = config_from_args(args)
    if args.headless:
        setup_logging(config["node.log_level"], config.log_dir, to_stdout=True)
        return asyncio.run(run_headless(Node(config)))
    setup_logging(config["node.log_level"], config.log_dir, to_stdout=False)
    try:
        from rnn_tui.tui.app import run_app
    except ImportError as exc:  # the TUI package failed to import: say so, run headless
        print(f"error: the terminal UI is unavailable ({exc}); use --headless", file=sys.stderr)
        return 1
    if getattr(args, "demo", False):
        from rnn_tui.tui.demo import DemoNode

        return int(run_app(DemoNode.live_scene(), readonly=getattr(args, "readonly", False)))
    from rnn_tui.facade import NodeFacadeImpl

    return int(run_app(NodeFacadeImpl(Node(config)), readonly=getattr(args, "readonly", False)))


def cmd_status(args: argparse.Namespace) -> int:
    status = control_call(args, "status")
    if args.json:
        print_json(status)
        return 0
    width = max(len(k) for k in status)
    for key, value in status.items():
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value) or "—"
        print(f"{key:<{width}}  {value}")
    return 0


def register_peer_commands(sub: Any) -> None:
    peers = sub.add_parser("peers", help="known peers: id, addresses, path, RTT, last seen")
    peers.add_argument("--json", action="store_true")
    peers.add_argument("--connected", action="store_true", help="only peers with a live connection")
    peers.set_defaults(func=cmd_peers)

    peer = sub.add_parser("peer", help="one peer in full: addresses, metadata, connection")
    peer.add_argument("peer_id", metavar="PEER_ID")
    peer.add_argument("--json", action="store_true")
    peer.set_defaults(func=cmd_peer)

    connect = sub.add_parser("connect", help="connect to HOST:PORT or to a PEER_ID found in the DHT")
    connect.add_argument("target", metavar="HOST:PORT|PEER_ID")
    connect.add_argument("--json", action="store_true")
    connect.set_defaults(func=cmd_connect)

    ping = sub.add_parser("ping", help="round-trip time to a connected peer")
    ping.add_argument("peer_id", metavar="PEER_ID")
    ping.add_argument("--count", type=int, default=1)
    ping.add_argument("--json", action="store_true")
    ping.set_defaults(func=cmd_ping)


def _ago(ts: float | None) -> str:
    import time

    if not ts:
        return "—"
    delta = max(0.0, time.time() - ts)
    if delta < 90:
        return f"{delta:.0f}s ago"
    if delta < 5400:
        return f"{delta / 60:.0f}m ago"
    return f"{delta / 3600:.1f}h ago"


def cmd_peers(args: argparse.Namespace) -> int:
    from rnn_tui.commands.common import print_table

    peers = control_call(args, "peers", {"connected": args.connected})
    if args.json:
        print_json(peers)
        return 0
    rows = [[p["short_id"], p.get("path") or "—", ", ".join(p.get("addresses", [])[:2]) or "—",
             f"{p['rtt_ms']:.1f}" if p.get("rtt_ms") is not None else "—",
             p.get("nat_type") or "unknown", str(p.get("service_count", 0)), _ago(p.get("last_seen"))]
            for p in peers]
    print_table(["PEER", "PATH", "ADDRESSES", "RTT_MS", "NAT", "SERVICES", "LAST SEEN"], rows)
    return 0


def cmd_peer(args: argparse.Namespace) -> int:
    info = control_call(args, "peer", {"peer_id": args.peer_id})
    if args.json:
        print_json(info)
        return 0
    punches = info.pop("punches", [])
    for key, value in info.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k}: {v}")
        else:
            print(f"{key}: {value}")
    _print_punches(punches)
    return 0


def _print_punches(punches: list[dict[str, Any]]) -> None:
    """The peer's last hole-punch attempts, newest first (one line each)."""
    import time

    from rnn_tui.commands.common import print_table

    if not punches:
        print("punches: none recorded")
        return
    print("punches:")
    rows = [[time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p["started"])), p["strategy"],
             p["outcome"], f"{p['time_to_direct'] * 1000:.0f}" if p.get("time_to_direct") is not None
             else "—", str(p["attempts"]), p.get("remote") or "—", p.get("error") or ""]
            for p in punches]
    print_table(["STARTED", "STRATEGY", "OUTCOME", "TTD_MS", "TRIES", "DIRECT AT", "ERROR"], rows)


def cmd_connect(args: argparse.Namespace) -> int:
    info = control_call(args, "connect", {"target": args.target}, timeout=60)
    if args.json:
        print_json(info)
    else:
        print(f"connected to {info['peer_id']} at {info.get('address', '?')} ({info.get('path', 'direct')})")
    return 0


def cmd_ping(args: argparse.Namespace) -> int:
    results = []
    for _ in range(max(1, args.count)):
        results.append(control_call(args, "ping", {"peer_id": args.peer_id}, timeout=30))
    if args.json:
        print_json(results if args.count > 1 else results[0])
    else:
        for r in results:
            print(f"{r['peer_id'][:10]}: rtt {r['rtt_ms']:.2f} ms ({r.get('path', 'direct')})")
    return 0
