"""Operator overrides of detected interfaces: the wizard's review step and ``--interface``.

Why a module of its own: detection is a heuristic (every VOLUME and the WorkingDir become
BOTH mounts), so operators must be able to add, drop and fix interfaces before a service is
offered.  The TUI wizard and the CLI flags make the same edits, and both must refuse the
same mistakes with a message that names the field: a MOUNT path that is relative, two
interfaces with the same port key (two MOUNTs at one path, or STDOUT twice — a workflow
could not tell them apart), an empty list.  Pure: no IO, so unit tests cover every rule.

Two shapes of input:

* ``InterfaceRow`` — raw, editable text (what the wizard's form holds while the operator
  types); ``check_rows`` lists every problem, ``rows_to_interfaces`` builds the result.
* ``parse_interface_spec("MOUNT:/data/in:INPUT=raw files")`` — the CLI's compact form,
  ``TYPE[:PATH[:DIRECTION]][=DESCRIPTION]``; a MOUNT without a direction is BOTH.
  ``apply_edits(detected, add, drop, detect)`` merges them with what detection found.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rnn_tui.services.model import (
    MAX_DESCRIPTION_LEN,
    Interface,
    InterfaceType,
    MountDirection,
    ServiceSpecError,
    validate_mount_path,
)

__all__ = ["InterfaceRow", "InterfaceProblem", "InterfaceEdits", "row_of", "check_rows",
           "rows_to_interfaces", "port_key", "parse_interface_spec", "apply_edits"]


def port_key(interface: Interface) -> str:
    """``STDOUT`` or ``MOUNT:/data``: the name a workflow uses; unique within a service."""
    if interface.type is InterfaceType.MOUNT:
        return f"MOUNT:{interface.path}"
    return interface.type.value


@dataclass(frozen=True, slots=True)
class InterfaceRow:
    """One interface as the operator is editing it (text; may be invalid)."""

    type: str
    path: str = ""
    direction: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class InterfaceProblem:
    """What is wrong, where: ``row`` is 0-based (``None``: the whole list), ``field`` one of
    type, path, direction, description, interfaces."""

    row: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = "interfaces" if self.row is None else f"interface {self.row + 1} {self.field}"
        return f"{where}: {self.message}"


def row_of(interface: Interface) -> InterfaceRow:
    return InterfaceRow(interface.type.value, interface.path or "",
                        interface.direction.value if interface.direction else "",
                        interface.description)


def _build(row: InterfaceRow, index: int | None) -> tuple[Interface | None, list[InterfaceProblem]]:
    problems: list[InterfaceProblem] = []
    text = row.type.strip().upper()
    try:
        itype = InterfaceType(text)
    except ValueError:
        allowed = ", ".join(t.value for t in InterfaceType)
        return None, [InterfaceProblem(index, "type", f"{row.type!r} is not one of {allowed}")]
    if len(row.description) > MAX_DESCRIPTION_LEN:
        problems.append(InterfaceProblem(index, "description",
                                         f"longer than {MAX_DESCRIPTION_LEN} characters"))
    if not row.description.isprintable():
        problems.append(InterfaceProblem(index, "description",
                                         "must be one line of printable text"))
    if itype is not InterfaceType.MOUNT:
        if row.path.strip():
            problems.append(InterfaceProblem(index, "path", f"only a MOUNT has a path, not "
                                                            f"{itype.value}"))
        return (None if problems else Interface(itype, description=row.description)), problems
    direction: MountDirection | None = None
    dir_text = row.direction.strip().upper() or MountDirection.BOTH.value
    try:
        direction = MountDirection(dir_text)
    except ValueError:
        problems.append(InterfaceProblem(index, "direction",
                                         f"{row.direction!r} is not INPUT, OUTPUT or BOTH"))
    path = row.path.strip()
    try:
        path = validate_mount_path(path, "MOUNT path")
    except ServiceSpecError as exc:
        message = str(exc).removeprefix("MOUNT path: ")
        problems.append(InterfaceProblem(index, "path", message))
    if problems or direction is None:
        return None, problems
    return Interface(itype, path, direction, row.description), problems


def check_rows(rows: Sequence[InterfaceRow]) -> list[InterfaceProblem]:
    """Every problem with ``rows``, in row order; empty when they make a valid list."""
    problems: list[InterfaceProblem] = []
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        interface, row_problems = _build(row, index)
        problems.extend(row_problems)
        if interface is None:
            continue
        key = port_key(interface)
        if key in seen:
            field = "path" if interface.type is InterfaceType.MOUNT else "type"
            what = f"MOUNT path {interface.path}" if field == "path" else key
            problems.append(InterfaceProblem(
                index, field, f"{what} is already interface {seen[key] + 1}; each must be unique"))
        else:
            seen[key] = index
    if not rows:
        problems.append(InterfaceProblem(None, "interfaces", "a service needs at least one"))
    return problems


def rows_to_interfaces(rows: Sequence[InterfaceRow]) -> tuple[Interface, ...]:
    """The interfaces ``rows`` describe; raises ``ServiceSpecError`` listing every problem."""
    problems = check_rows(rows)
    if problems:
        raise ServiceSpecError("; ".join(str(p) for p in problems))
    built = [_build(row, i)[0] for i, row in enumerate(rows)]
    return tuple(i for i in built if i is not None)


def parse_interface_spec(text: str, where: str = "--interface") -> Interface:
    """``TYPE[:PATH[:DIRECTION]][=DESCRIPTION]`` → an ``Interface`` (errors name ``where``)."""
    spec, _, description = text.partition("=")
    kind, _, rest = spec.partition(":")
    path, direction = rest, ""
    head, sep, tail = rest.rpartition(":")
    if sep and tail.strip().upper() in MountDirection.__members__:
        path, direction = head, tail
    interface, problems = _build(InterfaceRow(kind, path, direction, description.strip()), None)
    if interface is None:
        details = "; ".join(f"{p.field}: {p.message}" for p in problems)
        raise ServiceSpecError(f"{where} {text!r}: {details} "
                               "(expected TYPE[:PATH[:DIRECTION]][=DESCRIPTION])")
    return interface


def apply_edits(detected: Iterable[Interface], add: Sequence[Interface] = (),
                drop: Sequence[str] = (), detect: bool = True) -> tuple[Interface, ...]:
    """Detected interfaces (unless ``detect`` is off), minus ``drop`` keys, plus/overriding
    ``add`` (an added interface with the key of a detected one replaces it, so
    ``--interface MOUNT:/data:INPUT`` fixes a detected BOTH).  Raises ``ServiceSpecError``."""
    base = list(detected) if detect else []
    keys = [port_key(i) for i in base]
    for key in drop:
        wanted = key.strip()
        if wanted.upper() in InterfaceType.__members__:
            wanted = wanted.upper()
        elif wanted.upper().startswith("MOUNT:"):
            wanted = "MOUNT:" + wanted[len("MOUNT:"):]
        if wanted not in keys:
            raise ServiceSpecError(f"--drop-interface {key!r}: no such interface "
                                   f"(there are: {', '.join(keys) or 'none'})")
        index = keys.index(wanted)
        del base[index], keys[index]
    added: set[str] = set()
    for interface in add:
        key = port_key(interface)
        if key in added:
            raise ServiceSpecError(f"--interface: {key} is given twice")
        added.add(key)
        if key in keys:
            base[keys.index(key)] = interface
        else:
            base.append(interface)
            keys.append(key)
    return rows_to_interfaces([row_of(i) for i in base])


@dataclass(frozen=True, slots=True)
class InterfaceEdits:
    """The CLI's overrides, carried to the registry and applied after detection."""

    add: tuple[Interface, ...] = ()
    drop: tuple[str, ...] = ()
    detect: bool = True

    def __post_init__(self) -> None:
        if not self.detect and not self.add:
            raise ServiceSpecError("--no-detect needs at least one --interface")
        if not self.detect and self.drop:
            raise ServiceSpecError("--drop-interface has nothing to drop with --no-detect")

    def apply(self, detected: Iterable[Interface]) -> tuple[Interface, ...]:
        return apply_edits(detected, self.add, self.drop, self.detect)
