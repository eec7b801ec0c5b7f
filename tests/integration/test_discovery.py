"""Issue 4 acceptance: real node processes find each other through our DHT on loopback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.nodes import cluster, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_bootstrap_plus_five_nodes_discover_each_other(isolated_dirs: Path) -> None:
    with cluster(isolated_dirs) as c:
        boot = c.add(bootstrap="")
        boot.wait_ready()
        nodes = [c.add(bootstrap=boot.addr) for _ in range(5)]
        everyone = [boot, *nodes]
        for n in nodes:
            n.wait_ready()
        ids = {n.peer_id for n in everyone}
        assert len(ids) == 6
        start = time.monotonic()

        def all_see_all() -> bool:
            for n in everyone:
                peers = n.try_call("peers") or []
                seen = {p["peer_id"] for p in peers if p["connected"] and p["verified"]
                        and p["metadata_seq"] is not None}
                if seen != ids - {n.peer_id}:
                    return False
            return True

        wait_for(all_see_all, timeout=30, interval=1.0, what="every node to list and fetch every other",
                 on_fail=lambda: "\n".join(f"{n.name}: {n.try_call('peers')}" for n in everyone))
        elapsed = time.monotonic() - start
        assert elapsed <= 30
        # the BEP 44 record a node fetched for a peer carries that peer's listen address
        peer = nodes[0].call("peer", nodes[1].peer_id)
        assert peer["metadata"]["listen"] == [nodes[1].addr]


def test_restart_keeps_id_reloads_peers_and_raises_metadata_seq(isolated_dirs: Path) -> None:
    with cluster(isolated_dirs, base=40) as c:
        boot = c.add(bootstrap="")
        boot.wait_ready()
        node = c.add(bootstrap=boot.addr)
        first = node.wait_ready()
        wait_for(lambda: (node.try_call("status") or {}).get("metadata_seq"), timeout=20,
                 what="first metadata publish")
        wait_for(lambda: any(p["connected"] for p in node.try_call("peers") or []), timeout=20,
                 what="a connection to the bootstrap node")
        seq1 = node.call("status")["metadata_seq"]
        assert node.stop() == 0
        node.start()
        second = node.wait_ready()
        assert second["peer_id"] == first["peer_id"]
        peers = node.call("peers")
        assert boot.peer_id in {p["peer_id"] for p in peers}  # reloaded from the store
        seq2 = wait_for(lambda: (node.try_call("status") or {}).get("metadata_seq"), timeout=20,
                        what="metadata republish after restart")
        assert seq2 > seq1


def test_dial_expecting_another_id_fails_and_connect_by_peer_id(isolated_dirs: Path) -> None:
    with cluster(isolated_dirs, base=60) as c:
        a = c.add(bootstrap="")
        a.wait_ready()
        b = c.add(bootstrap=a.addr)
        b.wait_ready()
        x = c.add(bootstrap=a.addr)
        x.wait_ready()
        # connect by peer id: b looks up x's BEP 44 record and dials its address
        wait_for(lambda: x.try_call("status")["metadata_seq"], timeout=20, what="x publishes")
        info = b.call("connect", x.peer_id)
        assert info["peer_id"] == x.peer_id
        ping = b.call("ping", x.peer_id)
        assert ping["rtt_ms"] > 0
        # a peer id whose record points at another node's address is refused by the handshake
        res = b.rnn("connect", "ybndrfg8ejkmcpqxot1uwisza345h769ybndrfg8ejkmcpqxot1u")
        assert res.returncode == 1 and "error:" in res.stderr
