"""Transport benchmark on loopback: handshake, request RTT, bulk throughput, idle memory.

Printed figures:

0. handshake CPU on the dial's critical path, sans IO (load-robust, see
   ``critical_path_cpu``), ours and bare aioquic;
1. handshake, **two processes** (the acceptance figure): a server node runs in a child
   process (started and stopped by its PID), this process dials it ``--handshakes``
   times: median / p90 wall of ``Transport.dial`` (Ed25519 mutual TLS, the server's id
   verified) and CPU per dial of each side (dial + close).  Two real nodes are two
   processes: each end has its own interpreter and event loop, so the figure is the
   handshake's critical path, not the sum of both ends' CPU on one loop.  The same is
   measured for bare aioquic (``serve`` in the child, ``connect`` here, same QUIC
   configuration, no client certificate);

The remaining figures run in one process on one asyncio loop (both ends of every
connection share one core), as a node talking to itself would:

2. handshake: median / p95 of ``Transport.dial`` over ``--handshakes`` dials;
3. request RTT: median / p95 of ``ping`` request/reply over one connection;
4. one-stream bulk throughput: a streamed reply of ``--mb`` MiB in 64 KiB ``RawChunk``s
   (credit + send-buffer pacing) versus a bare aioquic stream (``aioquic.asyncio``
   serve/connect) with the same QUIC configuration (our Ed25519 certificates, windows,
   datagram size) writing the same bytes, in alternating rounds; the ratio of medians;
5. memory per idle connection: RSS growth while ``--idle`` connections are open between
   two transports in this process, divided by the number of connection *ends* (2 per
   connection: each node pays for its own end).

Usage: ``python bench/transport.py`` (full) or ``python bench/transport.py --quick``;
``--only-handshake`` prints just the handshake figures (0–2).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aioquic.asyncio import connect, serve  # noqa: E402
from aioquic.buffer import Buffer  # noqa: E402
from aioquic.quic.connection import QuicConnection  # noqa: E402
from aioquic.quic.packet import pull_quic_header  # noqa: E402

from rnn_tui.identity import Identity, PeerId  # noqa: E402
from rnn_tui.transport import Transport, TransportSettings  # noqa: E402
from rnn_tui.transport.messages import Ping, RawChunk  # noqa: E402
from rnn_tui.transport.tls import (  # noqa: E402
    MutualTlsConnection,
    make_configuration,
    peer_id_from_connection,
)

CHUNK = 64 * 1024
HOST = "127.0.0.1"
BENCH_FILE = str(Path(__file__).resolve())


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


async def pair(settings: TransportSettings | None = None) -> tuple[Transport, Transport]:
    a = Transport(Identity.generate(), settings=settings)
    b = Transport(Identity.generate(), settings=settings)
    await a.start(HOST, 0)
    await b.start(HOST, 0)
    return a, b


async def bench_handshake(n: int) -> list[float]:
    a, b = await pair()
    times = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            conn = await a.dial(b.endpoint.local_addr, expected_peer_id=b.identity.peer_id)
            times.append(time.perf_counter() - t0)
            await conn.close()
    finally:
        await a.close()
        await b.close()
    return times


async def serve_child(kind: str) -> None:
    """Child process: one server on loopback, ``ours`` (a Transport) or ``bare`` aioquic.

    Prints ``port <port> <peer id>``; then answers each ``cpu`` line on stdin with this
    process's CPU time; exits (closing the server) at end of input.
    """
    loop = asyncio.get_running_loop()
    identity = Identity.generate()
    transport: Transport | None = None
    server = None
    if kind == "ours":
        transport = Transport(identity)
        port = (await transport.start(HOST, 0))[1]
    else:
        server = await serve(HOST, 0, configuration=make_configuration(identity, is_client=False))
        port = server._transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(f"port {port} {identity.peer_id}", flush=True)
    try:
        while line := await reader.readline():
            if line.strip() == b"cpu":
                print(f"cpu {time.process_time():.6f}", flush=True)
    finally:
        if transport is not None:
            await transport.close()
        if server is not None:
            server.close()


async def two_process_handshake(kind: str, n: int, warmup: int = 3
                                ) -> tuple[list[float], float, float]:
    """Dial a server in a child process ``n`` times: (wall times, client CPU, server CPU per dial)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, BENCH_FILE, "--serve", kind,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    async def child_cpu() -> float:
        stdin.write(b"cpu\n")
        await stdin.drain()
        return float((await asyncio.wait_for(stdout.readline(), 10)).split()[1])

    client: Transport | None = None
    try:
        _, port_text, peer_text = (await asyncio.wait_for(stdout.readline(), 30)).decode().split()
        addr, peer_id = (HOST, int(port_text)), PeerId.parse(peer_text)
        times: list[float] = []
        if kind == "ours":
            client = Transport(Identity.generate())
            await client.start(HOST, 0)
            for i in range(warmup + n):
                if i == warmup:
                    s0, c0 = await child_cpu(), time.process_time()
                t0 = time.perf_counter()
                conn = await client.dial(addr, expected_peer_id=peer_id)
                times.append(time.perf_counter() - t0)
                await conn.close()
        else:
            config = make_configuration(Identity.generate(), is_client=True)
            for i in range(warmup + n):
                if i == warmup:
                    s0, c0 = await child_cpu(), time.process_time()
                t0 = time.perf_counter()
                async with connect(HOST, addr[1], configuration=config):
                    times.append(time.perf_counter() - t0)
        c1, s1 = time.process_time(), await child_cpu()
        return times[warmup:], (c1 - c0) / n, (s1 - s0) / n
    finally:
        if client is not None:
            await client.close()
        stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            os.kill(proc.pid, 9)
            await proc.wait()


def print_two_process(kind: str, times: list[float], client_cpu: float, server_cpu: float) -> None:
    label = "ours (dial: mutual TLS, id verified)" if kind == "ours" else \
        "bare aioquic (connect, no client cert)"
    print(f"handshake, two processes, {label}: median {statistics.median(times) * 1e3:.2f} ms, "
          f"p90 {pct(times, 0.90) * 1e3:.2f} ms (n={len(times)}); CPU per dial incl. close: "
          f"client {client_cpu * 1e3:.2f} ms, server {server_cpu * 1e3:.2f} ms")


def critical_path_cpu(kind: str, n: int, warmup: int = 10) -> tuple[float, float, float, float]:
    """CPU per handshake step, sans IO (in-memory datagrams), medians over ``n`` handshakes.

    Steps: c1 = client connection + Initial; s1 = server connection + its first flight;
    c2 = client processes it (ours: and checks the server's id) and sends its Finished;
    s2 = server processes that (ours: checks the client's id) and sends HANDSHAKE_DONE.
    A dial waits for c1 + s1 + c2 (plus wake-ups and syscalls); s2 runs off its critical
    path.  Load-robust (CPU time, one process); ``bare`` is plain ``QuicConnection`` with
    the same configuration (no client certificate).
    """
    cls: type[QuicConnection] = MutualTlsConnection if kind == "ours" else QuicConnection
    ccfg = make_configuration(Identity.generate(), is_client=True)
    scfg = make_configuration(Identity.generate(), is_client=False)
    client_addr, server_addr = (HOST, 1), (HOST, 2)
    steps: list[list[float]] = [[], [], [], []]
    clock = time.process_time
    for i in range(warmup + n):
        t0 = clock()
        client = cls(configuration=ccfg)
        client.connect(server_addr, now=0.0)
        d1 = client.datagrams_to_send(now=0.0)
        t1 = clock()
        header = pull_quic_header(Buffer(data=d1[0][0]), host_cid_length=8)
        server = cls(configuration=scfg, original_destination_connection_id=header.destination_cid)
        for data, _ in d1:
            server.receive_datagram(data, client_addr, now=0.001)
        d2 = server.datagrams_to_send(now=0.001)
        t2 = clock()
        for data, _ in d2:
            client.receive_datagram(data, server_addr, now=0.002)
        if kind == "ours":
            peer_id_from_connection(client)
        d3 = client.datagrams_to_send(now=0.002)
        t3 = clock()
        for data, _ in d3:
            server.receive_datagram(data, client_addr, now=0.003)
        if kind == "ours":
            peer_id_from_connection(server)
        server.datagrams_to_send(now=0.003)
        t4 = clock()
        if i >= warmup:
            for k, (a, b) in enumerate(((t0, t1), (t1, t2), (t2, t3), (t3, t4))):
                steps[k].append(b - a)
    c1, s1, c2, s2 = (statistics.median(v) for v in steps)
    return c1, s1, c2, s2


def print_critical_path(kind: str, c1: float, s1: float, c2: float, s2: float) -> None:
    label = "ours" if kind == "ours" else "bare aioquic"
    print(f"handshake CPU, sans IO, {label}: c1 {c1 * 1e3:.2f} + s1 {s1 * 1e3:.2f} + "
          f"c2 {c2 * 1e3:.2f} = {(c1 + s1 + c2) * 1e3:.2f} ms on the dial's path; "
          f"s2 {s2 * 1e3:.2f} ms after it")


async def bench_rtt(n: int) -> list[float]:
    a, b = await pair()
    try:
        conn = await a.dial(b.endpoint.local_addr)
        await conn.request(Ping(b"warm"), timeout=5)
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            await conn.request(Ping(i.to_bytes(4, "big")), timeout=5)
            times.append(time.perf_counter() - t0)
        return times
    finally:
        await a.close()
        await b.close()


async def bare_handshake_and_rtt(handshakes: int, pings: int) -> tuple[list[float], list[float]]:
    """Plain aioquic with the same configuration: connect+wait_connected, and a stream echo."""
    tasks: set[asyncio.Task[None]] = set()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read())
        writer.write_eof()

    def on_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(echo(reader, writer), name="bench:bare-echo")
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await serve(HOST, 0, configuration=make_configuration(Identity.generate(), is_client=False),
                         stream_handler=on_stream)
    port = server._transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
    client_config = make_configuration(Identity.generate(), is_client=True)
    hs, rtt = [], []
    try:
        for _ in range(handshakes):
            t0 = time.perf_counter()
            async with connect(HOST, port, configuration=client_config):
                hs.append(time.perf_counter() - t0)
        async with connect(HOST, port, configuration=client_config) as client:
            for _ in range(pings + 1):
                t0 = time.perf_counter()
                reader, writer = await client.create_stream()
                writer.write(b"p" * 20)
                writer.write_eof()
                await reader.read()
                rtt.append(time.perf_counter() - t0)
    finally:
        server.close()
    return hs, rtt[1:]


async def ours_throughput(total: int, datagram_size: int | None) -> float:
    settings = TransportSettings(max_datagram_size=datagram_size)
    a, b = await pair(settings)
    payload = RawChunk(b"\xab" * CHUNK)

    async def produce(conn, msg):  # type: ignore[no-untyped-def]
        for _ in range(total // CHUNK):
            yield payload

    b.handlers.on_stream(Ping, produce)
    try:
        conn = await a.dial(b.endpoint.local_addr)
        got = 0
        t0 = time.perf_counter()
        async with conn.stream(Ping(b"bulk"), timeout=30) as chunks:
            async for chunk in chunks:
                got += len(chunk.data)  # type: ignore[attr-defined]
        elapsed = time.perf_counter() - t0
        assert got == total, (got, total)
        return total / elapsed
    finally:
        await a.close()
        await b.close()


async def bare_throughput(total: int, datagram_size: int | None) -> float:
    """Plain aioquic: same configuration, one stream, writer never waits (drain is a no-op)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()

    async def receive(reader: asyncio.StreamReader) -> None:
        n = 0
        while n < total:
            data = await reader.read(1 << 20)
            if not data:
                break
            n += len(data)
        done.set_result(n)

    tasks: set[asyncio.Task[None]] = set()

    def on_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(receive(reader), name="bench:bare-receiver")
        tasks.add(task)

    server_config = make_configuration(Identity.generate(), is_client=False,
                                       max_datagram_size=datagram_size)
    client_config = make_configuration(Identity.generate(), is_client=True,
                                       max_datagram_size=datagram_size)
    server = await serve(HOST, 0, configuration=server_config, stream_handler=on_stream)
    port = server._transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
    try:
        async with connect(HOST, port, configuration=client_config) as client:
            _, writer = await client.create_stream()
            block = b"\xab" * CHUNK
            t0 = time.perf_counter()
            for _ in range(total // CHUNK):
                writer.write(block)
            got = await asyncio.wait_for(done, 120)
            elapsed = time.perf_counter() - t0
            assert got == total
            return total / elapsed
    finally:
        server.close()


async def bench_idle_memory(n: int) -> tuple[float, float]:
    settings = TransportSettings(keepalive_interval=60.0, idle_timeout=300.0,
                                 max_pending_handshakes=n, max_connections=n + 10)
    a, b = await pair(settings)
    try:
        conn = await a.dial(b.endpoint.local_addr)  # warm caches and imports
        await conn.close()
        gc.collect()
        before = rss_bytes()
        conns = []
        t0 = time.perf_counter()
        for _ in range(n):
            conns.append(await a.dial(b.endpoint.local_addr))
        setup = time.perf_counter() - t0
        await asyncio.sleep(0.5)
        gc.collect()
        after = rss_bytes()
        assert len(b.connections()) == n
        return (after - before) / (2 * n), setup
    finally:
        await a.close()
        await b.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    ap.add_argument("--handshakes", type=int, default=50)
    ap.add_argument("--pings", type=int, default=500)
    ap.add_argument("--mb", type=int, default=16, help="MiB per throughput run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating throughput rounds")
    ap.add_argument("--idle", type=int, default=500)
    ap.add_argument("--datagram-size", type=int, default=None,
                    help="QUIC max_datagram_size (default aioquic's 1200; 16383 = loopback max)")
    ap.add_argument("--only-handshake", action="store_true",
                    help="only the handshake figures (sans-IO CPU, two processes, one process)")
    ap.add_argument("--serve", choices=["ours", "bare"], help=argparse.SUPPRESS)  # child mode
    args = ap.parse_args()
    if args.serve:
        await serve_child(args.serve)
        return
    if args.quick:
        args.handshakes, args.pings, args.mb, args.rounds, args.idle = 10, 50, 2, 1, 50

    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load avg {os.getloadavg()[0]:.2f} at start")
    # CPU time per operation (both ends, this process) is robust to other load on the
    # machine; wall-clock medians are what a user sees and suffer from it.
    for kind in ("bare", "ours"):
        print_critical_path(kind, *critical_path_cpu(kind, max(args.handshakes, 50)))
    for kind in ("bare", "ours"):
        print_two_process(kind, *await two_process_handshake(kind, args.handshakes))
    if args.only_handshake:
        c0 = time.process_time()
        hs = await bench_handshake(args.handshakes)
        c1 = time.process_time()
        print(f"handshake, one process: median {statistics.median(hs) * 1e3:.2f} ms, "
              f"CPU {(c1 - c0) / args.handshakes * 1e3:.2f} ms/dial (both ends, incl. close)")
        print(f"load avg {os.getloadavg()[0]:.2f} at end")
        return
    cpu0 = time.process_time()
    bare_hs, _ = await bare_handshake_and_rtt(args.handshakes, 0)
    cpu1 = time.process_time()
    _, bare_rtt = await bare_handshake_and_rtt(0, args.pings)
    cpu2 = time.process_time()
    hs = await bench_handshake(args.handshakes)
    cpu3 = time.process_time()
    rtt = await bench_rtt(args.pings)
    cpu4 = time.process_time()
    print(f"handshake: median {statistics.median(hs) * 1e3:.2f} ms, p95 {pct(hs, 0.95) * 1e3:.2f} ms, "
          f"CPU {(cpu3 - cpu2) / args.handshakes * 1e3:.2f} ms/dial incl. close (n={len(hs)}); "
          f"bare aioquic connect median {statistics.median(bare_hs) * 1e3:.2f} ms, "
          f"CPU {(cpu1 - cpu0) / args.handshakes * 1e3:.2f} ms")
    print(f"request RTT: median {statistics.median(rtt) * 1e3:.3f} ms, p95 {pct(rtt, 0.95) * 1e3:.3f} ms, "
          f"CPU {(cpu4 - cpu3) / args.pings * 1e3:.3f} ms/request (n={len(rtt)}); "
          f"bare aioquic stream echo median {statistics.median(bare_rtt) * 1e3:.3f} ms, "
          f"CPU {(cpu2 - cpu1) / args.pings * 1e3:.3f} ms")
    total = args.mb * 1024 * 1024
    ours, bare, ours_cpu, bare_cpu = [], [], [], []
    for _ in range(args.rounds):
        c0 = time.process_time()
        bare.append(await bare_throughput(total, args.datagram_size))
        c1 = time.process_time()
        ours.append(await ours_throughput(total, args.datagram_size))
        c2 = time.process_time()
        bare_cpu.append(total / (c1 - c0))
        ours_cpu.append(total / (c2 - c1))
    mo, mb = statistics.median(ours), statistics.median(bare)
    print(f"throughput ({args.mb} MiB, datagram size {args.datagram_size or 1200}): "
          f"ours median {mo / 1e6:.2f} MB/s {[round(x / 1e6, 2) for x in ours]}, "
          f"bare aioquic median {mb / 1e6:.2f} MB/s {[round(x / 1e6, 2) for x in bare]}, "
          f"ratio {mo / mb * 100:.0f} %; per CPU-second: ours {statistics.median(ours_cpu) / 1e6:.2f} MB, "
          f"bare {statistics.median(bare_cpu) / 1e6:.2f} MB")
    per_conn, setup = await bench_idle_memory(args.idle)
    print(f"idle memory: {per_conn / 1024:.1f} kB per connection end over {args.idle} connections "
          f"(set up in {setup:.1f} s)")
    print(f"load avg {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    asyncio.run(main())
