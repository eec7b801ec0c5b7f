"""Issue 6 acceptance: real node processes on loopback gossip a service and its removal.

Six ``rnn start --headless`` processes (a bootstrap node and five more) find each other
through the DHT; a DATA service added on one node must appear in every other node's
remote catalog (filled by gossip: nobody runs a remote search here) within 5 s, and its
removal must propagate too.  Polling goes straight to the control sockets so the wait is
the network's, not Python start-up's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from rnn_tui.control import client
from tests.nodes import NodeProcess, cluster, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _call(node: NodeProcess, method: str) -> Any:
    return client.call(node.data_dir / "control.sock", method, timeout=10.0)


def _remote_counts(nodes: list[NodeProcess]) -> list[int]:
    return [int(_call(n, "services.summary")["remote"]) for n in nodes]


def test_service_added_on_one_of_six_nodes_reaches_all_within_5s_and_removal_too(
        isolated_dirs: Path, tmp_path: Path) -> None:
    with cluster(isolated_dirs, base=120) as c:
        boot = c.add(bootstrap="")
        boot.wait_ready(timeout=120)
        others = [c.add(bootstrap=boot.addr) for _ in range(5)]
        for n in others:
            n.wait_ready(timeout=120)   # start-up is slow on a loaded 2-core machine
        everyone = [boot, *others]

        def meshed() -> bool:
            # every node has gossip peers on the services topic
            for n in everyone:
                topics = {t["topic"]: t for t in _call(n, "gossip.stats")["topics"]}
                entry = topics.get("rnn/services/1")
                if entry is None or entry["topic_peers"] < 1:
                    return False
            return True

        wait_for(meshed, timeout=60, interval=0.5, what="every node to have gossip peers",
                 on_fail=lambda: "\n".join(f"{n.name}: {_call(n, 'gossip.stats')}" for n in everyone))
        author, readers = everyone[2], [n for i, n in enumerate(everyone) if i != 2]
        assert _remote_counts(readers) == [0] * 5

        data = tmp_path / "species.csv"
        data.write_text("apis mellifera\n")
        added = author.call("service", "add", "--data", str(data), "--description", "pollinators")
        start = time.monotonic()
        wait_for(lambda: _remote_counts(readers) == [1] * 5, timeout=5.0, interval=0.05,
                 what="the service in every other node's catalog",
                 on_fail=lambda: f"remote counts {_remote_counts(readers)}")
        assert time.monotonic() - start <= 5.0

        res = author.rnn("service", "rm", added["id"])
        assert res.returncode == 0, res.stderr
        wait_for(lambda: _remote_counts(readers) == [0] * 5, timeout=5.0, interval=0.05,
                 what="the removal in every other node's catalog",
                 on_fail=lambda: f"remote counts {_remote_counts(readers)}")
        shown = readers[0].rnn("gossip", "stats")
        assert shown.returncode == 0, shown.stderr
        assert "rnn/services/1" in shown.stdout and "delivered" in shown.stdout
        for n in readers:
            counters = _call(n, "gossip.stats")["counters"]
            assert counters.get("invalid", 0) == 0
            assert counters.get("delivered", 0) >= 2
