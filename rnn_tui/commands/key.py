"""``rnn key info|export|import``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rnn_tui.commands.common import config_from_args, keystore_for, load_identity, print_json
from rnn_tui.errors import KeystoreError
from rnn_tui.identity import Identity, resolve_passphrase
from rnn_tui.util.files import atomic_write


def register(sub: Any) -> None:
    key = sub.add_parser("key", help="the node's identity key")
    ksub = key.add_subparsers(dest="key_command", metavar="ACTION", required=True)

    info = ksub.add_parser("info", help="show the peer id (creates the identity on first use)")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)

    export = ksub.add_parser("export", help="export the private key (32-byte Ed25519 seed)")
    export.add_argument("--format", choices=("binary", "hex"), default="hex")
    export.add_argument("--output", metavar="PATH", help="file to write (mode 0600); default stdout")
    export.add_argument("--force", action="store_true", help="overwrite an existing output file")
    export.set_defaults(func=cmd_export)

    imp = ksub.add_parser("import", help="import a private key (32-byte seed, binary or hex)")
    imp.add_argument("path", metavar="PATH")
    imp.add_argument("--force", action="store_true", help="replace an existing keystore")
    imp.set_defaults(func=cmd_import)


def cmd_info(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    identity, created = load_identity(config)
    info = keystore_for(config).info()
    if args.json:
        print_json({"peer_id": str(identity.peer_id), "peer_id_hex": identity.peer_id.hex,
                    "short": identity.peer_id.short, "key_file": str(info.path),
                    "created": info.created, "new": created})
        return 0
    print(f"peer id:  {identity.peer_id}")
    print(f"short:    {identity.peer_id.short}")
    print(f"hex:      {identity.peer_id.hex}")
    print(f"key file: {info.path}")
    print(f"created:  {info.created}{'  (new)' if created else ''}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    identity, _ = load_identity(config, create=False)
    data = identity.seed if args.format == "binary" else (identity.seed.hex() + "\n").encode()
    if args.output is None:
        if args.format == "binary" and sys.stdout.isatty():
            raise KeystoreError("refusing to write a binary key to a terminal; use --output PATH or --format hex")
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return 0
    out = Path(args.output)
    try:
        atomic_write(out, data, 0o600, overwrite=args.force)
    except FileExistsError:
        raise KeystoreError(f"{out}: file exists; use --force to overwrite") from None
    except OSError as exc:
        raise KeystoreError(f"{out}: cannot write: {exc.strerror}") from None
    print(f"wrote {args.format} private key to {out} (mode 0600)", file=sys.stderr)
    return 0


def parse_key_file(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KeystoreError(f"{path}: cannot read key file: {exc.strerror}") from None
    if len(raw) == 32:
        return raw
    text = raw.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            pass
    raise KeystoreError(f"{path}: expected a 32-byte binary seed or 64 hex digits, got {len(raw)} bytes")


def cmd_import(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    seed = parse_key_file(Path(args.path))
    keystore = keystore_for(config)
    if keystore.exists() and not args.force:
        raise KeystoreError(f"{keystore.path}: a keystore already exists; use --force to replace it")
    passphrase = resolve_passphrase(config["keystore.passphrase_file"], config.config_dir,
                                    create=not keystore.exists())
    identity = Identity(seed)
    keystore.save(identity, passphrase, overwrite=args.force)
    print(f"imported key for peer {identity.peer_id}")
    return 0
