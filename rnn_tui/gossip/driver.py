"""Asyncio driver around ``GossipCore``: feeds it frames and time, ships its frames out.

Why so thin: everything that decides anything lives in the sans-IO core; this module owns
only the clock, one timer handle and one sender task per peer.  The transport is not
imported here: the node hands us ``send(peer, data)`` (the transport's "gossip" message
type) and calls ``received(peer, data)`` / ``peer_connected`` / ``peer_disconnected``.

Each peer gets a bounded queue and a named sender task (``TaskManager``), so a slow or
dead peer delays nobody else; every send has a timeout, and a full queue drops the frame
(gossip repairs losses through IHAVE/IWANT) and counts it.

Time: the core's ``now`` is the wall clock (``time.time()`` by default), because message
timestamps are compared with it; the timer is re-armed relative to that clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from rnn_tui.gossip.core import GossipCore
from rnn_tui.gossip.events import GossipEvent, GossipStats
from rnn_tui.identity import PeerId
from rnn_tui.util.tasks import TaskManager

__all__ = ["GossipDriver"]

log = logging.getLogger(__name__)

SendFn = Callable[[PeerId, bytes], Awaitable[None]]
Listener = Callable[[GossipEvent], None]


class GossipDriver:
    def __init__(self, core: GossipCore, send: SendFn, *, clock: Callable[[], float] = time.time,
                 send_timeout: float = 5.0, queue_frames: int = 256) -> None:
        self.core = core
        self._send = send
        self._clock = clock
        self._send_timeout = send_timeout
        self._queue_frames = queue_frames
        self._tasks = TaskManager("gossip")
        self._queues: dict[PeerId, asyncio.Queue[bytes]] = {}
        self._listeners: list[Listener] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._counters: dict[str, int] = {}
        self._closed = False

    # ------------------------------------------------------------------ wiring

    def add_listener(self, listener: Listener) -> None:
        """``listener(event)`` is called synchronously for every core event; keep it quick."""
        self._listeners.append(listener)

    def peer_connected(self, peer: PeerId, *, outbound: bool = False) -> None:
        """``outbound``: we dialled it (the core keeps a quota of those in each mesh)."""
        if self._closed or peer in self._queues or peer == self.core.peer_id:
            return
        self._queues[peer] = asyncio.Queue(self._queue_frames)
        self._tasks.spawn(f"send:{peer}", self._sender(peer), replace=True)
        self.core.peer_connected(peer, self._clock(), outbound=outbound)
        self._pump()

    def peer_disconnected(self, peer: PeerId) -> None:
        if self._queues.pop(peer, None) is None:
            return
        self._tasks.cancel(f"send:{peer}")
        self.core.peer_disconnected(peer, self._clock())
        self._pump()

    def received(self, peer: PeerId, data: bytes) -> None:
        """A ``gossip`` message arrived on an authenticated connection from ``peer``."""
        if self._closed:
            return
        if peer not in self._queues:
            self.peer_connected(peer)   # the transport proved who it is: treat as connected
        self.core.receive(peer, data, self._clock())
        self._pump()

    # ------------------------------------------------------------------ API

    def subscribe(self, topic: str) -> None:
        self.core.subscribe(topic)
        self._pump()

    def unsubscribe(self, topic: str) -> None:
        self.core.unsubscribe(topic)
        self._pump()

    def publish(self, topic: str, payload: bytes) -> bytes:
        """Sign and send; returns the message id.  Raises ``LocalProtocolError`` on bad input."""
        msg_id = self.core.publish(topic, payload, self._clock())
        self._pump()
        return msg_id

    def stats(self) -> GossipStats:
        snapshot = self.core.stats()
        counters = dict(snapshot.counters)
        for name, value in self._counters.items():
            counters[f"driver_{name}"] = value
        return replace(snapshot, counters=counters)

    async def start(self) -> None:
        """Arm the heartbeat (the core schedules it from the first ``now`` it sees)."""
        self.core.handle_timer(self._clock())
        self._pump()

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queues.clear()
        await self._tasks.shutdown()

    # ------------------------------------------------------------------ internals

    def _pump(self) -> None:
        """Move the core's outputs out: frames to peer queues, events to listeners, timer."""
        if self._closed:
            return
        for peer, data in self.core.messages_to_send():
            queue = self._queues.get(peer)
            if queue is None:
                self._count("frames_to_unknown_peer")
                continue
            try:
                queue.put_nowait(data)
            except asyncio.QueueFull:
                self._count("send_queue_full")
        while (event := self.core.next_event()) is not None:
            for listener in self._listeners:
                try:
                    listener(event)
                except Exception:
                    log.exception("gossip: event listener failed on %r", event)
        self._arm_timer()

    def _arm_timer(self) -> None:
        when = self.core.get_timer()
        if when is None or when == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        delay = max(0.0, when - self._clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self._closed:
            return
        self.core.handle_timer(self._clock())
        self._pump()

    async def _sender(self, peer: PeerId) -> None:
        queue = self._queues[peer]
        while not self._closed:
            data = await queue.get()
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
                # cancellation that races with completion, leaving this task immortal.
                async with asyncio.timeout(self._send_timeout):
                    await self._send(peer, data)
                self._count("frames_sent")
            except TimeoutError:
                self._count("send_timeouts")
            except asyncio.CancelledError:
                raise
            except Exception as exc:   # the transport failed: gossip repairs, we count
                self._count("send_failures")
                log.debug("gossip: send to %s failed: %r", peer.short, exc)

    def _count(self, name: str, amount: int = 1) -> None:
        self._counters[name] = self._counters.get(name, 0) + amount
