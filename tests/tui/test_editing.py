"""Editor rules on the workflow model: connect, refuse, rename, delete (pure)."""

from __future__ import annotations

import asyncio

import pytest

from rnn_tui.tui.demo import DEMO_WORKFLOW_YAML, DemoNode
from rnn_tui.tui.widgets.workflow import editing
from rnn_tui.workflow.yaml_io import dump_workflow, load_workflow

pytestmark = pytest.mark.tui


@pytest.fixture
def scene():
    node = DemoNode()
    services = {s.name: s for s in asyncio.run(node.services())}
    return load_workflow(DEMO_WORKFLOW_YAML).workflow, services


def test_add_job_gets_a_unique_valid_name(scene) -> None:
    wf, services = scene
    wf2, name = editing.add_job(wf, services["csv-clean"])
    wf3, name2 = editing.add_job(wf2, services["csv-clean"])
    assert (name, name2) == ("csv-clean", "csv-clean-2")
    assert wf3.job(name2).service.service == "csv-clean"


def test_connect_output_to_input(scene) -> None:
    wf, services = scene
    wf, name = editing.add_job(wf, services["csv-clean"])
    wf2 = editing.connect(wf, services, "model", "STDERR", name, "STDIN")
    assert str(wf2.connections[-1]) == f"model.STDERR -> {name}.STDIN"
    assert load_workflow(dump_workflow(wf2)).workflow == wf2


@pytest.mark.parametrize(("src", "sport", "dst", "dport", "why"), [
    ("fetch", "STDIN", "clean", "STDIN", "not an output"),
    ("fetch", "STDOUT", "clean", "STDOUT", "not an input"),
    ("fetch", "STDOUT", "fetch", "STDIN", "cannot feed itself"),
    ("report", "STDOUT", "fetch", "STDIN", "cycle"),
    ("fetch", "STDERR", "clean", "STDIN", "already has a source"),
    ("fetch", "STDOUT", "clean", "MOUNT:/nope", "not an input"),
    ("ghost", "STDOUT", "clean", "STDIN", "no job"),
])
def test_incompatible_connections_are_refused_with_a_reason(scene, src, sport, dst, dport, why):
    wf, services = scene
    with pytest.raises(editing.EditRefused, match=why):
        editing.connect(wf, services, src, sport, dst, dport)


def test_rename_moves_every_connection_end(scene) -> None:
    wf, _ = scene
    wf2 = editing.rename_job(wf, "clean", "tidy")
    assert "clean" not in dump_workflow(wf2).replace("csv-clean", "")
    assert {str(c.source) for c in wf2.connections} >= {"tidy.STDOUT"}
    with pytest.raises(editing.EditRefused, match="already exists"):
        editing.rename_job(wf2, "tidy", "fetch")
    with pytest.raises(editing.EditRefused, match="not a valid job name"):
        editing.rename_job(wf2, "tidy", "has space")


def test_delete_removes_the_job_and_its_connections(scene) -> None:
    wf, _ = scene
    wf2 = editing.delete_job(wf, "model")
    assert "model" not in wf2.job_names
    assert all("model" not in str(c) for c in wf2.connections)


def test_params_and_env_validation(scene) -> None:
    wf, _ = scene
    wf2 = editing.set_params(wf, "clean", args=("--strict",), env=editing.parse_env("A=1 B=two"))
    assert wf2.job("clean").args == ("--strict",)
    assert wf2.job("clean").env == (("A", "1"), ("B", "two"))
    with pytest.raises(editing.EditRefused):
        editing.parse_env("novalue")
    with pytest.raises(editing.EditRefused):
        editing.set_params(wf, "clean", env=(("1BAD", "x"),))


def test_ports_come_from_the_service_interfaces(scene) -> None:
    wf, services = scene
    ports = editing.ports_of(wf.job("report"), services)
    assert ports.inputs == ("STDIN", "MOUNT:/data/in")
    assert ports.outputs == ("STDOUT", "STDERR", "LOGS")
    boxes, edges = editing.to_specs(wf, services)
    assert {(e.src, e.dst) for e in edges} == {("fetch", "clean"), ("clean", "model"),
                                                ("model", "report"), ("fetch", "report")}
