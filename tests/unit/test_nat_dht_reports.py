"""The DHT core hands NAT detection every reply's KRPC ``ip`` with the responder's address.

Why: NAT detection needs each report (the port differs per responder behind a symmetric
NAT), not only the IP the DHT agreed on.  No packet leaves: the core is sans-IO.
"""

from __future__ import annotations

from dht_helpers import make_core

from rnn_tui.dht.codec import decode, encode
from rnn_tui.nat.detect import NatDetector
from rnn_tui.nat.model import NatType


def _reply(core, ports: list[int], *, ip: bytes = bytes([203, 0, 113, 100])) -> None:
    for i, _ in enumerate(ports):
        core.start_ping((f"198.51.100.{i + 1}", 6881), 0.0)
    for (data, addr), port in zip(core.datagrams_to_send(), ports, strict=True):
        node_id = bytes([int(addr[0].rsplit(".", 1)[1])]) * 20  # distinct per responder
        core.receive_datagram(encode({b"t": decode(data)[b"t"], b"y": b"r",
                                      b"ip": ip + port.to_bytes(2, "big"),
                                      b"r": {b"id": node_id}}), addr, 0.1)


def test_each_reply_with_an_ip_field_is_reported_with_its_responder() -> None:
    core = make_core()
    _reply(core, [40001, 40002])
    reports = list(core.address_reports)
    assert sorted(reports) == [(("198.51.100.1", 6881), ("203.0.113.100", 40001)),
                               (("198.51.100.2", 6881), ("203.0.113.100", 40002))]


def test_reports_feed_the_detector_to_a_verdict() -> None:
    sym, eim = make_core(), make_core()
    _reply(sym, [40001, 40002, 40003])
    _reply(eim, [40001, 40001, 40001])
    verdicts = []
    for core in (sym, eim):
        det = NatDetector()
        for responder, reported in core.address_reports:
            det.observe(responder, reported, 1.0, "krpc")
        verdicts.append(det.status.nat_type)
    assert verdicts == [NatType.EDM, NatType.EIM]


def test_replies_without_an_ip_field_report_nothing_and_the_queue_is_bounded() -> None:
    core = make_core()
    core.start_ping(("198.51.100.9", 6881), 0.0)
    (data, addr), = core.datagrams_to_send()
    core.receive_datagram(encode({b"t": decode(data)[b"t"], b"y": b"r",
                                  b"r": {b"id": b"z" * 20}}), addr, 0.1)
    assert not core.address_reports
    assert core.address_reports.maxlen is not None and core.address_reports.maxlen <= 256
