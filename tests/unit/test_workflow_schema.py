"""The published JSON Schema agrees with the reader: examples pass, what we write passes,
and what the reader refuses for its shape the schema refuses too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema")

from rnn_tui.workflow.problems import WorkflowInvalid  # noqa: E402
from rnn_tui.workflow.yaml_io import load_workflow, workflow_to_dict  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = json.loads((ROOT / "docs" / "workflow.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", sorted((ROOT / "workflows").glob("*.yaml")), ids=lambda p: p.stem)
def test_examples_match_schema(validator: Any, path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    assert [e.message for e in validator.iter_errors(data)] == []
    # and what we write back out matches it too
    written = workflow_to_dict(load_workflow(path.read_text()).workflow)
    assert [e.message for e in validator.iter_errors(written)] == []


@pytest.mark.parametrize(
    "text",
    [
        "name: x\njobs: []\ncolour: red\n",
        "name: x\njobs:\n  - {name: a, service: s, cpu: 2}\n",
        "name: x\njobs:\n  - {name: a.b, service: s}\n",
        "name: x\njobs:\n  - {name: a}\n",
        "name: x\njobs:\n  - {name: a, service: {name: s, peer: nope}}\n",
        "name: x\njobs:\n  - {name: a, service: s, limits: {pids: 0}}\n",
        "name: x\njobs:\n  - {name: a, service: s, mounts: {/d: SIDEWAYS}}\n",
        "name: x\njobs:\n  - {name: a, service: s, retry: {other_peer: 1}}\n",
        "name: x\njobs: []\nconnections:\n  - {from: a.NOPE, to: self}\n",
        "name: x\njobs: []\nconnections:\n  - {from: a.STDOUT}\n",
        "jobs: []\n",
        "name: x\njobs:\n  - {name: a, service: s, position: {x: -1, y: 0}}\n",
        "name: x\njobs:\n  - {name: a, service: s, position: {x: 1.5, y: 0}}\n",
        "name: x\njobs:\n  - {name: a, service: s, position: {x: 1}}\n",
        "name: x\njobs:\n  - {name: a, service: s, position: {x: 5000, y: 0}}\n",
    ],
)
def test_schema_and_reader_refuse_the_same_shapes(validator: Any, text: str) -> None:
    assert list(validator.iter_errors(yaml.safe_load(text)))
    with pytest.raises(WorkflowInvalid):
        load_workflow(text)
