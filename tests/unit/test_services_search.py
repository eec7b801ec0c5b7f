"""Local search, catalogs per requester, compact summaries, wire messages, remote cache."""

from __future__ import annotations

import asyncio

import pytest

from rnn_tui.errors import RemoteProtocolError, RequestTimeout
from rnn_tui.identity import Identity, PeerId
from rnn_tui.services.messages import (
    ServiceCatalogQuery,
    ServiceCatalogReply,
    ServiceSearchQuery,
    ServiceSearchReply,
)
from rnn_tui.services.model import (
    Interface,
    InterfaceType,
    MountDirection,
    Service,
    ServiceKind,
    ServiceSpecError,
    Visibility,
    VisibilityMode,
)
from rnn_tui.services.remote import RemoteCatalogCache, answer_request, fan_out_search
from rnn_tui.services.search import SearchQuery, catalog_for, compact_summary, search
from rnn_tui.transport.messages import REGISTRY, bencode

OWNER = Identity(b"\x01" * 32).peer_id
FRIEND = Identity(b"\x02" * 32).peer_id
STRANGER = Identity(b"\x03" * 32).peer_id
DIGEST = "sha256:" + "b" * 64


PUBLIC = Visibility()


def svc(name: str, desc: str = "", vis: Visibility = PUBLIC, owner: PeerId = OWNER,
        kind: ServiceKind = ServiceKind.DOCKER, mount: bool = False) -> Service:
    ifaces = [Interface(InterfaceType.STDIN), Interface(InterfaceType.STDOUT)]
    if mount:
        ifaces.append(Interface(InterfaceType.MOUNT, "/in", MountDirection.INPUT))
    extra = {"image_digest": DIGEST} if kind is ServiceKind.DOCKER else {"content_hash": "sha256:00"}
    return Service.new(owner, name, kind, 1, description=desc, interfaces=tuple(ifaces),
                       visibility=vis, **extra)


SERVICES = [
    svc("csv-clean", "clean CSV rows", mount=True),
    svc("image-resize", "resize images with imagemagick"),
    svc("secret-tool", "internal", Visibility(VisibilityMode.PRIVATE)),
    svc("friends-only", "resize for friends", Visibility(VisibilityMode.ALLOWLIST, frozenset({FRIEND}))),
    svc("species", "pollinator species table", kind=ServiceKind.DATA),
]


def names(services: list[Service]) -> list[str]:
    return [s.name for s in services]


def test_catalog_depends_on_requester() -> None:
    assert names(catalog_for(SERVICES, STRANGER)) == ["csv-clean", "image-resize", "species"]
    assert "friends-only" in names(catalog_for(SERVICES, FRIEND))
    assert "secret-tool" not in names(catalog_for(SERVICES, FRIEND))
    assert len(catalog_for(SERVICES, OWNER)) == len(SERVICES)
    assert len(catalog_for(SERVICES, None)) == len(SERVICES)


def test_phrase_matches_all_words_and_ranks_name_first() -> None:
    found = search(SERVICES, SearchQuery("resize"), FRIEND)
    assert names(found) == ["image-resize", "friends-only"]
    assert names(search(SERVICES, SearchQuery("resize friends"), FRIEND)) == ["friends-only"]
    assert names(search(SERVICES, SearchQuery("RESIZE"), STRANGER)) == ["image-resize"]


def test_hidden_service_never_matches_a_stranger() -> None:
    assert search(SERVICES, SearchQuery("secret"), STRANGER) == []
    assert search(SERVICES, SearchQuery("friends"), STRANGER) == []


def test_filter_by_kind_and_interface() -> None:
    assert names(search(SERVICES, SearchQuery(kind=ServiceKind.DATA), STRANGER)) == ["species"]
    assert names(search(SERVICES, SearchQuery(interface=InterfaceType.MOUNT), STRANGER)) == ["csv-clean"]
    assert names(search(SERVICES, SearchQuery("MOUNT:/in"), STRANGER)) == ["csv-clean"]


def test_query_validation() -> None:
    with pytest.raises(ServiceSpecError, match="limit"):
        SearchQuery(limit=0)
    with pytest.raises(ServiceSpecError, match="phrase"):
        SearchQuery("x" * 300)
    with pytest.raises(ServiceSpecError):
        SearchQuery.from_dict({"kind": "VM"})


def test_compact_summary_fits_bep44_and_hides_non_public() -> None:
    many = [svc(f"service-number-{i:03d}", "d") for i in range(200)] + SERVICES
    summary = compact_summary(many)
    assert len(bencode(summary)) <= 1000
    assert summary["n"] == 203  # 200 + 3 public
    assert 0 < len(summary["s"]) < 203
    small = compact_summary(SERVICES)
    assert sorted(e["n"] for e in small["s"]) == ["csv-clean", "image-resize", "species"]
    csv = next(e for e in small["s"] if e["n"] == "csv-clean")
    assert csv["f"] == "imo" and csv["k"] == "DO"


def test_messages_round_trip_through_the_registry() -> None:
    for message in (ServiceCatalogQuery(), ServiceSearchQuery(SearchQuery("a b", ServiceKind.DATA,
                                                                          InterfaceType.STDOUT, 7))):
        assert REGISTRY.decode(message.TYPE, message.encode()) == message
    reply = ServiceCatalogReply(tuple(catalog_for(SERVICES, FRIEND)))
    decoded = REGISTRY.decode(reply.TYPE, reply.encode())
    assert isinstance(decoded, ServiceCatalogReply)
    assert [s.id for s in decoded.services] == [s.id for s in reply.services]
    assert decoded.dropped == 0
    allow = next(s for s in decoded.services if s.name == "friends-only")
    assert allow.visibility.allowlist == frozenset()  # the allowlist itself is not published


def test_bad_entries_are_dropped_not_fatal() -> None:
    good = svc("ok").to_dict(public=True)
    forged = svc("ok2").to_dict(public=True)
    forged["id"] = "0" * 32
    body = bencode({"s": [good, forged, {"nonsense": 1}]})
    decoded = ServiceSearchReply.decode(body)
    assert [s.name for s in decoded.services] == ["ok"] and decoded.dropped == 2
    with pytest.raises(RemoteProtocolError):
        ServiceSearchReply.decode(b"not bencode")
    with pytest.raises(RemoteProtocolError, match="service_search"):
        ServiceSearchQuery.decode(bencode({"phrase": "x", "limit": 0}))


def test_answer_request_filters_by_proved_peer() -> None:
    reply = answer_request(ServiceSearchQuery(SearchQuery("resize")), SERVICES, STRANGER)
    assert isinstance(reply, ServiceSearchReply) and names(list(reply.services)) == ["image-resize"]
    catalog = answer_request(ServiceCatalogQuery(), SERVICES, FRIEND)
    assert isinstance(catalog, ServiceCatalogReply) and len(catalog.services) == 4


def test_cache_keeps_only_own_services_and_expires() -> None:
    cache = RemoteCatalogCache(ttl_s=100)
    other = svc("theirs", owner=FRIEND)
    assert cache.update(FRIEND, [other, SERVICES[0]], now=0) == 1  # OWNER's entry is not FRIEND's to announce
    assert names(cache.search(SearchQuery("theirs"), now=50)) == ["theirs"]
    assert cache.services(now=101) == [] and cache.peers() == []


async def test_fan_out_streams_answers_and_times_out() -> None:
    fast = svc("fast-one", owner=FRIEND)

    async def ask(peer: PeerId, message: ServiceSearchQuery) -> object:
        if peer == FRIEND:
            return ServiceSearchReply(tuple(search([fast], message.query)))
        if peer == STRANGER:
            raise RequestTimeout("peer closed the stream")
        await asyncio.sleep(10)
        return None

    answers = [a async for a in fan_out_search([OWNER, FRIEND, STRANGER], ask, SearchQuery("fast"),
                                               timeout_s=0.2)]
    by_peer = {a.peer: a for a in answers}
    assert names(list(by_peer[FRIEND].services)) == ["fast-one"]
    assert by_peer[STRANGER].error == "peer closed the stream"
    assert by_peer[OWNER].error is not None and "no answer" in by_peer[OWNER].error
    assert answers[-1].peer == OWNER  # the slow one arrives last
