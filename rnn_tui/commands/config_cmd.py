"""``rnn config show|path``."""

from __future__ import annotations

import argparse
from typing import Any

from rnn_tui.commands.common import config_from_args, print_json, print_table


def register(sub: Any) -> None:
    cfg = sub.add_parser("config", help="show the effective configuration")
    csub = cfg.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = csub.add_parser("show", help="every setting, its value and where it came from")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
    path = csub.add_parser("path", help="the config file in use")
    path.set_defaults(func=lambda a: print(config_from_args(a).config_file) or 0)


def cmd_show(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    rows = config.as_rows()
    if args.json:
        print_json({"config_file": str(config.config_file),
                    "settings": {k: {"value": v, "source": s} for k, v, s in rows}})
        return 0
    print(f"# config file: {config.config_file}{'' if config.config_file.exists() else ' (absent)'}")
    print_table(["KEY", "VALUE", "SOURCE"], [list(r) for r in rows])
    return 0
