"""Streamed pipes: the ``stream`` flag in YAML and schema, its validation, and the STDIN feed
that reads a transfer's verified bytes while they land."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from rnn_tui.workflow.stdin_feed import StdinFeed
from rnn_tui.workflow.validate import validate_workflow
from rnn_tui.workflow.yaml_io import dump_workflow, load_workflow, workflow_to_dict

jsonschema = pytest.importorskip("jsonschema")
ROOT = Path(__file__).resolve().parents[2]

BASE = """\
name: s
jobs:
  - {name: a, service: x}
  - {name: b, service: y}
  - {name: c, service: y}
connections:
"""


def _problems(connections: str) -> list[str]:
    loaded = load_workflow(BASE + connections)
    return [p.message for p in validate_workflow(loaded.workflow, loaded.marks)]


def test_stream_flag_round_trips_and_matches_the_schema() -> None:
    text = BASE + "  - {from: a.STDOUT, to: b.STDIN, stream: true}\n" \
                  "  - {from: b.STDOUT, to: self, file: o}\n"
    workflow = load_workflow(text).workflow
    assert [c.stream for c in workflow.connections] == [True, False]
    again = load_workflow(dump_workflow(workflow)).workflow
    assert again == workflow
    schema = json.loads((ROOT / "docs" / "workflow.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(workflow_to_dict(workflow))) == []
    bad = workflow_to_dict(workflow)
    bad["connections"][0]["stream"] = "yes"
    assert list(validator.iter_errors(bad))
    assert _problems("  - {from: a.STDOUT, to: b.STDIN, stream: true}\n") == []


def test_stream_must_be_a_boolean_with_its_location() -> None:
    with pytest.raises(Exception, match=r"7:\d+.*stream"):
        load_workflow(BASE + "  - {from: a.STDOUT, to: b.STDIN, stream: 1}\n")


@pytest.mark.parametrize(("connections", "needle"), [
    ("  - {from: a.STDOUT, to: self, file: o, stream: true}\n",
     "a stream must end at a job's STDIN"),
    ("  - {from: a.STDOUT, to: b.STDIN, stream: true}\n"
     "  - {from: a.STDOUT, to: c.STDIN}\n",
     "a streamed output has exactly one consumer"),
    ("  - {from: a.STDOUT, to: b.STDIN, stream: true}\n"
     "  - {from: a.STDOUT, to: c.STDIN, stream: true}\n",
     "a stream has one consumer"),
])
def test_invalid_streams_are_explained(connections: str, needle: str) -> None:
    assert any(needle in p for p in _problems(connections)), _problems(connections)


def test_only_stdout_or_stderr_can_be_streamed() -> None:
    text = """\
name: s
jobs:
  - {name: a, service: x, mounts: {/out: OUTPUT}}
  - {name: b, service: y}
connections:
  - {from: a.MOUNT:/out/r.csv, to: b.STDIN, stream: true}
"""
    loaded = load_workflow(text)
    messages = [p.message for p in validate_workflow(loaded.workflow, loaded.marks)]
    assert any("only STDOUT or STDERR can be streamed" in m for m in messages), messages


def test_feed_yields_verified_bytes_as_they_land_and_ends_with_the_transfer(
        tmp_path: Path) -> None:
    part, final = tmp_path / "stdin.in.part", tmp_path / "stdin.in"
    feed = StdinFeed(part, final)
    got: list[bytes] = []
    first = threading.Event()

    def read() -> None:
        for chunk in feed.chunks():
            got.append(chunk)
            first.set()

    reader = threading.Thread(target=read)
    reader.start()
    part.write_bytes(b"first\nunverified")
    feed.progress(6)  # only the verified prefix may be read
    assert first.wait(5)
    assert b"".join(got) == b"first\n"
    with open(part, "r+b") as handle:
        handle.seek(6)
        handle.write(b"second\n")
        handle.truncate()
    os.replace(part, final)  # the transfer completed: the part file is renamed
    feed.finish(13)
    reader.join(5)
    assert not reader.is_alive() and b"".join(got) == b"first\nsecond\n"


def test_a_failed_stream_ends_the_feed_with_the_reason(tmp_path: Path) -> None:
    feed = StdinFeed(tmp_path / "x.part", tmp_path / "x")
    result: list[list[bytes]] = []
    reader = threading.Thread(target=lambda: result.append(list(feed.chunks())))
    reader.start()
    feed.fail("the producer exited with code 3")
    reader.join(5)
    assert result == [[]] and feed.failed == "the producer exited with code 3"


REDUNDANT_BASE = BASE + "  - {from: a.STDOUT, to: self, file: o}\n"


def test_redundancy_and_confidence_round_trip_and_are_checked() -> None:
    text = REDUNDANT_BASE.replace("{name: a, service: x}", "{name: a, service: x, redundancy: 3, "
                                                 "confidence: 3}")
    workflow = load_workflow(text).workflow
    job = workflow.job("a")
    assert (job.redundancy, job.confidence, job.quorum) == (3, 3, 3)
    assert load_workflow(dump_workflow(workflow)).workflow == workflow
    assert load_workflow(REDUNDANT_BASE.replace("{name: a, service: x}",
                                      "{name: a, service: x, redundancy: 4}")
                         ).workflow.job("a").quorum == 3
    bad = load_workflow(REDUNDANT_BASE.replace("{name: a, service: x}",
                                     "{name: a, service: x, redundancy: 2, confidence: 3}"))
    assert any("confidence 3 is more than its redundancy 2" in p.message
               for p in validate_workflow(bad.workflow, bad.marks))
    with pytest.raises(Exception, match="redundancy must be at least 1"):
        load_workflow(REDUNDANT_BASE.replace("{name: a, service: x}", "{name: a, service: x, "
                                                            "redundancy: 0}"))
