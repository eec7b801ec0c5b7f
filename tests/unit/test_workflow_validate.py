"""Workflow validation: graph and port problems, each placed on its YAML line."""

from __future__ import annotations

import textwrap

from rnn_tui.identity.keys import Identity
from rnn_tui.services.model import Interface, InterfaceType, MountDirection
from rnn_tui.workflow.model import ServiceRef
from rnn_tui.workflow.validate import (
    ResolvedService,
    check_file_name,
    topological_jobs,
    validate_workflow,
)
from rnn_tui.workflow.yaml_io import load_workflow

HEAD = "name: t\njobs:\n"


def problems(text: str, resolver=None) -> list[str]:  # type: ignore[no-untyped-def]
    head, sep, body = text.partition("jobs:\n")
    loaded = load_workflow(head + sep + textwrap.dedent(body), "t.yaml")
    return [str(p) for p in validate_workflow(loaded.workflow, loaded.marks, "t.yaml", resolver)]


def test_clean_workflow_has_no_problems() -> None:
    assert problems(HEAD + """\
      - {name: a, service: s, mounts: {/out: OUTPUT}}
      - {name: b, service: s, mounts: {/in: INPUT}}
    connections:
      - {from: a.MOUNT:/out/r.csv, to: b.MOUNT:/in, file: r.csv}
      - {from: b.STDOUT, to: self, file: b.txt}
    """) == []


def test_cycle_names_its_jobs_and_the_closing_line() -> None:
    found = problems(HEAD + """\
      - {name: a, service: s}
      - {name: b, service: s}
      - {name: c, service: s}
    connections:
      - {from: a.STDOUT, to: b.STDIN}
      - {from: b.STDOUT, to: c.STDIN}
      - {from: c.STDERR, to: a.STDIN}
    """)
    assert found == ["t.yaml:9:5: cycle between jobs 'a', 'b', 'c': a -> b -> c -> a; "
                     "a workflow must be a DAG"]


def test_self_loop_is_a_cycle() -> None:
    found = problems(HEAD + "  - {name: a, service: s}\nconnections:\n"
                     "  - {from: a.STDOUT, to: a.STDIN}\n")
    assert len(found) == 1 and "cycle between jobs 'a': a -> a" in found[0]


def test_duplicate_job_names() -> None:
    found = problems(HEAD + "  - {name: a, service: s}\n  - {name: a, service: t}\n")
    assert found == ["t.yaml:4:10: job name 'a' is used twice; job names must be unique"]


def test_port_direction_errors() -> None:
    found = problems(HEAD + """\
      - {name: a, service: s, mounts: {/in: INPUT}}
      - {name: b, service: s, mounts: {/out: OUTPUT}}
    connections:
      - {from: a.STDIN, to: b.STDOUT}
      - {from: a.MOUNT:/in/x, to: b.MOUNT:/out, file: x}
      - {from: a.STDOUT, to: b.MOUNT:/nowhere, file: x}
      - {from: zz.STDOUT, to: self, file: z}
    """)
    text = "\n".join(found)
    assert "t.yaml:6:12: a.STDIN is an input" in text
    assert "t.yaml:6:25: b.STDOUT is an output" in text
    assert "t.yaml:7:12: a.MOUNT:/in/x is an input (mount INPUT)" in text
    assert "t.yaml:7:31: b.MOUNT:/out is an output (mount OUTPUT)" in text
    assert "t.yaml:8:26: b.MOUNT:/nowhere: job 'b' has no mount containing /nowhere" in text
    assert "t.yaml:9:12: zz.STDOUT: no job called 'zz'" in text
    # a.MOUNT:/in has no feed either
    assert "input MOUNT:/in has no connection and no default" in text


def test_dangling_input_and_defaults() -> None:
    base = HEAD + "  - {name: a, service: s, mounts: {/in: INPUT}%s}\n"
    assert "t.yaml:3:33: job 'a': input MOUNT:/in has no connection" in problems(base % "")[0]
    assert problems(base % ", defaults: {MOUNT:/in/p.txt: hello}") == []
    bad = problems(base % ", defaults: {STDOUT: x, MOUNT:/in: y}")
    assert any("default 'STDOUT' is not an input" in p for p in bad)
    assert any("a MOUNT default names a file below the mount" in p for p in bad)


def test_file_names_are_confined_and_required() -> None:
    found = problems(HEAD + """\
      - {name: a, service: s}
      - {name: b, service: s, mounts: {/in: INPUT}}
    connections:
      - {from: a.STDOUT, to: b.MOUNT:/in, file: ../../etc/passwd}
      - {from: a.STDOUT, to: self, file: /etc/passwd}
      - {from: a.STDERR, to: self}
      - {from: a.LOGS, to: b.STDIN, file: x}
    """)
    text = "\n".join(found)
    assert "t.yaml:6:45: a.STDOUT -> b.MOUNT:/in as ../../etc/passwd: file '../../etc/passwd' " \
           "contains '..'" in text
    assert "file '/etc/passwd' is absolute" in text
    assert "t.yaml:8:26: a.STDERR -> self: a result sent to self needs 'file'" in text
    assert "'file' applies to MOUNT and self targets, not STDIN" in text
    assert check_file_name("sub/ok.csv") is None
    assert check_file_name(".") is not None and check_file_name("") is not None


def test_two_sources_into_one_destination() -> None:
    found = problems(HEAD + """\
      - {name: a, service: s}
      - {name: b, service: s}
    connections:
      - {from: a.STDOUT, to: b.STDIN}
      - {from: a.STDERR, to: b.STDIN}
      - {from: a.STDOUT, to: self, file: r}
      - {from: b.STDOUT, to: self, file: r}
    """)
    assert len(found) == 2
    assert "t.yaml:7:26: connections[1]: b already receives STDIN from connections[0]" in found
    assert "t.yaml:9:26: connections[3]: the requester already receives r from " \
           "connections[2]" in found


def test_retry_other_peer_needs_any() -> None:
    peer = Identity(bytes(32)).peer_id
    found = problems(HEAD + f"  - name: a\n    service: {{name: s, peer: {peer}}}\n"
                     "    retry: {attempts: 2, other_peer: true}\n")
    assert len(found) == 1 and "t.yaml:5:10: job 'a': retry.other_peer needs" in found[0]


def test_resolver_reports_unknown_services_and_supplies_mounts() -> None:
    catalog = {"tool": ResolvedService("id1", (
        Interface(InterfaceType.STDIN), Interface(InterfaceType.MOUNT, "/work",
                                                  MountDirection.BOTH)))}

    def resolve(ref: ServiceRef) -> ResolvedService | str:
        return catalog.get(ref.service) or f"no peer offers a service called {ref.service!r}"

    found = problems(HEAD + """\
      - {name: a, service: tool}
      - {name: b, service: nothing}
      - {name: c, service: tool, mounts: {/work: INPUT}}
    connections:
      - {from: a.MOUNT:/work/out.txt, to: self, file: out.txt}
    """, resolve)
    assert found == [
        "t.yaml:4:24: job 'b': no peer offers a service called 'nothing'",
        "t.yaml:5:38: job 'c': input MOUNT:/work has no connection and no default; connect an "
        "output to it or add a default under 'defaults'",
        "t.yaml:5:38: job 'c': mount /work is INPUT here but BOTH in service 'tool'",
    ]


def test_topological_order_respects_edges() -> None:
    loaded = load_workflow(HEAD + "  - {name: z, service: s}\n  - {name: a, service: s}\n"
                           "connections:\n  - {from: z.STDOUT, to: a.STDIN}\n")
    assert topological_jobs(loaded.workflow) == ["z", "a"]


def test_empty_job_list() -> None:
    assert problems("name: t\njobs: []\n") == ["t.yaml:2:7: a workflow needs at least one job"]


def test_a_mount_source_names_one_file() -> None:
    found = problems(HEAD + """\
      - {name: a, service: s, mounts: {/out: OUTPUT}}
    connections:
      - {from: a.MOUNT:/out, to: self, file: all}
    """)
    assert found == ["t.yaml:5:12: a.MOUNT:/out is a whole mount; name the file to send, "
                     "e.g. a.MOUNT:/out/result.csv"]
