"""The NAT-traversal facade the node wires in: detection, relays, punching, path choice.

Why one facade: ``node.py`` should not know the five NAT parts.  It creates one
``NatService`` over its transport, feeds it what the DHT learns (KRPC ``ip`` fields),
asks it for ``status`` (for ``rnn status`` and the BEP 44 metadata) and calls
``connect(peer, addrs, relays)`` to reach a peer by the best path.  Everything else runs
here: identify observations on new direct connections, periodic checks of the local
addresses (a change resets detection), relay service while we are public (or forced),
reservations on the best relays while we are not, and re-punching relayed peers after a
network change.
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import logging
import os
import socket
import struct
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from rnn_tui.errors import RnnError
from rnn_tui.identity import PeerId
from rnn_tui.nat.detect import (
    DetectConfig,
    DetectEvent,
    ExternalAddressChanged,
    LocalAddressesChanged,
    NatDetector,
    NatStatus,
    NatTypeChanged,
)
from rnn_tui.nat.dialback import (
    DIAL_BACK_MAGIC,
    DialBackConfig,
    DialBackConfirmed,
    DialBackCore,
    DialBackProbe,
    DialBackReply,
    DialBackRequest,
    encode_probe,
)
from rnn_tui.nat.model import Addr, NatType, PathType, check_addr
from rnn_tui.nat.punch_core import PunchConfig, PunchEvent, PunchStarted, PunchSucceeded
from rnn_tui.nat.punch_driver import HolePuncher, PunchOutcome
from rnn_tui.nat.relay_core import RelayLimits
from rnn_tui.nat.relay_driver import RELAY_CAPABILITY, RelayClient, RelayRefused, RelayService
from rnn_tui.nat.relay_manager import ActiveRelay, RelayManager
from rnn_tui.transport import (
    PeerConnected,
    PeerConnection,
    PeerDisconnected,
    Transport,
    TransportEvent,
)
from rnn_tui.transport.messages import Identify, parse_addr
from rnn_tui.util.tasks import TaskManager

__all__ = ["NatService", "NatSettings", "interface_addresses"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NatSettings:
    relay_enabled: bool | None = None  # None: offer relay service while we are PUBLIC
    relay_limits: RelayLimits = field(default_factory=RelayLimits)
    relays_wanted: int = 2
    punch: PunchConfig = field(default_factory=PunchConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    dial_back: DialBackConfig = field(default_factory=DialBackConfig)
    dial_back_ask_interval: float = 600.0  # ask the same peer IP again only after this
    check_interval: float = 60.0  # local addresses, expiry of observations, relay renewals
    direct_dial_timeout: float = 3.0
    relay_delay: float = 0.3  # happy eyeballs: the relay path starts this long after direct


def interface_addresses(port: int) -> list[Addr]:
    """Our IPv4 interface addresses (no loopback) with ``port``; no packet is sent.

    Linux only (SIOCGIFADDR); elsewhere it returns [] and the node relies on observations.
    """
    out: list[Addr] = []
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return out
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for name in names:
            try:
                req = struct.pack("256s", name.encode()[:15])
                res = fcntl.ioctl(s.fileno(), 0x8915, req)  # SIOCGIFADDR
            except OSError:
                continue
            ip = socket.inet_ntoa(array.array("B", res[20:24]).tobytes())
            if not ip.startswith("127."):
                out.append((ip, port))
    return out


class NatService:
    def __init__(self, transport: Transport, settings: NatSettings | None = None, *,
                 local_addrs: Callable[[], Sequence[Addr]] | None = None,
                 on_change: Callable[[NatStatus, list[ActiveRelay]], None] = lambda s, r: None,
                 on_punch: Callable[[PunchOutcome], None] = lambda o: None,
                 reprobe: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        self.transport = transport
        self.settings = settings or NatSettings()
        self._local_addrs = local_addrs or (
            lambda: interface_addresses(transport.endpoint.local_addr[1]))
        self.on_change = on_change
        self.on_punch = on_punch  # every finished punch (the node persists its history)
        # Ask peers we already know (the node pings DHT nodes) for fresh observations:
        # after a network change old ones describe the old network, and new connections
        # may be minutes away.
        self._reprobe = reprobe
        self._last_check = float("-inf")
        self._scanned: dict[PeerId, float] = {}  # peer -> when we last re-identified it
        self.detector = NatDetector(self.settings.detect)
        # Relayed and birthday-punched connections live outside the transport's table
        # (their datagrams do not use the shared socket), so the transport never reports
        # them: the node learns of them through these listeners.
        self._conn_listeners: list[Callable[[PeerConnection, PathType], None]] = []
        self.relay_client = RelayClient(
            transport, on_connection=lambda conn, relay: self._connected(conn, PathType.RELAYED))
        self.relays = RelayManager(transport, self.relay_client, want=self.settings.relays_wanted,
                                   on_change=lambda active: self._changed())
        self.puncher = HolePuncher(transport, addresses=self.candidate_addrs,
                                   nat_type=lambda: self.detector.status.nat_type,
                                   config=self.settings.punch, on_outcome=self._punched,
                                   on_event=self._punch_event)
        self.relay_service: RelayService | None = None
        self.dialback = DialBackCore(self.settings.dial_back, rng_bytes=os.urandom)
        self._asked: dict[str, float] = {}  # peer IP -> when we last asked it to dial back
        self.dial_backs: deque[DialBackConfirmed] = deque(maxlen=8)  # latest, for status
        # Dial-backs a peer says it sent that never reached us (until dial-backs make us
        # PUBLIC): evidence that a filter drops unsolicited packets, i.e. unreachable.
        self.dial_back_failures = 0
        self._loop = asyncio.get_running_loop()
        self._tasks = TaskManager("nat")
        self._closed = False
        transport.add_listener(self._on_transport_event)
        transport.handlers.on_request(DialBackRequest, self._on_dial_back_request)
        transport.endpoint.register_raw(DIAL_BACK_MAGIC, self._on_dial_back_probe)

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        if self.settings.relay_enabled:
            self._enable_relay()

        async def check() -> None:
            self.check()
        self._tasks.every("check", self.settings.check_interval, check, delay=0.0)

    async def close(self) -> None:
        self._closed = True
        self.transport.endpoint.unregister_raw(DIAL_BACK_MAGIC)
        await self._tasks.shutdown()
        await self.relays.close()
        await self.puncher.close()
        if self.relay_service is not None:
            self.relay_service.close()

    # -- inputs from the node --------------------------------------------------------
    def observe(self, reporter: Addr, observed: Addr, source: str = "krpc") -> None:
        """A peer at ``reporter`` saw us at ``observed`` (KRPC ``ip``, BEP 42)."""
        self.detector.observe(reporter, observed, self._loop.time(), source)
        self._drain()

    def dial_back(self, prober: Addr, target: Addr) -> None:
        """A peer reached us unsolicited at ``target`` (checked by the dial-back core)."""
        self.detector.dial_back(prober, target, self._loop.time())
        self._drain()

    def add_relay_candidates(self, candidates: Sequence[tuple[Addr, PeerId]]) -> None:
        """Relays we may reserve on; a NATed node short of relays reserves at once.

        Why at once: until a relay holds a slot for us, nobody behind another NAT can reach
        us, and the periodic check may be a minute away.
        """
        self.relays.add_candidates(candidates)
        self._refresh_relays_if_short()

    def check(self) -> None:
        """Periodic, and on socket errors: local addresses, expiries, relays."""
        now = self._loop.time()
        self._last_check = now
        self.detector.set_local_addrs(self._local_addrs(), now)
        self.detector.handle_timer(now)
        self._drain()
        if self.detector.status.nat_type is not NatType.PUBLIC and \
                not self._tasks.is_running("relays"):
            self._tasks.spawn("relays", self.relays.refresh())
        for conn in self.transport.connections():
            self._maybe_ask_dial_back(conn)
        self._start_reprobe()
        if self.detector.status.nat_type is not NatType.PUBLIC \
                and len(self.relays.active) < self.relays.want \
                and not self._tasks.is_running("relay-scan"):
            self._tasks.spawn("relay-scan", self._scan_relays(now))

    async def _scan_relays(self, now: float, per_scan: int = 8,
                           every: float = 600.0) -> None:
        """Re-identify connected peers: one may have turned relay on since we met it.

        Why: under ``relay.enabled: auto`` a node becomes a relay only once dial-backs
        confirm it is public, which is usually after its first identify exchange with us.
        Bounded: ``per_scan`` peers, each at most once per ``every`` seconds.
        """
        found: list[tuple[Addr, PeerId]] = []
        asked = 0
        for conn in list(self.transport.connections()):
            peer = conn.peer_id
            if peer is None or not conn.is_open or self.path_type(conn) is not PathType.DIRECT:
                continue
            ident = conn.peer_identify
            if isinstance(ident, Identify) and RELAY_CAPABILITY in ident.capabilities:
                found.append((conn.remote_addr, peer))
                continue
            if asked >= per_scan or now - self._scanned.get(peer, float("-inf")) < every:
                continue
            asked += 1
            self._scanned[peer] = now
            try:
                reply = await self.transport.identify(conn, timeout=5.0)
            except RnnError:
                continue
            if RELAY_CAPABILITY in reply.capabilities:
                found.append((conn.remote_addr, peer))
        if found:
            self.add_relay_candidates(found)

    def _start_reprobe(self) -> None:
        if self._reprobe is not None and not self._closed \
                and not self._tasks.is_running("reprobe"):
            self._tasks.spawn("reprobe", self._reprobe())

    def _check_soon(self, delay: float = 1.0) -> None:
        """A connection failed: the network may have changed; check now, not in a minute."""
        spacing = min(10.0, self.settings.check_interval)
        if self._closed or self._tasks.is_running("check-soon") \
                or self._loop.time() - self._last_check < spacing:
            return  # under churn, at most one extra check per ``spacing``

        async def later() -> None:
            await asyncio.sleep(delay)
            self.check()
        self._tasks.spawn("check-soon", later())

    def _refresh_relays_if_short(self) -> None:
        if self._closed or self.detector.status.nat_type is NatType.PUBLIC:
            return
        if len(self.relays.active) < self.relays.want and not self._tasks.is_running("relays"):
            self._tasks.spawn("relays", self.relays.refresh())

    # -- outputs ---------------------------------------------------------------------
    @property
    def status(self) -> NatStatus:
        return self.detector.status

    def candidate_addrs(self) -> list[Addr]:
        """What we offer a peer to punch to: the agreed external address, then LAN ones."""
        st = self.detector.status
        out: list[Addr] = []
        port = self.transport.endpoint.local_addr[1]
        if st.external is not None:
            out.append(st.external)
        elif st.external_ip is not None:
            out.append((st.external_ip, port))
        out += [a for a in self._local_addrs() if a not in out]
        return out

    def metadata(self) -> dict[str, object]:
        """The NAT part of our BEP 44 metadata."""
        st = self.detector.status
        return {"nat": st.nat_type.value,
                "addrs": [f"{h}:{p}" for h, p in self.candidate_addrs()],
                "relays": [{"id": r.peer.hex, "addr": f"{r.addr[0]}:{r.addr[1]}"}
                           for r in self.relays.active]}

    def add_connection_listener(self, fn: Callable[[PeerConnection, PathType], None]) -> None:
        """``fn(conn, path)`` for every verified connection the NAT layer makes or accepts:
        relayed ones (both ends) and direct ones won by a punch (both ends)."""
        self._conn_listeners.append(fn)

    def path_type(self, conn: PeerConnection) -> PathType:
        return self.relay_client.path_type(conn)

    # -- reaching a peer -------------------------------------------------------------
    async def connect(self, peer: PeerId, addrs: Sequence[Addr],
                      relays: Sequence[tuple[Addr, PeerId]]) -> tuple[PeerConnection, PathType]:
        """The best path to ``peer``: direct dials raced against the relay (then a punch).

        Happy eyeballs: the direct dials start at once; if none has won after
        ``relay_delay``, the relay path starts too, and the first verified connection
        wins.  Why not wait for the direct timeout: a NATed target never answers a direct
        dial, and making every such connect cost ``direct_dial_timeout`` first is slow.  A
        relayed connection that loses the race is closed; direct dials that lose finish on
        their own (a late direct path is a better path and is kept).
        Raises ``RnnError`` naming every path tried when none works.
        """
        existing = self.puncher.direct_connection(peer) or self.transport.connection_to(peer)
        if existing is not None:
            return existing, PathType.DIRECT
        errors: list[str] = []
        direct_addrs = [a for a in addrs if check_addr(a) is not None]
        direct = asyncio.ensure_future(self._dial_any(peer, direct_addrs, errors)) \
            if direct_addrs else None
        relay: asyncio.Future[PeerConnection | None] | None = None
        try:
            if direct is not None:
                await asyncio.wait({direct}, timeout=self.settings.relay_delay if relays else None)
                if direct.done():
                    won = direct.result()
                    if won is not None:
                        return won, PathType.DIRECT
                    direct = None
            if relays:
                relay = asyncio.ensure_future(self._via_relays(peer, relays, errors))
            waiting: set[asyncio.Future[PeerConnection | None]] = \
                {t for t in (direct, relay) if t is not None}
            while waiting:
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if direct is not None and direct in done and (won := direct.result()) is not None:
                    return won, PathType.DIRECT
                if relay is not None and relay in done and (relayed := relay.result()) is not None:
                    return await self._relayed_then_punch(peer, relayed)
        finally:
            if direct is not None and not direct.done():
                direct.cancel()  # _dial_any hands its pending dials to loser tasks
            if relay is not None and not relay.done():
                if self._tasks.closed:
                    relay.cancel()  # shutting down: nothing is kept anyway
                else:
                    self._tasks.spawn(f"relay-loser:{id(relay)}", self._close_relay_loser(relay))
        raise RnnError(f"cannot reach {peer.short}: " + ("; ".join(errors) or "no address"))

    async def _via_relays(self, peer: PeerId, relays: Sequence[tuple[Addr, PeerId]],
                          errors: list[str]) -> PeerConnection | None:
        """A relayed connection to ``peer`` through the first relay that works."""
        for relay_addr, relay_id in relays:
            try:
                relay_conn = self.transport.connection_to(relay_id) or await self.transport.dial(
                    relay_addr, expected_peer_id=relay_id,
                    timeout=self.settings.direct_dial_timeout)
                return await self.relay_client.dial_via(relay_conn, peer)
            except (RnnError, RelayRefused) as exc:
                errors.append(f"via relay {relay_id.short}: {exc}")
        return None

    async def _relayed_then_punch(self, peer: PeerId, relayed: PeerConnection
                                  ) -> tuple[PeerConnection, PathType]:
        log.info("reached %s via relay; punching", peer.short)
        self._connected(relayed, PathType.RELAYED)
        outcome = await self.puncher.punch(relayed)
        if outcome.path is PathType.DIRECT and outcome.connection is not None:
            return outcome.connection, PathType.DIRECT
        return relayed, PathType.RELAYED

    @staticmethod
    async def _close_relay_loser(task: asyncio.Future[PeerConnection | None]) -> None:
        """A direct dial won: the relayed connection still being set up is closed once
        it exists (cancelling mid-circuit would leave the relay holding a half circuit)."""
        try:
            conn = await task
        except (RnnError, RelayRefused, OSError):
            return
        if conn is not None:
            log.debug("closing the relayed path to %s: a direct dial won", conn.peer_id)
            await conn.close(reason="a direct path won")

    async def _dial_any(self, peer: PeerId, addrs: Sequence[Addr],
                        errors: list[str]) -> PeerConnection | None:
        """Dial every address at once; the first verified connection wins.

        Why at once: a record lists LAN, listen and observed addresses, and most of them are
        unreachable from a given place; one after another they would cost a dial timeout
        each before the relay is even tried.
        """
        if not addrs:
            return None

        async def one(addr: Addr) -> PeerConnection:
            return await self.transport.dial(addr, expected_peer_id=peer,
                                             timeout=self.settings.direct_dial_timeout)

        pending = {asyncio.ensure_future(one(a)): a for a in addrs}
        try:
            while pending:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    addr = pending.pop(task)
                    exc = task.exception()
                    if exc is None:
                        return task.result()
                    if not isinstance(exc, RnnError | OSError):
                        raise exc
                    errors.append(f"direct {addr[0]}:{addr[1]}: {exc}")
            return None
        finally:
            # Losers run out their own (short) timeout: cancelling a dial mid-handshake
            # would leave its half-open connection in the transport.  One that still
            # succeeds is a second verified path to the same peer; it is kept (closing it
            # could take down the peer's entry if it was reported last) and idles out.
            for task in pending:
                self._tasks.spawn(f"dial-loser:{id(task)}", self._await_loser(task))

    @staticmethod
    async def _await_loser(task: asyncio.Future[PeerConnection]) -> None:
        try:
            conn = await task
        except (RnnError, OSError):
            return
        log.debug("a second direct path to %s opened at %s", conn.peer_id, conn.remote_addr)

    async def punch(self, conn: PeerConnection) -> PunchOutcome:
        return await self.puncher.punch(conn)

    # -- internals -------------------------------------------------------------------
    def _on_transport_event(self, event: TransportEvent) -> None:
        if isinstance(event, PeerDisconnected):
            self._check_soon()
        elif isinstance(event, PeerConnected) and self.path_type(event.connection) \
                is PathType.DIRECT:
            self._tasks.spawn(f"identify:{event.peer_id.short}",
                              self._identify(event.connection), replace=True)

    async def _identify(self, conn: PeerConnection) -> None:
        try:
            reply = await self.transport.identify(conn, timeout=5.0)
            observed = check_addr(parse_addr(reply.observed_addr))
        except (RnnError, ValueError) as exc:
            log.debug("identify with %s failed: %s", conn.peer_id, exc)
            return
        if observed is not None:
            self.detector.observe(conn.remote_addr, observed, self._loop.time(), "identify")
            self._drain()
        self._maybe_ask_dial_back(conn)

    # -- dial-back (see dialback.py) -----------------------------------------------------
    def _maybe_ask_dial_back(self, conn: PeerConnection) -> None:
        """Ask a directly connected peer to dial us back, until enough probers agree."""
        if self._closed or conn.peer_id is None or not conn.is_open \
                or self.path_type(conn) is not PathType.DIRECT \
                or self.detector.dial_back_probers() >= self.settings.detect.min_agree:
            return
        ip = conn.remote_addr[0]
        last = self._asked.get(ip)
        now = self._loop.time()
        if last is not None and now - last < self.settings.dial_back_ask_interval:
            return
        name = f"dial-back:{ip}"
        if not self._tasks.is_running(name):
            self._asked[ip] = now
            self._tasks.spawn(name, self._ask_dial_back(conn))

    async def _ask_dial_back(self, conn: PeerConnection) -> None:
        nonce = self.dialback.begin(conn.remote_addr, self._loop.time())
        if nonce is None:
            self._asked.pop(conn.remote_addr[0], None)  # too many in flight: later
            return
        try:
            reply = await conn.request(DialBackRequest(nonce), timeout=5.0)
        except (RnnError, ValueError) as exc:
            self.dialback.cancel(nonce)
            log.debug("dial-back request to %s failed: %s", conn.peer_id, exc)
            return
        if not isinstance(reply, DialBackReply) or not reply.sent:
            self.dialback.cancel(nonce)
            log.info("dial-back: %s refused: %s", conn.peer_id.short if conn.peer_id else "?",
                     getattr(reply, "reason", type(reply).__name__))
            return
        # The probe arrives on _on_dial_back_probe, or never: then a filter dropped it.
        await asyncio.sleep(self.settings.dial_back.wait)
        if not self.dialback.arrived(nonce):
            self.dialback.cancel(nonce)
            self.dial_back_failures += 1
            log.info("dial-back: %s sent a probe that never arrived (filtered)",
                     conn.peer_id.short if conn.peer_id else "?")
            self._changed()

    @property
    def unreachable(self) -> bool:
        """A dial-back was sent and never arrived, and none has since made us PUBLIC.

        Sticky across network changes (while detection starts over, we stay what we last
        knew) until dial-backs prove us reachable; with no failure at all there is no
        evidence, and we are not called unreachable."""
        return self.dial_back_failures > 0 and self.detector.status.nat_type is not NatType.PUBLIC

    def _on_dial_back_probe(self, data: bytes, addr: Addr) -> None:
        out = self.dialback.probe_received(
            data, addr, sent_to=self.transport.endpoint.has_sent_to(addr),
            now=self._loop.time())
        if isinstance(out, DialBackConfirmed):
            log.info("dial-back: reached unsolicited at %s:%d from %s:%d", out.target[0],
                     out.target[1], out.prober[0], out.prober[1])
            self.dial_backs.append(out)
            # attributed to the peer we asked, not to the probe's source, which that peer
            # chooses: one peer probing from two IPs it owns must not count twice
            self.detector.dial_back(out.asked, out.target, self._loop.time())
            self._drain()
        else:
            log.debug("dial-back probe from %s ignored: %s", addr, out.reason)

    async def _on_dial_back_request(self, conn: PeerConnection,
                                    msg: DialBackRequest) -> DialBackReply:
        """Serve a dial-back: to the address we see the asker at, from a fresh socket."""
        if self.path_type(conn) is not PathType.DIRECT:
            return DialBackReply(False, "dial-back needs a direct connection")
        target = check_addr(conn.remote_addr)
        if target is None:
            return DialBackReply(False, "no dialable address for this connection")
        reason = self.dialback.admit(target[0], self._loop.time())
        if reason is not None:
            return DialBackReply(False, reason)
        try:
            sock = self._fresh_socket(target)
        except OSError as exc:
            return DialBackReply(False, f"cannot open a socket: {exc.strerror or exc}")
        self._tasks.spawn(f"dial-back-send:{target[0]}:{target[1]}:{msg.nonce.hex()[:8]}",
                          self._send_dial_back(sock, target, msg.nonce))
        return DialBackReply(True)

    def _fresh_socket(self, target: Addr) -> socket.socket:
        """A new UDP socket on our own host (a source port the asker never sent to)."""
        family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            host = self.transport.endpoint.local_addr[0]
            if host in ("0.0.0.0", "::") or (":" in host) != (family == socket.AF_INET6):
                host = ""
            sock.bind((host, 0))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    @staticmethod
    async def _send_dial_back(sock: socket.socket, target: Addr, nonce: bytes) -> None:
        """Twice, 300 ms apart (one loss must not make a public node look filtered)."""
        data = encode_probe(DialBackProbe(nonce, target))
        try:
            for i in range(2):
                if i:
                    await asyncio.sleep(0.3)
                try:
                    sock.sendto(data, target)
                except OSError as exc:
                    log.debug("dial-back to %s failed: %s", target, exc)
        finally:
            sock.close()

    def _connected(self, conn: PeerConnection, path: PathType) -> None:
        for fn in list(self._conn_listeners):
            try:
                fn(conn, path)
            except Exception:
                log.exception("NAT connection listener failed")

    @staticmethod
    def _punch_event(peer: PeerId, ev: PunchEvent) -> None:
        # A probe can win before our own probing starts (PunchStarted never comes), so
        # the relayed RTT is logged from whichever of the two events carries it.
        if isinstance(ev, PunchStarted | PunchSucceeded) and ev.rtt is not None:
            log.info("punch with %s: attempt %d, %s, relayed rtt %.1f ms", peer.short,
                     ev.attempt, ev.strategy.value, ev.rtt * 1000)

    def _punched(self, outcome: PunchOutcome) -> None:
        """Log every punch (operators and the NAT lab read these lines) and report a win."""
        try:
            self.on_punch(outcome)
        except Exception:
            log.exception("NAT on_punch callback failed")
        if outcome.path is PathType.DIRECT and outcome.connection is not None:
            ttd = outcome.time_to_direct or 0.0
            log.info("punch with %s: direct at %s by %s in %.0f ms (attempt %d)",
                     outcome.peer.short, outcome.remote, outcome.strategy.value, ttd * 1000,
                     outcome.attempts)
            self._connected(outcome.connection, PathType.DIRECT)
        else:
            log.info("punch with %s: stays relayed (%s, %s)", outcome.peer.short,
                     outcome.strategy.value, outcome.reason or "no reason given")

    def _drain(self) -> None:
        changed = False
        while (ev := self.detector.next_event()) is not None:
            changed |= self._handle(ev)
        if changed:
            self._changed()

    def _handle(self, ev: DetectEvent) -> bool:
        if isinstance(ev, NatTypeChanged):
            log.info("NAT type %s -> %s", ev.old.value, ev.new.value)
            if ev.new is NatType.PUBLIC:
                self.dial_back_failures = 0  # proven reachable now
                if self.settings.relay_enabled is None:
                    self._enable_relay()  # relay.enabled: auto, once dial-back confirmed us
            return True
        if isinstance(ev, ExternalAddressChanged | LocalAddressesChanged):
            log.info("network change: %s", ev)
            self._asked.clear()  # ask peers about the new address
            self._repunch_relayed()
            self._reselect_relays()
            if isinstance(ev, LocalAddressesChanged):
                self._start_reprobe()
            return True
        return False

    def _enable_relay(self) -> None:
        if self.relay_service is None:
            self.relay_service = RelayService(self.transport, self.settings.relay_limits)

    def _reselect_relays(self) -> None:
        """After a network change: drop relays we lost, fill the slots (NATed only)."""
        if self._closed or self.detector.status.nat_type is NatType.PUBLIC:
            return
        if not self._tasks.is_running("relays"):
            self._tasks.spawn("relays", self.relays.refresh())

    def _repunch_relayed(self) -> None:
        for conn in self.relay_client.relayed_connections():
            if conn.peer_id is not None:
                self._tasks.spawn(f"repunch:{conn.peer_id.short}", self.puncher.punch(conn),
                                  replace=True)

    def _changed(self) -> None:
        if self._closed:
            return
        try:
            self.on_change(self.detector.status, self.relays.active)
        except Exception:
            log.exception("NAT on_change callback failed")
