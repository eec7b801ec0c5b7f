"""The core end to end in memory: cores wired by hand, time advanced by hand."""

from __future__ import annotations

import random

from dht_helpers import make_core

from rnn_tui.dht.codec import decode, encode
from rnn_tui.dht.core import DhtConfig, DhtCore
from rnn_tui.dht.events import (
    ExternalAddressChanged,
    ItemPut,
    MutableFound,
    NodeIdChanged,
    OperationCompleted,
    PingResult,
)
from rnn_tui.dht.secure_id import is_secure_for
from rnn_tui.identity import Identity


class Wire:
    """Delivers datagrams between cores instantly; time only moves when told."""

    def __init__(self) -> None:
        self.cores: dict[tuple[str, int], DhtCore] = {}
        self.now = 0.0
        self.dropped: set[tuple[str, int]] = set()

    def add(self, addr: tuple[str, int], seed: int, **config) -> DhtCore:
        core = DhtCore(random.Random(seed), self.now, DhtConfig(**config))
        self.cores[addr] = core
        return core

    def flush(self) -> None:
        moved = True
        while moved:
            moved = False
            for src, core in list(self.cores.items()):
                for data, dst in core.datagrams_to_send():
                    moved = True
                    if dst in self.cores and dst not in self.dropped:
                        self.cores[dst].receive_datagram(data, src, self.now)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for core in self.cores.values():
            if core.get_timer() <= self.now:
                core.handle_timer(self.now)
        self.flush()


def events(core: DhtCore) -> list:
    out = []
    while (event := core.next_event()) is not None:
        out.append(event)
    return out


def test_ping_between_two_cores() -> None:
    wire = Wire()
    a = wire.add(("10.0.0.1", 1), 1)
    b = wire.add(("10.0.0.2", 1), 2)
    op = a.start_ping(("10.0.0.2", 1), wire.now)
    wire.flush()
    assert events(a) == [OperationCompleted(op, PingResult(b.node_id, ("10.0.0.2", 1)))]
    assert b.node_id in a.routing and a.node_id in b.routing


def test_timeout_then_retry_then_failure() -> None:
    wire = Wire()
    a = wire.add(("10.0.0.1", 1), 1, query_timeout=2.0, query_retries=1)
    op = a.start_ping(("10.0.0.9", 1), wire.now)
    assert len(a.datagrams_to_send()) == 1
    assert a.get_timer() == 2.0
    a.handle_timer(2.0)
    assert len(a.datagrams_to_send()) == 1  # the retry
    assert events(a) == []
    a.handle_timer(4.0)
    assert events(a) == [OperationCompleted(op, PingResult(None, ("10.0.0.9", 1)))]
    assert a.stats.timeouts == 1 and a.stats.retries == 1


def test_late_unmatched_and_spoofed_replies_are_dropped() -> None:
    a = make_core(query_retries=0)
    a.start_ping(("10.0.0.9", 1), 0.0)
    (payload, _), = a.datagrams_to_send()
    tid = decode(payload)[b"t"]
    reply = encode({b"t": tid, b"y": b"r", b"r": {b"id": b"R" * 20}})
    a.receive_datagram(reply, ("10.6.6.6", 1), 0.5)   # right tid, wrong address
    assert a.stats.dropped_unmatched == 1 and len(a.routing) == 0
    a.handle_timer(2.0)                                # times out
    a.receive_datagram(reply, ("10.0.0.9", 1), 2.5)   # late
    assert a.stats.dropped_unmatched == 2 and len(a.routing) == 0


def test_put_then_get_mutable_across_a_small_network() -> None:
    wire = Wire()
    addrs = [(f"10.0.0.{i + 1}", 1) for i in range(12)]
    cores = [wire.add(addr, i) for i, addr in enumerate(addrs)]
    for core in cores[1:]:
        core.start_bootstrap([addrs[0]], wire.now)
        wire.flush()
    cores[0].start_bootstrap([addrs[1]], wire.now)
    wire.flush()
    for core in cores:
        events(core)
    ident = Identity(bytes(32))
    op = cores[3].start_put_mutable(ident, b"value", b"salt", wire.now)
    wire.flush()
    (done,) = events(cores[3])
    assert isinstance(done.result, ItemPut) and done.op_id == op
    assert done.result.stored == 8 and done.result.seq == 1
    op = cores[9].start_get_mutable(ident.public_key, b"salt", wire.now)
    wire.flush()
    (done,) = events(cores[9])
    assert isinstance(done.result, MutableFound)
    assert done.result.item is not None and done.result.item.value == b"value"
    # A second put without a seq bumps it, found from the network.
    cores[5].start_put_mutable(ident, b"value2", b"salt", wire.now)
    wire.flush()
    (done,) = events(cores[5])
    assert done.result.seq == 2 and done.result.stored == 8


def test_external_ip_votes_trigger_bep42_id_regeneration() -> None:
    core = make_core(ip_votes_needed=3)
    old = core.node_id
    for i in range(3):
        core.start_ping((f"198.51.100.{i + 1}", 1), 0.0)
    sent = core.datagrams_to_send()
    public_ip = bytes([81, 2, 3, 4]) + (6881).to_bytes(2, "big")
    for data, addr in sent:
        tid = decode(data)[b"t"]
        core.receive_datagram(encode({b"t": tid, b"y": b"r", b"ip": public_ip,
                                      b"r": {b"id": bytes([i + 1]) * 20}}), addr, 0.1)
    kinds = [type(e) for e in events(core)]
    assert ExternalAddressChanged in kinds and NodeIdChanged in kinds
    assert core.external_ip == "81.2.3.4"
    assert core.node_id != old and is_secure_for(core.node_id, "81.2.3.4")
    assert core.routing.own_id == core.node_id


def test_loopback_external_ip_keeps_the_random_id() -> None:
    core = make_core(ip_votes_needed=1)
    old = core.node_id
    core.start_ping(("127.0.0.2", 1), 0.0)
    (data, addr), = core.datagrams_to_send()
    core.receive_datagram(encode({b"t": decode(data)[b"t"], b"y": b"r",
                                  b"ip": bytes([127, 0, 0, 1, 0, 1]), b"r": {b"id": b"x" * 20}}),
                          addr, 0.1)
    assert [type(e) for e in events(core)].count(ExternalAddressChanged) == 1
    assert core.node_id == old


def test_saved_nodes_are_pinged_and_exported() -> None:
    wire = Wire()
    a = wire.add(("10.0.0.1", 1), 1)
    b = wire.add(("10.0.0.2", 1), 2)
    a.add_saved_nodes([(b.node_id, "10.0.0.2", 1), (b"bad", "10.0.0.3", 1)], wire.now)
    wire.flush()
    assert a.routing_nodes() == [(b.node_id, "10.0.0.2", 1)]


def test_bucket_refresh_runs_from_the_maintenance_timer() -> None:
    wire = Wire()
    a = wire.add(("10.0.0.1", 1), 1)
    wire.add(("10.0.0.2", 1), 2)
    a.start_ping(("10.0.0.2", 1), wire.now)
    wire.flush()
    sent_before = a.stats.queries_out
    wire.advance(15 * 60.0 + 61.0)
    assert a.stats.queries_out > sent_before  # find_node refresh of the stale bucket
