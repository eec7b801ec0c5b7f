"""Services in the node: registry (store-backed), Docker runtime, catalog over QUIC,
announcements over gossip, and the ``services.*`` / ``service.*`` control methods.

Docker is optional for the node as a whole: a host without an engine still discovers
peers, searches services and requests jobs; creating or running DOCKER services then fails
with a clear error naming the engine.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from rnn_tui.components.gossip import TOPIC_SERVICES, GossipComponent
from rnn_tui.config import Config
from rnn_tui.control.server import ControlServer
from rnn_tui.errors import RnnError
from rnn_tui.identity import Identity, PeerId
from rnn_tui.services.control_api import ServiceControl
from rnn_tui.services.model import Service, ServiceSpecError, VisibilityMode
from rnn_tui.services.over_transport import connected_peers, install_handlers, make_ask
from rnn_tui.services.policy import ExecutorPolicy
from rnn_tui.services.registry import ServiceRegistry
from rnn_tui.services.remote import RemoteCatalogCache
from rnn_tui.services.runtime import DockerRuntime
from rnn_tui.store import Store
from rnn_tui.store.service_repository import StoreServiceRepository
from rnn_tui.transport.manager import PeerConnected, Transport
from rnn_tui.util.tasks import TaskManager

log = logging.getLogger(__name__)
MAX_ANNOUNCED = 64


def executor_policy(config: Config) -> ExecutorPolicy:
    return ExecutorPolicy(
        max_cpu_millis=int(float(config["executor.max_cpus"]) * 1000),
        max_memory_bytes=int(config["executor.max_memory_mb"]) * 1024 * 1024,
        max_pids=int(config["executor.max_pids"]),
        max_timeout_s=int(config["executor.job_timeout"]),
        allow_network=bool(config["executor.allow_network"]),
        max_concurrent_jobs=int(config["executor.max_concurrent_jobs"]),
        allow_command_override=bool(config["executor.allow_command_override"]),
    )


class ServicesComponent:
    def __init__(self, config: Config, identity: Identity, store: Store, transport: Transport,
                 control: ControlServer, gossip: GossipComponent | None) -> None:
        self.identity = identity
        self.transport = transport
        self.gossip = gossip
        self.tasks = TaskManager("services")
        self.repository = StoreServiceRepository(store)
        self.registry = ServiceRegistry(self.repository, identity.peer_id, clock=time.time,
                                        scratch_dir=config.data_dir / "scratch")
        self.policy = executor_policy(config)
        self.runtime = DockerRuntime(identity.peer_id, Path(config.data_dir) / "jobs", self.policy)
        self.cache = RemoteCatalogCache()
        self.control_api = ServiceControl(self.registry, cache=self.cache,
                                          peers=connected_peers(transport), ask=make_ask(transport))
        self.control_api.register(control)
        for name in ("add", "edit", "rm"):   # a change is announced at once
            control.register(f"service.{name}", self._announcing(getattr(self.control_api, name)))
        control.register("services.summary", self._summary)
        install_handlers(transport.handlers, self.registry.list)
        self.names: list[str] = []
        self._on_change: list[Any] = []
        if gossip is not None:
            gossip.on(TOPIC_SERVICES, self._on_announcement)
            transport.add_listener(self._on_transport_event)

    async def start(self) -> None:
        await self._refresh_names()
        self.tasks.spawn("reap", self._reap())
        self.tasks.every("announce", 600.0, self.announce, delay=2.0)
        self.tasks.every("expire-cache", 60.0, self._expire)

    async def close(self) -> None:
        await self.tasks.shutdown()

    def on_change(self, fn: Any) -> None:
        self._on_change.append(fn)

    async def _reap(self) -> None:
        try:
            removed = await self.runtime.reap_leftovers()
        except Exception as exc:  # no engine on this host is not an error for the node
            log.info("docker unavailable, skipping leftover reaping: %s", exc)
            return
        if removed:
            log.warning("removed %d leftover job containers from a previous run: %s",
                        len(removed), ", ".join(removed))

    async def _refresh_names(self) -> list[Service]:
        services = await self.registry.list()
        public = [s for s in services if s.visibility.mode is VisibilityMode.PUBLIC]
        self.names = [s.name for s in public]
        return public

    async def announce(self) -> None:
        """Gossip our public catalog (the whole of it: a removal is an absence)."""
        public = await self._refresh_names()
        for fn in self._on_change:
            fn()
        if self.gossip is None:
            return
        self.gossip.publish(TOPIC_SERVICES, {
            "op": "catalog",
            "services": [s.to_dict(public=True) for s in public[:MAX_ANNOUNCED]],
        })

    def _on_announcement(self, author: PeerId, document: dict[str, Any]) -> None:
        raw = document.get("services")
        if not isinstance(raw, list):
            return
        services = []
        for item in raw[:MAX_ANNOUNCED]:
            try:
                service = Service.from_dict(item, where=f"service from {author.short}")
            except (ServiceSpecError, RnnError) as exc:
                log.info("dropping a malformed service announced by %s: %s", author.short, exc)
                continue
            if service.owner != author:  # an author speaks only for its own services
                log.info("dropping service %s: announced by %s for owner %s", service.name,
                         author.short, service.owner.short)
                continue
            services.append(service)
        self.cache.update(author, services, time.time())

    def _on_transport_event(self, event: Any) -> None:
        """A new peer missed our earlier announcements: announce again, debounced."""
        if isinstance(event, PeerConnected) and not self.tasks.closed:
            self.tasks.spawn("announce-on-connect", self._announce_soon(), replace=True)

    async def _announce_soon(self) -> None:
        await asyncio.sleep(2.0)  # let the gossip mesh take the new peer in first
        await self.announce()

    def _announcing(self, handler: Any) -> Any:
        async def wrapped(params: dict[str, Any]) -> Any:
            result = await handler(params)
            self.tasks.spawn("announce-now", self.announce(), replace=True)
            return result

        return wrapped

    async def _expire(self) -> None:
        self.cache.expire(time.time())

    async def _summary(self, params: dict[str, Any]) -> dict[str, Any]:
        local = await self.registry.list()
        now = time.time()
        return {"local": len(local), "remote": len(self.cache.services(now)),
                "remote_peers": len(self.cache.peers())}
