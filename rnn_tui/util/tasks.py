"""Named, owned asyncio tasks (after py-ipv8's TaskManager).

Invariant: every background task the node starts is registered here under a unique name,
its exceptions are logged (never lost), and ``shutdown()`` cancels and awaits them all.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskManager:
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._closed = False

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any], *, replace: bool = False) -> asyncio.Task[Any]:
        """Start ``coro`` as the task ``name``.  A name still running is an error unless ``replace``."""
        if self._closed:
            coro.close()
            raise RuntimeError(f"{self.owner}: task manager is shut down; cannot start {name}")
        old = self._tasks.get(name)
        if old is not None and not old.done():
            if not replace:
                coro.close()
                raise RuntimeError(f"{self.owner}: task {name!r} is already running")
            old.cancel()
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.owner}:{name}")
        self._tasks[name] = task
        task.add_done_callback(functools.partial(self._done, name))
        return task

    def every(self, name: str, interval: float, fn: Callable[[], Awaitable[None]],
              *, delay: float | None = None) -> asyncio.Task[Any]:
        """Run ``fn`` every ``interval`` seconds; an exception is logged and the loop goes on."""

        async def loop() -> None:
            await asyncio.sleep(interval if delay is None else delay)
            while True:
                try:
                    await fn()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("%s: periodic task %s failed", self.owner, name)
                await asyncio.sleep(interval)

        return self.spawn(name, loop())

    def _done(self, name: str, task: asyncio.Task[Any]) -> None:
        if self._tasks.get(name) is task:
            del self._tasks[name]
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("%s: task %s failed: %r", self.owner, name, exc, exc_info=exc)

    @property
    def closed(self) -> bool:
        return self._closed

    def is_running(self, name: str) -> bool:
        task = self._tasks.get(name)
        return task is not None and not task.done()

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def cancel(self, name: str) -> None:
        task = self._tasks.get(name)
        if task is not None:
            task.cancel()

    async def shutdown(self, grace: float = 5.0) -> None:
        self._closed = True
        tasks = [t for t in self._tasks.values() if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                log.warning("%s: task %s did not stop within %.1fs", self.owner, task.get_name(), grace)
        self._tasks.clear()
