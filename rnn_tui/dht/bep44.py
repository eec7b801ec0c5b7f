"""BEP 44 items: targets, signature buffers, signing and verification.

Why a module of its own: both the server (checking a ``put``) and the client (checking
what a ``get`` returned, signing our own ``put``) need exactly the same byte rules, and a
single difference (an unsorted dict in ``v``, a salt hashed twice) makes every signature
invalid.  ``v`` is always handled as its canonical bencoding.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

import nacl.bindings

from rnn_tui.dht.codec import encode
from rnn_tui.identity import verify_signature

MAX_VALUE_SIZE = 1000  # bytes of the bencoded ``v``
MAX_SALT_SIZE = 64
PUBLIC_KEY_LEN = 32
SIGNATURE_LEN = 64


class Signer(Protocol):
    """Anything that signs like our ``Identity``: a 32-byte public key and ``sign()``."""

    @property
    def public_key(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class MutableItem:
    """A verified mutable item as found in the DHT."""

    public_key: bytes
    salt: bytes
    seq: int
    value: Any
    signature: bytes


@dataclass(frozen=True, slots=True)
class ImmutableItem:
    value: Any


def mutable_target(public_key: bytes, salt: bytes = b"") -> bytes:
    """``sha1(k + salt)``: the DHT key of a mutable item."""
    return hashlib.sha1(public_key + salt).digest()


def immutable_target(value: Any) -> bytes:
    """``sha1(bencode(v))``: the DHT key of an immutable item."""
    return hashlib.sha1(encode(value)).digest()


def signature_buffer(seq: int, encoded_value: bytes, salt: bytes = b"") -> bytes:
    """The bytes a mutable item's signature covers (BEP 44: salt, seq, v, as bencode)."""
    prefix = b"4:salt%d:%s" % (len(salt), salt) if salt else b""
    return prefix + b"3:seqi%de1:v" % seq + encoded_value


def sign_item(signer: Signer, value: Any, seq: int, salt: bytes = b"") -> bytes:
    return signer.sign(signature_buffer(seq, encode(value), salt))


def verify_item(public_key: bytes, value: Any, seq: int, signature: bytes, salt: bytes = b"") -> bool:
    return verify_signature(public_key, signature_buffer(seq, encode(value), salt), signature)


class ExpandedKeySigner:
    """Signs with a 64-byte *expanded* Ed25519 secret key (clamped scalar || prefix).

    Why: the BEP 44 test vectors and libtorrent's ``dht_put_mutable_item`` use this form;
    seed-based signers cannot reproduce those signatures.  Our own keys stay seeds
    (``Identity``); this class exists for the spec vectors and interop with libtorrent.
    The computation is RFC 8032 signing, with PyNaCl's low-level group bindings.
    """

    __slots__ = ("_scalar", "_prefix", "public_key")

    def __init__(self, expanded_secret: bytes, public_key: bytes | None = None) -> None:
        if len(expanded_secret) != 64:
            raise ValueError("an expanded Ed25519 secret key is 64 bytes")
        self._scalar = expanded_secret[:32]
        self._prefix = expanded_secret[32:]
        derived = nacl.bindings.crypto_scalarmult_ed25519_base_noclamp(
            nacl.bindings.crypto_core_ed25519_scalar_reduce(self._scalar + bytes(32)))
        if public_key is not None and public_key != derived:
            raise ValueError("public key does not match the expanded secret key")
        self.public_key = derived

    @classmethod
    def from_seed(cls, seed: bytes) -> ExpandedKeySigner:
        """The expanded form of a seed, as libtorrent's ``ed25519_create_keypair`` makes it."""
        digest = bytearray(hashlib.sha512(seed).digest())
        digest[0] &= 248
        digest[31] &= 127
        digest[31] |= 64
        return cls(bytes(digest))

    @property
    def expanded_secret(self) -> bytes:
        return self._scalar + self._prefix

    def sign(self, message: bytes) -> bytes:
        b = nacl.bindings
        r = b.crypto_core_ed25519_scalar_reduce(hashlib.sha512(self._prefix + message).digest())
        big_r = b.crypto_scalarmult_ed25519_base_noclamp(r)
        k = b.crypto_core_ed25519_scalar_reduce(
            hashlib.sha512(big_r + self.public_key + message).digest())
        a = b.crypto_core_ed25519_scalar_reduce(self._scalar + bytes(32))
        s = b.crypto_core_ed25519_scalar_add(r, b.crypto_core_ed25519_scalar_mul(k, a))
        return bytes(big_r + s)
