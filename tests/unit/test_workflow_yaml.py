"""Workflow YAML: every error located by line and column, lossless round trip."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnn_tui.commands.workflow import cmd_validate
from rnn_tui.identity.keys import Identity
from rnn_tui.workflow.model import (
    Connection,
    InterfaceType,
    Job,
    Limits,
    MountDirection,
    MountSpec,
    PortRef,
    Position,
    RetryPolicy,
    ServiceRef,
    Workflow,
)
from rnn_tui.workflow.problems import WorkflowInvalid
from rnn_tui.workflow.yaml_io import dump_workflow, load_workflow

GOOD = textwrap.dedent("""\
    name: demo
    jobs:
      - name: a
        service: busybox
        args: [sh, -c, "echo hi"]
      - name: b
        service: {name: busybox, peer: any}
        env: {X: "1"}
    connections:
      - {from: a.STDOUT, to: b.STDIN}
      - {from: b.STDOUT, to: self, file: out.txt}
    """)


def problems_of(text: str) -> list[tuple[int, int, str]]:
    with pytest.raises(WorkflowInvalid) as info:
        load_workflow(text, "wf.yaml")
    return [(p.line, p.column, p.message) for p in info.value.located]


def test_good_file_loads_with_marks() -> None:
    loaded = load_workflow(GOOD, "wf.yaml")
    wf = loaded.workflow
    assert wf.job_names == ("a", "b") and wf.job("b").env == (("X", "1"),)
    assert wf.connections[1].target is None and wf.connections[1].file == "out.txt"
    assert loaded.marks[("jobs", "b")] == (6, 5)
    assert loaded.marks[("connections", 0, "from")] == (10, 12)


@pytest.mark.parametrize(
    ("text", "line", "col", "needle"),
    [
        ("name: x\njobs: [\n", 3, 1, "invalid YAML"),
        ("name: x\n\tjobs: []\n", 2, 1, "invalid YAML"),
        ("- a\n", 1, 1, "must be a mapping"),
        ("name: x\njobs: []\ncolour: red\n", 3, 1, "unknown key 'colour'"),
        ("name: x\njobs:\n  - name: a\n    service: s\n    cpu: 2\n", 5, 5,
         "job 'a': unknown key 'cpu'"),
        ("name: x\njobs:\n  - name: a\n    service: s\n    name: b\n", 5, 5, "duplicate key"),
        ("name: x\njobs:\n  - name: a.b\n    service: s\n", 3, 11, "must start with a letter"),
        ("name: x\njobs:\n  - name: a\n", 3, 5, "missing key 'service'"),
        ("name: x\njobs:\n  - name: a\n    service: {name: s, peer: nope}\n", 4, 30,
         "not a peer id"),
        ("name: x\njobs:\n  - name: a\n    service: s\n    timeout_s: soon\n", 5, 16,
         "must be a finite number"),
        ("name: x\njobs:\n  - name: a\n    service: s\n    limits: {pids: 0}\n", 5, 20,
         "at least 1"),
        ("name: x\njobs:\n  - name: a\n    service: s\n    mounts: {/d: SIDEWAYS}\n", 5, 18,
         "INPUT, OUTPUT or BOTH"),
        ("name: x\njobs:\n  - name: a\n    service: s\n    retry: {other_peer: 1}\n", 5, 25,
         "true or false"),
        ("name: x\njobs: []\nconnections:\n  - {from: a.STDOUT}\n", 4, 5, "missing key 'to'"),
        ("name: x\njobs: []\nconnections:\n  - {from: a.NOPE, to: self}\n", 4, 12,
         "unknown interface"),
        ("jobs: []\n", 1, 1, "missing key 'name'"),
        ("name: !!python/object:os.system x\njobs: []\n", 1, 7, "unsupported YAML value"),
        ("name: x\njobs:\n  - {name: a, service: s, timeout_s: .nan}\n", 3, 38,
         "must be a finite number"),
        ("name: x\njobs:\n  - {name: a, service: s, position: {x: .inf, y: 0}}\n", 3, 41,
         "position.x must be an integer"),
        ("name: x\njobs:\n  - {name: a, service: s, position: {x: 2.5, y: 0}}\n", 3, 41,
         "position.x must be an integer"),
        ("name: x\njobs:\n  - {name: a, service: s, position: {x: 1, y: -3}}\n", 3, 47,
         "position.y must be at least 0"),
        ("name: x\njobs:\n  - {name: a, service: s, position: {x: 5000, y: 0}}\n", 3, 41,
         "position.x must be at most 4096"),
        ("name: x\njobs:\n  - {name: a, service: s, position: {x: 1}}\n", 3, 37,
         "position needs both x and y"),
        ("name: x\njobs:\n  - {name: a, service: s, position: {x: 1, y: 2, z: 3}}\n", 3, 50,
         "unknown key 'z'"),
        ("name: x\njobs:\n  - {name: a, service: s, limits: {pids: 99999999999999999999}}\n",
         3, 42, "must be at most"),
        ("name: x\njobs:\n  - {name: a, service: s, env: {? [k] : v}}\n", 3, 35,
         "keys must be text, not a list"),
        ("name: x\njobs: *nothing\n", 2, 7, "undefined alias"),
        ("name: x\njobs: []\n---\nname: y\n", 3, 1, "single document"),
        ("", 1, 1, "empty"),
    ],
)
def test_errors_name_line_and_column(text: str, line: int, col: int, needle: str) -> None:
    found = problems_of(text)
    assert any(p[:2] == (line, col) and needle in p[2] for p in found), found


def test_several_problems_are_all_reported() -> None:
    text = "name: x\njobs:\n  - name: a\n    service: s\n    bad1: 1\n  - name: b\n    bad2: 2\n"
    found = problems_of(text)
    assert [(p[0], p[1]) for p in found] == [(5, 5), (6, 5), (7, 5)]
    assert "missing key 'service'" in found[1][2]


def test_dump_is_deterministic_and_round_trips() -> None:
    wf = load_workflow(GOOD).workflow
    text = dump_workflow(wf)
    assert text == dump_workflow(load_workflow(text).workflow)
    assert load_workflow(text).workflow == wf


_names = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)
_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=20)
_peer = Identity(bytes(range(32))).peer_id


@st.composite
def workflows(draw: st.DrawFn) -> Workflow:
    names = draw(st.lists(_names, min_size=1, max_size=4, unique=True))
    jobs = []
    for name in names:
        jobs.append(Job(
            name=name,
            service=ServiceRef(draw(_names), draw(st.sampled_from([None, _peer]))),
            description=draw(_text),
            env=tuple(draw(st.dictionaries(_names, _text, max_size=3)).items()),
            args=tuple(draw(st.lists(_text, max_size=3))),
            mounts=tuple(MountSpec(f"/{p}", d) for p, d in draw(st.dictionaries(
                _names, st.sampled_from(list(MountDirection)), max_size=2)).items()),
            defaults=(("STDIN", draw(_text)),) if draw(st.booleans()) else (),
            limits=draw(st.sampled_from([None, Limits(), Limits(500, 64, 16)])),
            timeout_s=draw(st.sampled_from([None, 0.5, 60.0])),
            retry=draw(st.sampled_from([RetryPolicy(), RetryPolicy(3, True, 1.5)])),
            position=draw(st.sampled_from([None, Position(1, 25)])),
        ))
    conns = []
    for _ in range(draw(st.integers(0, 4))):
        src = PortRef(draw(st.sampled_from(names)), InterfaceType.STDOUT)
        dst = draw(st.sampled_from([None, PortRef(draw(st.sampled_from(names)),
                                                  InterfaceType.STDIN)]))
        conns.append(Connection(src, dst, draw(st.sampled_from([None, "f.txt"]))))
    return Workflow(draw(_names), tuple(jobs), tuple(conns), draw(_text))


@settings(max_examples=60, deadline=None)
@given(workflows())
def test_any_model_value_round_trips(wf: Workflow) -> None:
    text = dump_workflow(wf)
    assert load_workflow(text).workflow == wf
    assert dump_workflow(load_workflow(text).workflow) == text


def test_cli_validate_prints_file_line_col(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\njobs:\n  - name: a\n    service: s\n    colour: red\n")
    assert cmd_validate(argparse.Namespace(file=str(bad), json=False)) == 1
    assert f"{bad}:5:5: job 'a': unknown key 'colour'" in capsys.readouterr().err
    cycle = tmp_path / "cycle.yaml"
    cycle.write_text("name: x\njobs:\n  - {name: a, service: s}\n  - {name: b, service: s}\n"
                     "connections:\n  - {from: a.STDOUT, to: b.STDIN}\n"
                     "  - {from: b.STDOUT, to: a.STDIN}\n")
    assert cmd_validate(argparse.Namespace(file=str(cycle), json=False)) == 1
    err = capsys.readouterr().err
    assert f"{cycle}:7:5: cycle between jobs 'a', 'b'" in err
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    assert cmd_validate(argparse.Namespace(file=str(good), json=False)) == 0
    assert "ok: workflow 'demo'" in capsys.readouterr().out
    missing = tmp_path / "missing.yaml"
    assert cmd_validate(argparse.Namespace(file=str(missing), json=False)) == 1
    assert "cannot read" in capsys.readouterr().err
