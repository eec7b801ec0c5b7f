"""Fan-out of node events to any number of subscribers, each with a bounded queue.

Why bounded: a slow subscriber (a stuck CLI ``--follow``, a frozen terminal) must never
grow the node's memory.  When a subscriber's queue is full the oldest event is dropped and
counted; consumers re-read snapshots when they see ``dropped`` grow.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any


class Subscription:
    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self.dropped = 0

    def put(self, event: Any) -> None:
        if self.queue.full():
            try:
                self.queue.get_nowait()
                self.dropped += 1
            except asyncio.QueueEmpty:
                pass
        self.queue.put_nowait(event)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        try:
            while True:
                event = await self.queue.get()
                if event is _CLOSED:
                    return
                yield event
        finally:
            self._bus.unsubscribe(self)


_CLOSED = object()


class EventBus:
    def __init__(self, maxsize: int = 1000) -> None:
        self._subs: set[Subscription] = set()
        self._maxsize = maxsize
        self.published = 0

    def subscribe(self) -> Subscription:
        sub = Subscription(self, self._maxsize)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def publish(self, event: Any) -> None:
        self.published += 1
        for sub in list(self._subs):
            sub.put(event)

    def close(self) -> None:
        for sub in list(self._subs):
            sub.put(_CLOSED)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)
