"""Interface detection from an image's configuration (pure: takes ``docker inspect`` data).

Rules, after the original node, with a declared label taking precedence:

1. STDIN, STDOUT, STDERR and LOGS are always offered;
2. a MOUNT (direction BOTH) for each ``VOLUME`` and for ``WorkingDir`` (unless it is ``/``);
3. if the image carries the label ``io.remote-network.interfaces`` (a JSON or YAML list of
   interface mappings), that list *replaces* rules 1 and 2 entirely: the author knows
   better than a heuristic which mounts are inputs and which are outputs.

Why pure: detection is the part with edge cases (YAML vs JSON, bad paths, duplicates);
keeping it free of the Docker SDK lets unit tests cover it exhaustively, while the
integration tests check the real ``docker inspect`` shape once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from rnn_tui.services.model import (
    Interface,
    InterfaceType,
    MountDirection,
    ServiceSpecError,
    validate_mount_path,
)

__all__ = ["INTERFACES_LABEL", "DESCRIPTION_LABEL", "detect_interfaces", "parse_interfaces_label",
           "image_description", "image_version"]

INTERFACES_LABEL = "io.remote-network.interfaces"
DESCRIPTION_LABEL = "io.remote-network.description"
_OCI_DESCRIPTION = "org.opencontainers.image.description"
_OCI_VERSION = "org.opencontainers.image.version"

_ALWAYS = (InterfaceType.STDIN, InterfaceType.STDOUT, InterfaceType.STDERR, InterfaceType.LOGS)


def _config(inspect: Mapping[str, Any]) -> Mapping[str, Any]:
    config = inspect.get("Config") or {}
    return config if isinstance(config, Mapping) else {}


def _labels(inspect: Mapping[str, Any]) -> Mapping[str, Any]:
    labels = _config(inspect).get("Labels") or {}
    return labels if isinstance(labels, Mapping) else {}


def parse_interfaces_label(text: str, where: str = f"label {INTERFACES_LABEL}") -> tuple[Interface, ...]:
    """Parse the label's value: JSON first, then YAML; a list of interface mappings."""
    try:
        data: Any = json.loads(text)
    except ValueError as json_exc:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as yaml_exc:
            mark = getattr(yaml_exc, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise ServiceSpecError(
                f"{where}: neither JSON ({json_exc}) nor YAML{at} "
                f"({getattr(yaml_exc, 'problem', None) or yaml_exc})") from None
    if not isinstance(data, list) or not data:
        raise ServiceSpecError(f"{where}: expected a non-empty list of interfaces, "
                               f"got {type(data).__name__}")
    interfaces = tuple(Interface.from_dict(item, f"{where}[{i}]") for i, item in enumerate(data))
    paths = [i.path for i in interfaces if i.path is not None]
    if len(paths) != len(set(paths)):
        raise ServiceSpecError(f"{where}: two MOUNT interfaces share a path")
    return interfaces


def detect_interfaces(inspect: Mapping[str, Any]) -> tuple[Interface, ...]:
    """Interfaces of an image, from its ``docker inspect`` mapping (see module docstring)."""
    label = _labels(inspect).get(INTERFACES_LABEL)
    if label is not None:
        return parse_interfaces_label(str(label))
    interfaces = [Interface(t) for t in _ALWAYS]
    config = _config(inspect)
    seen: set[str] = set()
    volumes = config.get("Volumes") or {}
    for raw in sorted(volumes if isinstance(volumes, Mapping) else []):
        path = validate_mount_path(str(raw), f"image VOLUME {raw!r}")
        if path not in seen:
            seen.add(path)
            interfaces.append(Interface(InterfaceType.MOUNT, path, MountDirection.BOTH,
                                        "image VOLUME"))
    workdir = config.get("WorkingDir") or ""
    if isinstance(workdir, str) and workdir not in ("", "/"):
        path = validate_mount_path(workdir, f"image WorkingDir {workdir!r}")
        if path not in seen:
            interfaces.append(Interface(InterfaceType.MOUNT, path, MountDirection.BOTH,
                                        "image WorkingDir"))
    return tuple(interfaces)


def image_description(inspect: Mapping[str, Any]) -> str:
    labels = _labels(inspect)
    return str(labels.get(DESCRIPTION_LABEL) or labels.get(_OCI_DESCRIPTION) or "")


def image_version(inspect: Mapping[str, Any]) -> str | None:
    value = _labels(inspect).get(_OCI_VERSION)
    return str(value) if value else None
