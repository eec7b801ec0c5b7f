"""Ed25519 identity and the peer id derived from it.

Invariant: a ``PeerId`` is exactly the 32-byte Ed25519 public key; nothing else names a
peer.  Its text form is z-base-32 (52 characters); the short form is the first 10.
We store the 32-byte *seed* only, never an expanded secret key.
"""

from __future__ import annotations

from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from rnn_tui.identity import zbase32

SHORT_LEN = 10


@dataclass(frozen=True, slots=True, order=True)
class PeerId:
    """A peer's Ed25519 public key (32 bytes); compare, hash and print it freely."""

    key: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes) or len(self.key) != 32:
            raise ValueError("a peer id is a 32-byte Ed25519 public key")

    @classmethod
    def parse(cls, text: str) -> PeerId:
        """Accept the z-base-32 form (52 chars) or 64 hex digits."""
        text = text.strip()
        if len(text) == 64:
            try:
                return cls(bytes.fromhex(text))
            except ValueError:
                pass
        try:
            return cls(zbase32.decode(text.lower(), 32))
        except ValueError as exc:
            raise ValueError(f"not a peer id: {text!r} ({exc})") from None

    def __str__(self) -> str:
        return zbase32.encode(self.key)

    def __repr__(self) -> str:
        return f"PeerId({self.short})"

    @property
    def short(self) -> str:
        return str(self)[:SHORT_LEN]

    @property
    def hex(self) -> str:
        return self.key.hex()


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


class Identity:
    """The node's signing key.  Holds the seed; hands out the peer id and signatures."""

    __slots__ = ("_signing_key", "peer_id")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self._signing_key = nacl.signing.SigningKey(seed)
        self.peer_id = PeerId(bytes(self._signing_key.verify_key))

    @classmethod
    def generate(cls) -> Identity:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @property
    def seed(self) -> bytes:
        return bytes(self._signing_key)

    @property
    def public_key(self) -> bytes:
        return self.peer_id.key

    def sign(self, message: bytes) -> bytes:
        """Detached 64-byte Ed25519 signature."""
        return self._signing_key.sign(message).signature

    def __repr__(self) -> str:
        return f"Identity({self.peer_id.short})"
