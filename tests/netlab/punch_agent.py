"""A hole-punch agent that runs *inside* a lab namespace over real UDP sockets.

Why: it drives the real sans-IO cores (``NatDetector``, ``HolePunch``) against real
kernel NATs, before the QUIC transport exists.  The controlling test plays the relay:
punch messages travel as hex lines on stdin/stdout, exactly the bytes that will later
ride the relayed QUIC connection.  Everything the agent learns is printed as one JSON
object per line.

    python -m tests.netlab.punch_agent rendezvous
    python -m tests.netlab.punch_agent peer --rendezvous IP:PORT --rendezvous IP:PORT \
        --lan-ip 10.1.0.2 [--initiator] [--claim-nat eim|edm] [--timeout 20]

stdin commands (peer): {"cmd": "start"} (initiator only), {"msg": "<hex>"}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import selectors
import socket
import sys
import time
from typing import Any

from rnn_tui.nat.detect import NatDetector
from rnn_tui.nat.model import Addr, NatType
from rnn_tui.nat.punch_core import HolePunch, PunchConfig, PunchState, PunchSucceeded
from rnn_tui.nat.wire import decode_message, encode_message, is_probe

DATA_MAGIC = b"\x00RND"
PING_MAGIC = b"\x00RNI"  # direct-path RTT probe, echoed as PONG
PONG_MAGIC = b"\x00RNO"


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def parse_addr(text: str) -> Addr:
    host, port = text.rsplit(":", 1)
    return (host, int(port))


def rendezvous() -> int:
    """A tiny 'what is my address' server: the lab's stand-in for KRPC's ``ip`` field."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 0))
    emit(event="listening", port=sock.getsockname()[1])
    while True:
        data, addr = sock.recvfrom(2048)
        if data == b"WHO":
            sock.sendto(f"{addr[0]} {addr[1]}".encode(), addr)


def learn_observed(sock: socket.socket, servers: list[Addr], detector: NatDetector) -> list[Addr]:
    seen: list[Addr] = []
    sock.settimeout(0.3)
    for server in servers:
        for _ in range(10):
            sock.sendto(b"WHO", server)
            try:
                data, src = sock.recvfrom(2048)
            except TimeoutError:
                continue
            if src != server:
                continue
            host, port = data.decode().split()
            observed = (host, int(port))
            detector.observe(server, observed, time.monotonic(), source="rendezvous")
            seen.append(observed)
            break
    sock.setblocking(False)
    return seen


def peer(args: argparse.Namespace) -> int:
    main_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    main_sock.bind(("0.0.0.0", 0))
    local_port = main_sock.getsockname()[1]
    detector = NatDetector()
    seen = learn_observed(main_sock, [parse_addr(a) for a in args.rendezvous], detector)
    status = detector.status
    nat_type = NatType(args.claim_nat) if args.claim_nat else status.nat_type
    lan: Addr = (args.lan_ip, local_port)
    public: Addr | None = status.external or (seen[0] if seen else None)
    local_addrs = [a for a in (public, lan) if a is not None and a != ("0.0.0.0", local_port)]
    emit(event="observed", seen=seen, detected=status.nat_type.value, nat_type=nat_type.value,
         local_addrs=local_addrs)
    config = PunchConfig(linger=0.5, punch_timeout=args.punch_timeout,
                         max_attempts=args.attempts, exchange_timeout=args.exchange_timeout)
    punch = HolePunch(initiator=args.initiator, local_addrs=local_addrs, nat_type=nat_type,
                      rng_bytes=os.urandom, rng=random.Random(), config=config)
    sel = selectors.DefaultSelector()
    sockets: dict[int, socket.socket] = {0: main_sock}
    sel.register(main_sock, selectors.EVENT_READ, 0)
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
    stdin_buf = b""
    t0 = time.monotonic()
    deadline = t0 + args.timeout
    success: PunchSucceeded | None = None
    data_got: list[str] = []
    data_next = 0.0
    data_sent = 0
    direct_rtts: list[float] = []

    def flush(now: float) -> None:
        nonlocal success
        for msg in punch.messages_to_send():
            emit(event="msg", hex=encode_message(msg).hex())
        for tx in punch.datagrams_to_send():
            sock = sockets.get(tx.via)
            if sock is None:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind(("0.0.0.0", 0))
                sock.setblocking(False)
                sockets[tx.via] = sock
                sel.register(sock, selectors.EVENT_READ, tx.via)
            try:
                sock.sendto(tx.data, tx.addr)
            except OSError as exc:
                emit(event="send-error", addr=list(tx.addr), error=str(exc))
        while (ev := punch.next_event()) is not None:
            fields = {k: getattr(ev, k) for k in ev.__slots__}
            fields = {k: (v.value if hasattr(v, "value") else v) for k, v in fields.items()}
            emit(event=type(ev).__name__, at=now - t0, **fields)
            if isinstance(ev, PunchSucceeded) and success is None:
                success = ev

    while True:
        now = time.monotonic()
        if now > deadline:
            emit(event="timeout", state=punch.state.value)
            return 1
        if punch.state is PunchState.FAILED:
            emit(event="done", ok=False, probes_rejected=punch.probes_rejected)
            return 0
        if success is not None and data_got and data_sent >= 3 and punch.state is PunchState.SUCCEEDED:
            emit(event="done", ok=True, data=data_got, probes_rejected=punch.probes_rejected,
                 sockets_opened=len(sockets),
                 direct_rtt=sorted(direct_rtts)[len(direct_rtts) // 2] if direct_rtts else None)
            return 0
        if success is not None and data_sent < 5 and now >= data_next:
            sockets[success.via].sendto(DATA_MAGIC + f"hello from {args.lan_ip}".encode(),
                                        success.remote)
            sockets[success.via].sendto(PING_MAGIC + repr(time.monotonic()).encode(),
                                        success.remote)
            data_sent += 1
            data_next = now + 0.05
        timer = punch.get_timer()
        wait = min(x for x in (timer, deadline, data_next if success else None) if x is not None)
        for key, _ in sel.select(max(0.0, wait - now)):
            if key.data == "stdin":
                chunk = os.read(sys.stdin.fileno(), 65536)
                if not chunk:
                    sel.unregister(sys.stdin.fileno())
                    continue
                stdin_buf += chunk
                while b"\n" in stdin_buf:
                    line, stdin_buf = stdin_buf.split(b"\n", 1)
                    cmd = json.loads(line)
                    if cmd.get("cmd") == "start":
                        punch.start(time.monotonic())
                    elif "msg" in cmd:
                        punch.receive_message(decode_message(bytes.fromhex(cmd["msg"])),
                                              time.monotonic())
                continue
            sock = sockets[key.data]
            while True:
                try:
                    data, addr = sock.recvfrom(2048)
                except BlockingIOError:
                    break
                if is_probe(data):
                    punch.receive_probe(data, (addr[0], addr[1]), key.data, time.monotonic())
                elif data.startswith(PING_MAGIC):
                    sock.sendto(PONG_MAGIC + data[len(PING_MAGIC):], addr)
                elif data.startswith(PONG_MAGIC):
                    sent_at = float(data[len(PONG_MAGIC):].decode())
                    direct_rtts.append(time.monotonic() - sent_at)
                elif data.startswith(DATA_MAGIC):
                    data_got.append(data[len(DATA_MAGIC):].decode(errors="replace"))
        now = time.monotonic()
        timer = punch.get_timer()
        if timer is not None and now >= timer:
            punch.handle_timer(now)
        flush(now)


def main() -> int:
    parser = argparse.ArgumentParser(prog="punch_agent")
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("rendezvous")
    p = sub.add_parser("peer")
    p.add_argument("--rendezvous", action="append", default=[])
    p.add_argument("--lan-ip", required=True)
    p.add_argument("--initiator", action="store_true")
    p.add_argument("--claim-nat", choices=[t.value for t in NatType])
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--punch-timeout", type=float, default=3.0)
    p.add_argument("--attempts", type=int, default=1)
    p.add_argument("--exchange-timeout", type=float, default=5.0)
    args = parser.parse_args()
    if args.mode == "rendezvous":
        return rendezvous()
    return peer(args)


if __name__ == "__main__":
    raise SystemExit(main())
