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
import logging
import time
from typing import Any

from rnn_tui import __version__
from rnn_tui.config import Config
from rnn_tui.control.server import ControlServer
from rnn_tui.errors import RnnError, StoreError
from rnn_tui.identity import Identity, Keystore, resolve_passphrase
from rnn_tui.store import Store
from rnn_tui.util.eventbus import EventBus
from rnn_tui.util.tasks import TaskManager

log = logging.getLogger(__name__)


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
        """Bind the one UDP socket and start the DHT and transport on it."""
        # Wired in as the transport and DHT land (see docs/ARCHITECTURE.md).

    async def stop(self) -> None:
        if self._stopped.is_set():
            return
        log.info("node stopping")
        await self.control.close()
        await self.tasks.shutdown()
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

    async def _ctl_status(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.status_dict()

    async def _ctl_stop(self, params: dict[str, Any]) -> dict[str, Any]:
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.stop()))
        return {"stopping": True}

    def status_dict(self) -> dict[str, Any]:
        assert self.identity is not None
        return {
            "peer_id": str(self.identity.peer_id),
            "short_id": self.identity.peer_id.short,
            "version": __version__,
            "started_at": self.started_at,
            "uptime_s": None if self.started_at is None else round(time.time() - self.started_at, 1),
            "data_dir": str(self.config.data_dir),
            "tasks": self.tasks.names(),
        }


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
