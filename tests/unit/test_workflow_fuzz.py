"""Untrusted workflow files: whatever the YAML holds, the reader and the validator answer
with located problems, never with another exception."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnn_tui.workflow.problems import WorkflowInvalid
from rnn_tui.workflow.validate import validate_workflow
from rnn_tui.workflow.yaml_io import load_workflow

KEYS = ["name", "description", "jobs", "connections", "service", "peer", "args", "env",
        "mounts", "defaults", "limits", "timeout_s", "retry", "position", "from", "to", "file",
        "attempts", "other_peer", "backoff_s", "x", "y", "cpu_millis", "memory_mb", "pids",
        "bogus"]
WORDS = ["a", "b", "self", "any", "a.STDOUT", "b.STDIN", "a.MOUNT:/d", "b.MOUNT:/d/x",
         "INPUT", "OUTPUT", "BOTH", "/d", "../x", "STDIN", "a.NOPE", "", "busybox"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3),
                    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(WORDS),
                    st.text(max_size=5))
trees = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(KEYS + WORDS), inner, max_size=4)),
    max_leaves=25)


@st.composite
def workflow_like(draw: st.DrawFn) -> object:
    """Mostly-plausible documents: the right top-level keys with random insides."""
    jobs = draw(st.lists(st.dictionaries(st.sampled_from(KEYS), trees, max_size=6), max_size=3))
    for job in jobs:
        if draw(st.booleans()):
            job["name"] = draw(st.sampled_from(["a", "b", "c"]))
        if draw(st.booleans()):
            job["service"] = draw(st.sampled_from(["busybox", {"name": "x"}, {"peer": "any"}]))
    doc: dict[str, object] = {"name": draw(st.sampled_from(["w", "", 3])), "jobs": jobs}
    if draw(st.booleans()):
        doc["connections"] = draw(st.lists(
            st.dictionaries(st.sampled_from(["from", "to", "file", "x"]),
                            st.one_of(st.sampled_from(WORDS), trees), max_size=3), max_size=4))
    return draw(st.one_of(st.just(doc), trees))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workflow_like())
def test_reader_and_validator_only_report_located_problems(doc: object) -> None:
    text = yaml.safe_dump(doc, allow_unicode=True)
    try:
        loaded = load_workflow(text, "fuzz.yaml")
    except WorkflowInvalid as exc:
        assert exc.located, "a refusal must say why"
        assert all(p.line >= 1 and p.column >= 1 for p in exc.located), exc.located
        return
    for problem in validate_workflow(loaded.workflow, loaded.marks, "fuzz.yaml"):
        assert problem.line >= 1, problem


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes_the_reader(text: str) -> None:
    try:
        load_workflow(text, "fuzz.yaml")
    except WorkflowInvalid as exc:
        assert exc.located


TRICKY = [
    "name: !!python/object/apply:os.system [echo]\njobs: []\n",
    "name: x\njobs: &a [*a]\n",
    "base: &b {service: s}\nname: x\njobs:\n  - {<<: *b, name: a}\n",
    "name: x\njobs:\n  - {name: a, service: !!binary aGVsbG8=}\n",
    "name: x\njobs:\n  - {name: a, service: s, args: !!set {a, b}}\n",
    "name: x\njobs:\n  - {name: a, service: s, timeout_s: 1e999}\n",
    "name: x\njobs:\n  - {name: a, service: s, timeout_s: .nan}\n",
    "name: x\njobs:\n  - {name: a, service: s, limits: {pids: 99999999999999999999999}}\n",
    "name: x\njobs:\n  - {name: a, service: s, position: {x: .inf, y: 0}}\n",
    "name: x\njobs: [" + "[" * 200 + "]" * 200 + "]\n",
    "name: x\njobs:\n  - {name: a, service: s, env: {? [k] : v}}\n",
    "name: x\njobs:\n  - {name: a, service: s, mounts: {relative: INPUT}}\n",
    "name: x\njobs:\n  - {name: a, service: s, defaults: {NOPE: x}}\n",
]


def test_tricky_documents_are_refused_with_a_location() -> None:
    for text in TRICKY:
        try:
            loaded = load_workflow(text, "t.yaml")
        except WorkflowInvalid as exc:
            assert exc.located and all(p.line >= 1 for p in exc.located), (text, exc)
            continue
        problems = validate_workflow(loaded.workflow, loaded.marks, "t.yaml")
        assert all(p.line >= 1 for p in problems), (text, problems)
