"""Real ``rnn`` nodes in the NAT lab: dial-back classification and a network change.

Why a lab: "public" must mean that a stranger's unsolicited packet reaches us, and only a
real filtering NAT (nftables, conntrack) can show that a NATed node is *not* public.  A
network change needs a host that really moves to another router mid-run.

Scenario: three public nodes with default settings (``relay.enabled: auto``, so none is
forced to relay) and one host ``e`` behind an EIM router.  Everybody dials everybody it
knows by address.  Then:

1. dial-back: every public node asks its peers to dial it back from fresh sockets; two
   distinct probers reach it, so it is ``public`` and turns relay service on by itself.
   ``e`` asks too; the probes die in its router's filter, so it stays ``eim``, calls
   itself unreachable (DHT read-only, BEP 43) and reserves on the public nodes, which it
   can only do because they became relays through dial-back.
2. network change: ``e`` is unplugged and plugged into a second router.  Its node notices
   the new local address, learns its new external address from fresh DHT replies,
   republishes its BEP 44 record (higher seq, the new address), keeps or reselects its
   relays and still reaches its peers.

Every address belongs to namespaces the lab created; nothing leaves them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.netlab.lab import NatLab, NatMode, lab_unavailable_reason
from tests.netlab.rnn_nodes import RnnNode

pytestmark = [
    pytest.mark.integration,
    pytest.mark.netns,
    pytest.mark.slow,
    pytest.mark.skipif(lab_unavailable_reason() is not None,
                       reason=lab_unavailable_reason() or ""),
]

FAST = "nat:\n  check_interval: 2\n"


def wait_for(pred: Any, timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.5)


def status_if(node: RnnNode, pred: Any) -> dict[str, Any] | None:
    st = node.cli("status")
    return dict(st) if st and pred(st) else None


@pytest.mark.timeout(420)
def test_dial_back_and_network_change_with_real_nodes(tmp_path: Path) -> None:
    with NatLab() as lab:
        pub_hosts = [lab.add_public_host() for _ in range(3)]
        r1, r2 = lab.add_nat(NatMode.EIM), lab.add_nat(NatMode.EIM)
        e_host = lab.add_host_behind(r1)
        nodes: dict[str, RnnNode] = {}
        try:
            nodes["pub0"] = RnnNode(pub_hosts[0], tmp_path / "pub0", config=FAST)
            boot = f"{pub_hosts[0].ip}:{nodes['pub0'].port()}"
            for i in (1, 2):
                nodes[f"pub{i}"] = RnnNode(pub_hosts[i], tmp_path / f"pub{i}", bootstrap=boot,
                                           config=FAST)
            nodes["e"] = RnnNode(e_host, tmp_path / "e", bootstrap=boot,
                                 config=FAST + "dht:\n  topic: rnn-natlab-e-alone\n")
            ids = {name: str(n.wait_status()["peer_id"]) for name, n in nodes.items()}
            addr = {f"pub{i}": f"{pub_hosts[i].ip}:{nodes[f'pub{i}'].port()}" for i in range(3)}
            for a, b in (("pub1", "pub0"), ("pub2", "pub0"), ("pub2", "pub1"),
                         ("e", "pub0"), ("e", "pub1"), ("e", "pub2")):
                assert nodes[a].cli("connect", addr[b]) is not None, f"{a} -> {b}"
            e = nodes["e"]

            # -- 1. dial-back --------------------------------------------------------------
            for name in ("pub0", "pub1", "pub2"):
                st = wait_for(lambda n=nodes[name]: status_if(
                    n, lambda s: s["reachability"] == "public" and s["relay_service"]), 90,
                    f"{name} to be confirmed public by dial-back and turn relay on")
                assert st["dial_back_probers"] >= 2, st
                assert st["dht_read_only"] is False, st
            st = wait_for(lambda: status_if(
                e, lambda s: s["nat_type"] == "eim" and s["relays"]), 90,
                "e to detect EIM and reserve on an auto relay")
            assert st["reachability"] != "public" and not st["relay_service"], st
            assert st["dial_back_probers"] == 0, st
            assert wait_for(lambda: status_if(e, lambda s: s["dht_read_only"]), 30,
                            "e's DHT to turn read-only (unreachable)")
            old_ext = st["external_addrs"]
            assert old_ext and all(a.startswith(r1.wan_ip + ":") for a in old_ext), st

            # -- 2. network change ---------------------------------------------------------
            seq_before = int(st["metadata_seq"] or 0)
            new_lan = lab.move_host(e_host, r2)
            moved = wait_for(lambda: status_if(
                e, lambda s: s["external_addrs"]
                and all(a.startswith(r2.wan_ip + ":") for a in s["external_addrs"])
                and s["nat_type"] == "eim" and s["relays"]
                and int(s["metadata_seq"] or 0) > seq_before), 120,
                "e to notice the move, learn its new external address and republish")
            assert any(a.startswith(new_lan + ":") for a in moved["listen_addrs"]), moved
            assert moved["reachability"] != "public", moved
            # The republished record carries the new address (read from the DHT by pub2).
            record = wait_for(lambda: _record_has(nodes["pub2"], ids["e"], boot, r2.wan_ip),
                              60, "e's BEP 44 record to carry its new external address")
            assert record["seq"] > seq_before, record
            # And e still reaches its peers (connections migrated or re-dialled).
            pong = wait_for(lambda: e.cli("ping", ids["pub1"], timeout=20), 60,
                            "e to reach pub1 after the move")
            assert pong["rtt_ms"] > 0
        except AssertionError as exc:
            failure: AssertionError | None = exc
        else:
            failure = None
        finally:
            logs = {name: node.stop() for name, node in nodes.items()}
        if failure is not None:
            raise AssertionError(f"{failure}\n===== e\n{logs.get('e', '')[-6000:]}") from None
        for name, log in logs.items():
            assert "Traceback" not in log, f"{name}:\n{log[-4000:]}"
        assert "network change" in logs["e"], logs["e"][-4000:]
        assert "dial-back: reached unsolicited" in logs["pub0"], logs["pub0"][-4000:]
        assert "never arrived" in logs["e"], logs["e"][-4000:]


def _record_has(node: RnnNode, peer_id: str, boot: str, text: str) -> dict[str, Any] | None:
    got = node.cli("dht", "get", peer_id, "--salt", "rnn-meta/1", "--bootstrap", boot,
                   "--port", "0", "--timeout", "15", timeout=30)
    if not got or text not in json.dumps(got.get("value")):
        return None
    return dict(got)
