"""The NAT matrix with real QUIC nodes in the lab: path type asserted, data exchanged.

Each cell builds a fresh lab with two public relay nodes (observers for NAT detection and
relays), then two peers.  Cells and expectations (issue 5):

* public ↔ NAT: direct, the NAT side dials;
* EIM ↔ EIM: relayed first, then direct via a punch;
* EIM ↔ symmetric: direct via a birthday punch (the hard side on an extra socket);
* symmetric ↔ symmetric: relayed, and working;
* two hosts behind one NAT: direct over their LAN addresses.

``RNN_NAT_LAB_RUNS`` repeats every cell (default 1 in the suite; bench/nat_lab.py --quic
runs 10 and reports rates and timings).
"""

from __future__ import annotations

import os

import pytest

from tests.netlab.lab import NatMode, lab_unavailable_reason
from tests.netlab.node_run import Agent, run_quic_cell

RUNS = int(os.environ.get("RNN_NAT_LAB_RUNS", "1"))

pytestmark = [
    pytest.mark.integration,
    pytest.mark.netns,
    pytest.mark.slow,
    pytest.mark.timeout(120 * RUNS),
    pytest.mark.skipif(lab_unavailable_reason() is not None,
                       reason=lab_unavailable_reason() or ""),
]


def exchanged(agent: Agent) -> list[dict]:
    return agent.all("exchanged")


def run_cell(mode_a: NatMode | None, mode_b: NatMode | None, same_nat: bool = False,
             direct_dial: bool = False) -> tuple[Agent, Agent, str]:
    return run_quic_cell(mode_a, mode_b, same_nat, direct_dial)


@pytest.mark.parametrize("run", range(RUNS))
def test_public_to_nat_is_direct_and_the_nat_side_dials(run):
    public, natted, story = run_cell(None, NatMode.EIM, direct_dial=True)
    (ex,) = exchanged(natted)
    assert ex["ok"] and ex["path"] == "direct" and ex["outbound"], story
    assert [e["path"] for e in public.all("echoed")] == ["direct"], story


@pytest.mark.parametrize("run", range(RUNS))
def test_eim_to_eim_goes_direct_by_punching(run):
    a, b, story = run_cell(NatMode.EIM, NatMode.EIM)
    assert a.all("ready")[0]["detected"] == "eim" and b.all("ready")[0]["detected"] == "eim"
    (outcome,) = a.all("punch-outcome")
    assert outcome["path"] == "direct" and outcome["strategy"] == "direct", story
    assert [e["path"] for e in exchanged(a)] == ["relayed", "direct"], story
    assert all(e["ok"] for e in exchanged(a)), story
    assert [e["path"] for e in b.all("echoed")] == ["relayed", "direct"], story


@pytest.mark.parametrize("run", range(RUNS))
def test_eim_to_symmetric_goes_direct_by_birthday_punch(run):
    a, b, story = run_cell(NatMode.EIM, NatMode.SYMMETRIC)
    assert b.all("ready")[0]["detected"] == "edm", story
    (outcome,) = a.all("punch-outcome")
    assert outcome["path"] == "direct" and outcome["strategy"] == "birthday-easy", story
    (started,) = b.all("PunchStarted")
    assert started["strategy"] == "birthday-hard" and started["sockets"] == 256, story
    # The winner is one of the 256 extra sockets, or (1 time in 257) the node socket,
    # whose own plain probes opened one more mapping towards the easy side.
    (won,) = b.all("PunchSucceeded")
    assert 0 <= won["via"] <= 256, story
    assert [e["path"] for e in exchanged(a)] == ["relayed", "direct"], story
    assert all(e["ok"] for e in exchanged(a)), story
    assert [e["path"] for e in b.all("echoed")] == ["relayed", "direct"], story


@pytest.mark.parametrize("run", range(RUNS))
def test_symmetric_to_symmetric_stays_relayed_and_works(run):
    a, b, story = run_cell(NatMode.SYMMETRIC, NatMode.SYMMETRIC)
    (outcome,) = a.all("punch-outcome")
    assert outcome["path"] == "relayed" and "endpoint-dependent" in outcome["reason"], story
    assert [e["path"] for e in exchanged(a)] == ["relayed", "relayed"], story
    assert all(e["ok"] for e in exchanged(a)), story
    assert [e["path"] for e in b.all("echoed")] == ["relayed", "relayed"], story


@pytest.mark.parametrize("run", range(RUNS))
def test_two_hosts_behind_one_nat_connect_over_the_lan(run):
    a, b, story = run_cell(NatMode.EIM, None, same_nat=True)
    (outcome,) = a.all("punch-outcome")
    assert outcome["path"] == "direct", story
    direct = exchanged(a)[-1]
    assert direct["path"] == "direct" and direct["ok"], story
    assert direct["remote"][0] == b.host.ip, "the direct path is the LAN address"
