"""Dial-back: proof that our observed address is reachable unsolicited (sans-IO).

Why: ``EIM`` only says every peer sees us at the same ``ip:port``; a filtering NAT still
drops packets from anyone we have not sent to.  ``PUBLIC`` (and with it relay service
under ``relay.enabled: auto``) needs evidence that a stranger can reach us.  So we ask a
connected peer to *dial back*: it sends one raw datagram carrying our nonce to the
address it sees us at, **from a fresh socket** (a new source port, an address we never
sent to), so a NAT's filter would drop it.  When it arrives here we check:

* the nonce is one we handed out, not expired, not used before;
* the source is not the address of the peer we asked (that one the NAT lets through),
  and the endpoint never sent a datagram to that source (``sent_to`` is the driver's
  answer), so a peer answering from its ordinary socket proves nothing;
* the peer can only dial the address it observes for our connection (it never takes a
  target from us), so nobody can use dial-back to make a node spray packets elsewhere.

One peer can lie (it can send the probe from a host it controls while we are firewalled),
so the detector wants confirmations from ``min_agree`` distinct *asked* peers' IPs before
it calls us ``PUBLIC`` (the driver attributes a confirmation to the peer asked, not to the
probe's source).  Limit: the probe leaves from the asked peer's own IP, so a NAT that
filters by IP only (not port) admits it; docs/NAT_TRAVERSAL.md §1 names that gap.  The serving side is rate limited per requester IP and overall; beyond the
limits a request is refused with the reason.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rnn_tui.nat.model import Addr, check_addr
from rnn_tui.transport.messages import register_message

__all__ = [
    "DIAL_BACK_MAGIC", "DialBackConfig", "DialBackCore", "DialBackRequest", "DialBackReply",
    "DialBackProbe", "DialBackConfirmed", "DialBackRejected", "encode_probe", "decode_probe",
    "NONCE_LEN",
]

DIAL_BACK_MAGIC = b"\x00RND"  # first byte < 0x40: never QUIC, never bencode; != PROBE_MAGIC
NONCE_LEN = 16
_MAX_REASON = 200


@dataclass(frozen=True, slots=True)
class DialBackConfig:
    wait: float = 5.0  # how long a nonce we handed out stays valid
    max_pending: int = 8  # nonces outstanding at once (requester side)
    per_ip_interval: float = 30.0  # serving: one dial-back per requester IP per interval
    window: float = 60.0  # serving: at most ``max_per_window`` dial-backs in ``window``
    max_per_window: int = 20


# -- transport messages (over the authenticated QUIC connection) ---------------------
@register_message
@dataclass(frozen=True, slots=True)
class DialBackRequest:
    """"Please send ``nonce`` to the address you see me at, from a fresh socket"."""

    TYPE: ClassVar[int] = 0x0410
    nonce: bytes

    def __post_init__(self) -> None:
        if len(self.nonce) != NONCE_LEN:
            raise ValueError(f"dial-back nonce must be {NONCE_LEN} bytes, got {len(self.nonce)}")

    def encode(self) -> bytes:
        return self.nonce

    @classmethod
    def decode(cls, body: bytes) -> DialBackRequest:
        return cls(body)


@register_message
@dataclass(frozen=True, slots=True)
class DialBackReply:
    """``sent`` true: the probe left; false: refused, ``reason`` says why."""

    TYPE: ClassVar[int] = 0x0411
    sent: bool
    reason: str = ""

    def encode(self) -> bytes:
        return bytes([1 if self.sent else 0]) + self.reason.encode()[:_MAX_REASON]

    @classmethod
    def decode(cls, body: bytes) -> DialBackReply:
        if not body or body[0] not in (0, 1) or len(body) > 1 + _MAX_REASON:
            raise ValueError("dial-back reply: bad flag byte or reason too long")
        return cls(body[0] == 1, body[1:].decode("utf-8", "replace"))


# -- the raw probe -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DialBackProbe:
    nonce: bytes
    target: Addr  # the address the prober sent to (what it observes for us)


def encode_probe(p: DialBackProbe) -> bytes:
    host = p.target[0].encode()
    return DIAL_BACK_MAGIC + p.nonce + struct.pack("!HB", p.target[1], len(host)) + host


def decode_probe(data: bytes) -> DialBackProbe | None:
    """The probe in ``data``, or None for anything malformed (dropped, never raised)."""
    head = len(DIAL_BACK_MAGIC) + NONCE_LEN
    if not data.startswith(DIAL_BACK_MAGIC) or len(data) < head + 3:
        return None
    port, n = struct.unpack_from("!HB", data, head)
    host = data[head + 3:]
    if len(host) != n:
        return None
    target = check_addr((host.decode("ascii", "replace"), port))
    if target is None:
        return None
    return DialBackProbe(data[len(DIAL_BACK_MAGIC):head], target)


# -- outcomes --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DialBackConfirmed:
    """A valid probe reached us unsolicited at ``target`` from ``prober``."""

    prober: Addr
    target: Addr
    asked: Addr  # the peer we asked


@dataclass(frozen=True, slots=True)
class DialBackRejected:
    """A probe arrived but proves nothing; ``reason`` names why."""

    source: Addr
    reason: str


@dataclass(frozen=True, slots=True)
class _Pending:
    asked: Addr
    expires: float


class DialBackCore:
    """Both sides of dial-back: nonces we handed out, and limits on what we serve.

    Inputs: ``begin``/``cancel`` (requester), ``probe_received`` (requester),
    ``admit`` (server), all taking ``now``; randomness comes from ``rng_bytes``.
    """

    def __init__(self, config: DialBackConfig | None = None, *,
                 rng_bytes: Callable[[int], bytes]) -> None:
        self.config = config or DialBackConfig()
        self._rng_bytes = rng_bytes
        self._pending: dict[bytes, _Pending] = {}
        self._arrived: dict[bytes, None] = {}  # confirmed nonces, oldest first (bounded)
        self._served_by_ip: dict[str, float] = {}
        self._served: deque[float] = deque()

    # -- requester -----------------------------------------------------------------
    def begin(self, asked: Addr, now: float) -> bytes | None:
        """A fresh nonce for a request to the peer at ``asked``; None when too many wait."""
        self._expire(now)
        if len(self._pending) >= self.config.max_pending:
            return None
        nonce = self._rng_bytes(NONCE_LEN)
        self._pending[nonce] = _Pending(asked, now + self.config.wait)
        return nonce

    def cancel(self, nonce: bytes) -> None:
        self._pending.pop(nonce, None)

    def arrived(self, nonce: bytes) -> bool:
        """Whether this nonce's probe was confirmed (among the last few hundred)."""
        return nonce in self._arrived

    @property
    def pending(self) -> int:
        return len(self._pending)

    def probe_received(self, data: bytes, source: Addr, *, sent_to: bool,
                       now: float) -> DialBackConfirmed | DialBackRejected:
        """Judge a raw dial-back datagram from ``source``.

        ``sent_to``: whether our endpoint ever sent a datagram to ``source`` (then the NAT
        would have let it in anyway, and it proves nothing).
        """
        self._expire(now)
        probe = decode_probe(data)
        if probe is None:
            return DialBackRejected(source, "malformed dial-back probe")
        pending = self._pending.get(probe.nonce)
        if pending is None:
            return DialBackRejected(source, "unknown or expired nonce")
        if source == pending.asked:
            return DialBackRejected(source, "sent from the asked peer's own address")
        if sent_to:
            return DialBackRejected(source, "from an address we have sent to")
        del self._pending[probe.nonce]  # one confirmation per nonce
        self._arrived[probe.nonce] = None
        if len(self._arrived) > 256:
            del self._arrived[next(iter(self._arrived))]
        return DialBackConfirmed(source, probe.target, pending.asked)

    # -- server ----------------------------------------------------------------------
    def admit(self, requester_ip: str, now: float) -> str | None:
        """None when we may dial back ``requester_ip`` now (and count it); else the reason."""
        cfg = self.config
        while self._served and now - self._served[0] >= cfg.window:
            self._served.popleft()
        last = self._served_by_ip.get(requester_ip)
        if last is not None and now - last < cfg.per_ip_interval:
            return (f"rate limited: one dial-back per {cfg.per_ip_interval:g} s "
                    f"per address (next in {cfg.per_ip_interval - (now - last):.0f} s)")
        if len(self._served) >= cfg.max_per_window:
            return f"busy: {cfg.max_per_window} dial-backs in the last {cfg.window:g} s"
        self._served.append(now)
        self._served_by_ip[requester_ip] = now
        if len(self._served_by_ip) > 4 * cfg.max_per_window:  # memory bound
            self._served_by_ip = {ip: t for ip, t in self._served_by_ip.items()
                                  if now - t < cfg.per_ip_interval}
        return None

    def _expire(self, now: float) -> None:
        for nonce in [n for n, p in self._pending.items() if p.expires <= now]:
            del self._pending[nonce]
