"""``rnn``: the command-line entry point.

Each command group lives in its own module under ``rnn_tui/commands/`` and exposes
``register(subparsers)``; this file only assembles them.  Common options (``--data-dir``,
``--port``, ``--bootstrap`` ...) are accepted before or after any subcommand, because every
parser is an ``RnnArgumentParser``, which adds them (argparse creates sub-parsers of the
parent's class).  ``RnnError`` becomes one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from rnn_tui import __version__
from rnn_tui.errors import RnnError

COMMAND_MODULES = (
    "rnn_tui.commands.node",
    "rnn_tui.commands.key",
    "rnn_tui.commands.config_cmd",
    "rnn_tui.commands.dht",
    "rnn_tui.commands.gossip",
    "rnn_tui.commands.services",
    "rnn_tui.commands.workflow",
    "rnn_tui.commands.run",
)

COMMON_DESTS = ("config", "data_dir", "log_dir", "port", "listen_host", "bootstrap",
                "passphrase_file", "log_level", "relay")


class RnnArgumentParser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        kwargs.setdefault("conflict_handler", "resolve")
        super().__init__(*args, **kwargs)
        group = self.add_argument_group("node options")
        s = argparse.SUPPRESS
        group.add_argument("--config", metavar="PATH", default=s, help="config file (default: ~/.config/remote-network/config.yaml)")
        group.add_argument("--data-dir", metavar="DIR", default=s, help="data directory (keystore, database, jobs)")
        group.add_argument("--log-dir", metavar="DIR", default=s, help="log directory")
        group.add_argument("--port", metavar="N", default=s, help="UDP port for DHT and QUIC (0 = any free port)")
        group.add_argument("--listen-host", metavar="ADDR", default=s, help="address to bind (default 0.0.0.0)")
        group.add_argument("--bootstrap", metavar="HOST:PORT[,...]", default=s, help="DHT bootstrap nodes; an empty value means none")
        group.add_argument("--passphrase-file", metavar="PATH", default=s, help="file holding the keystore passphrase")
        group.add_argument("--log-level", metavar="LEVEL", default=s, help="debug, info, warning or error")
        group.add_argument("--relay", action="store_const", const="true", default=s, help="offer relay service even when not detected as public")


def build_parser() -> argparse.ArgumentParser:
    parser = RnnArgumentParser(
        prog="rnn",
        description="Remote Network Node: a terminal-first P2P compute network. "
                    "Without a command, starts the node with its terminal UI.",
    )
    parser.add_argument("--version", action="version", version=f"rnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            print(f"warning: command group {name} unavailable: {exc}", file=sys.stderr)
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for dest in COMMON_DESTS:
        if not hasattr(args, dest):
            setattr(args, dest, None)
    if not getattr(args, "func", None):
        if args.command is None:
            from rnn_tui.commands.node import cmd_start

            args.headless = False
            args.readonly = False
            args.demo = False
            return cmd_start(args)
        parser.parse_args([*(argv or sys.argv[1:]), "--help"])
        return 2
    try:
        return int(args.func(args) or 0)
    except RnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    finally:
        logging.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
