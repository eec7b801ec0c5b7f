"""What every command needs: the effective config, the identity, the control client, output."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rnn_tui.config import Config, load_config
from rnn_tui.control import client
from rnn_tui.errors import KeystoreError
from rnn_tui.identity import Identity, Keystore, resolve_passphrase

FLAG_DESTS = ("data_dir", "log_dir", "port", "listen_host", "bootstrap", "passphrase_file",
              "log_level", "relay")


def config_from_args(args: argparse.Namespace) -> Config:
    flags = {dest: getattr(args, dest, None) for dest in FLAG_DESTS}
    config_file = getattr(args, "config", None)
    return load_config(config_file=Path(config_file) if config_file else None, flags=flags)


def keystore_for(config: Config) -> Keystore:
    return Keystore(config.keystore_path, kdf_cost=config["keystore.kdf_cost"])


def load_identity(config: Config, *, create: bool = True) -> tuple[Identity, bool]:
    """Open (or on first use create) the node identity.  Returns (identity, created)."""
    keystore = keystore_for(config)
    exists = keystore.exists()
    if not exists and not create:
        raise KeystoreError(f"{keystore.path}: no keystore yet; run 'rnn key info' or 'rnn start' to create one")
    passphrase = resolve_passphrase(config["keystore.passphrase_file"], config.config_dir,
                                    create=not exists)
    return keystore.load_or_create(passphrase)


def control_call(args: argparse.Namespace, method: str, params: dict[str, Any] | None = None,
                 timeout: float = 30.0) -> Any:
    config = config_from_args(args)
    return client.call(config.control_socket_path, method, params, timeout=timeout)


def control_stream(args: argparse.Namespace, method: str, params: dict[str, Any] | None = None) -> Any:
    config = config_from_args(args)
    return client.stream(config.control_socket_path, method, params)


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*headers).rstrip())
    for row in rows:
        print(fmt.format(*row).rstrip())
