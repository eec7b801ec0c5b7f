"""Real ``rnn start --headless`` nodes in the NAT lab (the product, not a stand-in).

What the node wires today is exercised: a node behind each NAT type bootstraps from a
public node, dials it (the NAT side dials), and both list the other as a connected peer
on a direct path; the public node sees the NAT router's address, proving the traffic
crossed the NAT.  The relayed and punched cells run with node agents
(test_nat_lab_quic.py) until node.py wires ``rnn_tui.nat.service.NatService``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.netlab.lab import NatLab, NatMode, lab_unavailable_reason
from tests.netlab.rnn_nodes import RnnNode

pytestmark = [
    pytest.mark.integration,
    pytest.mark.netns,
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(lab_unavailable_reason() is not None,
                       reason=lab_unavailable_reason() or ""),
]


def connected(node: RnnNode) -> list[dict]:
    return list(node.cli("peers", "--connected") or [])


@pytest.mark.parametrize("mode", [NatMode.EIM, NatMode.SYMMETRIC])
def test_node_behind_nat_dials_the_public_node_directly(tmp_path: Path, mode: NatMode) -> None:
    with NatLab() as lab:
        pub_host = lab.add_public_host()
        router = lab.add_nat(mode)
        nat_host = lab.add_host_behind(router)
        public = RnnNode(pub_host, tmp_path / "public")
        nodes = [public]
        try:
            pub_status = public.wait_status()
            natted = RnnNode(nat_host, tmp_path / "natted",
                             bootstrap=f"{pub_host.ip}:{public.port()}")
            nodes.append(natted)
            nat_status = natted.wait_status()
            end = time.monotonic() + 60
            while time.monotonic() < end:
                if connected(natted) and connected(public):
                    break
                time.sleep(0.5)
            (seen_by_nat,) = [p for p in connected(natted)
                              if p["peer_id"] == pub_status["peer_id"]]
            (seen_by_pub,) = [p for p in connected(public)
                              if p["peer_id"] == nat_status["peer_id"]]
            assert seen_by_nat["path"] == "direct" and seen_by_pub["path"] == "direct"
            # The public node sees the router's WAN address: the packets crossed the NAT.
            assert any(a.startswith(f"{router.wan_ip}:") for a in seen_by_pub["addresses"]), \
                seen_by_pub
        finally:
            logs = [n.stop() for n in nodes]
        assert all("Traceback" not in log for log in logs), "\n".join(logs)
