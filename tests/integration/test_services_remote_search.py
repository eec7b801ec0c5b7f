"""Remote service search across three node processes over real QUIC on loopback.

B and C serve catalogs (DATA services with different visibility); A dials both, fans a
search out through ``ServiceControl.remote`` and asks C for its whole catalog.  Each peer
must see exactly what its proved identity allows."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from rnn_tui.identity import Identity

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]

CHILD = r'''
import asyncio, json, sys, tempfile, time
from pathlib import Path
from rnn_tui.identity import Identity, PeerId
from rnn_tui.services.control_api import ServiceControl
from rnn_tui.services.messages import ServiceCatalogQuery
from rnn_tui.services.model import Visibility, VisibilityMode
from rnn_tui.services.over_transport import connected_peers, install_handlers, make_ask
from rnn_tui.services.registry import InMemoryServiceRepository, ServiceOptions, ServiceRegistry
from rnn_tui.transport import Transport, TransportSettings

async def main():
    role, seed, spec = sys.argv[1], bytes.fromhex(sys.argv[2]), json.loads(sys.argv[3])
    me = Identity(seed)
    registry = ServiceRegistry(InMemoryServiceRepository(), me.peer_id, clock=time.time)
    tmp = Path(tempfile.mkdtemp(prefix="rnn-remote-"))
    for name, mode, allow in spec.get("services", []):
        (tmp / name).write_text(name)
        vis = Visibility(VisibilityMode(mode), frozenset(PeerId.parse(a) for a in allow))
        await registry.add_data(tmp / name, ServiceOptions(description="satellite " + name,
                                                           visibility=vis))
    transport = Transport(me, settings=TransportSettings(keepalive_interval=5.0, idle_timeout=30.0,
                                                         handshake_timeout=5.0))
    install_handlers(transport.handlers, registry.list)
    host, port = await transport.start("127.0.0.1", 0)
    try:
        if role == "serve":
            print("READY", host, port, me.peer_id, flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
            return
        for host, port, peer in spec["peers"]:
            await transport.dial((host, port), expected_peer_id=PeerId.parse(peer), timeout=10)
        control = ServiceControl(registry, peers=connected_peers(transport), ask=make_ask(transport))
        async for item in control.remote({"phrase": spec["phrase"], "timeout": 10}):
            print(json.dumps({"search": item}), flush=True)
        conn = transport.connection_to(PeerId.parse(spec["catalog_of"]))
        reply = await conn.request(ServiceCatalogQuery(), timeout=10)
        print(json.dumps({"catalog": sorted(s.name for s in reply.services)}), flush=True)
    finally:
        await transport.close()

asyncio.run(main())
'''


async def spawn(role: str, seed: bytes, spec: dict[str, object]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, role, seed.hex(), json.dumps(spec), cwd=REPO,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)


async def test_search_across_three_processes() -> None:
    seeds = {name: os.urandom(32) for name in "ABC"}
    ids = {name: str(Identity(seed).peer_id) for name, seed in seeds.items()}
    b_spec = {"services": [["ndvi-tiles", "public", []], ["ndvi-secret", "private", []]]}
    c_spec = {"services": [["ndvi-partners", "allowlist", [ids["A"]]],
                           ["ndvi-other-club", "allowlist", [ids["B"]]],
                           ["pollinators", "public", []]]}
    servers = [await spawn("serve", seeds["B"], b_spec), await spawn("serve", seeds["C"], c_spec)]
    try:
        peers = []
        for proc in servers:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split()
            assert line and line[0] == "READY", line
            peers.append([line[1], int(line[2]), line[3]])
        assert sorted(p[2] for p in peers) == sorted([ids["B"], ids["C"]])
        searcher = await spawn("search", seeds["A"], {"peers": peers, "phrase": "ndvi",
                                                      "catalog_of": ids["C"]})
        out, err = await asyncio.wait_for(searcher.communicate(), 90)
        assert searcher.returncode == 0, err.decode()[-2000:]
        lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
        found = {(item["search"]["peer"], item["search"]["service"]["name"])
                 for item in lines if "search" in item and "service" in item["search"]}
        assert found == {(ids["B"], "ndvi-tiles"), (ids["C"], "ndvi-partners")}
        assert not [item for item in lines if "search" in item and "error" in item["search"]]
        catalog = next(item["catalog"] for item in lines if "catalog" in item)
        assert catalog == ["ndvi-partners", "pollinators"]
        service = next(item["search"]["service"] for item in lines
                       if item.get("search", {}).get("service", {}).get("name") == "ndvi-tiles")
        assert "data_path" not in service and service["content_hash"].startswith("sha256:")
    finally:
        for proc in servers:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in servers:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
