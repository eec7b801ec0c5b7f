"""Moves outputs between peers over the authenticated QUIC transport, driving ``transfer.py``.

Mapping of the transfer core's messages onto the transport's three exchange kinds:

* ``XferOffer`` (request, sender → receiver) carries the route and the core's ``Offer``; the
  receiver checks the route with its ``accept`` callback (is this run/job/interface one it
  holds?) and answers ``ResumeFrom`` (how many chunks it already verified) or ``Aborted``.
* ``XferPull`` (streamed request, receiver → sender): the sender's reply stream carries the
  ``Chunk`` s and finally ``End``.  One QUIC stream keeps the chunks in order, and the
  transport's credit stops the sender when the receiver stops reading.
* ``XferControl(Ack)`` (one-way, receiver → sender) frees the sender's window, so the sender
  never holds more than ``window`` chunks; ``XferControl(Completed | Aborted)`` (request,
  receiver → sender) ends the transfer once the whole-object hash was checked.

A broken connection does not fail a transfer: the sender dials again and offers again, the
receiver answers with its verified chunk count, and only the rest travels (resume).  The
receiver writes every verified chunk to ``NAME.part`` *before* acknowledging it, and renames
it to ``NAME`` after the whole-object check, so a half-written output is never mistaken for
an input.  Paths are confined by the core's ``open_destination`` (no ``..``, no absolute
names, no symlink escapes).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rnn_tui.errors import RnnError, WorkflowError
from rnn_tui.identity.keys import PeerId
from rnn_tui.transport.session import PeerConnection
from rnn_tui.util.tasks import TaskManager
from rnn_tui.workflow import transfer as tc
from rnn_tui.workflow.wire import XferChunk, XferControl, XferOffer, XferPull

__all__ = ["TransferService", "Landing", "SendOutcome", "transfer_id_for", "CHUNK_SIZE",
           "WINDOW"]

log = logging.getLogger(__name__)

CHUNK_SIZE = 256 * 1024
"""256 KiB: the transport's stream credit (16 chunks) then buffers at most 4 MiB per pull."""
WRITE_BATCH = 4
"""Verified chunks handed to the receiving worker thread at once (and before every Ack)."""
FLUSH_EVERY = 32 << 20
"""Bytes written to a partial file between background ``fdatasync`` calls: the kernel only
starts writeback on its own at ``dirty_background_ratio`` (GiBs on a big host), so without
these the one fsync before the rename would flush the whole object while the sender waits."""
WINDOW = 32
"""The sender holds at most 32 chunks (8 MiB); 16 measured 71 % of bare QUIC with 16 KiB
datagrams, 32 reaches parity (docs/perf/workflow_orchestration.md)."""
Connect = Callable[[PeerId], Awaitable[PeerConnection]]
_T = TypeVar("_T")


def transfer_id_for(*parts: object) -> str:
    """A stable id for one delivery of one route, so a resume finds the same partial file."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:32]


@dataclass(slots=True)
class Landing:
    """Where an accepted incoming transfer lands, and whom to tell when it is verified."""

    root: Path
    name: str
    max_size: int
    on_done: Callable[[int, str], None]
    on_failed: Callable[[str], None] = lambda reason: None
    on_progress: Callable[[int], None] = lambda verified_bytes: None
    """Called after each verified chunk is written: bytes from the start now on disk."""
    live: bool = False
    """A consumer reads the partial file while it lands (a streamed pipe): each verified
    chunk is written at once and reported through ``on_progress``, not batched."""


@dataclass(eq=False, slots=True)
class StreamSource:
    """A growing output (a running job's STDOUT) sent while it is produced, size unknown.

    The producer calls ``feed`` as bytes come and ``end`` (or ``fail``) when it exits; the
    sender takes at most its window from ``pending`` at a time.  What the receiver is slow to
    take waits here, so memory is bounded by the job's output cap, not by the window.
    """

    pending: bytearray = field(default_factory=bytearray)
    ended: bool = False
    failed: str = ""
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def feed(self, data: bytes) -> None:
        if not (self.ended or self.failed):
            self.pending += data
            self.wake.set()

    def end(self) -> None:
        self.ended = True
        self.wake.set()

    def fail(self, reason: str) -> None:
        self.failed = self.failed or reason
        self.wake.set()


@dataclass(frozen=True, slots=True)
class SendOutcome:
    ok: bool
    size: int
    sha256: str
    reason: str = ""
    chunks_sent: int = 0
    reconnects: int = 0
    resent_below_verified: int = 0


@dataclass(eq=False, slots=True)
class _Outgoing:
    sender: tc.TransferSender
    peer: PeerId
    fd: int
    size: int
    sha256: bytes
    route: tuple[str, str, int, int, str | None, str | None]
    done: asyncio.Future[tuple[bool, str]]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    source: StreamSource | None = None
    sent: list[int] = field(default_factory=list)
    resume_points: list[int] = field(default_factory=list)
    fd_closed: bool = False  # set on the loop just before ``fd`` is closed


@dataclass(eq=False, slots=True)
class _Incoming:
    """One transfer being received.  ``worker`` (one thread, so in order) writes verified
    chunks and feeds the whole-object hash with them: sha256 and pwrite release the GIL, so
    this runs on another core while the event loop does QUIC.  Chunks are handed over in
    batches (``WRITE_BATCH``): each hand-over costs the loop a thread wake-up.  ``written``
    is the last batch queued."""

    receiver: tc.TransferReceiver
    landing: Landing
    peer: PeerId
    fd: int
    part: str
    hasher: Any
    worker: ThreadPoolExecutor
    sums_fd: int
    connection: PeerConnection | None = None
    written: asyncio.Future[None] | None = None
    batch: list[tc.WriteChunk] = field(default_factory=list)  # verified, not yet queued
    closed: bool = False   # set by the worker: the fd is closed
    unflushed: int = 0     # worker: bytes written since the last background flush
    flushing: Future[None] | None = None  # worker: the background flush in progress
    shut: bool = False     # set on the loop: no more work for the worker

    def run(self, fn: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        if self.shut:
            raise WorkflowError(f"transfer {self.receiver.transfer_id[:8]} was closed")
        return asyncio.get_running_loop().run_in_executor(self.worker, fn, *args)


_FLUSHER = ThreadPoolExecutor(2, thread_name_prefix="xfer-flush")
"""Background writeback of partial files (``FLUSH_EVERY``): short, independent calls that
outlive nothing (each closes its own fd), so one small pool serves every transfer."""


def _flush(fd: int) -> None:
    try:
        os.fdatasync(fd)
    except OSError as exc:  # the final fsync before the rename reports a real failure
        log.debug("background flush failed: %s", exc)
    finally:
        os.close(fd)


def _read_chunks(fd: int, offset: int, size: int, chunk_size: int) -> tuple[bytes, list[bytes]]:
    """Read ``size`` bytes at ``offset`` and hash each whole chunk (a worker thread); closes
    ``fd``, a duplicate made for this read."""
    try:
        data = os.pread(fd, size, offset)
    finally:
        os.close(fd)  # the caller's dup
    view = memoryview(data)
    digests = [hashlib.sha256(view[i:i + chunk_size]).digest()
               for i in range(0, len(data) - chunk_size + 1, chunk_size)]
    view.release()
    return data, digests


Accept = Callable[[PeerId, XferOffer], Awaitable[Landing]]


class TransferService:
    """Both ends of output transfers for one node (see the module docstring)."""

    def __init__(self, connect: Connect, accept: Accept, *, chunk_size: int = CHUNK_SIZE,
                 window: int = WINDOW, stall_timeout: float = 60.0,
                 max_reconnects: int = 8) -> None:
        self.connect = connect
        self.accept = accept
        self.chunk_size = chunk_size
        self.window = window
        self.stall_timeout = stall_timeout
        self.max_reconnects = max_reconnects
        self.tasks = TaskManager("transfers")
        self._outgoing: dict[str, _Outgoing] = {}
        self._incoming: dict[str, _Incoming] = {}
        self.chunks_sent = 0
        self.chunks_received = 0

    def install(self, handlers: Any) -> None:
        handlers.on_request(XferOffer, self._on_offer)
        handlers.on_stream(XferPull, self._on_pull)
        handlers.on_message(XferControl, self._on_ack)
        handlers.on_request(XferControl, self._on_result)

    async def close(self) -> None:
        for out in list(self._outgoing.values()):
            out.sender.abort("the sending node is shutting down")
            self._settle(out)
        await self.tasks.shutdown()
        for inc in list(self._incoming.values()):
            self._close_incoming(inc)

    # ------------------------------------------------------------------ sending
    async def send_file(self, peer: PeerId, path: Path, *, transfer_id: str, name: str,
                        run_id: str, source_job: str, attempt: int, connection: int,
                        target_job: str | None, target: str | None,
                        known: tuple[int, bytes] | None = None) -> SendOutcome:
        """Send ``path`` to ``peer`` for one route; resumes across reconnects."""
        if known is None:
            known = await asyncio.to_thread(tc.hash_file, path)
        size, sha = known
        sender = tc.TransferSender(transfer_id, name, chunk_size=self.chunk_size,
                                   window=self.window, size=size, sha256=sha)
        loop = asyncio.get_running_loop()
        fd = os.open(path, os.O_RDONLY)
        out = _Outgoing(sender, peer, fd, size, sha,
                        (run_id, source_job, attempt, connection, target_job, target),
                        loop.create_future())
        self._outgoing[transfer_id] = out
        try:
            return await self._send(out, transfer_id)
        finally:
            self._outgoing.pop(transfer_id, None)
            out.fd_closed = True  # readers in threads hold their own dup (``_on_pull``)
            os.close(fd)

    async def send_stream(self, peer: PeerId, source: StreamSource, *, transfer_id: str,
                          name: str, run_id: str, source_job: str, attempt: int,
                          connection: int, target_job: str | None,
                          target: str | None) -> SendOutcome:
        """Send a growing output as it is produced (the core's stream mode: size unknown,
        hashed while pushed; a resume restarts within the chunks not yet acknowledged)."""
        sender = tc.TransferSender(transfer_id, name, chunk_size=self.chunk_size,
                                   window=self.window)
        # one event: the producer's feed wakes the pulling side directly
        out = _Outgoing(sender, peer, -1, -1, b"",
                        (run_id, source_job, attempt, connection, target_job, target),
                        asyncio.get_running_loop().create_future(), wake=source.wake,
                        source=source)
        self._outgoing[transfer_id] = out
        try:
            return await self._send(out, transfer_id)
        finally:
            self._outgoing.pop(transfer_id, None)

    async def _send(self, out: _Outgoing, transfer_id: str) -> SendOutcome:
        sender, peer = out.sender, out.peer
        reconnects = 0
        while True:
            reason = await self._one_connection(out)
            if out.done.done():
                break
            if reconnects >= self.max_reconnects:
                sender.abort(f"gave up after {reconnects} reconnects: {reason}")
                self._settle(out)
                break
            reconnects += 1
            log.info("transfer %s to %s interrupted (%s); resuming", transfer_id[:8],
                     peer.short, reason)
            await asyncio.sleep(min(0.2 * reconnects, 2.0))
            sender.reconnected()
        ok, why = out.done.result()
        verified_floor = 0
        resent = 0
        # a chunk sent again below the receiver's verified count would be a wasted resend
        for index in out.sent:
            if index < 0:
                verified_floor = -index - 1
            elif index < verified_floor:
                resent += 1
        size = out.size if out.source is None else sender.read_offset
        return SendOutcome(ok, size, out.sha256.hex(), why,
                           sum(1 for i in out.sent if i >= 0), reconnects, resent)

    async def _one_connection(self, out: _Outgoing) -> str:
        """Offer once and wait for the end or a disconnect; returns why it stopped."""
        sender = out.sender
        offers = [m for m in sender.messages_to_send() if isinstance(m, tc.Offer)]
        if not offers:
            return "nothing to offer"
        try:
            conn = await self.connect(out.peer)
            reply = await conn.request(XferOffer(*out.route, offer=offers[-1],
                                                 sha256=out.sha256), timeout=15.0)
        except (RnnError, OSError) as exc:
            sender.connection_lost()
            return str(exc)
        if not isinstance(reply, XferControl):
            sender.abort(f"unexpected reply {type(reply).__name__} to an offer")
            self._settle(out)
            return "bad reply"
        sender.receive(reply.message)
        if isinstance(reply.message, tc.ResumeFrom):
            out.sent.append(-reply.message.next_index - 1)  # a resume point, for the stats
        self._settle(out)
        out.wake.set()
        progress = -1
        while not out.done.done():
            closed: asyncio.Future[Any] = asyncio.ensure_future(conn.closed.wait())
            waiting: set[asyncio.Future[Any]] = {out.done, closed}
            try:
                await asyncio.wait(waiting, timeout=self.stall_timeout,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
            if out.done.done():
                return ""
            if conn.closed.is_set():
                sender.connection_lost()
                return f"connection closed: {conn.close_reason}"
            if sender.acknowledged_chunks != progress:
                progress = sender.acknowledged_chunks
                continue
            if out.source is not None and not out.source.ended and sender.held_bytes == 0:
                continue  # a quiet producer is not a stalled transfer
            if sender.state is not tc.TransferState.DONE:
                sender.abort(f"no progress for {self.stall_timeout:g}s")
                self._settle(out)
        return ""

    def _settle(self, out: _Outgoing) -> None:
        """Resolve ``done`` from the sender's events."""
        while (event := out.sender.next_event()) is not None:
            if out.done.done():
                continue
            if isinstance(event, tc.TransferCompleted):
                out.done.set_result((True, ""))
            elif isinstance(event, tc.TransferFailed):
                out.done.set_result((False, event.reason))
        out.wake.set()

    async def _on_pull(self, conn: PeerConnection, msg: XferPull) -> Any:
        out = self._outgoing.get(msg.transfer_id)
        if out is None or out.peer != conn.peer_id:
            raise WorkflowError(f"no transfer {msg.transfer_id[:8]} for this peer")
        sender = out.sender
        while not sender.finished:
            while out.source is not None and (want := sender.wants_data()) > 0:
                source = out.source
                if source.failed:
                    sender.abort(source.failed)
                elif source.pending:
                    take = min(want, len(source.pending))
                    sender.push(bytes(source.pending[:take]))
                    del source.pending[:take]
                    continue
                elif source.ended:
                    sender.finish()
                break
            while out.source is None and (want := sender.wants_data()) > 0:
                offset = sender.read_offset
                if offset >= out.size:
                    sender.finish()
                    break
                # read and hash in a thread: the loop keeps moving QUIC meanwhile; on a dup
                # of the fd, so that send_file closing its fd (a cancelled delivery) can
                # never leave the thread reading whatever file reuses that number
                if out.fd_closed:
                    sender.abort("the sending job was stopped")
                    break
                data, digests = await asyncio.to_thread(
                    _read_chunks, os.dup(out.fd), offset, min(want, self.chunk_size * 4,
                                                              out.size - offset),
                    self.chunk_size)
                if sender.finished or sender.read_offset != offset:
                    break  # a resume moved the read point while we read: read again
                if not data:
                    sender.abort(f"source shrank to {offset} bytes while sending")
                    break
                sender.push(data[:sender.wants_data()], digests)
            if out.source is None and sender.read_offset >= out.size and not sender.finished:
                sender.finish()  # idempotent; cuts the last short chunk and queues End
            pending = sender.messages_to_send()
            for message in pending:
                if isinstance(message, tc.Chunk):
                    out.sent.append(message.index)
                    self.chunks_sent += 1
                    yield XferChunk(message)
                elif not isinstance(message, tc.Offer):
                    yield XferControl(message)
            self._settle(out)
            if sender.state in (tc.TransferState.ENDING, tc.TransferState.DISCONNECTED):
                return
            if not pending:
                out.wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.stall_timeout):
                        await out.wake.wait()

    async def _on_ack(self, conn: PeerConnection, msg: XferControl) -> None:
        out = self._outgoing.get(msg.message.transfer_id)
        if out is None or out.peer != conn.peer_id:
            return
        message = msg.message
        if isinstance(message, tc.Ack) and message.next_index <= out.sender.acknowledged_chunks:
            return  # one-way messages may overtake each other; an old ack adds nothing
        out.sender.receive(message)
        self._settle(out)

    async def _on_result(self, conn: PeerConnection, msg: XferControl) -> XferControl:
        out = self._outgoing.get(msg.message.transfer_id)
        if out is None or out.peer != conn.peer_id:
            raise WorkflowError(f"no transfer {msg.message.transfer_id[:8]} for this peer")
        out.sender.receive(msg.message)
        self._settle(out)
        return msg

    # ------------------------------------------------------------------ receiving
    async def _on_offer(self, conn: PeerConnection, msg: XferOffer) -> XferControl:
        assert conn.peer_id is not None
        tid = msg.offer.transfer_id
        inc = self._incoming.get(tid)
        if inc is not None and inc.peer != conn.peer_id:
            return XferControl(tc.Aborted(tid, "transfer id in use by another peer"))
        if inc is None:
            try:
                landing = await self.accept(conn.peer_id, msg)
            except RnnError as exc:
                return XferControl(tc.Aborted(tid, f"refused: {exc}"))
            problem = tc.check_file_name(landing.name)
            if problem is not None:
                return XferControl(tc.Aborted(tid, f"refused: {problem}"))
            part = landing.name + ".part"
            try:
                path = tc.confine_path(landing.root, part)
                sums = tc.confine_path(landing.root, part + tc.SUMS_SUFFIX)
                resume = await asyncio.to_thread(tc.resume_state, path, msg.offer.chunk_size,
                                                 sums) if path.exists() else None
                fd = tc.open_destination(landing.root, part)
                sums_fd = tc.open_destination(landing.root, part + tc.SUMS_SUFFIX)
            except (RnnError, OSError) as exc:
                return XferControl(tc.Aborted(tid, f"refused: {exc}"))
            receiver = tc.TransferReceiver(tid, max_size=landing.max_size,
                                           expected_sha256=msg.sha256 or None, resume=resume,
                                           driver_hashes=True)
            inc = _Incoming(receiver, landing, conn.peer_id, fd, part,
                            resume[1] if resume else hashlib.sha256(),
                            ThreadPoolExecutor(1, thread_name_prefix=f"xfer-{tid[:8]}"),
                            sums_fd)
            self._incoming[tid] = inc
        elif inc.receiver.finished:
            return XferControl(tc.Aborted(tid, f"transfer already {inc.receiver.state.value}"))
        else:
            inc.receiver.connection_lost()
        inc.connection = conn
        inc.receiver.receive(msg.offer)
        replies = inc.receiver.messages_to_send()
        await self._drain_events(inc)
        if inc.receiver.finished:
            self._close_incoming(inc)
        else:
            self.tasks.spawn(f"pull:{tid[:12]}", self._pull(conn, inc), replace=True)
        return XferControl(replies[-1] if replies else tc.Aborted(tid, "no answer"))

    async def _pull(self, conn: PeerConnection, inc: _Incoming) -> None:
        receiver = inc.receiver
        tid = receiver.transfer_id
        try:
            async with conn.stream(XferPull(tid), timeout=self.stall_timeout) as chunks:
                async for item in chunks:
                    if isinstance(item, XferChunk):
                        self.chunks_received += 1
                        receiver.receive(item.chunk)
                    elif isinstance(item, XferControl):
                        if isinstance(item.message, tc.End):
                            await self._written(inc)  # every verified chunk is hashed
                            receiver.receive(item.message, inc.hasher.digest())
                        else:
                            receiver.receive(item.message)
                    await self._drain_events(inc)
                    for message in receiver.messages_to_send():
                        if isinstance(message, tc.Ack):
                            await self._written(inc)  # write before acknowledging
                            conn.send(XferControl(message))
                        else:
                            await conn.request(XferControl(message), timeout=15.0)
                    if receiver.finished:
                        break
        except (RnnError, OSError) as exc:
            if not receiver.finished:
                receiver.connection_lost()
                log.info("transfer %s from %s paused: %s", tid[:8], inc.peer.short, exc)
                return
        if receiver.finished:
            for message in receiver.messages_to_send():
                with contextlib.suppress(RnnError):
                    await conn.request(XferControl(message), timeout=15.0)
            await self._drain_events(inc)
            self._close_incoming(inc)

    async def _drain_events(self, inc: _Incoming) -> None:
        while (event := inc.receiver.next_event()) is not None:
            if isinstance(event, tc.WriteChunk):
                inc.batch.append(event)
                if len(inc.batch) >= WRITE_BATCH or inc.landing.live:
                    self._queue_writes(inc)
            elif isinstance(event, tc.TransferCompleted):
                await self._written(inc)
                await inc.run(self._land, inc)
                inc.landing.on_done(event.size, event.sha256.hex())
            elif isinstance(event, tc.TransferFailed):
                inc.landing.on_failed(event.reason)

    @staticmethod
    def _queue_writes(inc: _Incoming) -> None:
        if inc.batch:
            last = inc.batch[-1]
            inc.written = written = inc.run(TransferService._write, inc, inc.batch)
            inc.batch = []
            if inc.landing.live:
                # a streamed pipe's reader follows the partial file: tell it once the
                # worker has written (the callback runs on the loop, not in the worker)
                end = last.offset + len(last.data)

                def report(fut: asyncio.Future[None]) -> None:
                    if not fut.cancelled() and fut.exception() is None:
                        inc.landing.on_progress(end)

                written.add_done_callback(report)

    @staticmethod
    def _write(inc: _Incoming, events: list[tc.WriteChunk]) -> None:
        """Worker thread: verified chunks to the partial file and the whole-object hash,
        and each chunk's hash to ``NAME.part.sums`` (what a restart re-verifies against).

        No fsync per chunk: an Ack promises the chunk was verified and written, not that it
        survives a power loss; ``resume_state`` re-verifies what is on disk after a crash
        and the sender resends from there.  The file is fsynced once, before it is renamed
        and the transfer confirmed."""
        for event in events:
            if inc.closed:
                return
            os.pwrite(inc.fd, event.data, event.offset)
            os.pwrite(inc.sums_fd, event.sha256, event.offset // inc.receiver.chunk_size * 32)
            inc.hasher.update(event.data)
            inc.unflushed += len(event.data)
        if inc.unflushed >= FLUSH_EVERY and (inc.flushing is None or inc.flushing.done()):
            # flush on another thread (IO wait, no GIL) so the writes and acks go on; it
            # works on its own duplicate of the fd, which ``close`` cannot pull from under it
            inc.unflushed = 0
            inc.flushing = _FLUSHER.submit(_flush, os.dup(inc.fd))

    @staticmethod
    async def _written(inc: _Incoming) -> None:
        TransferService._queue_writes(inc)
        if inc.written is not None:
            await inc.written  # the worker runs in order: every earlier write is done too

    @staticmethod
    def _land(inc: _Incoming) -> None:
        """Worker thread: make the verified file durable, then give it its final name."""
        os.fsync(inc.fd)
        final = tc.confine_path(inc.landing.root, inc.landing.name)
        part = tc.confine_path(inc.landing.root, inc.part)
        os.replace(part, final)
        with contextlib.suppress(RnnError, OSError):
            tc.confine_path(inc.landing.root, inc.part + tc.SUMS_SUFFIX).unlink()

    def _close_incoming(self, inc: _Incoming) -> None:
        if self._incoming.get(inc.receiver.transfer_id) is inc:
            del self._incoming[inc.receiver.transfer_id]
        failed = inc.receiver.state is tc.TransferState.FAILED

        def close() -> None:  # after every queued write (same worker), never before
            inc.closed = True
            for fd in (inc.fd, inc.sums_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)
            if failed:
                for name in (inc.part, inc.part + tc.SUMS_SUFFIX):
                    with contextlib.suppress(RnnError, OSError):
                        tc.confine_path(inc.landing.root, name).unlink()

        if inc.shut:
            return
        inc.shut = True
        inc.worker.submit(close)
        inc.worker.shutdown(wait=False)

    def abort_incoming(self, predicate: Callable[[Landing], bool], reason: str) -> None:
        """Drop incoming transfers whose landing matches (a cancelled job)."""
        for inc in list(self._incoming.values()):
            if predicate(inc.landing):
                inc.receiver.abort(reason)
                if inc.connection is not None and inc.connection.is_open:
                    for message in inc.receiver.messages_to_send():
                        with contextlib.suppress(RnnError):
                            inc.connection.send(XferControl(message))
                self._close_incoming(inc)
