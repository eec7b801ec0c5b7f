"""Reachability and NAT type from the addresses peers say they see us at (sans-IO).

Why no STUN: every KRPC reply carries the ``ip`` field (BEP 42: the address the
responder saw us at) and every QUIC ``identify`` carries an observed address.  Peers we
talk to anyway are many independent STUN servers.  But any one of them can lie, so:

* a *reporter* is an IP address, not a node id or peer id (ids are free to mint; an IP
  costs a host).  Only a reporter's latest observation counts, and it expires after
  ``observation_ttl``.
* the external address is the one reported by at least ``min_agree`` distinct reporters
  and by a strict majority of those that report that IP.  Ties change nothing: the
  previous verdict stands, so one spoofer can neither create nor flip a verdict.
* mapping type: when a strict majority (≥ ``min_agree``) sees the same port, the mapping
  is endpoint-independent (``EIM``).  When ≥ ``min_agree`` reporters agree on the IP but
  no port is shared by ``min_agree`` of them, each peer sees another port: endpoint-
  dependent (``EDM``, symmetric).
* ``PUBLIC`` needs more than a consistent mapping: peers must have reached us
  unsolicited at that very address (a dial-back, see ``dialback.py``), which filtering
  NATs never allow — and ``min_agree`` distinct prober IPs must have, so one lying
  peer cannot make us offer relay service from behind a firewall.

Network change: a new set of local addresses clears every observation (they described
the old network); a new consensus address or type emits an event, so the node can
republish its metadata, reselect relays and punch again.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass

from rnn_tui.nat.model import Addr, NatType, check_addr

__all__ = [
    "NatDetector", "DetectConfig", "NatStatus", "NatTypeChanged", "ExternalAddressChanged",
    "LocalAddressesChanged", "ObservationRefused", "DetectEvent",
]


@dataclass(frozen=True, slots=True)
class DetectConfig:
    min_agree: int = 2  # distinct reporter IPs that must agree
    observation_ttl: float = 600.0
    dial_back_ttl: float = 1800.0
    max_reporters: int = 256  # memory bound; the oldest observation is dropped first

    def __post_init__(self) -> None:
        if self.min_agree < 2:
            raise ValueError("min_agree must be at least 2: one reporter alone is not agreement")


@dataclass(frozen=True, slots=True)
class NatStatus:
    """What ``rnn status`` shows and the BEP 44 metadata carries."""

    nat_type: NatType
    external_ip: str | None
    external_port: int | None  # None with EDM: each peer sees another port
    reporters: int  # distinct reporter IPs behind the verdict
    dial_back_confirmed: bool

    @property
    def external(self) -> Addr | None:
        if self.external_ip is None or self.external_port is None:
            return None
        return (self.external_ip, self.external_port)


@dataclass(frozen=True, slots=True)
class NatTypeChanged:
    old: NatType
    new: NatType
    status: NatStatus


@dataclass(frozen=True, slots=True)
class ExternalAddressChanged:
    old: Addr | None
    new: Addr | None


@dataclass(frozen=True, slots=True)
class LocalAddressesChanged:
    old: tuple[Addr, ...]
    new: tuple[Addr, ...]


@dataclass(frozen=True, slots=True)
class ObservationRefused:
    """A peer reported something that is not an address; it was ignored."""

    reporter: str
    reason: str


DetectEvent = NatTypeChanged | ExternalAddressChanged | LocalAddressesChanged | ObservationRefused


@dataclass(frozen=True, slots=True)
class _Observation:
    observed: Addr
    source: str
    at: float


class NatDetector:
    """Feeds: ``observe()``, ``dial_back()``, ``set_local_addrs()``, ``handle_timer()``."""

    def __init__(self, config: DetectConfig | None = None) -> None:
        self.config = config or DetectConfig()
        self._obs: dict[str, _Observation] = {}
        self._dial_backs: dict[str, tuple[Addr, float]] = {}  # prober ip -> (target, at)
        self._local: tuple[Addr, ...] = ()
        self._status = NatStatus(NatType.UNKNOWN, None, None, 0, False)
        self._events: deque[DetectEvent] = deque()

    # -- inputs ----------------------------------------------------------------------
    def observe(self, reporter: Addr, observed: Addr, now: float, source: str = "krpc") -> None:
        """Peer at ``reporter`` says it saw us at ``observed`` (KRPC ``ip`` or identify)."""
        rep = check_addr(reporter)
        obs = check_addr(observed)
        if rep is None:
            return  # the driver gave us a bad reporter: nothing to attribute it to
        if obs is None:
            self._events.append(ObservationRefused(rep[0], f"not an ip:port: {observed!r}"))
            return
        self._obs.pop(rep[0], None)
        self._obs[rep[0]] = _Observation(obs, source, now)
        while len(self._obs) > self.config.max_reporters:
            del self._obs[next(iter(self._obs))]
        self._reclassify(now)

    def dial_back(self, prober: Addr, target: Addr, now: float) -> None:
        """A peer reached us unsolicited at ``target`` (an address we never sent to).

        ``prober``: the address of the peer we *asked* (the driver passes that, not the
        probe's source, which the asked peer picks), so agreement needs distinct asked IPs.
        It counts towards ``PUBLIC`` only while ``target`` is our agreed external address.
        """
        rep = check_addr(prober)
        tgt = check_addr(target)
        if rep is not None and tgt is not None:
            self._dial_backs[rep[0]] = (tgt, now)
            self._reclassify(now)

    def set_local_addrs(self, addrs: Iterable[Addr], now: float) -> None:
        """Our interface addresses; a change wipes observations made on the old network."""
        new = tuple(sorted({a for a in (check_addr(x) for x in addrs) if a is not None}))
        if new == self._local:
            return
        old, self._local = self._local, new
        if old:
            self._events.append(LocalAddressesChanged(old, new))
            self.reset(now)

    def reset(self, now: float) -> None:
        """Forget everything observed (after a network error or change)."""
        self._obs.clear()
        self._dial_backs.clear()
        self._reclassify(now)

    def handle_timer(self, now: float) -> None:
        ttl = self.config.observation_ttl
        self._obs = {ip: o for ip, o in self._obs.items() if now - o.at < ttl}
        self._dial_backs = {ip: d for ip, d in self._dial_backs.items()
                            if now - d[1] < self.config.dial_back_ttl}
        self._reclassify(now)

    # -- outputs ---------------------------------------------------------------------
    @property
    def status(self) -> NatStatus:
        return self._status

    @property
    def local_addrs(self) -> tuple[Addr, ...]:
        return self._local

    def next_event(self) -> DetectEvent | None:
        return self._events.popleft() if self._events else None

    def dial_back_probers(self) -> int:
        """Distinct prober IPs whose dial-back reached our current external address."""
        ext = self._status.external
        return sum(1 for tgt, _ in self._dial_backs.values() if tgt == ext)

    def get_timer(self) -> float | None:
        times = [o.at + self.config.observation_ttl for o in self._obs.values()]
        times += [t + self.config.dial_back_ttl for _, t in self._dial_backs.values()]
        return min(times) if times else None

    # -- classification --------------------------------------------------------------
    def _verdict(self) -> NatStatus | None:
        """The status the evidence supports, or None when it is ambiguous (keep the old)."""
        min_agree = self.config.min_agree
        ips = Counter(o.observed[0] for o in self._obs.values())
        if not ips:
            return NatStatus(NatType.UNKNOWN, None, None, 0, False)
        ranked = ips.most_common(2)
        ip, n = ranked[0]
        if len(ranked) > 1 and ranked[1][1] == n:
            return None  # two IPs with equal support: someone lies; wait for more peers
        if n < min_agree:
            return NatStatus(NatType.UNKNOWN, None, None, n, False)
        ports = Counter(o.observed[1] for o in self._obs.values() if o.observed[0] == ip)
        port, same = ports.most_common(1)[0]
        if same >= min_agree and same * 2 > n:
            probers = sum(1 for tgt, _ in self._dial_backs.values() if tgt == (ip, port))
            confirmed = probers >= min_agree
            nat = NatType.PUBLIC if confirmed else NatType.EIM
            return NatStatus(nat, ip, port, same, confirmed)
        if same < min_agree:
            return NatStatus(NatType.EDM, ip, None, n, False)
        return None  # a shared port without a majority: ambiguous

    def _reclassify(self, now: float) -> None:
        new = self._verdict()
        if new is None:
            return
        old = self._status
        self._status = new
        if old.external != new.external:
            self._events.append(ExternalAddressChanged(old.external, new.external))
        if old.nat_type is not new.nat_type:
            self._events.append(NatTypeChanged(old.nat_type, new.nat_type, new))
