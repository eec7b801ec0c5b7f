"""NAT type and external address from peers' observations: agreement, spoofing, change."""

from __future__ import annotations

import pytest

from rnn_tui.nat.detect import (
    DetectConfig,
    ExternalAddressChanged,
    LocalAddressesChanged,
    NatDetector,
    NatTypeChanged,
    ObservationRefused,
)
from rnn_tui.nat.model import NatType

EXT = ("203.0.113.100", 40000)


def reporter(i: int) -> tuple[str, int]:
    return (f"198.51.100.{i}", 6881)


def drain(d: NatDetector) -> list:
    out = []
    while (ev := d.next_event()) is not None:
        out.append(ev)
    return out


def test_one_reporter_is_not_enough():
    d = NatDetector()
    d.observe(reporter(1), EXT, 0.0)
    assert d.status.nat_type is NatType.UNKNOWN and d.status.external is None


def test_two_agreeing_reporters_give_eim_and_the_external_address():
    d = NatDetector()
    d.observe(reporter(1), EXT, 0.0)
    d.observe(reporter(2), EXT, 1.0, source="identify")
    assert d.status.nat_type is NatType.EIM
    assert d.status.external == EXT and d.status.reporters == 2
    evs = drain(d)
    assert ExternalAddressChanged(None, EXT) in evs
    assert any(isinstance(e, NatTypeChanged) and e.new is NatType.EIM for e in evs)


def test_different_ports_from_distinct_reporters_mean_symmetric():
    d = NatDetector()
    for i, port in enumerate((40001, 40002, 40003), start=1):
        d.observe(reporter(i), (EXT[0], port), float(i))
    assert d.status.nat_type is NatType.EDM
    assert d.status.external_ip == EXT[0] and d.status.external_port is None


def test_one_reporter_with_many_ids_counts_once():
    """Reporters are IPs: one host posing as many DHT nodes is still one voice."""
    d = NatDetector()
    for port in range(6881, 6900):
        d.observe(("198.51.100.9", port), ("203.0.113.66", 1234), 0.0)
    assert d.status.nat_type is NatType.UNKNOWN and d.status.reporters == 1


@pytest.mark.parametrize("lie", [(EXT[0], 1), ("203.0.113.66", EXT[1])])
def test_a_single_spoofer_cannot_flip_an_established_verdict(lie):
    d = NatDetector()
    d.observe(reporter(1), EXT, 0.0)
    d.observe(reporter(2), EXT, 0.0)
    drain(d)
    d.observe(reporter(66), lie, 1.0)
    assert d.status.nat_type is NatType.EIM and d.status.external == EXT
    assert drain(d) == []


def test_a_single_spoofer_cannot_create_a_verdict_against_one_honest_peer():
    d = NatDetector()
    d.observe(reporter(1), EXT, 0.0)
    d.observe(reporter(66), ("203.0.113.66", 1), 0.0)  # another IP: a tie, no verdict
    assert d.status.nat_type is NatType.UNKNOWN


def test_dial_back_confirms_public_and_expires():
    cfg = DetectConfig(observation_ttl=100.0, dial_back_ttl=50.0)
    d = NatDetector(cfg)
    d.observe(reporter(1), EXT, 0.0)
    d.observe(reporter(2), EXT, 0.0)
    d.dial_back(reporter(3), EXT, 1.0)
    assert d.status.nat_type is NatType.EIM, "one prober alone is not agreement"
    d.dial_back(reporter(4), EXT, 2.0)
    assert d.status.nat_type is NatType.PUBLIC and d.status.dial_back_confirmed
    assert d.dial_back_probers() == 2
    d.observe(reporter(1), EXT, 60.0)
    d.observe(reporter(2), EXT, 60.0)
    d.handle_timer(60.0)
    assert d.status.nat_type is NatType.EIM


def test_observations_expire_to_unknown():
    d = NatDetector(DetectConfig(observation_ttl=10.0))
    d.observe(reporter(1), EXT, 0.0)
    d.observe(reporter(2), EXT, 5.0)
    assert d.get_timer() == 10.0
    d.handle_timer(10.0)
    assert d.status.nat_type is NatType.UNKNOWN  # only one reporter left
    d.handle_timer(15.0)
    assert d.status.reporters == 0 and d.get_timer() is None


def test_new_external_address_is_announced_once_peers_agree():
    d = NatDetector()
    d.observe(reporter(1), EXT, 0.0)
    d.observe(reporter(2), EXT, 0.0)
    drain(d)
    new = ("203.0.113.200", 50000)
    d.observe(reporter(1), new, 10.0)
    assert d.status.external == EXT, "a tie keeps the old verdict"
    d.observe(reporter(3), new, 11.0)
    assert d.status.external == new
    assert ExternalAddressChanged(EXT, new) in drain(d)


def test_local_address_change_wipes_observations():
    d = NatDetector()
    d.set_local_addrs([("10.1.0.2", 4000)], 0.0)
    d.observe(reporter(1), EXT, 0.0)
    d.observe(reporter(2), EXT, 0.0)
    drain(d)
    d.set_local_addrs([("10.1.0.2", 4000)], 1.0)
    assert drain(d) == []
    d.set_local_addrs([("192.168.1.5", 4000)], 2.0)
    evs = drain(d)
    assert isinstance(evs[0], LocalAddressesChanged)
    assert any(isinstance(e, NatTypeChanged) and e.new is NatType.UNKNOWN for e in evs)
    assert d.status.external is None


def test_garbage_observations_are_refused_with_a_reason():
    d = NatDetector()
    d.observe(reporter(1), ("not-an-ip", 5), 0.0)
    d.observe(reporter(2), ("203.0.113.1", 0), 0.0)
    d.observe(reporter(3), ("224.0.0.1", 5), 0.0)
    evs = drain(d)
    assert len(evs) == 3 and all(isinstance(e, ObservationRefused) for e in evs)
    assert "not an ip:port" in evs[0].reason
    assert d.status.reporters == 0


def test_reporter_table_is_bounded():
    d = NatDetector(DetectConfig(max_reporters=10))
    for i in range(50):
        d.observe((f"198.51.{i}.1", 1), EXT, float(i))
    assert d.status.reporters == 10


def test_config_requires_real_agreement():
    with pytest.raises(ValueError, match="min_agree"):
        DetectConfig(min_agree=1)


def test_dial_backs_to_another_address_do_not_make_us_public():
    d = NatDetector()
    d.observe(reporter(1), EXT, 0.0)
    d.observe(reporter(2), EXT, 0.0)
    d.dial_back(reporter(3), ("203.0.113.100", 40001), 1.0)  # a port we are not seen at
    d.dial_back(reporter(4), ("203.0.113.100", 40001), 1.0)
    assert d.status.nat_type is NatType.EIM and not d.status.dial_back_confirmed


def test_one_prober_repeating_itself_counts_once():
    d = NatDetector()
    d.observe(reporter(1), EXT, 0.0)
    d.observe(reporter(2), EXT, 0.0)
    d.dial_back(("198.51.100.9", 1000), EXT, 1.0)
    d.dial_back(("198.51.100.9", 2000), EXT, 2.0)  # same IP, fresh port: one prober
    assert d.status.nat_type is NatType.EIM


def test_network_change_forgets_dial_backs():
    d = NatDetector()
    d.set_local_addrs([("192.168.1.2", 4000)], 0.0)
    d.observe(reporter(1), EXT, 0.0)
    d.observe(reporter(2), EXT, 0.0)
    d.dial_back(reporter(3), EXT, 1.0)
    d.dial_back(reporter(4), EXT, 1.0)
    assert d.status.nat_type is NatType.PUBLIC
    drain(d)
    d.set_local_addrs([("192.168.7.2", 4000)], 2.0)
    assert d.status.nat_type is NatType.UNKNOWN and d.dial_back_probers() == 0
    kinds = {type(e) for e in drain(d)}
    assert {LocalAddressesChanged, NatTypeChanged, ExternalAddressChanged} <= kinds
