"""``rnn gossip stats``: topics, mesh peers, messages in and out, duplicates, drops.

Asks the running node over the control socket (method ``gossip.stats``, answered with
``GossipStats.to_dict()``), so the figures are the live node's, not a throwaway's.
"""

from __future__ import annotations

import argparse
from typing import Any

from rnn_tui.commands.common import control_call, print_json, print_table

__all__ = ["register", "cmd_stats", "render_stats"]

# Counters shown on the traffic line, in this order; every other non-zero counter is a
# drop reason or a protocol detail and goes on the "dropped / other" lines.
_TRAFFIC = ("messages_in", "messages_out", "published", "delivered", "duplicates", "invalid")
_DROPS = ("invalid_signature", "malformed", "unknown_topic", "rate_limited", "author_rate_limited",
          "hop_limit",
          "stale_timestamp", "future_timestamp", "replayed_seq", "stale_seq",
          "graylisted_frames", "unknown_peer")


def register(sub: Any) -> None:
    gossip = sub.add_parser("gossip", help="inspect the node's gossip (topics, mesh, traffic)")
    gsub = gossip.add_subparsers(dest="gossip_command", metavar="ACTION", required=True)
    stats = gsub.add_parser("stats", help="topics, mesh peers, messages in/out, duplicates, invalid")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.add_argument("--all", action="store_true", help="also list every protocol counter")
    stats.set_defaults(func=cmd_stats)


def cmd_stats(args: argparse.Namespace) -> int:
    stats = control_call(args, "gossip.stats", timeout=10.0)
    if args.json:
        print_json(stats)
    else:
        print(render_stats(stats, show_all=args.all))
    return 0


def render_stats(stats: dict[str, Any], *, show_all: bool = False) -> str:
    """The human form of a ``gossip.stats`` reply (kept pure so it can be tested)."""
    import contextlib
    import io

    counters: dict[str, int] = stats.get("counters", {})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print(f"peer {stats.get('peer_id', '?')}   connected peers {stats.get('connected_peers', 0)}   "
              f"seen-cache {stats.get('seen_cache', 0)}   message-cache {stats.get('message_cache', 0)}")
        print()
        topics = stats.get("topics", [])
        if topics:
            print_table(["TOPIC", "SUBSCRIBED", "MESH", "TOPIC PEERS", "FANOUT", "MESH PEERS"],
                        [[t["topic"], "yes" if t["subscribed"] else "no", str(len(t["mesh_peers"])),
                          str(t["topic_peers"]), str(t["fanout_peers"]), " ".join(t["mesh_peers"])]
                         for t in topics])
        else:
            print("no topics")
        print()
        print("messages  " + "   ".join(f"{name.replace('_', ' ')} {counters.get(name, 0)}"
                                        for name in _TRAFFIC))
        drops = [f"{name.replace('_', ' ')} {counters[name]}" for name in _DROPS if counters.get(name)]
        print("dropped   " + ("   ".join(drops) if drops else "none"))
        penalized = stats.get("penalized", [])
        if penalized:
            print("penalized " + "   ".join(f"{peer} ({score:g})" for peer, score in penalized))
        if show_all:
            print()
            print_table(["COUNTER", "VALUE"], [[k, str(v)] for k, v in sorted(counters.items())])
    return out.getvalue().rstrip("\n")
