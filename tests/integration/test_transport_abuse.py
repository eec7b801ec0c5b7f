"""Bad input on loopback: garbage datagrams, broken frames, floods, credit violations.

Each case must end in an error reply or a reset stream, never a crash, and memory held
for the peer must stay bounded.  The misbehaving side writes raw bytes on real QUIC
streams through the real connection; the well-behaved side runs unmodified code.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket

import pytest
from transport_helpers import LOOPBACK, Probe, eventually, running

from rnn_tui.errors import LocalProtocolError
from rnn_tui.transport import PeerConnection, RemoteError
from rnn_tui.transport.framing import FRAME_VERSION, HEADER, Flags, Frame, FrameError, encode_frame
from rnn_tui.transport.messages import Message, Ping, Pong, RawChunk

pytestmark = pytest.mark.integration


def raw_request(conn: PeerConnection, data: bytes, *, end: bool = True) -> asyncio.Future[Message]:
    """Open a request stream like ``request()`` does, but write ``data`` verbatim."""
    st = conn._open("request")
    st.future = asyncio.get_running_loop().create_future()
    conn.quic.send_stream_data(st.stream_id, data, end_stream=end)
    conn.transmit()
    return st.future


async def expect_error(fut: asyncio.Future[Message], code: int) -> RemoteError:
    with pytest.raises(RemoteError) as err:
        async with asyncio.timeout(5):
            await fut
    assert err.value.code == code, err.value
    return err.value


async def test_garbage_datagrams_do_not_disturb_the_port() -> None:
    async with running(2) as (a, b):
        rng = random.Random(4)
        target = b.endpoint.local_addr
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((LOOPBACK, 0))
            junk = [rng.randbytes(rng.randint(1, 1400)) for _ in range(300)]
            junk += [b"d" + rng.randbytes(50) + b"e", b"de", b"\xc0" + rng.randbytes(1300),
                     b"\xc0\x00\x00\x00\x01\x08" + rng.randbytes(1300),
                     b"\xc0\xff\xff\xff\xff\x08" + rng.randbytes(1300), b"\x40" * 30]
            for i, data in enumerate(junk):
                s.sendto(data, target)
                if i % 20 == 0:
                    await asyncio.sleep(0.01)  # let the loop read: the kernel buffer is finite
        stats = b.endpoint.stats
        await eventually(lambda: stats.dropped + stats.quic + stats.dht > 250)
        assert b.endpoint.stats.handler_errors == 0
        conn = await a.dial(target, expected_peer_id=b.identity.peer_id)
        assert await a.ping(conn) > 0


async def test_truncated_frame_gets_an_error_reply() -> None:
    async with running(2) as (a, b):
        conn = await a.dial(b.endpoint.local_addr)
        frame = encode_frame(Frame(Ping.TYPE, Flags.NONE, 1, Ping(b"n").encode()))
        await expect_error(raw_request(conn, frame[:-2]), FrameError.TRUNCATED)
        await expect_error(raw_request(conn, frame[:5]), FrameError.TRUNCATED)
        assert await a.ping(conn) > 0  # the connection survives


async def test_oversized_length_is_refused_without_buffering() -> None:
    async with running(2) as (a, b):
        conn = await a.dial(b.endpoint.local_addr)
        header = HEADER.pack(FRAME_VERSION, 0, Ping.TYPE, 1, 500 * 1024 * 1024)
        fut = raw_request(conn, header + os.urandom(50_000), end=False)
        await expect_error(fut, FrameError.OVERSIZE)
        server_side = b.connections()[0]
        assert server_side._buffered == 0
        assert await a.ping(conn) > 0


async def test_unknown_type_and_missing_handler_get_error_replies() -> None:
    async with running(2) as (a, b):
        conn = await a.dial(b.endpoint.local_addr)
        await expect_error(raw_request(conn, encode_frame(Frame(0x7777, Flags.NONE, 1, b"de"))),
                           FrameError.UNKNOWN_TYPE)
        with pytest.raises(RemoteError, match="no handler") as err:
            await conn.request(Probe(b"x"), timeout=5)
        assert err.value.code == FrameError.UNKNOWN_TYPE
        await expect_error(raw_request(conn, encode_frame(Frame(Ping.TYPE, Flags.NONE, 1, b"xx"))),
                           FrameError.BAD_BODY)
        await expect_error(raw_request(conn, encode_frame(Frame(Ping.TYPE, Flags.CHUNK, 1, b"de"))),
                           FrameError.UNEXPECTED)
        assert await a.ping(conn) > 0


async def test_our_own_oversized_message_is_refused_before_sending() -> None:
    async with running(2, max_body=1000) as (a, b):
        conn = await a.dial(b.endpoint.local_addr)
        with pytest.raises(LocalProtocolError, match="exceeds the maximum"):
            await conn.request(Probe(b"x" * 1001), timeout=5)
        with pytest.raises(LocalProtocolError, match="exceeds the maximum"):
            conn.stream(Probe(b"x" * 1001))
        with pytest.raises(LocalProtocolError, match="exceeds the maximum"):
            conn.send(Probe(b"x" * 1001))
        assert conn._streams == {}  # nothing was left half-open
        assert await a.ping(conn) > 0


async def test_extra_frames_after_a_request_reset_the_stream() -> None:
    async with running(2) as (a, b):
        conn = await a.dial(b.endpoint.local_addr)
        ping = encode_frame(Frame(Ping.TYPE, Flags.NONE, 1, Ping(b"n").encode()))
        fut = raw_request(conn, ping + ping + ping)
        try:  # the reply may win the race with the reset: either is a correct outcome
            async with asyncio.timeout(5):
                reply = await fut
            assert isinstance(reply, Pong)
        except RemoteError as exc:
            assert exc.code == FrameError.UNEXPECTED
        assert await a.ping(conn) > 0


async def test_request_flood_beyond_the_limit_is_answered_busy() -> None:
    async with running(2, max_inbound=4) as (a, b):
        release = asyncio.Event()

        async def slow(conn, msg):  # type: ignore[no-untyped-def]
            await release.wait()
            return msg

        b.handlers.on_request(Probe, slow)
        conn = await a.dial(b.endpoint.local_addr)
        tasks = [asyncio.create_task(conn.request(Probe(b"%d" % i), timeout=10)) for i in range(12)]
        await eventually(lambda: sum(t.done() for t in tasks) == 8)
        busy = [t.exception() for t in tasks if t.done()]
        assert all(isinstance(e, RemoteError) and e.code == FrameError.BUSY for e in busy)
        release.set()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert sum(isinstance(r, Probe) for r in done) == 4


async def test_slow_consumer_pauses_the_producer() -> None:
    window = 8
    async with running(2, stream_window=window) as (a, b):
        produced = 0

        async def endless(conn, msg):  # type: ignore[no-untyped-def]
            nonlocal produced
            while True:
                produced += 1
                yield RawChunk(b"z" * 10_000)

        b.handlers.on_stream(Probe, endless)
        conn = await a.dial(b.endpoint.local_addr)
        async with conn.stream(Probe(), timeout=5) as chunks:
            first = await chunks.__anext__()
            assert first.data == b"z" * 10_000  # type: ignore[attr-defined]
            await asyncio.sleep(0.5)  # we stop reading: credit runs out
            assert produced <= window + 1
            assert conn._buffered <= window * 10_000
            got = 0
            async for _ in chunks:
                got += 1
                if got == 50:
                    break
        assert produced >= 50
        await eventually(lambda: b.connections()[0]._streams == {})  # the server cleaned up


async def test_streamed_reply_completes_and_errors_propagate() -> None:
    async with running(2) as (a, b):
        async def count(conn, msg):  # type: ignore[no-untyped-def]
            n = int(msg.data)
            for i in range(n):
                yield RawChunk(b"%d" % i)
            if n == 3:
                raise LocalProtocolError("three is unlucky")

        b.handlers.on_stream(Probe, count)
        conn = await a.dial(b.endpoint.local_addr)
        async with conn.stream(Probe(b"40")) as chunks:
            assert [int(c.data) async for c in chunks] == list(range(40))  # type: ignore[attr-defined]
        got = []
        with pytest.raises(RemoteError, match="unlucky"):
            async with conn.stream(Probe(b"3")) as chunks:
                async for c in chunks:
                    got.append(c)
        assert len(got) == 3


async def test_responder_ignoring_credit_is_cut_off() -> None:
    window = 4
    async with running(2, stream_window=window) as (a, b):
        async def flood(conn, msg):  # type: ignore[no-untyped-def]
            # misbehave: write chunks straight onto the stream, ignoring credit
            (sid,) = [sid for sid, st in conn._streams.items() if st.kind == "in"]
            for _ in range(window * 5):
                conn.quic.send_stream_data(sid, encode_frame(Frame(RawChunk.TYPE, Flags.CHUNK, 1,
                                                                   b"q" * 1000)))
            conn.transmit()
            await asyncio.sleep(5)
            yield RawChunk(b"")

        b.handlers.on_stream(Probe, flood)
        conn = await a.dial(b.endpoint.local_addr)
        await asyncio.sleep(0)
        with pytest.raises(Exception) as err:
            async with conn.stream(Probe(), timeout=5) as chunks:
                await asyncio.sleep(0.5)
                async for _ in chunks:
                    pass
        assert getattr(err.value, "code", None) == FrameError.OVERFLOW
        assert conn._buffered <= window * 1000
        assert await a.ping(conn) > 0


async def test_many_incomplete_frames_hit_the_connection_budget() -> None:
    budget = 2 * 1024 * 1024
    async with running(2, max_buffered=budget) as (a, b):
        conn = await a.dial(b.endpoint.local_addr)
        header = HEADER.pack(FRAME_VERSION, 0, Ping.TYPE, 1, 1024 * 1024)
        futs = [raw_request(conn, header + b"p" * 600_000, end=False) for _ in range(6)]
        await eventually(lambda: sum(f.done() for f in futs) >= 3, within=10)
        server_side = b.connections()[0]
        assert server_side._buffered <= budget
        codes = {getattr(f.exception(), "code", None) for f in futs if f.done()}
        assert codes == {FrameError.OVERFLOW}
        assert await a.ping(conn) > 0
        for f in futs:
            f.cancel()


async def test_one_way_flood_beyond_the_limit_is_dropped() -> None:
    async with running(2, max_inbound=2) as (a, b):
        release = asyncio.Event()
        started: list[bytes] = []

        async def slow(conn, msg):  # type: ignore[no-untyped-def]
            started.append(msg.data)
            await release.wait()

        b.handlers.on_message(Probe, slow)
        conn = await a.dial(b.endpoint.local_addr)
        for i in range(10):
            conn.send(Probe(b"%d" % i))
        await eventually(lambda: len(started) == 2)
        await asyncio.sleep(0.3)
        assert len(started) == 2  # the other 8 were refused (STOP_SENDING), not queued
        server_side = b.connections()[0]
        assert server_side._inbound_active == 2
        release.set()
        await eventually(lambda: server_side._inbound_active == 0)
        conn.send(Probe(b"after"))
        await eventually(lambda: started[-1] == b"after")
        assert await a.ping(conn) > 0


async def test_random_stream_payloads_always_get_an_answer() -> None:
    """Fuzz: whatever a verified peer writes on a request stream, it gets a reply or an
    error, the server holds nothing afterwards, and the connection keeps working."""
    from rnn_tui.errors import RemoteProtocolError

    rng = random.Random(7)
    async with running(2) as (a, b):
        conn = await a.dial(b.endpoint.local_addr)
        types = [Ping.TYPE, RawChunk.TYPE, 0, 0x7777, Probe.TYPE]
        for i in range(60):
            kind = i % 3
            if kind == 0:  # pure noise
                data = rng.randbytes(rng.randint(1, 200))
            elif kind == 1:  # a plausible header with random fields and a body of random length
                body = rng.randbytes(rng.randint(0, 64))
                data = HEADER.pack(FRAME_VERSION, rng.randrange(256), rng.choice(types),
                                   rng.randrange(2**32), rng.randint(0, 80)) + body
            else:  # a valid frame with mutated bytes
                frame = bytearray(encode_frame(Frame(Ping.TYPE, Flags.NONE, 1, Ping(b"x").encode())))
                for _ in range(rng.randint(1, 3)):
                    frame[rng.randrange(len(frame))] = rng.randrange(256)
                data = bytes(frame)
            fut = raw_request(conn, data)
            try:
                async with asyncio.timeout(5):
                    await fut
            except (RemoteError, RemoteProtocolError):
                pass
        server_side = b.connections()[0]
        await eventually(lambda: server_side._inbound_active == 0 and server_side._buffered == 0)
        await eventually(lambda: not server_side._streams)  # every failed stream was released
        assert await a.ping(conn) > 0
        assert conn._buffered == 0
