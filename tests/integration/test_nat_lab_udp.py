"""The NAT lab, proven with raw UDP and the real sans-IO cores (no QUIC yet).

Each test builds its own namespaces (unique names), runs punch agents inside them and
lets the test process carry the punch messages, as the relay will.  What this proves:

* the routers behave as the NAT types they claim (detection sees EIM vs EDM);
* EIM↔EIM punches directly; EIM↔symmetric fails with a plain punch and succeeds with the
  birthday strategy; symmetric↔symmetric fails both ways (a relay is needed);
* two hosts behind the same NAT meet on their LAN addresses;
* tampered or replayed punch messages are refused and never yield a direct path.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.netlab.lab import NatLab, NatMode, lab_unavailable_reason
from tests.netlab.punch_run import build_pair, run_punch_cell, start_rendezvous

pytestmark = [
    pytest.mark.integration,
    pytest.mark.netns,
    pytest.mark.timeout(90),
    pytest.mark.skipif(lab_unavailable_reason() is not None,
                       reason=lab_unavailable_reason() or ""),
]

FAST = {"punch_timeout": 1.5, "exchange_timeout": 1.0, "timeout": 15.0}


@pytest.fixture
def lab():
    with NatLab() as built:
        yield built


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def test_lab_teardown_removes_namespaces_and_kills_processes():
    with NatLab() as lab:
        router = lab.add_nat(NatMode.EIM)
        host = lab.add_host_behind(router)
        proc = host.popen(["sleep", "300"])
        names = set(lab.namespaces())
        assert names <= _netns_names()
    assert proc.poll() is not None, "a process started in the lab survived close()"
    assert not names & _netns_names(), "lab namespaces survived close()"


def test_lab_teardown_runs_even_when_a_step_fails():
    names: set[str] = set()
    with pytest.raises(RuntimeError, match="boom"):
        with NatLab() as lab:
            lab.add_public_host()
            names = set(lab.namespaces())
            raise RuntimeError("boom")
    assert names and not names & _netns_names()


@pytest.mark.parametrize(("mode", "expected"), [(NatMode.EIM, "eim"),
                                                (NatMode.SYMMETRIC, "edm")])
def test_detection_classifies_the_lab_routers(lab, mode, expected):
    rendezvous = start_rendezvous(lab)
    a, b = build_pair(lab, mode, NatMode.EIM)
    result = run_punch_cell(a, b, rendezvous, **FAST)
    assert result.a.detected == expected, result.describe()
    seen = result.a.first("observed")["seen"]
    assert len(seen) == 2 and all(ip == a.router.wan_ip for ip, _ in seen)
    ports = {port for _, port in seen}
    assert (len(ports) == 1) == (mode is NatMode.EIM), seen


def test_eim_to_eim_punches_directly(lab):
    rendezvous = start_rendezvous(lab)
    a, b = build_pair(lab, NatMode.EIM, NatMode.EIM)
    result = run_punch_cell(a, b, rendezvous, **FAST)
    assert result.ok, result.describe()
    for agent, other in ((result.a, b), (result.b, a)):
        won = agent.succeeded
        assert won["strategy"] == "direct" and won["via"] == 0 and not won["is_lan"]
        assert won["remote"][0] == other.router.wan_ip
        assert agent.done["data"] and all(other.ip in line for line in agent.done["data"])


def test_eim_to_symmetric_plain_punch_fails(lab):
    """The symmetric side pretends to be EIM, so both send plain probes: no path."""
    rendezvous = start_rendezvous(lab)
    a, b = build_pair(lab, NatMode.EIM, NatMode.SYMMETRIC)
    result = run_punch_cell(a, b, rendezvous, claim_b="eim", **FAST)
    assert not result.a.ok and not result.b.ok, result.describe()
    assert result.a.first("PunchStarted")["strategy"] == "direct"
    assert "no probe answered" in result.a.first("PunchFailed")["reason"]


def test_eim_to_symmetric_birthday_punch_succeeds(lab):
    rendezvous = start_rendezvous(lab)
    a, b = build_pair(lab, NatMode.EIM, NatMode.SYMMETRIC)
    result = run_punch_cell(a, b, rendezvous, **FAST)
    assert result.ok, result.describe()
    assert result.a.succeeded["strategy"] == "birthday-easy"
    hard = result.b.succeeded
    assert hard["strategy"] == "birthday-hard"
    assert hard["via"] >= 1, "the hard side wins on one of its extra sockets"
    assert result.b.first("PunchStarted")["sockets"] == 256
    assert result.a.done["data"] and result.b.done["data"]


def test_symmetric_to_symmetric_declines_to_punch(lab):
    rendezvous = start_rendezvous(lab)
    a, b = build_pair(lab, NatMode.SYMMETRIC, NatMode.SYMMETRIC)
    result = run_punch_cell(a, b, rendezvous, **FAST)
    assert not result.a.ok and not result.b.ok
    assert "endpoint-dependent" in result.a.first("PunchFailed")["reason"]
    assert "endpoint-dependent" in result.b.first("PunchFailed")["reason"]
    assert result.a.first("PunchStarted") is None, "no probe is wasted on a hopeless cell"


def test_symmetric_to_symmetric_fails_even_with_a_forced_birthday(lab):
    """Proof that the relay is needed: one side lies to force a birthday punch; it fails."""
    rendezvous = start_rendezvous(lab)
    a, b = build_pair(lab, NatMode.SYMMETRIC, NatMode.SYMMETRIC)
    result = run_punch_cell(a, b, rendezvous, claim_a="eim", **FAST)
    assert not result.a.ok and not result.b.ok, result.describe()
    assert result.a.first("PunchStarted")["strategy"] == "birthday-easy"
    failed = result.a.first("PunchFailed")
    assert failed["probes_sent"] <= 4096 + 200, "the birthday spray stays bounded"


def test_two_hosts_behind_one_nat_meet_on_lan_addresses(lab):
    rendezvous = start_rendezvous(lab)
    a, b = build_pair(lab, NatMode.EIM, None, same_nat=True)
    result = run_punch_cell(a, b, rendezvous, **FAST)
    assert result.ok, result.describe()
    assert result.a.succeeded["is_lan"] and result.a.succeeded["remote"][0] == b.ip
    assert result.b.succeeded["is_lan"] and result.b.succeeded["remote"][0] == a.ip


def test_public_to_nat_connects_directly(lab):
    rendezvous = start_rendezvous(lab)
    a, b = build_pair(lab, None, NatMode.EIM)
    result = run_punch_cell(a, b, rendezvous, **FAST)
    assert result.ok, result.describe()
    assert result.a.succeeded["remote"][0] == b.router.wan_ip
    assert result.b.succeeded["remote"] == [a.ip, result.a.first("observed")["seen"][0][1]]


def test_tampered_connect_nonce_breaks_the_punch_instead_of_misleading_it(lab):
    """A relay that alters the nonce makes the secrets differ: every probe is rejected."""

    def tamper(direction: str, hex_msg: str) -> str:
        raw = bytearray(bytes.fromhex(hex_msg))
        if direction == "b->a" and raw[0] == 0x01:  # the CONNECT reply: flip a nonce byte
            raw[1 + 8] ^= 0xFF
        return raw.hex()

    rendezvous = start_rendezvous(lab)
    a, b = build_pair(lab, NatMode.EIM, NatMode.EIM)
    result = run_punch_cell(a, b, rendezvous, tamper=tamper, **FAST)
    assert not result.a.ok and not result.b.ok, result.describe()
    assert result.a.done["probes_rejected"] > 0 and result.b.done["probes_rejected"] > 0


def test_replayed_sync_is_refused_with_a_reason(lab):
    def replay(direction: str, hex_msg: str) -> str | list[str]:
        if direction == "a->b" and hex_msg.startswith("02"):
            return [hex_msg, hex_msg]
        return hex_msg

    rendezvous = start_rendezvous(lab)
    a, b = build_pair(lab, NatMode.EIM, NatMode.EIM)
    result = run_punch_cell(a, b, rendezvous, tamper=replay, **FAST)
    assert result.ok, result.describe()
    refused = result.b.first("PunchMessageRefused")
    assert refused is not None and "replayed SYNC" in refused["reason"]
