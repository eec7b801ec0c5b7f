"""Control API server, run inside the node.

Handlers are plain async callables ``(params: dict) -> result`` or async generators for
streams.  A handler's ``RnnError`` becomes an error reply with its message; any other
exception is logged and answered with ``internal`` — a bad request never kills the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from rnn_tui.control.protocol import MAX_LINE, encode
from rnn_tui.errors import RnnError

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
StreamHandler = Callable[[dict[str, Any]], AsyncIterator[Any]]


class ControlServer:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._handlers: dict[str, Handler] = {}
        self._streams: dict[str, StreamHandler] = {}
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.Task[None]] = set()

    def register(self, method: str, handler: Handler) -> None:
        self._handlers[method] = handler

    def register_stream(self, method: str, handler: StreamHandler) -> None:
        self._streams[method] = handler

    @property
    def methods(self) -> list[str]:
        return sorted([*self._handlers, *self._streams])

    async def start(self) -> None:
        if self.path.exists() or self.path.is_symlink():
            if await _socket_answers(self.path):
                raise RnnError(f"{self.path}: another node is already running with this data dir")
            self.path.unlink()
        old_umask = os.umask(0o177)  # the socket is born 0600: no window where others can connect
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path),
                                                           limit=MAX_LINE)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        self.register("methods", self._list_methods)

    async def _list_methods(self, params: dict[str, Any]) -> list[str]:
        return self.methods

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            if self._clients:
                await asyncio.gather(*self._clients, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(OSError):
                self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        streams: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(encode({"id": None, "error": {"code": "too_large",
                                                                "message": "request line too long"}}))
                    break
                if not line:
                    break
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                        raise ValueError("a request is an object with a string 'method'")
                except ValueError as exc:
                    writer.write(encode({"id": None, "error": {"code": "bad_request", "message": str(exc)}}))
                    await writer.drain()
                    continue
                rid = request.get("id")
                params = request.get("params") or {}
                method = request["method"]
                if method in self._streams:
                    t = asyncio.create_task(self._stream(rid, method, params, writer),
                                            name=f"control:stream:{method}")
                    streams.add(t)
                    t.add_done_callback(streams.discard)
                    continue
                writer.write(encode(await self._dispatch(rid, method, params)))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            for t in list(streams):
                t.cancel()
            if streams:
                await asyncio.gather(*streams, return_exceptions=True)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._clients.discard(task)

    async def _dispatch(self, rid: Any, method: str, params: Any) -> dict[str, Any]:
        handler = self._handlers.get(method)
        if handler is None:
            return {"id": rid, "error": {"code": "unknown_method",
                                         "message": f"unknown method {method!r}"}}
        if not isinstance(params, dict):
            return {"id": rid, "error": {"code": "bad_request", "message": "params must be an object"}}
        try:
            return {"id": rid, "result": await handler(params)}
        except RnnError as exc:
            return {"id": rid, "error": {"code": type(exc).__name__, "message": str(exc)}}
        except Exception as exc:
            log.exception("control method %s failed", method)
            return {"id": rid, "error": {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}}

    async def _stream(self, rid: Any, method: str, params: dict[str, Any],
                      writer: asyncio.StreamWriter) -> None:
        try:
            async for item in self._streams[method](params):
                writer.write(encode({"id": rid, "item": item}))
                await writer.drain()
            writer.write(encode({"id": rid, "end": True}))
        except asyncio.CancelledError:
            raise
        except RnnError as exc:
            writer.write(encode({"id": rid, "error": {"code": type(exc).__name__, "message": str(exc)}}))
        except (ConnectionError, RuntimeError):
            return
        except Exception as exc:
            log.exception("control stream %s failed", method)
            writer.write(encode({"id": rid, "error": {"code": "internal", "message": repr(exc)}}))
        with contextlib.suppress(ConnectionError, RuntimeError):
            await writer.drain()


async def _socket_answers(path: Path) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 1.0)
    except (TimeoutError, OSError):
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True
