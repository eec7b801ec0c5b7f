"""Payloads of the node's gossip topics, and the catalog that applies service announcements."""

from __future__ import annotations

import pytest

from rnn_tui.gossip.announcements import (
    AnnouncementCatalog,
    LifecycleEvent,
    NodeLifecycle,
    PeerMetadataUpdate,
    ServiceAction,
    ServiceAnnouncement,
    decode_payload,
)
from rnn_tui.identity import Identity

ALICE = Identity(b"\x01" * 32).peer_id
BOB = Identity(b"\x02" * 32).peer_id


def test_payloads_round_trip() -> None:
    for payload in (
        ServiceAnnouncement(ServiceAction.ADD, "svc-1", {b"n": b"resize", b"k": b"do"}),
        ServiceAnnouncement(ServiceAction.REMOVE, "svc-1", {}),
        PeerMetadataUpdate(("127.0.0.1:30609", "[::1]:30609"), ("relay",)),
        NodeLifecycle(LifecycleEvent.STOPPING, "0.1.0"),
    ):
        assert decode_payload(payload.encode()) == payload


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"garbage", "gossip payload"),
        (b"i1e", "not a dict"),
        (b"d1:k1:ze", "unknown kind"),
        (b"d1:a4:zzzz1:i1:x1:k1:se", "action must be"),
        (b"d1:a3:add1:k1:s1:si1ee", "summary must be a dict"),
        (b"d1:a3:add1:k1:se", "'i'"),
        (b"d1:e4:boom1:k1:l1:v0:e", "event must be"),
        (b"d1:ai5e1:k1:pe", "list of at most 32"),
    ],
)
def test_bad_payloads_name_the_problem(data: bytes, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        decode_payload(data)


def test_removal_cannot_carry_a_summary() -> None:
    with pytest.raises(ValueError, match="no summary"):
        ServiceAnnouncement(ServiceAction.REMOVE, "svc", {b"n": b"x"})


def test_catalog_applies_in_sequence_order_and_removals_stick() -> None:
    catalog = AnnouncementCatalog()
    add = ServiceAnnouncement(ServiceAction.ADD, "svc", {b"n": b"v1"})
    update = ServiceAnnouncement(ServiceAction.UPDATE, "svc", {b"n": b"v2"})
    remove = ServiceAnnouncement(ServiceAction.REMOVE, "svc", {})
    assert catalog.apply(ALICE, 2, update, 0.0)
    assert not catalog.apply(ALICE, 1, add, 0.0)          # older, arrived late
    assert catalog.entries()[0].summary == {b"n": b"v2"}
    assert catalog.apply(BOB, 1, add, 0.0)                 # same id, other owner
    assert len(catalog) == 2
    assert catalog.apply(ALICE, 3, remove, 0.0)
    assert not catalog.apply(ALICE, 2, update, 0.0)        # no resurrection
    assert (ALICE, "svc") not in catalog and (BOB, "svc") in catalog
    catalog.forget_peer(BOB)
    assert len(catalog) == 0


def test_catalog_is_bounded() -> None:
    catalog = AnnouncementCatalog(max_entries=3, max_tombstones=2)
    for k in range(10):
        catalog.apply(ALICE, k + 1, ServiceAnnouncement(ServiceAction.ADD, f"s{k}", {}), 0.0)
    assert len(catalog) == 3
    assert [e.service_id for e in catalog.entries()] == ["s7", "s8", "s9"]
