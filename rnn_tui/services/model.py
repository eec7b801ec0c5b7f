"""Service domain model: services, interfaces, requirements, visibility.

Why a single canonical dict form: the same service travels to the store (as JSON), to peers
(as bencode in catalogs and search replies) and to the CLI (as JSON).  Bencode has no
floats, booleans or null, so the dict form uses only ``str``, ``int``, ``list`` and
``dict`` (booleans are 0/1).  Everything that comes back in through ``from_dict`` is
validated, because catalogs from peers are untrusted input: a bad field becomes a
``ServiceSpecError`` naming the field, never a crash.

Service ids are *derived*, not stored uuids: ``service_id(owner, name)`` is the first 16
bytes of ``sha256("rnn-service-v1\\0" || owner key || name)`` in hex.  So an id is stable
across restarts and re-imports, globally unique across owners, and a name is unique per
owner (re-adding a name is refused rather than silently creating a twin).
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum, StrEnum
from typing import Any, TypeVar

from rnn_tui.errors import ServiceError
from rnn_tui.identity.keys import PeerId

__all__ = [
    "ServiceKind",
    "InterfaceType",
    "MountDirection",
    "VisibilityMode",
    "Interface",
    "Requirements",
    "Visibility",
    "Service",
    "ServiceSpecError",
    "service_id",
    "validate_mount_path",
    "MAX_NAME_LEN",
]

MAX_NAME_LEN = 128
MAX_DESCRIPTION_LEN = 4096
_ID_DOMAIN = b"rnn-service-v1\x00"
_E = TypeVar("_E", bound=Enum)


class ServiceSpecError(ServiceError):
    """A service, interface or requirement field is malformed; the message names the field."""


class ServiceKind(StrEnum):
    DOCKER = "DOCKER"
    DATA = "DATA"
    STANDALONE = "STANDALONE"


class InterfaceType(StrEnum):
    STDIN = "STDIN"
    STDOUT = "STDOUT"
    STDERR = "STDERR"
    LOGS = "LOGS"
    MOUNT = "MOUNT"


class MountDirection(StrEnum):
    INPUT = "INPUT"
    OUTPUT = "OUTPUT"
    BOTH = "BOTH"


class VisibilityMode(StrEnum):
    PUBLIC = "public"
    ALLOWLIST = "allowlist"
    PRIVATE = "private"


def service_id(owner: PeerId, name: str) -> str:
    """The stable id of ``owner``'s service called ``name`` (32 hex digits)."""
    return hashlib.sha256(_ID_DOMAIN + owner.key + name.encode("utf-8")).hexdigest()[:32]


def validate_mount_path(path: str, where: str = "mount path") -> str:
    """Return ``path`` normalised, or raise if it is relative or climbs out with ``..``.

    A mount path is where a job's directory appears *inside* the container.  Relative paths
    have no fixed meaning there, and ``..`` segments make reviews lie about the target.
    """
    if not isinstance(path, str) or not path:
        raise ServiceSpecError(f"{where}: a MOUNT needs a non-empty absolute path")
    if "\x00" in path:
        raise ServiceSpecError(f"{where}: {path!r} contains a NUL byte")
    if not path.startswith("/"):
        raise ServiceSpecError(f"{where}: {path!r} is relative; a MOUNT path must be absolute")
    if ".." in path.split("/"):
        raise ServiceSpecError(f"{where}: {path!r} contains '..'; a MOUNT path must not escape")
    normalised = posixpath.normpath(path)
    if normalised == "/":
        raise ServiceSpecError(f"{where}: {path!r} would mount over the container's root")
    return normalised


@dataclass(frozen=True, slots=True)
class Interface:
    """One way data enters or leaves a service.

    ``path`` and ``direction`` are set for MOUNT only: the absolute path inside the
    container, and whether the job reads it (INPUT), writes it (OUTPUT) or both.
    """

    type: InterfaceType
    path: str | None = None
    direction: MountDirection | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.type is InterfaceType.MOUNT:
            if self.direction is None:
                raise ServiceSpecError(f"MOUNT {self.path!r}: a MOUNT needs a direction")
            object.__setattr__(self, "path", validate_mount_path(self.path or "", "MOUNT"))
        elif self.path is not None or self.direction is not None:
            raise ServiceSpecError(f"{self.type.value}: only a MOUNT has a path and direction")

    @property
    def label(self) -> str:
        """Short human form: ``STDIN`` or ``MOUNT:/data(INPUT)``."""
        if self.type is InterfaceType.MOUNT:
            assert self.direction is not None
            return f"MOUNT:{self.path}({self.direction.value})"
        return self.type.value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type.value}
        if self.path is not None:
            out["path"] = self.path
        if self.direction is not None:
            out["direction"] = self.direction.value
        if self.description:
            out["description"] = self.description
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "interface") -> Interface:
        if not isinstance(data, Mapping):
            raise ServiceSpecError(f"{where}: expected a mapping, got {type(data).__name__}")
        unknown = set(data) - {"type", "path", "direction", "description"}
        if unknown:
            raise ServiceSpecError(f"{where}: unknown key(s) {sorted(map(str, unknown))}")
        itype = _enum(InterfaceType, _text(data.get("type"), f"{where}.type").upper(), f"{where}.type")
        direction = None
        if data.get("direction") is not None:
            direction = _enum(MountDirection, _text(data["direction"], f"{where}.direction").upper(),
                              f"{where}.direction")
        path = data.get("path")
        if path is not None:
            path = _text(path, f"{where}.path")
        description = _text(data.get("description", ""), f"{where}.description", allow_empty=True)
        try:
            return cls(itype, path, direction, description[:MAX_DESCRIPTION_LEN])
        except ServiceSpecError as exc:
            raise ServiceSpecError(f"{where}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Requirements:
    """What a job of this service needs; the executor clamps it to its own caps.

    Integers only (bencode has no floats): CPU in thousandths of a core, memory in bytes,
    timeout in whole seconds.
    """

    cpu_millis: int = 1000
    memory_bytes: int = 256 * 1024 * 1024
    pids: int = 128
    network_needed: bool = False
    timeout_s: int = 600

    def __post_init__(self) -> None:
        for name, low in (("cpu_millis", 1), ("memory_bytes", 4 * 1024 * 1024), ("pids", 1),
                          ("timeout_s", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ServiceSpecError(f"requirements.{name}: {value!r} must be an integer >= {low}")

    def to_dict(self) -> dict[str, Any]:
        return {"cpu_millis": self.cpu_millis, "memory_bytes": self.memory_bytes,
                "pids": self.pids, "network_needed": int(self.network_needed),
                "timeout_s": self.timeout_s}

    @classmethod
    def from_dict(cls, data: Any, where: str = "requirements") -> Requirements:
        if not isinstance(data, Mapping):
            raise ServiceSpecError(f"{where}: expected a mapping")
        unknown = set(data) - {"cpu_millis", "memory_bytes", "pids", "network_needed", "timeout_s"}
        if unknown:
            raise ServiceSpecError(f"{where}: unknown key(s) {sorted(map(str, unknown))}")
        defaults = cls()
        net = data.get("network_needed", 0)
        if net not in (0, 1, True, False):
            raise ServiceSpecError(f"{where}.network_needed: {net!r} must be 0/1 or a boolean")
        return cls(cpu_millis=data.get("cpu_millis", defaults.cpu_millis),
                   memory_bytes=data.get("memory_bytes", defaults.memory_bytes),
                   pids=data.get("pids", defaults.pids), network_needed=bool(net),
                   timeout_s=data.get("timeout_s", defaults.timeout_s))


@dataclass(frozen=True, slots=True)
class Visibility:
    """Who may see and run a service: everyone, an allowlist of peers, or only the owner."""

    mode: VisibilityMode = VisibilityMode.PUBLIC
    allowlist: frozenset[PeerId] = frozenset()

    def __post_init__(self) -> None:
        if self.mode is not VisibilityMode.ALLOWLIST and self.allowlist:
            raise ServiceSpecError(f"visibility: an allowlist only goes with mode 'allowlist', "
                                   f"not {self.mode.value!r}")

    def admits(self, peer: PeerId, owner: PeerId) -> bool:
        if peer == owner or self.mode is VisibilityMode.PUBLIC:
            return True
        return self.mode is VisibilityMode.ALLOWLIST and peer in self.allowlist

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode.value}
        if self.mode is VisibilityMode.ALLOWLIST:
            out["allowlist"] = sorted(str(p) for p in self.allowlist)
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "visibility") -> Visibility:
        if not isinstance(data, Mapping):
            raise ServiceSpecError(f"{where}: expected a mapping")
        mode = _enum(VisibilityMode, _text(data.get("mode"), f"{where}.mode").lower(), f"{where}.mode")
        raw = data.get("allowlist", [])
        if not isinstance(raw, list):
            raise ServiceSpecError(f"{where}.allowlist: expected a list of peer ids")
        peers = set()
        for i, item in enumerate(raw):
            try:
                peers.add(PeerId.parse(_text(item, f"{where}.allowlist[{i}]")))
            except ValueError as exc:
                raise ServiceSpecError(f"{where}.allowlist[{i}]: {exc}") from None
        return cls(mode, frozenset(peers))


@dataclass(frozen=True, slots=True)
class Service:
    """A registered service.  Local-only fields (``data_path``) never leave the node.

    DOCKER services carry ``image_ref`` (what the operator named or we tagged) and
    ``image_digest`` (the engine's content-addressed image id, ``sha256:...``), which is
    what a job actually runs, so a re-tagged image cannot swap the code under a service.
    DATA services carry ``content_hash`` (``sha256:<hex>`` for a file,
    ``sha256-tree-v1:<hex>`` for a directory) and ``data_path``.
    """

    id: str
    name: str
    kind: ServiceKind
    owner: PeerId
    description: str = ""
    version: str = "1"
    interfaces: tuple[Interface, ...] = ()
    requirements: Requirements = field(default_factory=Requirements)
    visibility: Visibility = field(default_factory=Visibility)
    image_ref: str | None = None
    image_digest: str | None = None
    content_hash: str | None = None
    data_path: str | None = None
    source: str = ""
    created: int = 0
    updated: int = 0

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > MAX_NAME_LEN or not self.name.isprintable():
            raise ServiceSpecError(f"name: {self.name!r} must be 1..{MAX_NAME_LEN} printable characters")
        if len(self.description) > MAX_DESCRIPTION_LEN:
            raise ServiceSpecError(f"description: longer than {MAX_DESCRIPTION_LEN} characters")
        if self.kind is ServiceKind.DOCKER and not self.image_digest:
            raise ServiceSpecError(f"service {self.name!r}: a DOCKER service needs an image digest")
        if self.kind is ServiceKind.DATA and not self.content_hash:
            raise ServiceSpecError(f"service {self.name!r}: a DATA service needs a content hash")
        paths = [i.path for i in self.interfaces if i.type is InterfaceType.MOUNT]
        if len(paths) != len(set(paths)):
            raise ServiceSpecError(f"service {self.name!r}: two MOUNT interfaces share a path")

    @classmethod
    def new(cls, owner: PeerId, name: str, kind: ServiceKind, now: int, **fields: Any) -> Service:
        """A new service with its derived id and both timestamps set to ``now``."""
        return cls(id=service_id(owner, name), name=name, kind=kind, owner=owner,
                   created=now, updated=now, **fields)

    def with_changes(self, now: int, **fields: Any) -> Service:
        """An edited copy (the operator reviewing interfaces, visibility...); same id."""
        if "id" in fields or "owner" in fields or "name" in fields:
            raise ServiceSpecError("id, owner and name cannot change; add a new service instead")
        return replace(self, updated=now, **fields)

    def mounts(self, *directions: MountDirection) -> list[Interface]:
        return [i for i in self.interfaces
                if i.type is InterfaceType.MOUNT and (not directions or i.direction in directions)]

    def has_interface(self, itype: InterfaceType) -> bool:
        return any(i.type is itype for i in self.interfaces)

    def to_dict(self, *, public: bool = False) -> dict[str, Any]:
        """Canonical dict form.  ``public=True`` drops local-only fields (for peers)."""
        out: dict[str, Any] = {
            "id": self.id, "name": self.name, "kind": self.kind.value, "owner": str(self.owner),
            "description": self.description, "version": self.version,
            "interfaces": [i.to_dict() for i in self.interfaces],
            "requirements": self.requirements.to_dict(),
            "visibility": self.visibility.to_dict() if not public else
            {"mode": self.visibility.mode.value},
            "created": self.created, "updated": self.updated,
        }
        for key in ("image_ref", "image_digest", "content_hash"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if not public:
            out["source"] = self.source
            if self.data_path is not None:
                out["data_path"] = self.data_path
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "service") -> Service:
        """Parse and validate; the id must match owner and name (a peer cannot forge one)."""
        if not isinstance(data, Mapping):
            raise ServiceSpecError(f"{where}: expected a mapping")
        known = {"id", "name", "kind", "owner", "description", "version", "interfaces",
                 "requirements", "visibility", "image_ref", "image_digest", "content_hash",
                 "data_path", "source", "created", "updated"}
        unknown = set(data) - known
        if unknown:
            raise ServiceSpecError(f"{where}: unknown key(s) {sorted(map(str, unknown))}")
        name = _text(data.get("name"), f"{where}.name")
        try:
            owner = PeerId.parse(_text(data.get("owner"), f"{where}.owner"))
        except ValueError as exc:
            raise ServiceSpecError(f"{where}.owner: {exc}") from None
        sid = _text(data.get("id"), f"{where}.id")
        if sid != service_id(owner, name):
            raise ServiceSpecError(f"{where}.id: {sid!r} does not match owner and name")
        raw_ifaces = data.get("interfaces", [])
        if not isinstance(raw_ifaces, list):
            raise ServiceSpecError(f"{where}.interfaces: expected a list")
        interfaces = tuple(Interface.from_dict(item, f"{where}.interfaces[{i}]")
                           for i, item in enumerate(raw_ifaces))
        optional: dict[str, Any] = {}
        for key in ("image_ref", "image_digest", "content_hash", "data_path"):
            if data.get(key) is not None:
                optional[key] = _text(data[key], f"{where}.{key}")
        stamps: dict[str, Any] = {}
        for key in ("created", "updated"):
            value = data.get(key, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ServiceSpecError(f"{where}.{key}: {value!r} is not a timestamp")
            stamps[key] = value
        return cls(
            id=sid, name=name, owner=owner,
            kind=_enum(ServiceKind, _text(data.get("kind"), f"{where}.kind").upper(), f"{where}.kind"),
            description=_text(data.get("description", ""), f"{where}.description", allow_empty=True),
            version=_text(data.get("version", "1"), f"{where}.version"),
            interfaces=interfaces,
            requirements=Requirements.from_dict(data.get("requirements", {}), f"{where}.requirements"),
            visibility=Visibility.from_dict(data.get("visibility", {"mode": "public"}),
                                            f"{where}.visibility"),
            source=_text(data.get("source", ""), f"{where}.source", allow_empty=True),
            **optional, **stamps,
        )


def _text(value: Any, where: str, *, allow_empty: bool = False) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise ServiceSpecError(f"{where}: not valid UTF-8") from None
    if not isinstance(value, str):
        raise ServiceSpecError(f"{where}: expected text, got {type(value).__name__}")
    if not value and not allow_empty:
        raise ServiceSpecError(f"{where}: must not be empty")
    return value


def _enum(cls: type[_E], value: str, where: str) -> _E:
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in cls)
        raise ServiceSpecError(f"{where}: {value!r} is not one of {choices}") from None
