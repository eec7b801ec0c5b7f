"""Our DHT on real UDP sockets on loopback: persistence of the routing table and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from contextlib import AsyncExitStack

import pytest

from rnn_tui.dht.udp import DhtUdpEndpoint, open_dht_endpoint

pytestmark = pytest.mark.integration


async def small_network(stack: AsyncExitStack, count: int, subnet: int) -> list[DhtUdpEndpoint]:
    nodes = []
    for i in range(count):
        endpoint = await open_dht_endpoint(f"127.0.{subnet}.{i + 1}", 0, timeout=20.0)
        stack.callback(endpoint.close)
        nodes.append(endpoint)
    for endpoint in nodes[1:]:
        await endpoint.node.bootstrap([nodes[0].addr])
    await nodes[0].node.bootstrap([nodes[1].addr])
    return nodes


async def test_restart_from_saved_routing_nodes_without_bootstrap() -> None:
    async with AsyncExitStack() as stack:
        nodes = await small_network(stack, 10, subnet=41)
        first = await open_dht_endpoint("127.0.41.100", 0, timeout=20.0)
        await first.node.bootstrap([nodes[0].addr])
        saved = first.node.routing_nodes()
        assert len(saved) >= 8
        first.close()
        # "Restart": a fresh node with the saved list and a bootstrap address that is dead.
        again = await open_dht_endpoint("127.0.41.101", 0, timeout=20.0)
        stack.callback(again.close)
        size = await again.node.start(saved_nodes=saved, bootstrap=[("127.0.41.250", 9)], timeout=5.0)
        assert size >= 8
        assert again.node.stats()["packets_out"] > 0
        assert await again.node.get_peers(b"\x01" * 20) == []


async def test_start_falls_back_to_bootstrap_when_saved_nodes_are_gone() -> None:
    async with AsyncExitStack() as stack:
        nodes = await small_network(stack, 6, subnet=42)
        fresh = await open_dht_endpoint("127.0.42.100", 0, timeout=20.0)
        stack.callback(fresh.close)
        dead = [(b"\x07" * 20, "127.0.42.200", 9)]
        size = await fresh.node.start(saved_nodes=dead, bootstrap=[nodes[0].addr], timeout=3.0)
        assert size >= 5


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rnn_tui.cli", *args, "--listen-host", "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=dict(os.environ))
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60.0)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_ping_put_get_lookup_stats_against_local_nodes() -> None:
    async with AsyncExitStack() as stack:
        nodes = await small_network(stack, 8, subnet=43)
        boot = f"{nodes[0].addr[0]}:{nodes[0].addr[1]}"
        code, out, err = await run_cli("dht", "ping", boot, "--json")
        assert code == 0, err
        assert json.loads(out)["node_id"] == nodes[0].node.node_id.hex()

        code, out, err = await run_cli("dht", "put", "hello from the cli", "--salt", "s1",
                                       "--bootstrap", boot, "--json")
        assert code == 0, err
        put = json.loads(out)
        assert put["seq"] == 1 and put["stored"] >= 1

        code, out, err = await run_cli("dht", "get", put["public_key"], "--salt", "s1",
                                       "--bootstrap", boot, "--json")
        assert code == 0, err
        assert json.loads(out) == {"target": put["target"], "seq": 1, "value": "hello from the cli"}

        infohash = os.urandom(20)
        await nodes[3].node.announce(infohash, 6543)
        code, out, err = await run_cli("dht", "lookup", infohash.hex(), "--bootstrap", boot, "--json")
        assert code == 0, err
        assert f"{nodes[3].addr[0]}:6543" in json.loads(out)["peers"]

        code, out, err = await run_cli("dht", "stats", "--bootstrap", boot, "--json")
        assert code == 0, err
        assert json.loads(out)["routing_table"] >= 5  # earlier CLI nodes are gone


async def test_cli_bad_input_names_the_problem() -> None:
    code, _, err = await run_cli("dht", "lookup", "abc", "--bootstrap", "127.0.0.1:9")
    assert code == 1 and "INFOHASH must be 40 hex digits" in err
    code, _, err = await run_cli("dht", "ping", "nohostport")
    assert code == 1 and "HOST:PORT" in err
    code, _, err = await run_cli("dht", "put", "x", "--salt", "s" * 65, "--bootstrap", "127.0.0.1:9")
    assert code == 1 and "at most 64" in err
