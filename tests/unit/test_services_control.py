"""Control API handlers for services (called directly; the socket is tested elsewhere)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnn_tui.errors import ServiceError
from rnn_tui.identity import Identity, PeerId
from rnn_tui.services.control_api import ServiceControl
from rnn_tui.services.messages import ServiceSearchQuery, ServiceSearchReply
from rnn_tui.services.model import Service, ServiceKind, ServiceSpecError
from rnn_tui.services.registry import InMemoryServiceRepository, ServiceRegistry
from rnn_tui.services.search import search

OWNER = Identity(b"\x01" * 32).peer_id
FRIEND = Identity(b"\x02" * 32).peer_id
QUIET = Identity(b"\x03" * 32).peer_id


def control(**kw: object) -> ServiceControl:
    registry = ServiceRegistry(InMemoryServiceRepository(), OWNER, clock=lambda: 5.0)
    return ServiceControl(registry, clock=lambda: 10.0, **kw)  # type: ignore[arg-type]


async def test_add_list_show_edit_rm_data(tmp_path: Path) -> None:
    f = tmp_path / "rows.csv"
    f.write_text("a,b\n")
    ctl = control()
    added = await ctl.add({"data": str(f), "description": "rows", "visibility": "allowlist",
                           "allow": [str(FRIEND)], "memory_bytes": 64 << 20})
    assert added["kind"] == "DATA" and added["visibility"]["allowlist"] == [str(FRIEND)]
    assert added["requirements"]["memory_bytes"] == 64 << 20
    assert [s["id"] for s in await ctl.list({"phrase": "rows"})] == [added["id"]]
    assert await ctl.list({"kind": "DOCKER"}) == []
    assert (await ctl.show({"id": added["id"][:6]}))["name"] == "rows.csv"
    edited = await ctl.edit({"id": added["id"], "visibility": "private", "network": True,
                             "interfaces": "- {type: MOUNT, path: /data, direction: OUTPUT}"})
    assert edited["visibility"] == {"mode": "private"}
    assert edited["requirements"]["network_needed"] == 1
    assert [i["path"] for i in edited["interfaces"]] == ["/data"]
    assert (await ctl.verify({"id": added["id"]}))["id"] == added["id"]
    await ctl.rm({"id": added["id"]})
    assert await ctl.list({}) == []


@pytest.mark.parametrize("params, message", [
    ({}, "exactly one source"),
    ({"data": "/x", "git": "file:///y"}, "exactly one source"),
    ({"data": "relative/path"}, "must be an absolute path"),
    ({"data": "/x", "visibility": "friends"}, "'visibility'"),
    ({"data": "/x", "visibility": "allowlist"}, "needs at least one"),
    ({"data": "/x", "allow": ["not-a-peer"]}, "'allow'"),
    ({"data": "/x", "pids": "many"}, "'pids'"),
    ({"data": "/x", "network": "yes"}, "'network'"),
    ({"data": "/x", "interfaces": "[{type: MOUNT, path: rel, direction: INPUT}]"},
     r"parameter 'interfaces'\[0\].*relative"),
    ({"image": "x", "username": "u"}, "'password'"),
    ({"data": "/x", "description": 5}, "'description'"),
    ({"data": "/x", "name": ""}, "'name'"),
])
async def test_bad_params_name_the_parameter(params: dict[str, object], message: str) -> None:
    with pytest.raises(ServiceError, match=message):
        await control().add(params)


async def test_edit_needs_a_change_and_id(tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_bytes(b"1")
    ctl = control()
    added = await ctl.add({"data": str(f)})
    with pytest.raises(ServiceSpecError, match="nothing to change"):
        await ctl.edit({"id": added["id"]})
    with pytest.raises(ServiceError, match="'id' is required"):
        await ctl.show({})


async def test_remote_search_streams_peers_then_cache() -> None:
    theirs = Service.new(FRIEND, "remote-resize", ServiceKind.DOCKER, 1, image_digest="sha256:1",
                         description="resize")
    gossiped = Service.new(QUIET, "resize-old", ServiceKind.DOCKER, 1, image_digest="sha256:2")

    async def ask(peer: PeerId, message: ServiceSearchQuery) -> object:
        if peer == FRIEND:
            return ServiceSearchReply(tuple(search([theirs], message.query)))
        raise ServiceError("not connected")

    ctl = control(peers=lambda: [FRIEND, QUIET], ask=ask)
    ctl.cache.update(QUIET, [gossiped], now=9.0)
    items = [item async for item in ctl.remote({"phrase": "resize", "timeout": 1})]
    assert {"peer": str(QUIET), "error": "not connected"} in items
    found = [(i["service"]["name"], i.get("cached", False)) for i in items if "service" in i]
    assert found == [("remote-resize", False), ("resize-old", True)]
    with pytest.raises(ServiceSpecError, match="timeout"):
        [i async for i in ctl.remote({"timeout": 0})]
