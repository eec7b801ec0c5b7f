"""A real QUIC node agent for the NAT lab: transport, relay, detection, hole punching.

Runs inside a lab namespace with the node's actual NAT stack (``Transport`` on one UDP
socket, ``RelayService``/``RelayClient``, ``NatDetector`` fed by QUIC identify, and
``HolePuncher``).  It is the lab's stand-in for ``rnn start --headless`` until the node
wires the NAT package; every line it prints is one JSON event.

    python -m tests.netlab.node_agent relay --ip 203.0.113.2
    python -m tests.netlab.node_agent peer --ip 10.1.0.2 --relay IP:PORT:HEX [--relay ...]

stdin (peer): {"cmd": "dial-direct", "addr": [ip, port], "peer": hex}
              {"cmd": "connect", "peer": hex}   (relayed circuit, then a punch)
              {"cmd": "quit"}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from rnn_tui.identity import Identity, PeerId
from rnn_tui.nat.detect import NatDetector
from rnn_tui.nat.model import NatType, PathType, check_addr
from rnn_tui.nat.punch_core import PunchConfig
from rnn_tui.nat.punch_driver import HolePuncher
from rnn_tui.nat.relay_driver import RelayClient, RelayService
from rnn_tui.transport import PeerConnection, Transport, TransportSettings
from rnn_tui.transport.messages import parse_addr, register_message


@register_message
@dataclass(frozen=True, slots=True)
class LabEcho:
    """Lab-only request (type range 0xF0xx): echoed reversed, proving data end to end."""

    TYPE: ClassVar[int] = 0xF0B1
    data: bytes

    def encode(self) -> bytes:
        return self.data

    @classmethod
    def decode(cls, body: bytes) -> LabEcho:
        return cls(body)


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def run_relay(args: argparse.Namespace) -> None:
    transport = Transport(Identity.generate(), settings=TransportSettings(keepalive_interval=5))
    addr = await transport.start(args.bind, 0)
    transport.listen_addrs = [(args.ip, addr[1])]
    service = RelayService(transport)
    emit(event="ready", addr=[args.ip, addr[1]], peer=transport.identity.peer_id.hex)
    reader = await stdin_lines()
    await reader.readline()  # any line or EOF: stop
    service.close()
    await transport.close()


async def run_peer(args: argparse.Namespace) -> None:
    transport = Transport(Identity.generate(), settings=TransportSettings(keepalive_interval=5))
    bound = await transport.start("0.0.0.0", 0)
    port = bound[1]
    loop = asyncio.get_running_loop()
    detector = NatDetector()
    seen: list[tuple[str, int]] = []
    clients: list[tuple[PeerConnection, PeerId]] = []
    relayed_in: list[PeerConnection] = []
    relay_client = RelayClient(transport, on_connection=lambda c, r: relayed_in.append(c))
    for spec in args.relay:
        host, rport, hexid = spec.split(":")
        relay_id = PeerId(bytes.fromhex(hexid))
        conn = await transport.dial((host, int(rport)), expected_peer_id=relay_id)
        ident = await transport.identify(conn)
        observed = check_addr(parse_addr(ident.observed_addr))
        if observed is not None:
            seen.append(observed)
            detector.observe(conn.remote_addr, observed, loop.time(), source="identify")
        clients.append((conn, relay_id))
    status = detector.status
    nat_type = NatType(args.claim_nat) if args.claim_nat else status.nat_type
    public = status.external or (seen[0] if seen else None)
    local = [a for a in (public, (args.ip, port)) if a is not None]
    reservation = await relay_client.reserve(clients[0][0])
    echoed: list[str] = []

    async def on_echo(conn: PeerConnection, msg: LabEcho) -> LabEcho:
        path = relay_client.path_type(conn)
        echoed.append(path.value)
        emit(event="echoed", path=path.value, size=len(msg.data))
        return LabEcho(msg.data[::-1])

    transport.handlers.on_request(LabEcho, on_echo)
    config = PunchConfig(linger=1.0)
    puncher = HolePuncher(transport, addresses=lambda: local, nat_type=lambda: nat_type,
                          config=config,
                          on_event=lambda p, ev: emit(event=type(ev).__name__,
                                                      **_fields(ev)))
    emit(event="ready", peer=transport.identity.peer_id.hex, port=port, seen=seen,
         detected=status.nat_type.value, nat_type=nat_type.value, local=local,
         reservation_ttl=reservation.ttl)
    reader = await stdin_lines()
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        if cmd["cmd"] == "quit":
            break
        try:
            if cmd["cmd"] == "dial-direct":
                peer = PeerId(bytes.fromhex(cmd["peer"]))
                t0 = loop.time()
                conn = await transport.dial(tuple(cmd["addr"]), expected_peer_id=peer)
                await exchange(transport, conn, "direct", t0)
            elif cmd["cmd"] == "connect":
                peer = PeerId(bytes.fromhex(cmd["peer"]))
                t0 = loop.time()
                relayed = await relay_client.dial_via(clients[0][0], peer)
                await exchange(transport, relayed, relay_client.path_type(relayed).value, t0)
                outcome = await puncher.punch(relayed, timeout=20)
                emit(event="punch-outcome", path=outcome.path.value,
                     strategy=outcome.strategy.value, remote=outcome.remote,
                     time_to_direct=outcome.time_to_direct, attempts=outcome.attempts,
                     reason=outcome.reason)
                if outcome.path is PathType.DIRECT and outcome.connection is not None:
                    await exchange(transport, outcome.connection, "direct", t0)
                else:
                    await exchange(transport, relayed, "relayed", t0)
        except Exception as exc:  # report, never hang the lab
            emit(event="error", cmd=cmd["cmd"], error=f"{type(exc).__name__}: {exc}")
        emit(event="cmd-done", cmd=cmd["cmd"])
    await puncher.close()
    await transport.close()


async def exchange(transport: Transport, conn: PeerConnection, path: str, t0: float) -> None:
    payload = (f"hello over {path} " * 200).encode()
    t1 = time.monotonic()
    reply = await conn.request(LabEcho(payload), timeout=10)
    ok = isinstance(reply, LabEcho) and reply.data == payload[::-1]
    rtts = [await transport.ping(conn) for _ in range(5)]
    emit(event="exchanged", path=path, ok=ok, echo_time=time.monotonic() - t1,
         rtt=sorted(rtts)[2], remote=list(conn.remote_addr), outbound=conn.outbound,
         since_start=asyncio.get_running_loop().time() - t0)


def _fields(ev: object) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in getattr(ev, "__slots__", ()):
        value = getattr(ev, name)
        out[name] = value.value if hasattr(value, "value") else value
    return out


def main() -> int:
    parser = argparse.ArgumentParser(prog="node_agent")
    sub = parser.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("relay")
    r.add_argument("--ip", required=True)
    r.add_argument("--bind", default="0.0.0.0")
    p = sub.add_parser("peer")
    p.add_argument("--ip", required=True)
    p.add_argument("--relay", action="append", default=[], required=True)
    p.add_argument("--claim-nat", choices=[t.value for t in NatType])
    args = parser.parse_args()
    asyncio.run(run_relay(args) if args.mode == "relay" else run_peer(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
