"""A real ``rnn start --headless --relay`` node under a flood of reservations (loopback).

Why a real node: the relay limits are unit- and driver-tested; this proves that the
node's config (``relay.max_reservations``) reaches its relay service, that a flood from
many distinct peers gets exactly the configured number of slots and a reason for every
refusal, that one peer hammering it is rate-limited, and that the node stays healthy.
Traffic stays on 127.0.0.1; the node has no bootstrap routers.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from transport_helpers import running

from rnn_tui.errors import RnnError
from rnn_tui.identity import PeerId
from rnn_tui.nat.relay_driver import RelayClient, RelayRefused
from rnn_tui.transport import Transport

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

RNN = [sys.executable, "-m", "rnn_tui"]
LIMIT = 3


class LocalNode:
    """One ``rnn`` process on loopback with its own home; stopped by PID."""

    def __init__(self, home: Path, config: str) -> None:
        self.data = home / "data-dir"
        self.env = dict(os.environ)
        self.env.update({"XDG_CONFIG_HOME": str(home / "config"),
                         "XDG_DATA_HOME": str(home / "data"),
                         "XDG_CACHE_HOME": str(home / "cache"),
                         "RNN_KEYSTORE_KDF_COST": "interactive", "PYTHONUNBUFFERED": "1",
                         "RNN_CONFIG": str(home / "config.yaml")})
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.yaml").write_text(config)
        self.proc = subprocess.Popen(
            [*RNN, "start", "--headless", "--data-dir", str(self.data), "--port", "0",
             "--listen-host", "127.0.0.1", "--bootstrap", "", "--relay"],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)

    def cli(self, *args: str) -> Any:
        res = subprocess.run([*RNN, *args, "--json", "--data-dir", str(self.data)],
                             env=self.env, capture_output=True, text=True, timeout=30)
        return json.loads(res.stdout) if res.returncode == 0 and res.stdout.strip() else None

    def wait_status(self, timeout: float = 60.0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.proc.poll() is None, self.stop()
            status = self.cli("status")
            if status:
                return dict(status)
            time.sleep(0.3)
        raise TimeoutError("the node gave no status")

    def stop(self) -> str:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            out, _ = self.proc.communicate(timeout=10)
        return out or ""


async def _reserve(node: Transport, addr: tuple[str, int], relay: PeerId) -> str:
    conn = await node.dial(addr, expected_peer_id=relay, timeout=10)
    try:
        await RelayClient(node).reserve(conn, timeout=10)
    except RelayRefused as exc:
        return f"refused: {exc}"
    return "accepted"


async def _flood(addr: tuple[str, int], relay: PeerId) -> tuple[list[str], list[str]]:
    async with running(8) as peers:
        many = await asyncio.gather(*(_reserve(p, addr, relay) for p in peers))
        # One peer asks again and again: the per-peer request rate holds.
        conn = await peers[0].dial(addr, expected_peer_id=relay, timeout=10)
        client = RelayClient(peers[0])
        burst = []
        for _ in range(20):
            try:
                await client.reserve(conn, timeout=5)
                burst.append("accepted")
            except (RelayRefused, RnnError) as exc:
                burst.append(f"refused: {exc}")
        return list(many), burst


def test_a_relay_node_holds_its_reservation_limit_under_a_flood(tmp_path: Path) -> None:
    node = LocalNode(tmp_path / "relay", f"relay:\n  max_reservations: {LIMIT}\n")
    try:
        status = node.wait_status()
        host, port = str(status["listen"]).rsplit(":", 1)
        assert host == "127.0.0.1"
        relay = PeerId.parse(str(status["peer_id"]))
        many, burst = asyncio.run(_flood((host, int(port)), relay))
        assert many.count("accepted") == LIMIT, many
        refused = [r for r in many if r != "accepted"]
        assert refused and all(f"relay full: {LIMIT} reservations" in r for r in refused), many
        assert any("rate limit" in r for r in burst), burst
        assert node.wait_status(timeout=20)["peer_id"] == status["peer_id"]  # still healthy
    finally:
        log = node.stop()
    assert "Traceback" not in log, log


async def _request_through_a_relay_that_dies(node: LocalNode, addr: tuple[str, int],
                                             relay: PeerId) -> tuple[str, float]:
    from transport_helpers import Probe

    from rnn_tui.transport.session import PeerConnection

    async with running(2) as (a, b):
        to_relay_b = await b.dial(addr, expected_peer_id=relay, timeout=10)
        await RelayClient(b).reserve(to_relay_b, timeout=10)

        async def slow(conn: PeerConnection, msg: Probe) -> Probe:
            await asyncio.sleep(120)
            return msg
        b.handlers.on_request(Probe, slow)
        to_relay_a = await a.dial(addr, expected_peer_id=relay, timeout=10)
        conn = await RelayClient(a).dial_via(to_relay_a, b.identity.peer_id)
        pending = asyncio.ensure_future(conn.request(Probe(b"x" * 10_000), timeout=100))
        await asyncio.sleep(0.5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        os.kill(node.proc.pid, signal.SIGKILL)  # a crash: no CONNECTION_CLOSE to anyone
        try:
            await pending
        except RnnError as exc:
            return str(exc), loop.time() - started
        return "answered", loop.time() - started


def test_a_relay_killed_mid_request_fails_the_relayed_connection_with_a_reason(
        tmp_path: Path) -> None:
    """kill -9 of the relay: the relayed request ends with an error naming the cause well
    before its own timeout (100 s) and the QUIC idle timeout (60 s): no hang."""
    node = LocalNode(tmp_path / "relay", "")
    try:
        status = node.wait_status()
        host, port = str(status["listen"]).rsplit(":", 1)
        relay = PeerId.parse(str(status["peer_id"]))
        error, waited = asyncio.run(_request_through_a_relay_that_dies(
            node, (host, int(port)), relay))
    finally:
        node.stop()
    assert error != "answered"
    # our dead-peer rule (DISCONNECT_TIMEOUT), not aioquic's idle timeout, ended it
    assert "stopped answering" in error, error
    assert waited < 40, f"the relayed request hung for {waited:.0f} s: {error}"
