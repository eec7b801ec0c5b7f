"""Write tokens for ``announce_peer`` and ``put`` (BEP 5).

Why: a token proves the writer can receive packets at the IP it claims, so nobody can
announce or store on behalf of a spoofed address.  The token is an HMAC of the requester's
IP under a random secret; the secret rotates every 5 minutes and the previous one is still
accepted, so a token lives 5 to 10 minutes.  (The original system used its public node id
as the secret, so anyone could forge tokens.)  Secrets come from the injected rng.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

ROTATE_EVERY = 5 * 60.0
TOKEN_LEN = 8


class TokenManager:
    __slots__ = ("_rng_bytes", "_current", "_previous", "_rotated_at")

    def __init__(self, rng_bytes: Callable[[int], bytes], now: float) -> None:
        self._rng_bytes = rng_bytes
        self._current = rng_bytes(16)
        self._previous = self._current
        self._rotated_at = now

    def _mac(self, secret: bytes, ip: str) -> bytes:
        return hmac.new(secret, ip.encode(), hashlib.sha1).digest()[:TOKEN_LEN]

    def maybe_rotate(self, now: float) -> None:
        if now - self._rotated_at >= ROTATE_EVERY:
            # If we slept through several periods, both old secrets are void.
            self._previous = self._current if now - self._rotated_at < 2 * ROTATE_EVERY else self._rng_bytes(16)
            self._current = self._rng_bytes(16)
            self._rotated_at = now

    def next_rotation(self) -> float:
        return self._rotated_at + ROTATE_EVERY

    def issue(self, ip: str, now: float) -> bytes:
        self.maybe_rotate(now)
        return self._mac(self._current, ip)

    def check(self, token: bytes, ip: str, now: float) -> bool:
        self.maybe_rotate(now)
        return (hmac.compare_digest(token, self._mac(self._current, ip))
                or hmac.compare_digest(token, self._mac(self._previous, ip)))
