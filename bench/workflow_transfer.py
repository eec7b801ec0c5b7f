"""Output transfer between two node processes vs bare aioquic between two processes.

Why a second transfer benchmark: ``bench/workflow.py`` runs both transports on one event
loop in one process, so the figure is the *sum* of both ends' CPU on one core.  Two real
nodes are two processes, each with its own interpreter, loop and core; this measures that
(the issue's "a 1 GB transfer between two nodes"), the same way as the two-process
handshake in ``bench/transport.py``.

Each round starts a fresh receiver in a child process (started and stopped by PID, not
timed) and sends ``--mb`` MiB to it from this process, alternating:

* **driver**: the workflow transfer driver (``TransferService``): chunked, per-chunk sha256
  checked by the receiver, acknowledged window, written to ``NAME.part`` by the receiver's
  worker thread with the whole-object hash, background flushes, fsynced and renamed; the
  sender is given the file's hash, as an executor is (it hashed the output for its
  receipt while the job wrote it);
* **bare**: plain aioquic with the same ``make_configuration``: one stream, the client
  writes the bytes from memory (``drain()`` never blocks), the server counts them.

Time runs from the start of the send until the child reports the last byte landed (for
the driver: verified, written, fsynced and renamed).  Memory: the receiver's and the
sender's RSS growth (peak minus before), each sampled every 20 ms in its own process.

Usage: ``python bench/workflow_transfer.py [--mb 1024] [--runs 3] [--datagram 16383]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aioquic.asyncio import connect, serve  # noqa: E402

from bench.transport import rss_bytes  # noqa: E402
from rnn_tui.errors import WorkflowError  # noqa: E402
from rnn_tui.identity import Identity, PeerId  # noqa: E402
from rnn_tui.transport import Transport, TransportSettings  # noqa: E402
from rnn_tui.transport.session import PeerConnection  # noqa: E402
from rnn_tui.transport.tls import make_configuration  # noqa: E402
from rnn_tui.workflow.transfer_driver import Landing, TransferService  # noqa: E402
from rnn_tui.workflow.wire import XferOffer  # noqa: E402

HOST = "127.0.0.1"
BLOCK = 1 << 20


def _settings(datagram: int | None) -> TransportSettings:
    return TransportSettings(max_datagram_size=datagram, keepalive_interval=5.0,
                             idle_timeout=60.0)


async def receive_child(kind: str, size: int, datagram: int | None, directory: Path) -> None:
    """Child: print ``port P PEER``, then ``done BYTES RSS_GROWTH`` once everything landed."""
    before = rss_bytes()
    landed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    identity = Identity.generate()
    transport: Transport | None = None
    server = None
    if kind == "driver":
        transport = Transport(identity, settings=_settings(datagram))
        port = (await transport.start(HOST, 0))[1]

        async def accept(peer: PeerId, offer: XferOffer) -> Landing:
            return Landing(directory, "dst.bin", 1 << 40,
                           lambda n, sha: landed.done() or landed.set_result(n))

        async def no_dial(peer: PeerId) -> PeerConnection:
            raise WorkflowError("the receiver never dials")

        service = TransferService(no_dial, accept)
        service.install(transport.handlers)
    else:
        async def count(reader: asyncio.StreamReader) -> None:
            got = 0
            while got < size and (data := await reader.read(BLOCK)):
                got += len(data)
            landed.set_result(got)

        readers: set[asyncio.Task[None]] = set()

        def on_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            readers.add(asyncio.ensure_future(count(reader)))

        config = make_configuration(identity, is_client=False, max_datagram_size=datagram)
        server = await serve(HOST, 0, configuration=config, stream_handler=on_stream)
        port = server._transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
    peak = before

    async def sample() -> None:  # not ru_maxrss: Linux keeps the parent's across exec
        nonlocal peak
        while not landed.done():
            peak = max(peak, rss_bytes())
            await asyncio.sleep(0.02)

    sampler = asyncio.ensure_future(sample())
    print(f"port {port} {identity.peer_id}", flush=True)
    try:
        got = await asyncio.wait_for(landed, 600)
        await sampler
        print(f"done {got} {max(0, peak - before)}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF
    finally:
        if transport is not None:
            await service.close()
            await transport.close()
        if server is not None:
            server.close()


async def one_round(kind: str, src: Path, known: tuple[int, bytes], datagram: int | None
                    ) -> tuple[float, int, int]:
    """(bytes/s, receiver RSS growth, sender RSS growth) for one transfer to a fresh child."""
    size = known[0]
    with tempfile.TemporaryDirectory(prefix="rnn-bench-recv-") as into:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--receive", kind, "--size", str(size),
            "--into", into, *(["--datagram", str(datagram)] if datagram else []),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        sender: Transport | None = None
        service: TransferService | None = None
        peak = before = rss_bytes()
        stop = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, rss_bytes())
                await asyncio.sleep(0.02)

        sampler = asyncio.ensure_future(sample())
        try:
            _, port_text, peer_text = (await asyncio.wait_for(proc.stdout.readline(), 30)
                                       ).decode().split()
            addr, peer = (HOST, int(port_text)), PeerId.parse(peer_text)
            if kind == "driver":
                sender = Transport(Identity.generate(), settings=_settings(datagram))
                await sender.start(HOST, 0)
                conn = await sender.dial(addr, expected_peer_id=peer, timeout=10)

                async def reconnect(p: PeerId) -> PeerConnection:
                    return conn if conn.is_open else await sender.dial(  # type: ignore[union-attr]
                        addr, expected_peer_id=p, timeout=10)

                async def refuse(p: PeerId, offer: XferOffer) -> Landing:
                    raise WorkflowError("sender only")

                service = TransferService(reconnect, refuse)
                service.install(sender.handlers)
                t0 = time.perf_counter()
                outcome = await service.send_file(
                    peer, src, transfer_id="bench", name="dst.bin", run_id="r",
                    source_job="a", attempt=1, connection=0, target_job="b", target="STDIN",
                    known=known)
                assert outcome.ok, outcome
            else:
                config = make_configuration(Identity.generate(), is_client=True,
                                            max_datagram_size=datagram)
                async with connect(HOST, addr[1], configuration=config) as client:
                    _, writer = await client.create_stream()
                    block = b"\xab" * BLOCK
                    t0 = time.perf_counter()
                    for _ in range(size // BLOCK):
                        writer.write(block)
                    line = await asyncio.wait_for(proc.stdout.readline(), 600)
                    elapsed = time.perf_counter() - t0
            if kind == "driver":
                line = await asyncio.wait_for(proc.stdout.readline(), 600)
                elapsed = time.perf_counter() - t0
            word, got, grew = line.decode().split()
            assert word == "done" and int(got) == size, line
            return size / elapsed, int(grew), peak - before
        finally:
            stop.set()
            await sampler
            if service is not None:
                await service.close()
            if sender is not None:
                await sender.close()
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                os.kill(proc.pid, 9)
                await proc.wait()


def _write_source(path: Path, mb: int) -> tuple[int, bytes]:
    digest = hashlib.sha256()
    with path.open("wb") as f:
        for i in range(mb):
            block = hashlib.sha256(i.to_bytes(4, "big")).digest() * (BLOCK // 32)
            f.write(block)
            digest.update(block)
    return mb * BLOCK, digest.digest()


async def bench(mb: int, runs: int, datagram: int | None) -> None:
    with tempfile.TemporaryDirectory(prefix="rnn-bench-send-") as tmp:
        src = Path(tmp) / "src.bin"
        known = await asyncio.to_thread(_write_source, src, mb)
        rates: dict[str, list[float]] = {"driver": [], "bare": []}
        grew: dict[str, list[int]] = {"driver": [], "bare": []}
        sent_grew: list[int] = []
        for _ in range(runs):
            for kind in ("driver", "bare"):
                rate, child, parent = await one_round(kind, src, known, datagram)
                rates[kind].append(rate)
                grew[kind].append(child)
                if kind == "driver":
                    sent_grew.append(parent)
                print(f"  {kind}: {rate / 1e6:.1f} MB/s, receiver RSS +{child / 2**20:.1f} MiB"
                      f", sender RSS +{parent / 2**20:.1f} MiB", flush=True)
    md, mb_ = statistics.median(rates["driver"]), statistics.median(rates["bare"])
    label = "default 1200 B" if datagram is None else f"{datagram} B"
    print(f"transfer {mb} MiB between two processes, datagrams {label}: driver median "
          f"{md / 1e6:.1f} MB/s {[round(x / 1e6, 1) for x in rates['driver']]}, bare aioquic "
          f"median {mb_ / 1e6:.1f} MB/s {[round(x / 1e6, 1) for x in rates['bare']]}, ratio "
          f"{md / mb_:.0%} (target >= 90%)")
    print(f"  driver memory: receiver RSS growth median "
          f"{statistics.median(grew['driver']) / 2**20:.1f} MiB, sender "
          f"{statistics.median(sent_grew) / 2**20:.1f} MiB, for a {mb} MiB object (bare "
          f"receiver {statistics.median(grew['bare']) / 2**20:.1f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--datagram", type=int, default=16383)
    parser.add_argument("--receive", choices=("driver", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--into", help=argparse.SUPPRESS)
    args = parser.parse_args()
    datagram = None if args.datagram in (None, 1200) else args.datagram
    if args.receive:
        asyncio.run(receive_child(args.receive, args.size, datagram, Path(args.into)))
        return
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    asyncio.run(bench(args.mb, args.runs, datagram))
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
