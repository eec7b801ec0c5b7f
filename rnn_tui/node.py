"""The composition root: the one place that wires identity, store, DHT, transport, peer
manager, gossip, services and workflows together, and owns their lifecycle.

Start order: store → identity → UDP endpoint (DHT + QUIC share it) → DHT → transport →
peer manager → control API.  Stop runs in reverse: tasks cancelled, sockets closed, store
closed last.  ``start()`` raises ``RnnError`` with one line for the operator when a part
cannot start (port in use, bad passphrase, unreadable data dir), and leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rnn_tui import __version__
from rnn_tui.config import Config
from rnn_tui.control.server import ControlServer
from rnn_tui.discovery.metadata import PeerMetadata
from rnn_tui.errors import RnnError, StoreError
from rnn_tui.identity import Identity, Keystore, PeerId, resolve_passphrase
from rnn_tui.nat.detect import NatStatus
from rnn_tui.nat.model import is_private_addr
from rnn_tui.nat.relay_core import RelayLimits
from rnn_tui.nat.relay_manager import ActiveRelay
from rnn_tui.nat.service import NatSettings, interface_addresses
from rnn_tui.store import Store
from rnn_tui.transport.messages import parse_addr
from rnn_tui.util.eventbus import EventBus
from rnn_tui.util.tasks import TaskManager

if TYPE_CHECKING:
    from rnn_tui.components.gossip import GossipComponent
    from rnn_tui.components.services import ServicesComponent
    from rnn_tui.dht.driver import DhtNode
    from rnn_tui.discovery.peer_manager import PeerManager
    from rnn_tui.nat.punch_driver import PunchOutcome
    from rnn_tui.nat.service import NatService
    from rnn_tui.transport.manager import Transport

log = logging.getLogger(__name__)


class _Closer:
    """Adapts a synchronous ``close()`` to the components' ``async close()``."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self._fn = fn

    async def close(self) -> None:
        self._fn()


def _is_private(hostport: str) -> bool:
    try:
        return is_private_addr(parse_addr(hostport))
    except ValueError:
        return False


class Node:
    def __init__(self, config: Config, identity: Identity | None = None) -> None:
        self.config = config
        self.identity = identity
        self.store: Store | None = None
        self.tasks = TaskManager("node")
        self.events = EventBus()
        self.control = ControlServer(config.control_socket_path)
        self.started_at: float | None = None
        self._stopped = asyncio.Event()
        self._started = False
        self._components: list[Any] = []  # things with an async close(), stopped in reverse
        self.transport: Transport | None = None
        self.dht: DhtNode | None = None
        self.peers: PeerManager | None = None
        self.nat: NatService | None = None
        self.gossip: GossipComponent | None = None
        self.services: ServicesComponent | None = None
        self.bound_addr: tuple[str, int] | None = None
        self.external_addrs: set[str] = set()
        self.reachability = "unknown"
        self.nat_type = "unknown"
        self.relay_addrs: list[str] = []
        self.service_names: list[str] = []

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        data_dir = self.config.data_dir
        try:
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StoreError(f"{data_dir}: cannot create data dir: {exc.strerror}") from None
        loop = asyncio.get_running_loop()
        self.store = await loop.run_in_executor(None, Store, self.config.database_path)
        if self.identity is None:
            self.identity = await loop.run_in_executor(None, self._load_identity)
        assert self.identity is not None
        log.info("node %s starting (rnn %s), data dir %s", self.identity.peer_id, __version__, data_dir)
        await self._start_network()
        self._register_control()
        await self.control.start()
        self.started_at = time.time()
        self._started = True
        log.info("node %s started", self.identity.peer_id.short)

    def _load_identity(self) -> Identity:
        keystore = Keystore(self.config.keystore_path, kdf_cost=self.config["keystore.kdf_cost"])
        passphrase = resolve_passphrase(self.config["keystore.passphrase_file"],
                                        self.config.config_dir, create=not keystore.exists())
        identity, created = keystore.load_or_create(passphrase)
        if created:
            log.info("created a new identity in %s", keystore.path)
        return identity

    async def _start_network(self) -> None:
        """Bind the one UDP socket; DHT and QUIC share it (hole punching needs the same port)."""
        from rnn_tui.components.gossip import GossipComponent
        from rnn_tui.components.services import ServicesComponent
        from rnn_tui.dht.core import DhtConfig
        from rnn_tui.dht.driver import DhtNode
        from rnn_tui.discovery.peer_manager import PeerManager
        from rnn_tui.nat.service import NatService
        from rnn_tui.transport.manager import Transport

        assert self.identity is not None and self.store is not None
        host, port = self.config.listen_host, self.config.port
        self.transport = Transport(self.identity, capabilities=("dht", "relay-client"))
        dual = bool(self.config["node.ipv6"]) and host in ("0.0.0.0", "::", "")
        try:
            bound = await self.transport.start(host, port, dual_stack=dual)
        except OSError as exc:
            reason = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise RnnError(f"cannot listen on UDP {host}:{port}: {reason}"
                           + (" (another rnn node? choose --port)" if exc.errno == errno.EADDRINUSE else "")) from None
        self._components.append(self.transport)
        self.bound_addr = bound
        self.transport.listen_addrs = self._listen_addrs(bound)
        self.nat = NatService(self.transport, self._nat_settings(),
                              local_addrs=lambda: self._listen_addrs(bound),
                              on_change=self._on_nat_change, on_punch=self._on_punch,
                              reprobe=self._reprobe_dht)
        self._components.append(self.nat)
        self.dht = DhtNode(self.transport.endpoint.send_raw,
                           config=DhtConfig(read_only=self.config["dht.read_only"] == "true"),
                           on_external_address=self._on_dht_external_address,
                           on_address_reported=self.nat.observe)  # KRPC ``ip`` → NAT type
        self.transport.endpoint.dht_handler = self.dht.datagram_received
        self._components.append(_Closer(self.dht.close))
        saved = [(n.node_id, n.host, n.port) for n in await self.store.call(self.store.load_dht_nodes)]
        self.peers = PeerManager(self.identity, self.transport, self.dht, self.store, self.events,
                                 topic=self.config["dht.topic"], metadata_source=self.metadata,
                                 nat=self.nat)
        self.nat.start()
        self._components.append(self.peers)
        self.gossip = GossipComponent(self.identity, self.transport)
        self._components.append(self.gossip)
        self.services = ServicesComponent(self.config, self.identity, self.store, self.transport,
                                          self.control, self.gossip)
        self.services.on_change(self._services_changed)
        self._components.append(self.services)
        await self.gossip.start()
        await self.services.start()
        from rnn_tui.components.workflows import WorkflowComponent  # runs, executor, transfers

        self.workflows = WorkflowComponent(self)
        self._components.append(self.workflows)
        await self.workflows.start()
        self.tasks.spawn("dht-start", self._dht_start(saved))
        self.tasks.every("dht-save", 300.0, self._save_routing_table)
        log.info("listening on UDP %s:%d (DHT + QUIC)", bound[0], bound[1])

    def _services_changed(self) -> None:
        if self.services is not None:
            self.service_names = list(self.services.names)
        if self.peers is not None:
            self.peers.metadata_changed()

    def _listen_addrs(self, bound: tuple[str, int]) -> list[tuple[str, int]]:
        host, port = bound
        if host not in ("0.0.0.0", "::", ""):
            return [(host, port)]
        return interface_addresses(port) or [("127.0.0.1", port)]

    def _nat_settings(self) -> NatSettings:
        mode = self.config["relay.enabled"]
        limits = RelayLimits(max_reservations=int(self.config["relay.max_reservations"]),
                             max_circuits=int(self.config["relay.max_circuits"]))
        return NatSettings(relay_enabled={"auto": None, "true": True, "false": False}[mode],
                           relay_limits=limits,
                           check_interval=float(self.config["nat.check_interval"]))

    def _on_nat_change(self, status: NatStatus, relays: list[ActiveRelay]) -> None:
        """Detection or relays changed: update what we advertise and republish it."""
        kind = status.nat_type.value
        self.nat_type = {"public": "none"}.get(kind, kind)
        self.reachability = {"public": "public", "eim": "private", "edm": "private"}.get(kind, "unknown")
        # What detection agrees on now; an address from before a network change goes.
        self.external_addrs = {f"{status.external[0]}:{status.external[1]}"} \
            if status.external is not None else set()
        if self.transport is not None and self.bound_addr is not None:
            self.transport.listen_addrs = self._listen_addrs(self.bound_addr)
        self.relay_addrs = [f"{r.peer}@{r.addr[0]}:{r.addr[1]}" for r in relays]
        if self.dht is not None and self.nat is not None \
                and self.config["dht.read_only"] == "auto" \
                and self.dht.read_only != self.nat.unreachable:
            log.info("DHT read-only (BEP 43) %s: %s", "on" if self.nat.unreachable else "off",
                     "not reachable from outside" if self.nat.unreachable else "reachable again")
            self.dht.set_read_only(self.nat.unreachable)
        if self.peers is not None:
            self.peers.metadata_changed()

    def _on_punch(self, outcome: PunchOutcome) -> None:
        """Persist every finished punch (bounded per peer) for ``rnn peer`` and the API."""
        from rnn_tui.store.punches import PunchRow, record_punch
        from rnn_tui.transport.messages import format_addr

        if self.store is None or self.tasks.closed:
            return
        row = PunchRow(str(outcome.peer), time.time() - outcome.duration, outcome.strategy.value,
                       outcome.path.value, outcome.time_to_direct, outcome.attempts,
                       format_addr(outcome.remote) if outcome.remote else "",
                       "" if outcome.path.value == "direct" else (outcome.reason or "no reason given"))
        store = self.store
        self.tasks.spawn(f"punch-record:{outcome.peer.short}:{id(outcome)}",
                         store.call(record_punch, store, row))

    async def _reprobe_dht(self) -> None:
        """Ping a few DHT nodes: every reply's ``ip`` field is a fresh observation of us.

        Why: after a network change the detector has forgotten the old observations;
        without new ones it would wait for the next lookup to learn our new address.
        """
        if self.dht is None:
            return
        nodes = self.dht.routing_nodes()[:8]
        await asyncio.gather(*(self.dht.ping((h, p), timeout=3.0) for _, h, p in nodes),
                             return_exceptions=True)

    async def _dht_start(self, saved: list[tuple[bytes, str, int]]) -> None:
        assert self.dht is not None and self.peers is not None
        bootstrap = self.config.bootstrap
        try:
            size = await self.dht.start(saved_nodes=saved, bootstrap=bootstrap, timeout=20.0)
            log.info("DHT ready: %d nodes in the routing table", size)
        except RnnError as exc:
            log.warning("DHT bootstrap failed: %s", exc)
        await self.peers.start()

    async def _save_routing_table(self) -> None:
        if self.dht is None or self.store is None:
            return
        from rnn_tui.store import DhtNodeRecord

        now = time.time()
        nodes = [DhtNodeRecord(nid, h, p, now) for nid, h, p in self.dht.routing_nodes()]
        if nodes:
            await self.store.call(self.store.save_dht_nodes, nodes)

    def _on_dht_external_address(self, host: str, port: int) -> None:
        log.info("DHT peers agree our external address is %s:%d", host, port)
        self.external_addrs.add(f"{host}:{port}")
        if self.peers is not None:
            self.peers.metadata_changed()

    def metadata(self) -> PeerMetadata:
        """Our BEP 44 record, from what we know right now."""
        from rnn_tui.transport.messages import format_addr

        listen = tuple(format_addr(a) for a in (self.transport.listen_addrs if self.transport else []))
        return PeerMetadata(
            timestamp=int(time.time()),
            listen=tuple(a for a in listen if not a.startswith("127.")) or listen,
            observed=tuple(sorted(self.external_addrs))[:2],
            lan=tuple(a for a in listen if _is_private(a))[:2],
            reachability=self.reachability,
            nat_type=self.nat_type,
            relays=tuple(self.relay_addrs),
            service_count=len(self.service_names),
            service_names=tuple(self.service_names[:8]),
        )

    async def stop(self) -> None:
        if self._stopped.is_set():
            return
        log.info("node stopping")
        await self.control.close()
        await self.tasks.shutdown()
        with contextlib.suppress(Exception):
            await self._save_routing_table()
        for component in reversed(self._components):
            with contextlib.suppress(Exception):
                await component.close()
        self._components.clear()
        self.events.close()
        if self.store is not None:
            store, self.store = self.store, None
            await asyncio.get_running_loop().run_in_executor(None, store.close)
        self._stopped.set()
        log.info("node stopped")

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    # -- control API --------------------------------------------------------------------
    def _register_control(self) -> None:
        self.control.register("status", self._ctl_status)
        self.control.register("stop", self._ctl_stop)
        self.control.register("peers", self._ctl_peers)
        self.control.register("peer", self._ctl_peer)
        self.control.register("connect", self._ctl_connect)
        self.control.register("ping", self._ctl_ping)
        self.control.register("dht.stats", self._ctl_dht_stats)
        self.control.register("gossip.stats", self._ctl_gossip_stats)

    def _require_peers(self) -> PeerManager:
        if self.peers is None:
            raise RnnError("the node's network is not started")
        return self.peers

    async def _ctl_peers(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self._require_peers().list_peers(connected_only=bool(params.get("connected")))

    async def _ctl_peer(self, params: dict[str, Any]) -> dict[str, Any]:
        pid = _parse_peer_id(params.get("peer_id"))
        state = self._require_peers().get(pid)
        if state is None:
            raise RnnError(f"unknown peer {params.get('peer_id')!r}")
        from rnn_tui.store.punches import list_punches

        info = state.to_dict()
        assert self.store is not None
        rows = await self.store.call(list_punches, self.store, str(pid))
        info["punches"] = [r.to_dict() for r in rows]
        return info

    async def _ctl_connect(self, params: dict[str, Any]) -> dict[str, Any]:
        target = str(params.get("target", ""))
        state = await self._require_peers().connect(target)
        info = state.to_dict()
        info["address"] = info["addresses"][0] if info["addresses"] else ""
        return info

    async def _ctl_ping(self, params: dict[str, Any]) -> dict[str, Any]:
        pid = _parse_peer_id(params.get("peer_id"))
        peers = self._require_peers()
        rtt = await peers.ping(pid)
        state = peers.get(pid)
        return {"peer_id": str(pid), "rtt_ms": rtt, "path": state.path if state else ""}

    async def _ctl_gossip_stats(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.gossip is None:
            raise RnnError("gossip is not started")
        return self.gossip.stats()

    async def _ctl_dht_stats(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.dht is None:
            raise RnnError("the DHT is not started")
        return self.dht.stats()

    async def _ctl_status(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.status_dict()

    async def _ctl_stop(self, params: dict[str, Any]) -> dict[str, Any]:
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.stop()))
        return {"stopping": True}

    def status_dict(self) -> dict[str, Any]:
        assert self.identity is not None
        from rnn_tui.transport.messages import format_addr

        return {
            "listen": format_addr(self.bound_addr) if self.bound_addr else "",
            "listen_addrs": [format_addr(a) for a in self.transport.listen_addrs] if self.transport else [],
            "external_addrs": sorted(self.external_addrs),
            "reachability": self.reachability,
            "nat_type": self.nat_type,
            "relays": list(self.relay_addrs),
            "dial_back_probers": self.nat.detector.dial_back_probers() if self.nat else 0,
            "relay_service": bool(self.nat and self.nat.relay_service is not None),
            "peers_known": len(self.peers.peers) if self.peers else 0,
            "peers_connected": self.peers.connected_count() if self.peers else 0,
            "metadata_seq": self.peers.published_seq if self.peers else None,
            "dht_nodes": len(self.dht.routing_nodes()) if self.dht else 0,
            "dht_read_only": bool(self.dht and self.dht.read_only),
            "peer_id": str(self.identity.peer_id),
            "short_id": self.identity.peer_id.short,
            "version": __version__,
            "started_at": self.started_at,
            "uptime_s": None if self.started_at is None else round(time.time() - self.started_at, 1),
            "data_dir": str(self.config.data_dir),
            "tasks": self.tasks.names(),
        }


def _parse_peer_id(value: Any) -> PeerId:
    try:
        return PeerId.parse(str(value))
    except ValueError as exc:
        raise RnnError(str(exc)) from None


async def run_headless(node: Node) -> int:
    """Run ``node`` until SIGTERM/SIGINT or a ``stop`` request; clean shutdown either way."""
    import signal

    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    try:
        await node.start()
    except RnnError:
        raise
    waiter = asyncio.create_task(stop_requested.wait(), name="headless:signal")
    stopped = asyncio.create_task(node.wait_stopped(), name="headless:stopped")
    try:
        await asyncio.wait({waiter, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        stopped.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await node.stop()
    return 0
