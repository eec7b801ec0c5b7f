"""Service model: ids, validation, dict round trips, visibility."""

from __future__ import annotations

import json

import pytest

from rnn_tui.identity import Identity
from rnn_tui.services.model import (
    Interface,
    InterfaceType,
    MountDirection,
    Requirements,
    Service,
    ServiceKind,
    ServiceSpecError,
    Visibility,
    VisibilityMode,
    service_id,
    validate_mount_path,
)

OWNER = Identity(b"\x01" * 32).peer_id
OTHER = Identity(b"\x02" * 32).peer_id
THIRD = Identity(b"\x03" * 32).peer_id


def docker_service(**kw: object) -> Service:
    fields: dict[str, object] = {"image_ref": "rnn/base:latest", "image_digest": "sha256:" + "a" * 64}
    fields.update(kw)
    return Service.new(OWNER, str(fields.pop("name", "tool")), ServiceKind.DOCKER, 100, **fields)


def test_service_id_is_stable_and_depends_on_owner_and_name() -> None:
    assert service_id(OWNER, "tool") == service_id(OWNER, "tool")
    assert len(service_id(OWNER, "tool")) == 32
    assert service_id(OWNER, "tool") != service_id(OTHER, "tool")
    assert service_id(OWNER, "tool") != service_id(OWNER, "tool2")
    assert docker_service().id == service_id(OWNER, "tool")


@pytest.mark.parametrize("path", ["data", "./data", "", "/a/../etc", "/..", "/"])
def test_bad_mount_paths_are_refused(path: str) -> None:
    with pytest.raises(ServiceSpecError, match="MOUNT|mount"):
        Interface(InterfaceType.MOUNT, path, MountDirection.INPUT)


def test_mount_path_is_normalised_and_message_names_the_path() -> None:
    assert validate_mount_path("/data//in/") == "/data/in"
    with pytest.raises(ServiceSpecError, match=r"'in/x' is relative"):
        validate_mount_path("in/x")
    with pytest.raises(ServiceSpecError, match=r"contains '\.\.'"):
        validate_mount_path("/data/../../etc")


def test_non_mount_interfaces_carry_no_path() -> None:
    with pytest.raises(ServiceSpecError, match="only a MOUNT"):
        Interface(InterfaceType.STDIN, "/x")
    with pytest.raises(ServiceSpecError, match="direction"):
        Interface(InterfaceType.MOUNT, "/x")


def test_docker_needs_digest_and_data_needs_hash() -> None:
    with pytest.raises(ServiceSpecError, match="image digest"):
        Service.new(OWNER, "x", ServiceKind.DOCKER, 0)
    with pytest.raises(ServiceSpecError, match="content hash"):
        Service.new(OWNER, "x", ServiceKind.DATA, 0)


def test_duplicate_mount_paths_refused() -> None:
    m = Interface(InterfaceType.MOUNT, "/d", MountDirection.INPUT)
    with pytest.raises(ServiceSpecError, match="share a path"):
        docker_service(interfaces=(m, Interface(InterfaceType.MOUNT, "/d", MountDirection.OUTPUT)))


def test_requirements_validate_integers() -> None:
    with pytest.raises(ServiceSpecError, match="memory_bytes"):
        Requirements(memory_bytes=10)
    with pytest.raises(ServiceSpecError, match="pids"):
        Requirements(pids=True)  # a bool is not a count
    with pytest.raises(ServiceSpecError, match="network_needed"):
        Requirements.from_dict({"network_needed": "yes"})


def test_round_trip_through_json_keeps_everything() -> None:
    service = docker_service(
        description="does things", version="2.1",
        interfaces=(Interface(InterfaceType.STDIN), Interface(InterfaceType.MOUNT, "/in",
                                                               MountDirection.INPUT, "inputs")),
        requirements=Requirements(cpu_millis=500, memory_bytes=64 << 20, network_needed=True),
        visibility=Visibility(VisibilityMode.ALLOWLIST, frozenset({OTHER})), source="dir:/x")
    again = Service.from_dict(json.loads(json.dumps(service.to_dict())))
    assert again == service


def test_public_form_hides_local_fields() -> None:
    service = Service.new(OWNER, "d", ServiceKind.DATA, 0, content_hash="sha256:00",
                          data_path="/home/me/secret", source="data:/home/me/secret",
                          visibility=Visibility(VisibilityMode.ALLOWLIST, frozenset({OTHER})))
    public = service.to_dict(public=True)
    assert "data_path" not in public and "source" not in public
    assert public["visibility"] == {"mode": "allowlist"}
    assert "/home/me" not in json.dumps(public)
    assert Service.from_dict(public).content_hash == "sha256:00"


def test_forged_id_is_refused() -> None:
    data = docker_service().to_dict()
    data["id"] = service_id(OTHER, "tool")
    with pytest.raises(ServiceSpecError, match=r"service\.id"):
        Service.from_dict(data)


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.update(kind="VM"), "service.kind"),
    (lambda d: d.update(owner="nope"), "service.owner"),
    (lambda d: d.update(interfaces=[{"type": "MOUNT", "path": "rel", "direction": "INPUT"}]),
     r"service\.interfaces\[0\]"),
    (lambda d: d.update(extra=1), "unknown key"),
    (lambda d: d.update(created=-1), "service.created"),
    (lambda d: d["requirements"].update(pids=0), r"requirements\.pids"),
])
def test_from_dict_names_the_bad_field(mutate, field: str) -> None:  # type: ignore[no-untyped-def]
    data = docker_service().to_dict()
    mutate(data)
    with pytest.raises(ServiceSpecError, match=field):
        Service.from_dict(data)


def test_visibility_admits() -> None:
    public = Visibility()
    allow = Visibility(VisibilityMode.ALLOWLIST, frozenset({OTHER}))
    private = Visibility(VisibilityMode.PRIVATE)
    assert public.admits(THIRD, OWNER)
    assert allow.admits(OTHER, OWNER) and not allow.admits(THIRD, OWNER)
    assert allow.admits(OWNER, OWNER) and private.admits(OWNER, OWNER)
    assert not private.admits(OTHER, OWNER)
    with pytest.raises(ServiceSpecError, match="allowlist"):
        Visibility(VisibilityMode.PUBLIC, frozenset({OTHER}))


def test_with_changes_keeps_identity() -> None:
    service = docker_service()
    edited = service.with_changes(200, description="new")
    assert edited.id == service.id and edited.updated == 200 and edited.created == 100
    with pytest.raises(ServiceSpecError, match="cannot change"):
        service.with_changes(200, name="other")
