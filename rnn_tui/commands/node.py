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

        return int(run_app(DemoNode(), readonly=getattr(args, "readonly", False)))
    return int(run_app(Node(config), readonly=getattr(args, "readonly", False)))


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
