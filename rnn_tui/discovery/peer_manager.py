"""The peer manager: who we know, who we are connected to, and how we find more.

Why one place: discovery (DHT ``get_peers`` on the topic, peer exchange), connection
upkeep (reconnect with backoff, blocklist), metadata (publish ours to BEP 44, fetch and
verify theirs) and the views the CLI/TUI show all revolve around the same per-peer state.

Trust rule: an address is trusted for a peer id only when a QUIC handshake *at that
address* proved the id (mutual TLS binds it), or when it comes from that peer's own signed
record (BEP 44 item or a peer-exchange record whose signature we checked).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from rnn_tui.api import PeerInfo, PeerUpdated
from rnn_tui.discovery.metadata import METADATA_SALT, PeerMetadata
from rnn_tui.errors import RemoteProtocolError, RnnError
from rnn_tui.identity import Identity, PeerId
from rnn_tui.nat.model import PathType
from rnn_tui.nat.relay_driver import RELAY_CAPABILITY
from rnn_tui.store import Store
from rnn_tui.transport import messages as tm
from rnn_tui.transport.manager import PeerConnected, PeerDisconnected, Transport, TransportEvent
from rnn_tui.transport.session import PeerConnection
from rnn_tui.util.eventbus import EventBus
from rnn_tui.util.tasks import TaskManager

if TYPE_CHECKING:
    from rnn_tui.nat.service import NatService

log = logging.getLogger(__name__)
Addr = tuple[str, int]


class DhtClient(Protocol):
    """What the peer manager needs of the DHT driver."""

    async def get_peers(self, infohash: bytes) -> list[Addr]: ...
    async def announce(self, infohash: bytes, port: int | None = None) -> int: ...
    async def get_mutable(self, public_key: bytes, salt: bytes = b"") -> Any: ...
    async def put_mutable(self, signer: Any, value: Any, salt: bytes = b"", seq: int | None = None) -> Any: ...


@dataclass(frozen=True, slots=True)
class DiscoverySettings:
    discover_interval: float = 60.0
    discover_fast_interval: float = 2.0   # while we know fewer than ``enough_peers``
    enough_peers: int = 8
    announce_interval: float = 15 * 60.0
    metadata_interval: float = 60 * 60.0
    reconnect_base: float = 2.0
    reconnect_max: float = 300.0
    max_dials_per_round: int = 16
    dial_timeout: float = 10.0
    request_timeout: float = 10.0


@dataclass
class PeerState:
    peer_id: PeerId
    addresses: list[str] = field(default_factory=list)
    connection: PeerConnection | None = None
    path: str = ""                       # "direct" | "relayed" | ""
    rtt_ms: float | None = None
    last_seen: float | None = None
    failures: int = 0
    next_retry: float = 0.0
    blocked: bool = False
    metadata: PeerMetadata | None = None
    metadata_seq: int | None = None
    observed_by_peer: str = ""           # the address this peer says it sees us at
    agent: str = ""

    @property
    def connected(self) -> bool:
        return self.connection is not None and self.connection.is_open

    def to_info(self) -> PeerInfo:
        """The UI's view of this peer."""
        meta = self.metadata
        return PeerInfo(
            peer_id=str(self.peer_id), addresses=tuple(self.addresses),
            relayed=self.path == "relayed", rtt_ms=self.rtt_ms,
            nat_type=meta.nat_type if meta else "unknown",
            service_count=meta.service_count if meta else 0, last_seen=self.last_seen,
            connected=self.connected, agent=self.agent)

    def to_dict(self) -> dict[str, Any]:
        meta = self.metadata
        return {
            "peer_id": str(self.peer_id),
            "short_id": self.peer_id.short,
            "addresses": list(self.addresses),
            "connected": self.connected,
            "path": self.path if self.connected else "",
            "rtt_ms": self.rtt_ms,
            "last_seen": self.last_seen,
            "failures": self.failures,
            "blocked": self.blocked,
            "verified": True,  # every peer here proved its key in a handshake or a signed record
            "nat_type": meta.nat_type if meta else "unknown",
            "reachability": meta.reachability if meta else "unknown",
            "service_count": meta.service_count if meta else 0,
            "metadata_seq": self.metadata_seq,
            "metadata": meta.to_dict() if meta else None,
            "agent": self.agent,
        }


def topic_infohash(topic: str) -> bytes:
    return hashlib.sha1(topic.encode()).digest()


class PeerManager:
    def __init__(self, identity: Identity, transport: Transport, dht: DhtClient, store: Store,
                 events: EventBus, *, topic: str, settings: DiscoverySettings | None = None,
                 metadata_source: Callable[[], PeerMetadata] | None = None,
                 nat: NatService | None = None,
                 rng: random.Random | None = None) -> None:
        self.identity = identity
        self.transport = transport
        self.dht = dht
        self.store = store
        self.events = events
        self.topic = topic
        self.infohash = topic_infohash(topic)
        self.settings = settings or DiscoverySettings()
        self.metadata_source = metadata_source
        self.nat = nat
        self.rng = rng or random.Random()
        self.tasks = TaskManager("peers")
        self.peers: dict[PeerId, PeerState] = {}
        self.published_seq: int | None = None
        self._metadata_dirty = False  # a change arrived while a publish was running
        self._published_value: bytes | None = None
        self._dialling: set[Addr] = set()
        self._closed = False
        self._observed_listeners: list[Callable[[PeerId, str], None]] = []
        transport.add_listener(self._on_transport_event)
        if nat is not None:
            nat.add_connection_listener(self._on_nat_connection)
        transport.on_peer_records = self._on_peer_records
        transport.peer_records = self._records_to_share

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        for rec in await self.store.call(self.store.list_peers):
            pid = PeerId(rec.peer_id)
            if pid == self.identity.peer_id:
                continue
            meta = None
            if rec.metadata:
                with contextlib.suppress(RemoteProtocolError, TypeError, KeyError):
                    meta = _metadata_from_dict(rec.metadata)
            self.peers[pid] = PeerState(pid, list(rec.addresses), rtt_ms=rec.rtt_ms,
                                        last_seen=rec.last_seen, failures=rec.failures,
                                        blocked=rec.blocked, metadata=meta,
                                        metadata_seq=rec.metadata_seq)
        seq = await self.store.call(self.store.get_setting, "metadata_seq")
        self.published_seq = int(seq) if seq else None
        self.tasks.spawn("discover", self._discover_loop())
        self.tasks.spawn("announce", self._announce_loop())
        self.tasks.spawn("metadata", self._metadata_loop())
        self.tasks.spawn("reconnect", self._reconnect_loop())

    async def close(self) -> None:
        self._closed = True  # NAT or service changes during shutdown publish nothing
        await self.tasks.shutdown()

    def on_observed_address(self, fn: Callable[[PeerId, str], None]) -> None:
        """``fn(peer, "host:port")`` whenever a peer tells us the address it sees us at."""
        self._observed_listeners.append(fn)

    # -- views --------------------------------------------------------------------------
    def list_peers(self, connected_only: bool = False) -> list[dict[str, Any]]:
        peers = [p for p in self.peers.values() if not connected_only or p.connected]
        peers.sort(key=lambda p: (not p.connected, -(p.last_seen or 0)))
        return [p.to_dict() for p in peers]

    def get(self, peer_id: PeerId) -> PeerState | None:
        return self.peers.get(peer_id)

    def connected_count(self) -> int:
        return sum(1 for p in self.peers.values() if p.connected)

    # -- transport events ---------------------------------------------------------------
    def _state(self, peer_id: PeerId) -> PeerState:
        state = self.peers.get(peer_id)
        if state is None:
            state = PeerState(peer_id)
            self.peers[peer_id] = state
        return state

    def _on_transport_event(self, event: TransportEvent) -> None:
        if event.peer_id == self.identity.peer_id:
            return  # a connection to ourselves (two jobs of one run here): not a peer
        if self.tasks.closed:
            return  # shutting down: no new greetings
        if isinstance(event, PeerConnected):
            state = self._state(event.peer_id)
            if state.blocked:
                self.tasks.spawn(f"refuse:{event.peer_id.short}",
                                 event.connection.close(reason="blocked"), replace=True)
                return
            state.connection = event.connection
            state.path = self.nat.path_type(event.connection).value if self.nat else "direct"
            state.last_seen = time.time()
            state.failures = 0
            if event.outbound:
                _add_addr(state, tm.format_addr(event.addr))
            self.tasks.spawn(f"greet:{event.peer_id.short}", self._greet(state, event.connection),
                             replace=True)
        elif isinstance(event, PeerDisconnected):
            gone = self.peers.get(event.peer_id)
            if gone is not None and gone.connection is event.connection:
                gone.connection = None
                gone.next_retry = time.time() + self._backoff(gone)
                self._publish_peer(gone)

    def _on_nat_connection(self, conn: PeerConnection, path: PathType) -> None:
        """A relayed connection, or a direct one won by a punch (the transport does not
        report those); a live direct connection is never replaced by a relayed one."""
        if conn.peer_id is None or self._closed:
            return
        state = self._state(conn.peer_id)
        if state.blocked:
            self.tasks.spawn(f"refuse:{conn.peer_id.short}", conn.close(reason="blocked"),
                             replace=True)
            return
        if path is PathType.RELAYED and state.connected and state.path == "direct":
            return
        state.connection, state.path = conn, path.value
        state.last_seen = time.time()
        state.failures = 0
        self._publish_peer(state)

    async def _greet(self, state: PeerState, conn: PeerConnection) -> None:
        """First exchange with a newly verified peer: identify, metadata, peer exchange."""
        try:
            ident = await self.transport.identify(conn, timeout=self.settings.request_timeout)
            state.agent = ident.agent
            if RELAY_CAPABILITY in ident.capabilities and self.nat is not None \
                    and state.path == "direct":
                self.nat.add_relay_candidates([(conn.remote_addr, state.peer_id)])
            # Listen addresses a peer claims are hints, not proof: we keep them to dial later,
            # and a later handshake at that address proves (or refutes) them.
            for addr in ident.listen_addrs:
                _add_addr(state, addr)
            observed = ident.observed_addr
            if observed:
                state.observed_by_peer = observed
                for fn in self._observed_listeners:
                    fn(state.peer_id, observed)
            state.rtt_ms = 1000.0 * await self.transport.ping(conn, timeout=self.settings.request_timeout)
        except (TimeoutError, RnnError) as exc:
            log.debug("greeting %s failed: %s", state.peer_id.short, exc)
        await self._persist(state)
        self._publish_peer(state)
        await self.fetch_metadata(state.peer_id)
        try:
            await self.transport.exchange_peers(conn, timeout=self.settings.request_timeout)
        except (TimeoutError, RnnError) as exc:
            log.debug("peer exchange with %s failed: %s", state.peer_id.short, exc)

    # -- metadata -----------------------------------------------------------------------
    async def fetch_metadata(self, peer_id: PeerId) -> PeerMetadata | None:
        """Fetch the peer's BEP 44 record; the DHT verified its signature and seq."""
        state = self._state(peer_id)
        try:
            item = await self.dht.get_mutable(peer_id.key, METADATA_SALT)
        except (TimeoutError, RnnError) as exc:
            log.debug("metadata of %s: %s", peer_id.short, exc)
            return None
        if item is None:
            return None
        value, seq = _item_value_seq(item)
        if state.metadata_seq is not None and seq < state.metadata_seq:
            log.info("ignoring metadata of %s with older seq %d < %d", peer_id.short, seq, state.metadata_seq)
            return state.metadata
        try:
            meta = PeerMetadata.from_value(value)
        except RemoteProtocolError as exc:
            log.info("ignoring malformed metadata of %s: %s", peer_id.short, exc)
            return None
        state.metadata, state.metadata_seq = meta, seq
        for addr in meta.listen:
            _add_addr(state, addr)
        await self._persist(state)
        self._publish_peer(state)
        return meta

    async def publish_metadata(self, force: bool = False) -> int | None:
        """Put our record to the K closest DHT nodes; seq grows across restarts."""
        if self.metadata_source is None:
            return None
        meta = self.metadata_source()
        value = meta.encode()
        if not force and value == self._published_value:
            return self.published_seq
        floor = (self.published_seq or 0) + 1
        seq = await self.store.call(self.store.next_counter, "metadata_seq", floor)
        try:
            from rnn_tui.dht.codec import decode as bdecode

            await self.dht.put_mutable(self.identity, bdecode(value), METADATA_SALT, seq)
        except (TimeoutError, RnnError) as exc:
            log.info("publishing metadata (seq %d) failed: %s", seq, exc)
            return None
        self.published_seq = seq
        self._published_value = value
        log.info("published metadata seq %d (%d bytes)", seq, len(value))
        return seq

    async def _metadata_loop(self) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            seq = await self.publish_metadata(force=delay >= self.settings.metadata_interval)
            delay = self.settings.metadata_interval if seq is not None else min(delay * 2, 60.0)
            # a change (addresses, NAT type, services) republishes at once: see metadata_changed()

    def metadata_changed(self) -> None:
        if self._closed:
            return
        if self.tasks.is_running("metadata-now"):
            self._metadata_dirty = True  # published again when the running one ends
            return
        self.tasks.spawn("metadata-now", self._publish_now())

    async def _publish_now(self) -> None:
        """Publish, and again while changes arrived meanwhile (a network change brings
        several in a row: detection reset, then the new external address)."""
        while True:
            self._metadata_dirty = False
            await self.publish_metadata()
            if not self._metadata_dirty:
                return

    # -- discovery ----------------------------------------------------------------------
    async def _announce_loop(self) -> None:
        await asyncio.sleep(0.5)
        delay = 2.0
        while True:
            try:
                stored = await self.dht.announce(self.infohash, None)
                log.debug("announced topic to %s nodes", stored)
                delay = self.settings.announce_interval if stored else min(delay * 2, 120.0)
            except (TimeoutError, RnnError) as exc:
                log.debug("announce failed: %s", exc)
                delay = min(delay * 2, 120.0)
            await asyncio.sleep(delay)

    async def _discover_loop(self) -> None:
        await asyncio.sleep(1.0)
        while True:
            try:
                await self.discover_once()
            except (TimeoutError, RnnError) as exc:
                log.debug("discovery round failed: %s", exc)
            await self._refresh_metadata()
            fast = self.connected_count() < self.settings.enough_peers
            await asyncio.sleep(self.settings.discover_fast_interval if fast
                                else self.settings.discover_interval)

    async def _refresh_metadata(self) -> None:
        """Fetch records we lack, and refresh those older than the republish interval."""
        now = time.time()
        stale = [p for p in self.peers.values() if p.connected and (
            p.metadata is None or now - p.metadata.timestamp > self.settings.metadata_interval)]
        if stale:
            await asyncio.gather(*(self.fetch_metadata(p.peer_id) for p in stale[:16]),
                                 return_exceptions=True)

    async def discover_once(self) -> int:
        """One round: get_peers on the topic, dial addresses we have no connection at."""
        addrs = list(await self.dht.get_peers(self.infohash))
        # Peers that announced to *us* are in our own DHT store; a lookup never asks itself,
        # and in a small network we are often among the K closest nodes to the topic.
        local = getattr(self.dht, "local_peers", None)
        if callable(local):
            addrs.extend(a for a in local(self.infohash) if a not in addrs)
        return await self._dial_unknown(addrs)

    async def _dial_unknown(self, addrs: Sequence[Addr]) -> int:
        own = set(self.transport.listen_addrs)
        connected_addrs = {tm.format_addr(c.remote_addr) for c in self.transport.connections()}
        known_connected = {a for p in self.peers.values() if p.connected for a in p.addresses}
        todo = []
        for addr in addrs:
            text = tm.format_addr(addr)
            if addr in own or text in connected_addrs or text in known_connected or addr in self._dialling:
                continue
            todo.append(addr)
        todo = todo[: self.settings.max_dials_per_round]
        results = await asyncio.gather(*(self._dial(a, None) for a in todo), return_exceptions=True)
        return sum(1 for r in results if isinstance(r, PeerConnection))

    async def _dial(self, addr: Addr, expected: PeerId | None) -> PeerConnection | None:
        self._dialling.add(addr)
        try:
            conn = await self.transport.dial(addr, expected_peer_id=expected,
                                             timeout=self.settings.dial_timeout)
        except (TimeoutError, RnnError, OSError) as exc:
            log.debug("dial %s failed: %s", addr, exc)
            if expected is not None:
                state = self._state(expected)
                state.failures += 1
                state.next_retry = time.time() + self._backoff(state)
            return None
        finally:
            self._dialling.discard(addr)
        if conn.peer_id == self.identity.peer_id:  # we dialled ourselves through another address
            await conn.close(reason="self")
            return None
        return conn

    def _records_to_share(self) -> list[tm.PeerRecord]:
        return [tm.PeerRecord.create(self.identity, [tm.format_addr(a) for a in self.transport.listen_addrs],
                                     int(time.time()))] if self.transport.listen_addrs else []

    def _on_peer_records(self, conn: PeerConnection, records: tuple[tm.PeerRecord, ...]) -> None:
        """Verified records from a peer exchange: learn addresses, dial unknown peers."""
        to_dial: list[tuple[Addr, PeerId]] = []
        for rec in records:
            if rec.peer_id == self.identity.peer_id:
                continue
            state = self._state(rec.peer_id)
            for addr in rec.addrs:
                _add_addr(state, addr)
            if not state.connected and not state.blocked and rec.addrs:
                with contextlib.suppress(ValueError):
                    to_dial.append((tm.parse_addr(rec.addrs[0]), rec.peer_id))
        for target, pid in to_dial[: self.settings.max_dials_per_round]:
            self.tasks.spawn(f"dial:{pid.short}", self._dial(target, pid), replace=True)

    async def _reconnect_loop(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            now = time.time()
            for state in list(self.peers.values()):
                if state.connected or state.blocked or not state.addresses or state.next_retry > now:
                    continue
                if self.tasks.is_running(f"dial:{state.peer_id.short}"):
                    continue
                with contextlib.suppress(ValueError):
                    target = tm.parse_addr(state.addresses[0])
                    state.next_retry = now + self._backoff(state)
                    self.tasks.spawn(f"dial:{state.peer_id.short}", self._dial(target, state.peer_id),
                                     replace=True)

    def _backoff(self, state: PeerState) -> float:
        base = self.settings.reconnect_base * (2 ** min(state.failures, 10))
        return float(min(self.settings.reconnect_max, base) * (0.5 + self.rng.random()))

    # -- commands -----------------------------------------------------------------------
    async def connect(self, target: str) -> PeerState:
        """``host:port`` (any key) or a peer id (addresses from its BEP 44 record)."""
        try:
            pid = PeerId.parse(target)
        except ValueError:
            pid = None
        if pid is None:
            try:
                addr = tm.parse_addr(target)
            except ValueError:
                raise RnnError(f"{target!r} is neither HOST:PORT nor a peer id") from None
            conn = await self.transport.dial(addr, timeout=self.settings.dial_timeout)
            if conn.peer_id is None:
                raise RnnError(f"{target}: the handshake did not prove a peer id")
            return self._state(conn.peer_id)
        if pid == self.identity.peer_id:
            raise RnnError("that is this node's own peer id")
        state = self._state(pid)
        if state.connected:
            return state
        if state.blocked:
            raise RnnError(f"peer {pid.short} is blocked")
        meta = await self.fetch_metadata(pid)
        candidates = list(state.addresses)
        if meta is not None:
            candidates = list(dict.fromkeys([*meta.listen, *meta.observed, *meta.lan, *candidates]))
        relays = _relays(meta.relays) if meta is not None else []
        if not candidates and not relays:
            raise RnnError(f"no address known for peer {pid.short} (no DHT record found)")
        if self.nat is not None:
            addrs = []
            for text in candidates:
                with contextlib.suppress(ValueError):
                    addrs.append(tm.parse_addr(text))
            conn, path = await self.nat.connect(pid, addrs, relays)
            self._on_nat_connection(conn, path)
            return self._state(pid)
        errors = []
        for text in candidates:
            try:
                conn = await self.transport.dial(tm.parse_addr(text), expected_peer_id=pid,
                                                 timeout=self.settings.dial_timeout)
            except (RnnError, OSError, ValueError) as exc:
                errors.append(f"{text}: {exc}")
                continue
            return self._state(pid)
        raise RnnError(f"cannot reach peer {pid.short}: " + "; ".join(errors))

    async def ping(self, peer_id: PeerId) -> float:
        state = self.peers.get(peer_id)
        if state is None or not state.connected or state.connection is None:
            raise RnnError(f"not connected to peer {peer_id.short}; use 'rnn connect' first")
        rtt = 1000.0 * float(await self.transport.ping(state.connection,
                                                       timeout=self.settings.request_timeout))
        state.rtt_ms = rtt
        state.last_seen = time.time()
        await self._persist(state)
        return rtt

    async def block(self, peer_id: PeerId, blocked: bool = True) -> None:
        state = self._state(peer_id)
        state.blocked = blocked
        await self.store.call(self.store.set_blocked, peer_id.key, blocked)
        if blocked and state.connection is not None:
            await state.connection.close(reason="blocked")

    # -- persistence and events ---------------------------------------------------------
    async def _persist(self, state: PeerState) -> None:
        try:
            await self.store.call(
                self.store.upsert_peer, state.peer_id.key, addresses=state.addresses,
                rtt_ms=state.rtt_ms, seen=state.last_seen,
                metadata=state.metadata.to_dict() if state.metadata else None,
                metadata_seq=state.metadata_seq)
        except RnnError as exc:
            log.warning("cannot save peer %s: %s", state.peer_id.short, exc)

    def _publish_peer(self, state: PeerState) -> None:
        self.events.publish(PeerUpdated(state.to_info()))


def _relays(texts: Sequence[str]) -> list[tuple[Addr, PeerId]]:
    """Relay entries from a metadata record: ``peer_id@host:port``; bad ones are skipped."""
    out = []
    for text in texts:
        pid_text, _, addr_text = text.partition("@")
        with contextlib.suppress(ValueError):
            out.append((tm.parse_addr(addr_text), PeerId.parse(pid_text)))
    return out


def _add_addr(state: PeerState, addr: str) -> None:
    if addr and addr not in state.addresses:
        state.addresses.insert(0, addr)
        del state.addresses[8:]


def _item_value_seq(item: Any) -> tuple[Any, int]:
    if isinstance(item, tuple):
        return item[0], int(item[1])
    return item.value, int(item.seq)


def _metadata_from_dict(d: dict[str, Any]) -> PeerMetadata:
    return PeerMetadata(
        version=int(d["version"]), timestamp=int(d["timestamp"]), listen=tuple(d["listen"]),
        observed=tuple(d["observed"]), lan=tuple(d["lan"]), reachability=d["reachability"],
        nat_type=d["nat_type"], relays=tuple(d["relays"]), service_count=int(d["service_count"]),
        service_names=tuple(d["service_names"]),
    )
