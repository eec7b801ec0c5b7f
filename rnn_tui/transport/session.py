"""Requests, streamed replies and one-way messages over one verified QUIC connection.

Stream discipline (one QUIC stream per exchange, so one slow exchange never blocks
another):

- ``request``: a bidirectional stream carries one request frame (then FIN) and one
  ``REPLY`` frame back (then FIN).
- ``stream``: a bidirectional stream carries one ``STREAM_REQUEST`` frame, then the
  requester's ``CREDIT`` frames; the responder sends ``CHUNK`` frames, never more than
  the credit granted, then an ``END`` frame and FIN.  Credit is the end-to-end
  backpressure: a consumer that stops reading stops the producer.
- ``send``: a unidirectional stream carries one ``ONE_WAY`` frame, then FIN.

Bounded memory against a peer that sends faster than we read: each stream's decoder
holds at most one frame (``max_body``), the connection holds at most ``max_buffered``
bytes of incomplete frames and undelivered chunks, at most ``max_inbound`` handlers
run at once (beyond that: an error reply ``BUSY``), and a responder that ignores credit
has its stream reset with ``OVERFLOW``.  aioquic's ``drain()`` never blocks, so a
streaming responder also pauses while the QUIC send buffer of its stream is above
``send_high_water`` (paced on acknowledgements).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aioquic.quic.connection import QuicConnection

from rnn_tui.errors import LocalProtocolError, RemoteProtocolError, RequestTimeout, RnnError
from rnn_tui.transport.connection import PathSender, QuicLink
from rnn_tui.transport.errors import ConnectionClosed, RemoteError
from rnn_tui.transport.framing import (
    DEFAULT_MAX_BODY,
    Flags,
    Frame,
    FrameDecoder,
    FrameError,
    encode_frame,
)
from rnn_tui.transport.messages import REGISTRY, ErrorReply, Message, MessageRegistry
from rnn_tui.util.tasks import TaskManager

__all__ = ["SessionLimits", "HandlerTable", "PeerConnection", "ReplyStream"]

log = logging.getLogger(__name__)

RequestHandler = Callable[["PeerConnection", Any], Awaitable[Message]]
StreamHandler = Callable[["PeerConnection", Any], AsyncIterator[Message]]
OneWayHandler = Callable[["PeerConnection", Any], Awaitable[None]]
#: Called synchronously with each DATAGRAM frame whose first byte is its channel.
DatagramHandler = Callable[["PeerConnection", bytes], None]
CONTROL_TYPE = 0  # frames that carry no message (CREDIT, bare END)
_U32 = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """Per-connection limits; the defaults suit a node on a real link."""

    max_body: int = DEFAULT_MAX_BODY
    max_inbound: int = 64
    max_buffered: int = 16 * 1024 * 1024
    stream_window: int = 16
    send_high_water: int = 1024 * 1024
    send_low_water: int = 256 * 1024
    handler_timeout: float = 60.0
    credit_timeout: float = 60.0


class HandlerTable:
    """Which coroutine answers which message type; shared by all connections of a node.

    Other packages register their handlers here (``transport.handlers.on_request(...)``)
    without touching the transport's code.
    """

    def __init__(self) -> None:
        self.requests: dict[int, RequestHandler] = {}
        self.streams: dict[int, StreamHandler] = {}
        self.one_way: dict[int, OneWayHandler] = {}
        self.datagrams: dict[int, DatagramHandler] = {}

    def on_request(self, cls: type[Message], fn: RequestHandler) -> None:
        self.requests[cls.TYPE] = fn

    def on_stream(self, cls: type[Message], fn: StreamHandler) -> None:
        self.streams[cls.TYPE] = fn

    def on_message(self, cls: type[Message], fn: OneWayHandler) -> None:
        self.one_way[cls.TYPE] = fn

    def on_datagram(self, channel: int, fn: DatagramHandler) -> None:
        """DATAGRAM frames starting with byte ``channel`` (unreliable; no task per frame)."""
        self.datagrams[channel] = fn


class _Stream:
    """State of one QUIC stream as the session sees it."""

    __slots__ = ("stream_id", "request_id", "decoder", "kind", "future", "chunks",
                 "chunk_bytes", "held", "granted", "wake", "done", "error", "credit",
                 "handler_done", "remote_done", "local_done", "failed")

    def __init__(self, stream_id: int, request_id: int, kind: str, max_body: int) -> None:
        self.stream_id = stream_id
        self.request_id = request_id
        self.decoder = FrameDecoder(max_body)
        self.kind = kind  # "request" | "stream" (ours) or "in" (the peer's)
        self.future: asyncio.Future[Message] | None = None
        self.chunks: collections.deque[tuple[Message, int]] = collections.deque()
        self.chunk_bytes = 0
        self.held = 0  # bytes of this stream counted in the connection's buffered total
        self.granted = 0  # chunks still allowed from the responder (ours) / credit (in)
        self.wake: asyncio.Event | None = None
        self.done = False
        self.error: BaseException | None = None
        self.credit = 0
        self.handler_done = False
        self.remote_done = False
        self.local_done = False
        self.failed = False


class PeerConnection(QuicLink):
    """A verified connection to one peer: the API the node and other packages use."""

    def __init__(
        self,
        quic: QuicConnection,
        path: PathSender,
        *,
        remote_addr: tuple[str, int],
        handlers: HandlerTable,
        limits: SessionLimits | None = None,
        registry: MessageRegistry = REGISTRY,
        outbound: bool,
        **link_kwargs: Any,
    ) -> None:
        super().__init__(quic, path, remote_addr=remote_addr, **link_kwargs)
        self.handlers = handlers
        self.limits = limits or SessionLimits()
        self.registry = registry
        self.outbound = outbound
        self.rtt: float | None = None
        #: The peer's last ``Identify`` (set by the transport's identify exchange).
        self.peer_identify: Message | None = None
        self.last_app_activity = self._loop.time()
        self._streams: dict[int, _Stream] = {}
        self._request_ids = itertools.count(1)
        self._buffered = 0
        self._inbound_active = 0
        self._drain_waiters: dict[int, asyncio.Future[None]] = {}
        self._tasks = TaskManager(f"conn:{remote_addr[0]}:{remote_addr[1]}")

    # ------------------------------------------------------------------ public API

    async def request(self, msg: Message, timeout: float = 10.0) -> Message:  # noqa: ASYNC109
        """Send ``msg`` and return the reply; RemoteError on an error reply."""
        body = self._body_of(msg)
        st = self._open("request")
        st.future = self._loop.create_future()
        self._send(st.stream_id, Frame(msg.TYPE, Flags.NONE, st.request_id, body), end=True)
        try:
            async with asyncio.timeout(timeout):
                return await st.future
        except TimeoutError:
            self._abort(st, FrameError.CANCELLED)
            raise RequestTimeout(
                f"{type(msg).__name__} to {self._where()} got no reply within {timeout:g}s") from None
        except asyncio.CancelledError:
            self._abort(st, FrameError.CANCELLED)
            raise
        finally:
            self._forget(st)

    def stream(self, msg: Message, timeout: float = 30.0) -> ReplyStream:
        """Send ``msg`` and iterate over the chunks of the reply.

        Use as ``async with conn.stream(req) as chunks: async for c in chunks: ...``;
        ``timeout`` bounds the wait for each chunk.  Leaving early cancels the stream.
        """
        body = self._body_of(msg)
        st = self._open("stream")
        st.wake = asyncio.Event()
        st.granted = self.limits.stream_window
        self._send(st.stream_id, Frame(msg.TYPE, Flags.STREAM_REQUEST, st.request_id, body))
        self._send(st.stream_id, Frame(CONTROL_TYPE, Flags.CREDIT, st.request_id,
                                       _U32.pack(self.limits.stream_window)))
        return ReplyStream(self, st, timeout)

    def send(self, msg: Message) -> None:
        """Fire-and-forget a one-way message (delivery is reliable; no answer comes)."""
        self._check_open()
        sid = self.quic.get_next_available_stream_id(is_unidirectional=True)
        self._send(sid, Frame(msg.TYPE, Flags.ONE_WAY, 0, msg.encode()), end=True)

    async def close(self, error_code: int = 0, reason: str = "",
                    timeout: float = 2.0) -> None:  # noqa: ASYNC109 (bounded by design)
        """Close the connection and wait (bounded) until it is gone."""
        self.begin_close(error_code, reason)
        try:
            async with asyncio.timeout(timeout):
                await self.closed.wait()
        except TimeoutError:
            self._terminate("closed locally (peer did not confirm)")
        await self._tasks.shutdown()

    @property
    def is_open(self) -> bool:
        return not self.closed.is_set() and self.peer_id is not None

    # ------------------------------------------------------------------ sending

    def _check_open(self) -> None:
        if self.closed.is_set():
            raise ConnectionClosed(f"connection to {self._where()} is closed: {self.close_reason}")
        if self.peer_id is None:
            raise ConnectionClosed(f"connection to {self._where()} is not verified yet")

    def _where(self) -> str:
        peer = self.peer_id.short if self.peer_id else "?"
        return f"{peer}@{self.remote_addr[0]}:{self.remote_addr[1]}"

    def _body_of(self, msg: Message) -> bytes:
        """Encode before any stream is opened, so an oversized message leaves no state."""
        body = msg.encode()
        if len(body) > self.limits.max_body:
            raise LocalProtocolError(
                f"{type(msg).__name__} of {len(body)} bytes exceeds the maximum of "
                f"{self.limits.max_body}; split it into a streamed reply")
        return body

    def _open(self, kind: str) -> _Stream:
        self._check_open()
        sid = self.quic.get_next_available_stream_id()
        st = _Stream(sid, next(self._request_ids) & 0xFFFF_FFFF, kind, self.limits.max_body)
        self._streams[sid] = st
        self.last_app_activity = self._loop.time()
        return st

    def _send(self, stream_id: int, frame: Frame, *, end: bool = False) -> bool:
        """Queue a frame; False when the stream can no longer send (reset by the peer)."""
        data = encode_frame(frame, max_body=self.limits.max_body)
        try:
            self.quic.send_stream_data(stream_id, data, end_stream=end)
        except Exception as exc:  # stream reset/finished, or connection closing
            log.debug("cannot send on stream %d to %s: %s", stream_id, self._where(), exc)
            return False
        if end:
            st = self._streams.get(stream_id)
            if st is not None:
                st.local_done = True
        self.transmit_soon()
        return True

    def _send_buffered(self, stream_id: int) -> int:
        """Bytes written to a stream and not yet acknowledged (aioquic private state)."""
        stream = self.quic._streams.get(stream_id)
        if stream is None:
            return 0
        sender = stream.sender
        return int(sender._buffer_stop - sender._buffer_start)

    async def _paced(self, stream_id: int) -> None:
        """Wait until the stream's send buffer is below the low-water mark again."""
        if self._send_buffered(stream_id) <= self.limits.send_high_water:
            return
        waiter = self._loop.create_future()
        self._drain_waiters[stream_id] = waiter
        try:
            await waiter
        finally:
            self._drain_waiters.pop(stream_id, None)

    def _datagram_frame(self, data: bytes) -> None:
        fn = self.handlers.datagrams.get(data[0]) if data else None
        if fn is None:
            return  # unknown channel: datagrams are unreliable, dropping is allowed
        try:
            fn(self, data)
        except Exception:  # a handler bug must not take the connection down
            log.exception("datagram handler failed for %s", self._where())

    def _after_receive(self) -> None:
        for sid, waiter in list(self._drain_waiters.items()):
            if not waiter.done() and self._send_buffered(sid) <= self.limits.send_low_water:
                waiter.set_result(None)

    def _abort(self, st: _Stream, code: int) -> None:
        """Stop both directions of a stream of ours."""
        st.failed = True
        for op in (self.quic.reset_stream, self.quic.stop_stream):
            with _quiet():  # already finished in that direction
                op(st.stream_id, code)
        self.transmit_soon()

    def _forget(self, st: _Stream) -> None:
        if self._streams.get(st.stream_id) is st:
            del self._streams[st.stream_id]
        self._account(st, 0)

    def _account(self, st: _Stream, held: int | None = None) -> None:
        """Keep the connection's total of buffered inbound bytes in step with ``st``."""
        if held is None:
            held = st.decoder.buffered + st.chunk_bytes
        self._buffered += held - st.held
        st.held = held

    # ------------------------------------------------------------------ receiving

    def _is_local(self, stream_id: int) -> bool:
        return bool(stream_id & 1) != self.outbound  # bit 0: 0 = client-initiated

    def _stream_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        st = self._streams.get(stream_id)
        if st is None:
            if self._is_local(stream_id):
                return  # late data for an exchange we already finished or abandoned
            st = _Stream(stream_id, 0, "in", self.limits.max_body)
            self._streams[stream_id] = st
        if st.failed:
            if end_stream:
                self._in_remote_done(st)
            return
        self.last_app_activity = self._loop.time()
        try:
            frames = st.decoder.feed(data)
            if end_stream:
                st.decoder.eof()
        except RemoteProtocolError as exc:
            if end_stream:
                st.remote_done = True
            self._stream_failed(st, exc.code, str(exc))
            return
        self._account(st)
        for frame in frames:
            if st.failed:
                break
            if st.kind == "in":
                self._in_frame(st, frame)
            else:
                self._out_frame(st, frame)
        self._account(st)
        if self._buffered > self.limits.max_buffered and not st.failed:
            self._stream_failed(st, FrameError.OVERFLOW,
                                f"more than {self.limits.max_buffered} bytes buffered for {self._where()}")
        if end_stream:
            if st.kind == "in":
                self._in_remote_done(st)
            elif not st.done and not st.failed:
                self._out_fail(st, RemoteProtocolError("stream ended before the reply",
                                                       FrameError.TRUNCATED))

    def _stream_reset(self, stream_id: int, error_code: int) -> None:
        st = self._streams.get(stream_id)
        if st is None:
            return
        if st.kind == "in":
            st.failed = True
            self._tasks.cancel(f"in:{stream_id}")
            self._in_remote_done(st)
        else:
            self._out_fail(st, RemoteError(f"{self._where()} reset the stream", error_code))

    def _stream_stopped(self, stream_id: int, error_code: int) -> None:
        self._stream_reset(stream_id, error_code)

    def _stream_failed(self, st: _Stream, code: int, message: str) -> None:
        """The peer broke framing or limits on this stream: answer if we can, then stop."""
        log.info("stream %d from %s: %s", st.stream_id, self._where(), message)
        if st.kind != "in":
            self._out_fail(st, RemoteProtocolError(message, code))
            return
        bidi = st.stream_id & 2 == 0
        if bidi and not st.local_done:
            if st.request_id == 0 and not st.handler_done:
                # no request was accepted on this stream yet: we can still answer
                err = ErrorReply(code, message)
                self._send(st.stream_id, Frame(ErrorReply.TYPE, Flags.REPLY | Flags.ERROR, 0,
                                               err.encode()), end=True)
                st.handler_done = True
            else:
                with _quiet():
                    self.quic.reset_stream(st.stream_id, code)
                st.local_done = True
        st.failed = True
        self._tasks.cancel(f"in:{st.stream_id}")
        if not st.remote_done:
            with _quiet():
                self.quic.stop_stream(st.stream_id, code)
        self.transmit_soon()
        st.chunk_bytes = 0
        st.decoder = FrameDecoder(0)
        self._account(st, 0)
        if st.request_id == 0:
            st.handler_done = True  # no handler was started for this stream
        # Keep the entry until the peer's side ends, so late data is not taken for a
        # new stream; it holds no buffer any more.
        if st.remote_done and st.handler_done:
            self._forget(st)

    # ---- our exchanges (we sent the request)

    def _out_frame(self, st: _Stream, frame: Frame) -> None:
        if frame.request_id != st.request_id and not frame.flags & Flags.ERROR:
            self._out_fail(st, RemoteProtocolError(
                f"reply for request {frame.request_id} on the stream of {st.request_id}",
                FrameError.UNEXPECTED))
            return
        try:
            if frame.flags & Flags.ERROR:
                err = ErrorReply.decode(frame.body)
                self._out_fail(st, RemoteError(f"{self._where()} answered: {err.message}", err.code))
            elif st.kind == "request" and frame.flags & Flags.REPLY:
                msg = self.registry.decode(frame.msg_type, frame.body)
                st.done = True
                if st.future is not None and not st.future.done():
                    st.future.set_result(msg)
            elif st.kind == "stream" and frame.flags & Flags.CHUNK:
                if st.granted <= 0:
                    raise RemoteProtocolError("responder sent chunks beyond its credit",
                                              FrameError.OVERFLOW)
                st.granted -= 1
                msg = self.registry.decode(frame.msg_type, frame.body)
                st.chunks.append((msg, len(frame.body)))
                st.chunk_bytes += len(frame.body)
                self._wake(st)
            elif st.kind == "stream" and frame.flags & Flags.END:
                st.done = True
                with _quiet():  # our side only carried credit: just FIN it
                    self.quic.send_stream_data(st.stream_id, b"", end_stream=True)
                self.transmit_soon()
                self._wake(st)
            else:
                raise RemoteProtocolError(f"unexpected frame flags {int(frame.flags):#x}",
                                          FrameError.UNEXPECTED)
        except (RemoteProtocolError, RnnError) as exc:
            self._out_fail(st, exc)

    def _out_fail(self, st: _Stream, exc: BaseException) -> None:
        if st.done or st.failed:
            return
        st.error = exc
        if st.future is not None and not st.future.done():
            st.future.set_exception(exc)
        self._wake(st)
        self._abort(st, getattr(exc, "code", 0) or FrameError.UNEXPECTED)

    @staticmethod
    def _wake(st: _Stream) -> None:
        if st.wake is not None:
            st.wake.set()

    def _grant(self, st: _Stream, count: int) -> None:
        st.granted += count
        self._send(st.stream_id, Frame(CONTROL_TYPE, Flags.CREDIT, st.request_id, _U32.pack(count)))

    # ---- the peer's exchanges (we answer)

    def _in_frame(self, st: _Stream, frame: Frame) -> None:
        if st.request_id == 0 and not st.handler_done:
            self._in_request(st, frame)
            return
        if frame.flags == Flags.CREDIT and frame.request_id == st.request_id \
                and len(frame.body) == 4:
            st.credit += _U32.unpack(frame.body)[0]
            self._wake(st)
            return
        self._stream_failed(st, FrameError.UNEXPECTED, "unexpected frame after the request")

    def _in_request(self, st: _Stream, frame: Frame) -> None:
        one_way = frame.flags == Flags.ONE_WAY
        uni = bool(st.stream_id & 2)
        if uni != one_way or frame.flags not in (Flags.ONE_WAY, Flags.NONE, Flags.STREAM_REQUEST):
            self._stream_failed(st, FrameError.UNEXPECTED,
                                f"first frame has flags {int(frame.flags):#x}, not a request")
            return
        table: dict[int, Any] = (self.handlers.one_way if one_way else
                                 self.handlers.streams if frame.flags == Flags.STREAM_REQUEST
                                 else self.handlers.requests)
        try:
            msg = self.registry.decode(frame.msg_type, frame.body)
            handler = table.get(frame.msg_type)
            if handler is None:
                raise RemoteProtocolError(
                    f"no handler for message type {frame.msg_type:#06x} ({type(msg).__name__})",
                    FrameError.UNKNOWN_TYPE)
            if self._inbound_active >= self.limits.max_inbound:
                raise RemoteProtocolError(
                    f"more than {self.limits.max_inbound} requests in progress", FrameError.BUSY)
        except RemoteProtocolError as exc:
            if one_way:
                self._stream_failed(st, exc.code, str(exc))
            else:
                self._reply_error(st, frame.request_id, exc.code, str(exc), end=True)
            return
        st.request_id = frame.request_id or 0xFFFF_FFFF
        self._inbound_active += 1
        if one_way:
            coro = self._serve_one_way(st, handler, msg)
        elif frame.flags == Flags.STREAM_REQUEST:
            st.wake = asyncio.Event()
            coro = self._serve_stream(st, handler, msg, frame.request_id)
        else:
            coro = self._serve_request(st, handler, msg, frame.request_id)
        self._tasks.spawn(f"in:{st.stream_id}", coro)

    def _reply_error(self, st: _Stream, request_id: int, code: int, message: str, *,
                     end: bool, flags: Flags = Flags.REPLY) -> None:
        body = ErrorReply(code, message).encode()
        self._send(st.stream_id, Frame(ErrorReply.TYPE, flags | Flags.ERROR, request_id, body),
                   end=end)
        st.handler_done = True
        if st.remote_done:
            self._forget(st)

    def _in_remote_done(self, st: _Stream) -> None:
        st.remote_done = True
        if st.handler_done:
            self._forget(st)

    def _in_finished(self, st: _Stream) -> None:
        self._inbound_active -= 1
        st.handler_done = True
        if st.remote_done:
            self._forget(st)

    async def _serve_one_way(self, st: _Stream, handler: OneWayHandler, msg: Message) -> None:
        try:
            async with asyncio.timeout(self.limits.handler_timeout):
                await handler(self, msg)
        except Exception:
            log.exception("one-way handler for %s from %s failed", type(msg).__name__, self._where())
        finally:
            self._in_finished(st)

    async def _serve_request(self, st: _Stream, handler: RequestHandler, msg: Message,
                             request_id: int) -> None:
        try:
            try:
                async with asyncio.timeout(self.limits.handler_timeout):
                    reply = await handler(self, msg)
            except Exception as exc:
                code, text = _error_of(exc, type(msg).__name__)
                self._reply_error(st, request_id, code, text, end=True)
                return
            if not st.failed:
                self._send(st.stream_id, Frame(reply.TYPE, Flags.REPLY, request_id, reply.encode()),
                           end=True)
        finally:
            self._in_finished(st)

    async def _serve_stream(self, st: _Stream, handler: StreamHandler, msg: Message,
                            request_id: int) -> None:
        assert st.wake is not None
        agen = handler(self, msg)
        try:
            try:
                async for chunk in agen:
                    while st.credit <= 0:
                        st.wake.clear()
                        async with asyncio.timeout(self.limits.credit_timeout):
                            await st.wake.wait()
                    st.credit -= 1
                    if st.failed or not self._send(
                            st.stream_id, Frame(chunk.TYPE, Flags.CHUNK, request_id, chunk.encode())):
                        return
                    await self._paced(st.stream_id)
            except Exception as exc:
                code, text = _error_of(exc, type(msg).__name__)
                if not st.failed:
                    self._reply_error(st, request_id, code, text, end=True, flags=Flags.END)
                return
            if not st.failed:
                self._send(st.stream_id, Frame(CONTROL_TYPE, Flags.END, request_id, b""), end=True)
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    log.debug("stream handler cleanup failed", exc_info=True)
            self._in_finished(st)

    # ------------------------------------------------------------------ teardown

    def _connection_closed(self, reason: str) -> None:
        exc = ConnectionClosed(f"connection to {self._where()} closed: {reason}")
        for st in list(self._streams.values()):
            if st.kind != "in":
                self._out_fail(st, exc)
        for waiter in self._drain_waiters.values():
            if not waiter.done():
                waiter.set_exception(exc)
        for name in self._tasks.names():
            self._tasks.cancel(name)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """aioquic raises ValueError for operations on streams already finished: ignore."""
    try:
        yield
    except Exception as exc:
        log.debug("ignored stream operation failure: %s", exc)


def _error_of(exc: BaseException, what: str) -> tuple[int, str]:
    """The error reply for a handler that failed: our errors keep their text."""
    if isinstance(exc, TimeoutError):
        return FrameError.HANDLER_FAILED, f"{what} handler timed out"
    if isinstance(exc, RnnError):
        return int(getattr(exc, "code", 0) or FrameError.HANDLER_FAILED), str(exc)
    log.error("handler for %s failed", what, exc_info=exc)
    return FrameError.HANDLER_FAILED, f"{what} handler failed"


class ReplyStream:
    """Async iterator over a streamed reply; grants credit as chunks are consumed."""

    __slots__ = ("_conn", "_st", "_timeout", "_consumed")

    def __init__(self, conn: PeerConnection, st: _Stream, timeout: float) -> None:
        self._conn = conn
        self._st = st
        self._timeout = timeout
        self._consumed = 0

    def __aiter__(self) -> ReplyStream:
        return self

    async def __anext__(self) -> Message:
        st = self._st
        assert st.wake is not None
        while not st.chunks:
            if st.error is not None:
                self._conn._forget(st)
                raise st.error
            if st.done:
                self._conn._forget(st)
                raise StopAsyncIteration
            st.wake.clear()
            try:
                async with asyncio.timeout(self._timeout):
                    await st.wake.wait()
            except TimeoutError:
                await self.aclose()
                raise RequestTimeout(
                    f"streamed reply from {self._conn._where()} stalled for {self._timeout:g}s"
                ) from None
        msg, size = st.chunks.popleft()
        st.chunk_bytes -= size
        self._conn._account(st)
        self._consumed += 1
        if self._consumed * 2 >= self._conn.limits.stream_window and not st.done and not st.failed:
            self._conn._grant(st, self._consumed)
            self._consumed = 0
        return msg

    async def aclose(self) -> None:
        """Stop the stream early (the responder sees a reset)."""
        st = self._st
        if not st.done and not st.failed:
            self._conn._abort(st, FrameError.CANCELLED)
        self._conn._forget(st)

    async def __aenter__(self) -> ReplyStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
