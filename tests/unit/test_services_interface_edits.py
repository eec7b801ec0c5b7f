"""Operator overrides of detected interfaces: wizard rows, ``--interface`` specs, merging."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnn_tui.identity import Identity
from rnn_tui.services.control_api import ServiceControl
from rnn_tui.services.interface_edits import (
    InterfaceEdits,
    InterfaceRow,
    apply_edits,
    check_rows,
    parse_interface_spec,
    row_of,
    rows_to_interfaces,
)
from rnn_tui.services.model import Interface, InterfaceType, MountDirection, ServiceSpecError
from rnn_tui.services.registry import InMemoryServiceRepository, ServiceRegistry

T = InterfaceType
DETECTED = (Interface(T.STDIN), Interface(T.STDOUT), Interface(T.STDERR), Interface(T.LOGS),
            Interface(T.MOUNT, "/app", MountDirection.BOTH, "image WorkingDir"))


def problems(rows: list[InterfaceRow]) -> list[str]:
    return [str(p) for p in check_rows(rows)]


def test_rows_round_trip_and_normalise() -> None:
    rows = [row_of(i) for i in DETECTED]
    assert rows_to_interfaces(rows) == DETECTED
    built = rows_to_interfaces([InterfaceRow("mount", "/data//in/", "input", "raw"),
                                InterfaceRow(" stdout ", "", "", "")])
    assert built == (Interface(T.MOUNT, "/data/in", MountDirection.INPUT, "raw"),
                     Interface(T.STDOUT))
    assert rows_to_interfaces([InterfaceRow("MOUNT", "/x")])[0].direction is MountDirection.BOTH


@pytest.mark.parametrize("rows, expected", [
    ([InterfaceRow("MOUNT", "data")],
     ["interface 1 path: 'data' is relative; a MOUNT path must be absolute"]),
    ([InterfaceRow("MOUNT", "")], ["interface 1 path: a MOUNT needs a non-empty absolute path"]),
    ([InterfaceRow("MOUNT", "/a/../b")], ["interface 1 path: '/a/../b' contains '..'; "
                                          "a MOUNT path must not escape"]),
    ([InterfaceRow("MOUNT", "/")], ["interface 1 path: '/' would mount over the container's root"]),
    ([InterfaceRow("MOUNT", "/a"), InterfaceRow("MOUNT", "/a/", "INPUT")],
     ["interface 2 path: MOUNT path /a is already interface 1; each must be unique"]),
    ([InterfaceRow("STDOUT"), InterfaceRow("stdout")],
     ["interface 2 type: STDOUT is already interface 1; each must be unique"]),
    ([InterfaceRow("SOCKET")],
     ["interface 1 type: 'SOCKET' is not one of STDIN, STDOUT, STDERR, LOGS, MOUNT"]),
    ([InterfaceRow("MOUNT", "/a", "SIDEWAYS")],
     ["interface 1 direction: 'SIDEWAYS' is not INPUT, OUTPUT or BOTH"]),
    ([InterfaceRow("STDIN", "/a")], ["interface 1 path: only a MOUNT has a path, not STDIN"]),
    ([InterfaceRow("STDIN", "", "", "two\nlines")],
     ["interface 1 description: must be one line of printable text"]),
    ([], ["interfaces: a service needs at least one"]),
])
def test_every_problem_names_row_and_field(rows: list[InterfaceRow], expected: list[str]) -> None:
    assert problems(rows) == expected
    with pytest.raises(ServiceSpecError, match="interface"):
        rows_to_interfaces(rows)


@pytest.mark.parametrize("spec, expected", [
    ("STDIN", Interface(T.STDIN)),
    ("stdout=word counts", Interface(T.STDOUT, description="word counts")),
    ("MOUNT:/data/in", Interface(T.MOUNT, "/data/in", MountDirection.BOTH)),
    ("MOUNT:/data/in:INPUT", Interface(T.MOUNT, "/data/in", MountDirection.INPUT)),
    ("mount:/out:output=results", Interface(T.MOUNT, "/out", MountDirection.OUTPUT, "results")),
    ("MOUNT:/a:b", Interface(T.MOUNT, "/a:b", MountDirection.BOTH)),
])
def test_interface_specs(spec: str, expected: Interface) -> None:
    assert parse_interface_spec(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("MOUNT:data/in", "'data/in' is relative"),
    ("MOUNT", "non-empty absolute path"),
    ("PIPE", "'PIPE' is not one of"),
    ("STDIN:/x", "only a MOUNT has a path"),
])
def test_bad_specs_name_the_flag_and_the_field(spec: str, message: str) -> None:
    with pytest.raises(ServiceSpecError, match=f"--interface {spec!r}:.*{message}"):
        parse_interface_spec(spec)


def test_apply_edits_adds_overrides_drops_and_replaces() -> None:
    got = apply_edits(DETECTED, add=(parse_interface_spec("MOUNT:/data/in:INPUT"),
                                     parse_interface_spec("STDOUT=counts")),
                      drop=("mount:/app", "logs"))
    assert [(i.type.value, i.path, i.description) for i in got] == [
        ("STDIN", None, ""), ("STDOUT", None, "counts"), ("STDERR", None, ""),
        ("MOUNT", "/data/in", "")]
    only = apply_edits(DETECTED, add=(parse_interface_spec("STDIN"),), detect=False)
    assert only == (Interface(T.STDIN),)
    with pytest.raises(ServiceSpecError, match=r"--drop-interface 'MOUNT:/nope': no such "
                                               r"interface \(there are: STDIN, .*MOUNT:/app\)"):
        apply_edits(DETECTED, drop=("MOUNT:/nope",))
    with pytest.raises(ServiceSpecError, match="STDOUT is given twice"):
        apply_edits(DETECTED, add=(Interface(T.STDOUT), Interface(T.STDOUT, description="x")))
    with pytest.raises(ServiceSpecError, match="--no-detect needs at least one --interface"):
        InterfaceEdits(detect=False)
    with pytest.raises(ServiceSpecError, match="nothing to drop"):
        InterfaceEdits((Interface(T.STDIN),), ("LOGS",), detect=False)


async def test_control_add_applies_interface_flags(tmp_path: Path) -> None:
    f = tmp_path / "rows.csv"
    f.write_text("a,b\n")
    registry = ServiceRegistry(InMemoryServiceRepository(), Identity(b"\x01" * 32).peer_id,
                               clock=lambda: 5.0)
    ctl = ServiceControl(registry, clock=lambda: 10.0)
    added = await ctl.add({"data": str(f), "interface_add": ["MOUNT:/extra:INPUT=more"],
                           "interface_drop": ["STDOUT"]})
    assert [(i["type"], i.get("path")) for i in added["interfaces"]] == [
        ("MOUNT", "/data"), ("MOUNT", "/extra")]
    with pytest.raises(ServiceSpecError, match="'rel' is relative"):
        await ctl.add({"data": str(f), "name": "b", "interface_add": ["MOUNT:rel"]})
    with pytest.raises(ServiceSpecError, match="no such interface"):
        await ctl.add({"data": str(f), "name": "c", "interface_drop": ["LOGS"]})
    with pytest.raises(ServiceSpecError, match="'interface_add': expected a list"):
        await ctl.add({"data": str(f), "name": "d", "interface_add": "STDIN"})
    assert [s["name"] for s in await ctl.list({})] == ["rows.csv"]  # nothing half-registered


@pytest.mark.parametrize("argv, message", [
    (["--interface", "MOUNT:data/in"], "--interface 'MOUNT:data/in': path: 'data/in' is relative"),
    (["--no-detect"], "--no-detect needs at least one --interface"),
    (["--no-detect", "--interface", "STDIN", "--drop-interface", "LOGS"], "nothing to drop"),
])
def test_cli_checks_interface_flags_before_reaching_the_node(
        argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rnn_tui.cli import main

    # no node runs in tmp_path: getting past the flag check would fail on the socket instead
    code = main(["--data-dir", str(tmp_path), "service", "add", "--data", str(tmp_path), *argv])
    assert code == 1
    assert message in capsys.readouterr().err
