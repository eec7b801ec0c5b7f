"""Interface detection from ``docker inspect`` data and the interfaces label."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rnn_tui.services.interfaces import (
    INTERFACES_LABEL,
    detect_interfaces,
    image_description,
    parse_interfaces_label,
)
from rnn_tui.services.model import InterfaceType, MountDirection, ServiceSpecError


def inspect(config: dict[str, Any]) -> dict[str, Any]:
    return {"Id": "sha256:" + "0" * 64, "Config": config}


def test_plain_image_gets_the_four_streams() -> None:
    found = detect_interfaces(inspect({"WorkingDir": "", "Volumes": None, "Labels": None}))
    assert [i.type for i in found] == [InterfaceType.STDIN, InterfaceType.STDOUT,
                                       InterfaceType.STDERR, InterfaceType.LOGS]


def test_volumes_and_workdir_become_mounts() -> None:
    found = detect_interfaces(inspect({"WorkingDir": "/work", "Volumes": {"/out": {}, "/in": {}}}))
    mounts = [(i.path, i.direction) for i in found if i.type is InterfaceType.MOUNT]
    assert mounts == [("/in", MountDirection.BOTH), ("/out", MountDirection.BOTH),
                      ("/work", MountDirection.BOTH)]


def test_workdir_equal_to_a_volume_is_one_mount_and_root_workdir_none() -> None:
    found = detect_interfaces(inspect({"WorkingDir": "/data", "Volumes": {"/data": {}}}))
    assert [i.path for i in found if i.type is InterfaceType.MOUNT] == ["/data"]
    found = detect_interfaces(inspect({"WorkingDir": "/"}))
    assert not [i for i in found if i.type is InterfaceType.MOUNT]


def test_label_json_overrides_detection() -> None:
    label = json.dumps([{"type": "stdin", "description": "csv rows"},
                        {"type": "MOUNT", "path": "/out", "direction": "output"}])
    found = detect_interfaces(inspect({"WorkingDir": "/work", "Volumes": {"/v": {}},
                                       "Labels": {INTERFACES_LABEL: label}}))
    assert [i.label for i in found] == ["STDIN", "MOUNT:/out(OUTPUT)"]
    assert found[0].description == "csv rows"


def test_label_yaml_is_accepted() -> None:
    text = "- type: STDOUT\n  description: result\n- {type: MOUNT, path: /in, direction: INPUT}\n"
    assert [i.label for i in parse_interfaces_label(text)] == ["STDOUT", "MOUNT:/in(INPUT)"]


@pytest.mark.parametrize("text, expect", [
    ("[{\"type\": \"STDIN\"", "neither JSON"),
    ("- type: [unclosed", "neither JSON"),
    ("{}", "expected a non-empty list"),
    ("[]", "expected a non-empty list"),
    ("[{\"type\": \"SOCKET\"}]", r"\[0\]\.type"),
    ("[{\"type\": \"MOUNT\", \"path\": \"../x\", \"direction\": \"INPUT\"}]", r"\[0\].*relative"),
    ("[{\"type\": \"MOUNT\", \"path\": \"/a/../b\", \"direction\": \"INPUT\"}]", r"\.\."),
    ("[{\"type\": \"MOUNT\", \"path\": \"/a\", \"direction\": \"INPUT\"},"
     " {\"type\": \"MOUNT\", \"path\": \"/a\", \"direction\": \"OUTPUT\"}]", "share a path"),
])
def test_malformed_label_names_the_label(text: str, expect: str) -> None:
    with pytest.raises(ServiceSpecError, match=expect) as info:
        detect_interfaces(inspect({"Labels": {INTERFACES_LABEL: text}}))
    assert INTERFACES_LABEL in str(info.value)


def test_bad_volume_path_is_an_error() -> None:
    with pytest.raises(ServiceSpecError, match="VOLUME"):
        detect_interfaces(inspect({"Volumes": {"relative": {}}}))


def test_description_from_labels() -> None:
    assert image_description(inspect({"Labels": {"org.opencontainers.image.description": "x"}})) == "x"
    assert image_description(inspect({})) == ""
