"""Hole punching, DCUtR-style, as a sans-IO state machine (one instance per peer session).

Why this shape: the two peers already share a relayed connection that is end-to-end
authenticated (the relay only sees ciphertext).  Over it they exchange candidate
addresses and a secret, measure the RTT, and synchronise, so that both NATs see outgoing
packets at about the same time and open mappings for each other:

    initiator                                   responder
    PunchConnect(addrs, nat, nonce_i)  ───────▶
                                       ◀─────── PunchConnect(addrs, nat, nonce_r, reply)
    rtt = now - sent
    PunchSync                          ───────▶ starts probing at once
    starts probing after rtt/2                  (both arrive at ~the same moment)
    probes  ◀═══════ raw UDP, tagged with blake2b(nonce_i‖nonce_r) ═══════▶  probes/acks

The first valid probe or ack tells a side which (remote address, local socket) works.
Receiving a probe proves both directions: it came through our NAT's mapping for that
peer, and our ack goes back along the same 5-tuple the peer opened.

Strategy (both sides compute it from the two NAT types, so they agree without talking):

* ``DIRECT``: plain probes from the node's one socket (``via`` 0) to every candidate.
* birthday, when exactly one side has endpoint-dependent mapping: the *hard* (EDM) side
  sends from ``birthday_sockets`` extra sockets (``via`` 1..N), opening N mappings towards
  the easy side's one stable address; the *easy* side sprays probes at random ports of the
  hard side's IP, bounded by ``birthday_max_probes``.  With 256 mappings among ~64k ports a
  probe hits with p ≈ 1/252, so 4096 probes succeed with p ≈ 1 − e⁻¹⁶.
* ``NONE``: both sides endpoint-dependent; punching cannot work, the peers stay relayed.

Bad input: messages that do not fit the state (a replayed SYNC, a SYNC for an unknown
attempt, a reply to an attempt we never started) are answered with ``PunchRefused`` and
reported as ``PunchMessageRefused``; they never change the state.  Probes with a wrong tag
or attempt are dropped and counted.  A probe tag only guards against cheap path hijacks;
the peer's identity on the direct path is proved by the QUIC handshake that follows.

No clock, socket or randomness inside: ``now`` comes in with every call, randomness from
the injected ``rng_bytes`` (nonces, attempt ids) and ``rng`` (birthday ports).
"""

from __future__ import annotations

import enum
import hashlib
import random
import struct
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rnn_tui.errors import LocalProtocolError
from rnn_tui.nat.model import Addr, NatType, check_addr, is_private_addr
from rnn_tui.nat.wire import (
    ATTEMPT_ID_LEN,
    MAX_ADDRS,
    NONCE_LEN,
    PROBE,
    PROBE_ACK,
    Probe,
    PunchConnect,
    PunchMessage,
    PunchRefused,
    PunchSync,
    decode_probe,
    encode_probe,
)

__all__ = [
    "HolePunch", "PunchConfig", "Strategy", "Transmit", "PunchState", "choose_strategy",
    "PunchStarted", "PunchSucceeded", "PunchAttemptFailed", "PunchFailed",
    "PunchMessageRefused", "PunchPeerRefused", "PunchEvent",
]


class Strategy(enum.Enum):
    DIRECT = "direct"
    BIRTHDAY_EASY = "birthday-easy"
    BIRTHDAY_HARD = "birthday-hard"
    NONE = "none"


def choose_strategy(mine: NatType, theirs: NatType) -> Strategy:
    """Our strategy given both NAT types; the peer's choice is always the mirror of ours."""
    if mine is NatType.EDM and theirs is NatType.EDM:
        return Strategy.NONE
    if mine is NatType.EDM:
        return Strategy.BIRTHDAY_HARD
    if theirs is NatType.EDM:
        return Strategy.BIRTHDAY_EASY
    return Strategy.DIRECT


@dataclass(frozen=True, slots=True)
class PunchConfig:
    probe_interval: float = 0.05  # plain probes to each candidate, every 50 ms
    punch_timeout: float = 3.0  # one attempt's probing window
    exchange_timeout: float = 5.0  # CONNECT reply / SYNC must arrive within this
    max_attempts: int = 3  # DCUtR retries the whole exchange up to 3 times
    linger: float = 2.0  # keep acking the peer's probes after we succeeded
    max_acks: int = 64  # bound on acks per attempt (we never become a reflector)
    birthday_sockets: int = 256
    birthday_max_probes: int = 4096
    birthday_batch: int = 128  # easy-side random-port probes per tick
    birthday_tick: float = 0.02
    hard_resend: float = 0.5  # hard side re-sends from its N sockets (keeps mappings open)
    port_range: tuple[int, int] = (1024, 65535)  # where an EDM NAT picks its ports

    def __post_init__(self) -> None:
        lo, hi = self.port_range
        if not 1 <= lo <= hi <= 65535:
            raise ValueError(f"port_range {self.port_range} is not within 1..65535")
        if self.birthday_max_probes > (hi - lo + 1):
            raise ValueError("birthday_max_probes exceeds the size of port_range")
        if self.max_attempts < 1 or self.birthday_sockets < 1:
            raise ValueError("max_attempts and birthday_sockets must be at least 1")


@dataclass(frozen=True, slots=True)
class Transmit:
    """A datagram to send from local socket ``via`` (0: the node's socket; 1..N: extra)."""

    data: bytes
    addr: Addr
    via: int


# -- events --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PunchStarted:
    """Probing began for an attempt; ``sockets`` extra sockets are needed (birthday)."""

    attempt: int
    strategy: Strategy
    rtt: float | None  # relayed RTT measured by the initiator (None on the responder)
    sockets: int


@dataclass(frozen=True, slots=True)
class PunchSucceeded:
    """A direct path works: talk to ``remote`` from local socket ``via``."""

    remote: Addr
    via: int
    strategy: Strategy
    attempt: int
    rtt: float | None
    time_to_direct: float  # from the session's first message to success
    probes_sent: int
    is_lan: bool


@dataclass(frozen=True, slots=True)
class PunchAttemptFailed:
    attempt: int
    reason: str
    will_retry: bool


@dataclass(frozen=True, slots=True)
class PunchFailed:
    """No direct path; the peers stay relayed."""

    reason: str
    attempts: int
    probes_sent: int


@dataclass(frozen=True, slots=True)
class PunchMessageRefused:
    """The peer sent something that did not fit; we answered ``PunchRefused(reason)``."""

    message: str
    reason: str


@dataclass(frozen=True, slots=True)
class PunchPeerRefused:
    """The peer refused one of our messages without abandoning the attempt."""

    reason: str


PunchEvent = (PunchStarted | PunchSucceeded | PunchAttemptFailed | PunchFailed
              | PunchMessageRefused | PunchPeerRefused)


class PunchState(enum.Enum):
    IDLE = "idle"  # responder waiting for a CONNECT
    AWAIT_CONNECT = "await-connect"  # initiator sent CONNECT
    AWAIT_SYNC = "await-sync"  # responder replied
    WAIT_START = "wait-start"  # initiator sent SYNC, waits rtt/2
    PUNCHING = "punching"
    LINGER = "linger"  # succeeded; still acking the peer's probes
    SUCCEEDED = "succeeded"
    FAILED = "failed"


_TERMINAL = frozenset({PunchState.SUCCEEDED, PunchState.FAILED})
_HAS_SECRET = frozenset({PunchState.AWAIT_SYNC, PunchState.WAIT_START, PunchState.PUNCHING,
                         PunchState.LINGER})


class HolePunch:
    """One hole-punch session with one peer (several attempts at most)."""

    def __init__(self, *, initiator: bool, local_addrs: Sequence[Addr], nat_type: NatType,
                 rng_bytes: Callable[[int], bytes], rng: random.Random,
                 config: PunchConfig | None = None) -> None:
        addrs = []
        for addr in local_addrs:
            good = check_addr(addr)
            if good is None:
                raise LocalProtocolError(f"hole punch: local address {addr!r} is not ip:port")
            if good not in addrs:
                addrs.append(good)
        self.initiator = initiator
        self.local_addrs = tuple(addrs[:MAX_ADDRS])
        self.nat_type = nat_type
        self.config = config or PunchConfig()
        self._rng_bytes = rng_bytes
        self._rng = rng
        self.state = PunchState.IDLE
        self.attempt = 0
        self.attempt_id = b""
        self.strategy = Strategy.NONE
        self.rtt: float | None = None
        self.remote: Addr | None = None
        self.via = 0
        self.probes_sent = 0
        self.probes_rejected = 0
        self._acks_sent = 0
        self._seen_attempts: set[bytes] = set()
        self._synced: set[bytes] = set()
        self._nonce_mine = b""
        self._secret = b""
        self._peer_addrs: tuple[Addr, ...] = ()
        self._session_start: float | None = None
        self._sent_at = 0.0
        self._deadline: float | None = None
        self._start_at = 0.0
        self._next_plain = 0.0
        self._next_birthday = 0.0
        self._next_hard = 0.0
        self._birthday_sent = 0
        self._birthday_used: set[tuple[str, int]] = set()
        self._seq = 0
        self._out: list[Transmit] = []
        self._msgs: list[PunchMessage] = []
        self._events: deque[PunchEvent] = deque()

    # -- API -------------------------------------------------------------------------
    def start(self, now: float) -> None:
        """Initiator: begin the session by sending our CONNECT over the relayed connection."""
        if not self.initiator:
            raise LocalProtocolError("hole punch: only the initiator calls start()")
        if self.state is not PunchState.IDLE:
            raise LocalProtocolError(f"hole punch: start() in state {self.state.value}")
        self._session_start = now
        self._new_attempt(now)

    def receive_message(self, msg: PunchMessage, now: float) -> None:
        """A punch message from the peer, over the authenticated relayed connection."""
        match msg:
            case PunchConnect(is_reply=False):
                self._on_connect(msg, now)
            case PunchConnect(is_reply=True):
                self._on_connect_reply(msg, now)
            case PunchSync():
                self._on_sync(msg, now)
            case PunchRefused():
                self._on_refused(msg, now)

    def receive_probe(self, data: bytes, addr: Addr, via: int, now: float) -> bool:
        """A raw datagram on socket ``via``; True when it was a probe (ours or dropped)."""
        probe = decode_probe(data)
        if probe is None:
            return False
        if (self.state not in _HAS_SECRET or probe.attempt_id != self.attempt_id
                or probe.sender_is_initiator == self.initiator
                or probe.tag != self._tag(probe.kind, probe.sender_is_initiator, probe.seq)):
            self.probes_rejected += 1
            return True
        if probe.kind == PROBE and self._acks_sent < self.config.max_acks:
            self._acks_sent += 1
            self._send_probe(PROBE_ACK, addr, via, count=False)
        if self.state is not PunchState.LINGER:
            self._succeed(addr, via, now)
        return True

    def datagrams_to_send(self) -> list[Transmit]:
        out, self._out = self._out, []
        return out

    def messages_to_send(self) -> list[PunchMessage]:
        out, self._msgs = self._msgs, []
        return out

    def next_event(self) -> PunchEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        match self.state:
            case PunchState.WAIT_START:
                return self._start_at
            case PunchState.PUNCHING:
                assert self._deadline is not None
                times = [self._deadline, self._next_plain]
                if self.strategy is Strategy.BIRTHDAY_EASY and self._birthday_left():
                    times.append(self._next_birthday)
                if self.strategy is Strategy.BIRTHDAY_HARD:
                    times.append(self._next_hard)
                return min(times)
            case PunchState.SUCCEEDED | PunchState.FAILED:
                return None
            case _:
                return self._deadline

    def handle_timer(self, now: float) -> None:
        if self.state is PunchState.WAIT_START and now >= self._start_at:
            self._begin_punching(now)
        if self._deadline is not None and now >= self._deadline:
            self._on_deadline(now)
            return
        if self.state is PunchState.PUNCHING:
            self._tick(now)

    @property
    def peer_addrs(self) -> tuple[Addr, ...]:
        return self._peer_addrs

    # -- message handlers ------------------------------------------------------------
    def _refuse(self, msg: PunchMessage, attempt_id: bytes, reason: str,
                aborts: bool = False) -> None:
        self._msgs.append(PunchRefused(attempt_id, reason, aborts))
        self._events.append(PunchMessageRefused(type(msg).__name__, reason))

    def _on_connect(self, msg: PunchConnect, now: float) -> None:
        if self.initiator:
            self._refuse(msg, msg.attempt_id, "the initiator does not accept CONNECT")
            return
        if msg.attempt_id in self._seen_attempts:
            self._refuse(msg, msg.attempt_id, "replayed CONNECT: attempt already seen")
            return
        if self.state in (PunchState.LINGER, PunchState.SUCCEEDED):
            self._refuse(msg, msg.attempt_id, "already connected directly", aborts=True)
            return
        if self.state is PunchState.FAILED:
            self._refuse(msg, msg.attempt_id, "session is over; start a new one", aborts=True)
            return
        if self.attempt >= self.config.max_attempts:
            # Each attempt makes us probe addresses the peer chose: bound them.
            self._refuse(msg, msg.attempt_id,
                         f"too many attempts ({self.config.max_attempts}) in one session",
                         aborts=True)
            return
        if self._session_start is None:
            self._session_start = now
        self._seen_attempts.add(msg.attempt_id)
        self.attempt += 1
        self.attempt_id = msg.attempt_id
        self._nonce_mine = self._rng_bytes(NONCE_LEN)
        self._secret = msg.nonce + self._nonce_mine
        self._peer_addrs = msg.addrs
        self.strategy = choose_strategy(self.nat_type, msg.nat_type)
        self._msgs.append(PunchConnect(self.attempt_id, self._nonce_mine, self.local_addrs,
                                       self.nat_type, is_reply=True))
        self.state = PunchState.AWAIT_SYNC
        self._deadline = now + self.config.exchange_timeout

    def _on_connect_reply(self, msg: PunchConnect, now: float) -> None:
        if not self.initiator or self.state is not PunchState.AWAIT_CONNECT:
            self._refuse(msg, msg.attempt_id, f"unexpected CONNECT reply in state {self.state.value}")
            return
        if msg.attempt_id != self.attempt_id:
            self._refuse(msg, msg.attempt_id, "CONNECT reply for an unknown attempt")
            return
        self.rtt = now - self._sent_at
        self._secret = self._nonce_mine + msg.nonce
        self._peer_addrs = msg.addrs
        self.strategy = choose_strategy(self.nat_type, msg.nat_type)
        if self.strategy is Strategy.NONE:
            reason = "both sides have endpoint-dependent mapping: staying relayed"
            self._msgs.append(PunchRefused(self.attempt_id, reason, aborts=True))
            self._fail(reason)
            return
        if not msg.addrs:
            reason = "the peer offered no address to punch to"
            self._msgs.append(PunchRefused(self.attempt_id, reason, aborts=True))
            self._fail(reason)
            return
        self._msgs.append(PunchSync(self.attempt_id))
        self.state = PunchState.WAIT_START
        self._start_at = now + self.rtt / 2
        self._deadline = None

    def _on_sync(self, msg: PunchSync, now: float) -> None:
        if self.initiator:
            self._refuse(msg, msg.attempt_id, "only the initiator sends SYNC")
        elif msg.attempt_id in self._synced:
            self._refuse(msg, msg.attempt_id, "replayed SYNC: attempt already synchronised")
        elif msg.attempt_id != self.attempt_id or self.state is not PunchState.AWAIT_SYNC:
            self._refuse(msg, msg.attempt_id, "SYNC for an unknown attempt")
        elif self.strategy is Strategy.NONE or not self._peer_addrs:
            self._refuse(msg, msg.attempt_id, "nothing to punch: no strategy or no address",
                         aborts=True)
        else:
            self._synced.add(msg.attempt_id)
            self._begin_punching(now)

    def _on_refused(self, msg: PunchRefused, now: float) -> None:
        if not msg.aborts:
            self._events.append(PunchPeerRefused(msg.reason))
            return
        if (msg.attempt_id != self.attempt_id or self.state in _TERMINAL
                or self.state is PunchState.LINGER):
            return  # a refusal of something stale: nothing to undo, never answered
        self._fail(f"peer refused: {msg.reason}")

    # -- attempts --------------------------------------------------------------------
    def _new_attempt(self, now: float) -> None:
        self.attempt += 1
        self.attempt_id = self._rng_bytes(ATTEMPT_ID_LEN)
        self._nonce_mine = self._rng_bytes(NONCE_LEN)
        self._secret = b""
        self._acks_sent = 0
        self._sent_at = now
        self._msgs.append(PunchConnect(self.attempt_id, self._nonce_mine, self.local_addrs,
                                       self.nat_type, is_reply=False))
        self.state = PunchState.AWAIT_CONNECT
        self._deadline = now + self.config.exchange_timeout

    def _begin_punching(self, now: float) -> None:
        self.state = PunchState.PUNCHING
        self._acks_sent = 0
        self._deadline = now + self.config.punch_timeout
        self._next_plain = self._next_birthday = self._next_hard = now
        self._birthday_sent = 0
        self._birthday_used.clear()
        sockets = self.config.birthday_sockets if self.strategy is Strategy.BIRTHDAY_HARD else 0
        self._events.append(PunchStarted(self.attempt, self.strategy, self.rtt, sockets))
        self._tick(now)

    def _on_deadline(self, now: float) -> None:
        if self.state is PunchState.LINGER:
            self.state = PunchState.SUCCEEDED
            self._deadline = None
            return
        what = {PunchState.AWAIT_CONNECT: "no CONNECT reply over the relay",
                PunchState.AWAIT_SYNC: "no SYNC over the relay",
                PunchState.PUNCHING: "no probe answered",
                PunchState.IDLE: "the initiator made no further attempt"}.get(self.state, "timeout")
        if self.state is PunchState.IDLE:
            self._fail(what)
            return
        window = (self.config.punch_timeout if self.state is PunchState.PUNCHING
                  else self.config.exchange_timeout)
        reason = f"attempt {self.attempt}: {what} within {window:.1f}s"
        retry = self.initiator and self.attempt < self.config.max_attempts
        self._events.append(PunchAttemptFailed(self.attempt, reason, retry))
        if retry:
            self._new_attempt(now)
        elif self.initiator:
            self._fail(f"{reason}; gave up after {self.attempt} attempts")
        else:
            self.state = PunchState.IDLE  # wait for the initiator's next attempt
            self._deadline = now + self.config.exchange_timeout

    def _fail(self, reason: str) -> None:
        self.state = PunchState.FAILED
        self._deadline = None
        self._events.append(PunchFailed(reason, self.attempt, self.probes_sent))

    def _succeed(self, addr: Addr, via: int, now: float) -> None:
        self.remote, self.via = addr, via
        self.state = PunchState.LINGER
        self._deadline = now + self.config.linger
        start = self._session_start if self._session_start is not None else now
        self._events.append(PunchSucceeded(addr, via, self.strategy, self.attempt, self.rtt,
                                           now - start, self.probes_sent, is_private_addr(addr)))

    # -- probing ---------------------------------------------------------------------
    def _tick(self, now: float) -> None:
        cfg = self.config
        if now >= self._next_plain:
            for addr in self._peer_addrs:
                self._send_probe(PROBE, addr, 0)
            self._next_plain = now + cfg.probe_interval
        if self.strategy is Strategy.BIRTHDAY_HARD and now >= self._next_hard:
            for via in range(1, cfg.birthday_sockets + 1):
                for addr in self._peer_addrs:
                    if not is_private_addr(addr):
                        self._send_probe(PROBE, addr, via)
            self._next_hard = now + cfg.hard_resend
        if (self.strategy is Strategy.BIRTHDAY_EASY and now >= self._next_birthday
                and self._birthday_left()):
            ips = sorted({a[0] for a in self._peer_addrs if not is_private_addr(a)})
            lo, hi = cfg.port_range
            for _ in range(cfg.birthday_batch):
                if not self._birthday_left():
                    break
                ip = ips[self._birthday_sent % len(ips)]
                port = self._rng.randint(lo, hi)
                while (ip, port) in self._birthday_used:
                    port = self._rng.randint(lo, hi)
                self._birthday_used.add((ip, port))
                self._birthday_sent += 1
                self._send_probe(PROBE, (ip, port), 0)
            self._next_birthday = now + cfg.birthday_tick

    def _birthday_left(self) -> bool:
        has_public = any(not is_private_addr(a) for a in self._peer_addrs)
        return has_public and self._birthday_sent < self.config.birthday_max_probes

    def _send_probe(self, kind: int, addr: Addr, via: int, *, count: bool = True) -> None:
        self._seq += 1
        probe = Probe(kind, self.attempt_id, self.initiator, self._seq,
                      self._tag(kind, self.initiator, self._seq))
        self._out.append(Transmit(encode_probe(probe), addr, via))
        if count:
            self.probes_sent += 1

    def _tag(self, kind: int, sender_is_initiator: bool, seq: int) -> bytes:
        msg = bytes([kind, int(sender_is_initiator)]) + self.attempt_id + struct.pack("!I", seq)
        return hashlib.blake2b(msg, key=self._secret, digest_size=16).digest()
