"""Encrypted keystore for the node's Ed25519 seed.

File format (JSON, version 1, mode 0600)::

    {"format": "rnn-keystore", "version": 1,
     "kdf": {"name": "argon2id", "opslimit": 3, "memlimit": 268435456, "salt": "<hex 16>"},
     "cipher": "xsalsa20poly1305", "box": "<hex nonce||ciphertext>",
     "peer_id": "<z-base-32>", "created": "2026-11-24T01:00:00+00:00"}

Why: Argon2id (``nacl.pwhash``) makes a stolen file expensive to brute force; SecretBox
authenticates, so a wrong passphrase and a tampered file are both detected.  The file
records its KDF parameters, so the cost can rise later without breaking old files.
The peer id is kept in clear so ``rnn key info`` can say whose key a file holds, and it is
checked against the decrypted seed.

Passphrase resolution order: ``--passphrase-file``, ``RNN_PASSPHRASE``, the auto-created
``passphrase`` file (0600) in the config dir, then a prompt on a TTY.  On a fresh
unattended server with none of these, we create the passphrase file so the node can
restart unattended; the key is then protected by file permissions, as an SSH host key is.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import nacl.exceptions
import nacl.pwhash
import nacl.secret

from rnn_tui.errors import KeystoreError
from rnn_tui.identity.keys import Identity, PeerId
from rnn_tui.util.files import atomic_write

FORMAT = "rnn-keystore"
VERSION = 1
KDF_COSTS = {
    "moderate": (nacl.pwhash.argon2id.OPSLIMIT_MODERATE, nacl.pwhash.argon2id.MEMLIMIT_MODERATE),
    "interactive": (
        nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
        nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE,
    ),
}
AUTO_PASSPHRASE_NAME = "passphrase"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    peer_id: PeerId
    path: Path
    created: str


def _derive(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return nacl.pwhash.argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE, passphrase, salt, opslimit=opslimit, memlimit=memlimit
    )


class Keystore:
    """One keystore file.  Never overwrites an existing file it could not read."""

    def __init__(self, path: Path, kdf_cost: str = "moderate") -> None:
        if kdf_cost not in KDF_COSTS:
            raise KeystoreError(f"unknown keystore.kdf_cost {kdf_cost!r}: use moderate or interactive")
        self.path = Path(path)
        self.kdf_cost = kdf_cost

    def exists(self) -> bool:
        return self.path.exists()

    # -- reading --------------------------------------------------------------------------
    def _read_document(self) -> dict[str, object]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise KeystoreError(f"{self.path}: keystore not found") from None
        except OSError as exc:
            raise KeystoreError(f"{self.path}: cannot read keystore: {exc.strerror}") from None
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise KeystoreError(
                f"{self.path}: keystore is corrupted or truncated (not valid JSON); "
                "restore it from a backup or import a key with 'rnn key import'"
            ) from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise KeystoreError(f"{self.path}: not an rnn keystore file")
        if doc.get("version") != VERSION:
            raise KeystoreError(
                f"{self.path}: keystore version {doc.get('version')!r} is not supported "
                f"(this build reads version {VERSION})"
            )
        return doc

    def info(self) -> KeyInfo:
        doc = self._read_document()
        try:
            peer_id = PeerId.parse(str(doc["peer_id"]))
        except (KeyError, ValueError):
            raise KeystoreError(f"{self.path}: keystore is corrupted (bad peer_id field)") from None
        return KeyInfo(peer_id=peer_id, path=self.path, created=str(doc.get("created", "")))

    def load(self, passphrase: bytes) -> Identity:
        doc = self._read_document()
        try:
            kdf = doc["kdf"]
            assert isinstance(kdf, dict)
            if kdf.get("name") != "argon2id":
                raise KeystoreError(f"{self.path}: unsupported KDF {kdf.get('name')!r}")
            salt = bytes.fromhex(str(kdf["salt"]))
            opslimit = int(kdf["opslimit"])
            memlimit = int(kdf["memlimit"])
            box = bytes.fromhex(str(doc["box"]))
            expected = PeerId.parse(str(doc["peer_id"]))
        except KeystoreError:
            raise
        except (KeyError, ValueError, TypeError, AssertionError):
            raise KeystoreError(f"{self.path}: keystore is corrupted (missing or bad fields)") from None
        if len(salt) != nacl.pwhash.argon2id.SALTBYTES:
            raise KeystoreError(f"{self.path}: keystore is corrupted (bad KDF salt)")
        try:
            key = _derive(passphrase, salt, opslimit, memlimit)
        except (nacl.exceptions.RuntimeError, nacl.exceptions.ValueError, ValueError):
            raise KeystoreError(f"{self.path}: keystore is corrupted (bad KDF parameters)") from None
        try:
            seed = nacl.secret.SecretBox(key).decrypt(box)
        except nacl.exceptions.CryptoError:
            raise KeystoreError(
                f"{self.path}: wrong passphrase (or the keystore was altered)"
            ) from None
        if len(seed) != 32:
            raise KeystoreError(f"{self.path}: keystore is corrupted (bad seed length)")
        identity = Identity(seed)
        if identity.peer_id != expected:
            raise KeystoreError(f"{self.path}: keystore is corrupted (peer id does not match key)")
        return identity

    # -- writing --------------------------------------------------------------------------
    def save(self, identity: Identity, passphrase: bytes, *, overwrite: bool = False) -> None:
        opslimit, memlimit = KDF_COSTS[self.kdf_cost]
        salt = secrets.token_bytes(nacl.pwhash.argon2id.SALTBYTES)
        key = _derive(passphrase, salt, opslimit, memlimit)
        box = bytes(nacl.secret.SecretBox(key).encrypt(identity.seed))
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "kdf": {"name": "argon2id", "opslimit": opslimit, "memlimit": memlimit,
                    "salt": salt.hex()},
            "cipher": "xsalsa20poly1305",
            "box": box.hex(),
            "peer_id": str(identity.peer_id),
            "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            atomic_write(self.path, (json.dumps(doc, indent=2) + "\n").encode(), 0o600,
                         overwrite=overwrite)
        except FileExistsError:
            raise KeystoreError(f"{self.path}: a keystore already exists; refusing to overwrite") from None
        except OSError as exc:
            raise KeystoreError(f"{self.path}: cannot write keystore: {exc.strerror}") from None

    def load_or_create(self, passphrase: bytes) -> tuple[Identity, bool]:
        """Load the identity, creating it on first use.  Returns (identity, created)."""
        if self.exists():
            return self.load(passphrase), False
        identity = Identity.generate()
        self.save(identity, passphrase)
        return identity, True


def resolve_passphrase(passphrase_file: Path | None, config_dir: Path, *,
                       create: bool = True, env: dict[str, str] | None = None) -> bytes:
    """Find the keystore passphrase, in the documented order (see module docstring)."""
    env = dict(os.environ) if env is None else env
    if passphrase_file is not None:
        try:
            data = Path(passphrase_file).read_bytes()
        except OSError as exc:
            raise KeystoreError(f"{passphrase_file}: cannot read passphrase file: {exc.strerror}") from None
        return _strip_newline(data, str(passphrase_file))
    if env.get("RNN_PASSPHRASE"):
        return env["RNN_PASSPHRASE"].encode()
    auto = Path(config_dir) / AUTO_PASSPHRASE_NAME
    if auto.exists():
        try:
            return _strip_newline(auto.read_bytes(), str(auto))
        except OSError as exc:
            raise KeystoreError(f"{auto}: cannot read passphrase file: {exc.strerror}") from None
    if sys.stdin is not None and sys.stdin.isatty() and not create:
        import getpass

        return getpass.getpass("Keystore passphrase: ").encode()
    if not create:
        raise KeystoreError(
            "no keystore passphrase: pass --passphrase-file, set RNN_PASSPHRASE, "
            f"or create {auto}"
        )
    Path(config_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    passphrase = secrets.token_urlsafe(32).encode()
    try:
        atomic_write(auto, passphrase + b"\n", 0o600, overwrite=False)
    except FileExistsError:
        return _strip_newline(auto.read_bytes(), str(auto))
    return passphrase


def _strip_newline(data: bytes, where: str) -> bytes:
    value = data.rstrip(b"\r\n")
    if not value:
        raise KeystoreError(f"{where}: passphrase file is empty")
    return value
