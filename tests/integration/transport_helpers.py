"""Helpers for the transport's loopback integration tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import ClassVar

from rnn_tui.identity import Identity
from rnn_tui.transport import Transport, TransportSettings, register_message
from rnn_tui.transport.session import SessionLimits

LOOPBACK = "127.0.0.1"


def settings(**limits: int | float) -> TransportSettings:
    return TransportSettings(keepalive_interval=5.0, idle_timeout=20.0, handshake_timeout=5.0,
                             limits=SessionLimits(**limits))  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(count: int = 2, **limits: int | float) -> AsyncIterator[list[Transport]]:
    """``count`` transports bound to free loopback ports; closed on exit."""
    nodes = [Transport(Identity.generate(), settings=settings(**limits)) for _ in range(count)]
    try:
        for node in nodes:
            await node.start(LOOPBACK, 0)
        yield nodes
    finally:
        for node in nodes:
            await node.close()


async def eventually(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Poll ``predicate`` until it holds; fail after ``within`` seconds."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 (polling state owned by another object)
            await asyncio.sleep(0.01)


@register_message
@dataclass(frozen=True, slots=True)
class Probe:
    """A test-only message (type range 0xF0xx) carrying opaque bytes."""

    TYPE: ClassVar[int] = 0xF001
    data: bytes = b""

    def encode(self) -> bytes:
        return self.data

    @classmethod
    def decode(cls, body: bytes) -> Probe:
        return cls(body)
