"""Workflow YAML: read with line/column for every error, write so that it reads back equal.

Why we walk the composed node tree instead of ``yaml.safe_load``: a loaded dict has lost its
positions, and every error (an unknown key, a wrong type, a duplicate key that safe_load
silently drops) must name its line and column.  The reader also returns a *source map*
(model path → mark) so the validator can place graph-level errors (a cycle, a bad port) on
the line that caused them.

Format (see ``docs/WORKFLOWS.md`` and ``docs/workflow.schema.json``)::

    name: word-count
    description: ...
    jobs:
      - name: source
        service: text-corpus          # any peer offering it; or {name: x, peer: <peer id>}
        args: [sh, -c, "cat /data/corpus.txt"]
        env: {LANG: C}
        mounts: {/data/out: OUTPUT}
        defaults: {STDIN: ""}
        limits: {cpu_millis: 500, memory_mb: 64, pids: 32}
        timeout_s: 60
        retry: {attempts: 2, other_peer: true, backoff_s: 1}
        position: {x: 10, y: 4}
    connections:
      - {from: source.STDOUT, to: count.STDIN}
      - {from: count.STDOUT, to: self, file: counts.txt}

Round trip: ``load_workflow(dump_workflow(w)).workflow == w`` for every model value, and
``dump_workflow`` is deterministic (fixed key order, author's job and connection order).
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml

from rnn_tui.identity.keys import PeerId
from rnn_tui.workflow.model import (
    MAX_POSITION,
    NAME_PATTERN,
    SELF,
    Connection,
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
from rnn_tui.workflow.problems import Problem, SourceMap, SourcePath, WorkflowInvalid

__all__ = ["LoadedWorkflow", "load_workflow", "load_workflow_file", "dump_workflow",
           "workflow_to_dict"]

ANY_PEER = "any"
MAX_NUMBER = 2**53
"""Above this, integers stop being exact in JSON and floats; no limit or time needs more."""
_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's loader when PyYAML was built with it: 20x faster to compose, same marks."""
_T = TypeVar("_T")

_TOP_KEYS = ("name", "description", "jobs", "connections")
_JOB_KEYS = ("name", "description", "service", "args", "env", "mounts", "defaults", "limits",
             "timeout_s", "retry", "position", "redundancy", "confidence")
_SERVICE_KEYS = ("name", "peer")
_LIMIT_KEYS = ("cpu_millis", "memory_mb", "pids")
_RETRY_KEYS = ("attempts", "other_peer", "backoff_s")
_POSITION_KEYS = ("x", "y")
_CONNECTION_KEYS = ("from", "to", "file", "stream")


@dataclass(frozen=True, slots=True)
class LoadedWorkflow:
    """A workflow read from YAML, with where each part of it was written."""

    workflow: Workflow
    marks: SourceMap
    source: str


class _Skip(Exception):
    """Internal: this part is broken and already reported; skip it."""


class _Reader:
    """Turns a composed YAML node tree into model values, collecting located problems."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.marks: dict[SourcePath, tuple[int, int]] = {}
        self._constructor = yaml.constructor.SafeConstructor()

    # ---- helpers
    def fail(self, node: yaml.Node | None, message: str) -> _Skip:
        line, col = _mark(node)
        self.problems.append(Problem(line, col, message, self.source))
        return _Skip()

    def mapping(self, node: yaml.Node, what: str, allowed: tuple[str, ...],
                path: SourcePath) -> dict[str, yaml.Node]:
        """The keys of a mapping node; unknown and duplicate keys are reported, not fatal."""
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping, not {_kind(node)}")
        out: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node)
            if not isinstance(key, str):
                self.fail(key_node, f"{what}: keys must be text, not {_kind(key_node, key)}")
                continue
            if key in out:
                self.fail(key_node, f"{what}: duplicate key {key!r}")
                continue
            if allowed and key not in allowed:
                self.fail(key_node, f"{what}: unknown key {key!r} (allowed: {', '.join(allowed)})")
                continue
            out[key] = value_node
            self.marks[(*path, key)] = _mark(value_node)
        return out

    def scalar(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return node
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:  # e.g. a !!python/object tag: never constructed
            problem = getattr(exc, "problem", None) or str(exc)
            raise self.fail(node, f"unsupported YAML value: {problem}") from None

    def text(self, node: yaml.Node, what: str, *, allow_numbers: bool = False) -> str:
        value = self.scalar(node)
        if isinstance(value, bool) or value is None or not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"{what} must be text, not {_kind(node, value)}")
        if isinstance(value, int | float | datetime.date) and allow_numbers:
            return str(node.value)  # kept as written: "3", "1e3", "2024-05-14"
        if not isinstance(value, str):
            raise self.fail(node, f"{what} must be text, not {_kind(node, value)}")
        return value

    def number(self, node: yaml.Node, what: str, kind: type[_T], minimum: float) -> _T:
        value = self.scalar(node)
        ok = isinstance(value, int) and not isinstance(value, bool)
        if kind is float:
            ok = ok or (isinstance(value, float) and math.isfinite(value))
        if not ok:
            article = "an integer" if kind is int else "a finite number"
            raise self.fail(node, f"{what} must be {article}, not {_kind(node, value)}")
        if value < minimum:
            raise self.fail(node, f"{what} must be at least {minimum:g}, not {value}")
        if value > MAX_NUMBER:
            raise self.fail(node, f"{what} must be at most {MAX_NUMBER}, not {value}")
        return kind(value)  # type: ignore[call-arg]

    def flag(self, node: yaml.Node, what: str) -> bool:
        value = self.scalar(node)
        if not isinstance(value, bool):
            raise self.fail(node, f"{what} must be true or false, not {_kind(node, value)}")
        return value

    def seq(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list, not {_kind(node)}")
        return list(node.value)

    def guard(self, fn: Callable[[], _T]) -> _T | None:
        try:
            return fn()
        except _Skip:
            return None

    # ---- model
    def workflow(self, root: yaml.Node) -> Workflow | None:
        self.marks[()] = _mark(root)
        try:
            top = self.mapping(root, "workflow", _TOP_KEYS, ())
        except _Skip:
            return None
        if "name" not in top:
            self.fail(root, "workflow: missing key 'name'")
        if "jobs" not in top:
            self.fail(root, "workflow: missing key 'jobs'")
        name = self.guard(lambda: self.text(top["name"], "name")) if "name" in top else None
        if name is not None and not name.strip():
            self.fail(top["name"], "name must not be empty")
        description = ""
        if "description" in top:
            description = self.guard(lambda: self.text(top["description"], "description")) or ""
        jobs: list[Job] = []
        if "jobs" in top:
            nodes = self.guard(lambda: self.seq(top["jobs"], "jobs")) or []
            for index, job_node in enumerate(nodes):
                job = self.guard(lambda n=job_node, i=index: self.job(n, i))  # type: ignore[misc]
                if job is not None:
                    jobs.append(job)
        connections: list[Connection] = []
        if "connections" in top:
            nodes = self.guard(lambda: self.seq(top["connections"], "connections")) or []
            for index, conn_node in enumerate(nodes):
                conn = self.guard(lambda n=conn_node, i=index: self.connection(n, i))  # type: ignore[misc]
                if conn is not None:
                    connections.append(conn)
        if self.problems or name is None:
            return None
        return Workflow(name=name, description=description, jobs=tuple(jobs),
                        connections=tuple(connections))

    def job(self, node: yaml.Node, index: int) -> Job:
        keys = self.mapping(node, _job_label(node, index), _JOB_KEYS, ("jobs", index))
        if "name" not in keys:
            raise self.fail(node, f"jobs[{index}]: missing key 'name'")
        name = self.text(keys["name"], f"jobs[{index}].name")
        if not NAME_PATTERN.match(name):
            raise self.fail(keys["name"], f"job name {name!r} must start with a letter and use "
                                          "only letters, digits, '_' and '-' (max 64)")
        where = f"job {name!r}"
        path: SourcePath = ("jobs", name)
        self.marks[path] = _mark(node)
        for key, value in keys.items():
            self.marks[(*path, key)] = _mark(value)
        if "service" not in keys:
            raise self.fail(node, f"{where}: missing key 'service'")
        service = self.service(keys["service"], where, path)
        fields: dict[str, Any] = {"name": name, "service": service}
        broken = False

        def field(key: str, build: Callable[[yaml.Node], Any]) -> None:
            nonlocal broken
            if key in keys:
                try:
                    fields[key] = build(keys[key])
                except _Skip:
                    broken = True

        field("description", lambda n: self.text(n, f"{where}: description"))
        field("args", lambda n: tuple(self.text(a, f"{where}: args[{i}]", allow_numbers=True)
                                      for i, a in enumerate(self.seq(n, f"{where}: args"))))
        field("env", lambda n: self.pairs(n, f"{where}: env", (*path, "env")))
        field("defaults", lambda n: self.pairs(n, f"{where}: defaults", (*path, "defaults")))
        field("mounts", lambda n: self.mounts(n, where, path))
        field("limits", lambda n: self.limits(n, where, path))
        field("timeout_s", lambda n: self.number(n, f"{where}: timeout_s", float, 0.001))
        field("retry", lambda n: self.retry(n, where, path))
        field("position", lambda n: self.position(n, where, path))
        field("redundancy", lambda n: self.number(n, f"{where}: redundancy", int, 1))
        field("confidence", lambda n: self.number(n, f"{where}: confidence", int, 1))
        if broken:
            raise _Skip()
        return Job(**fields)

    def service(self, node: yaml.Node, where: str, path: SourcePath) -> ServiceRef:
        if isinstance(node, yaml.ScalarNode):
            return ServiceRef(self.text(node, f"{where}: service"))
        keys = self.mapping(node, f"{where}: service", _SERVICE_KEYS, (*path, "service"))
        if "name" not in keys:
            raise self.fail(node, f"{where}: service needs a 'name'")
        service = self.text(keys["name"], f"{where}: service name")
        peer: PeerId | None = None
        if "peer" in keys:
            peer_text = self.text(keys["peer"], f"{where}: service peer")
            if peer_text != ANY_PEER:
                try:
                    peer = PeerId.parse(peer_text)
                except ValueError as exc:
                    raise self.fail(keys["peer"], f"{where}: service peer: {exc}; "
                                                  f"write '{ANY_PEER}' for any peer") from None
        return ServiceRef(service, peer)

    def pairs(self, node: yaml.Node, what: str, path: SourcePath) -> tuple[tuple[str, str], ...]:
        keys = self.mapping(node, what, (), path)
        return tuple((k, self.text(v, f"{what}: {k}", allow_numbers=True))
                     for k, v in keys.items())

    def mounts(self, node: yaml.Node, where: str, path: SourcePath) -> tuple[MountSpec, ...]:
        keys = self.mapping(node, f"{where}: mounts", (), (*path, "mounts"))
        out: list[MountSpec] = []
        for mount_path, value in keys.items():
            word = self.text(value, f"{where}: mount {mount_path}").upper()
            try:
                direction = MountDirection(word)
            except ValueError:
                raise self.fail(value, f"{where}: mount {mount_path}: direction must be "
                                       f"INPUT, OUTPUT or BOTH, not {word!r}") from None
            try:
                out.append(MountSpec(mount_path, direction))
            except ValueError as exc:
                raise self.fail(value, f"{where}: {exc}") from None
        return tuple(out)

    def limits(self, node: yaml.Node, where: str, path: SourcePath) -> Limits:
        keys = self.mapping(node, f"{where}: limits", _LIMIT_KEYS, (*path, "limits"))
        return Limits(**{k: self.number(v, f"{where}: limits.{k}", int, 1)
                         for k, v in keys.items()})

    def retry(self, node: yaml.Node, where: str, path: SourcePath) -> RetryPolicy:
        keys = self.mapping(node, f"{where}: retry", _RETRY_KEYS, (*path, "retry"))
        fields: dict[str, Any] = {}
        if "attempts" in keys:
            fields["attempts"] = self.number(keys["attempts"], f"{where}: retry.attempts", int, 1)
        if "other_peer" in keys:
            fields["other_peer"] = self.flag(keys["other_peer"], f"{where}: retry.other_peer")
        if "backoff_s" in keys:
            fields["backoff_s"] = self.number(keys["backoff_s"], f"{where}: retry.backoff_s",
                                              float, 0)
        return RetryPolicy(**fields)

    def position(self, node: yaml.Node, where: str, path: SourcePath) -> Position:
        keys = self.mapping(node, f"{where}: position", _POSITION_KEYS, (*path, "position"))
        if set(keys) != set(_POSITION_KEYS):
            raise self.fail(node, f"{where}: position needs both x and y")
        coords = []
        for axis in _POSITION_KEYS:
            value = self.number(keys[axis], f"{where}: position.{axis}", int, 0)
            if value > MAX_POSITION:
                raise self.fail(keys[axis], f"{where}: position.{axis} must be at most "
                                            f"{MAX_POSITION}, not {value}")
            coords.append(value)
        return Position(coords[0], coords[1])

    def connection(self, node: yaml.Node, index: int) -> Connection:
        path: SourcePath = ("connections", index)
        self.marks[path] = _mark(node)
        what = f"connections[{index}]"
        keys = self.mapping(node, what, _CONNECTION_KEYS, path)
        for key in ("from", "to"):
            if key not in keys:
                raise self.fail(node, f"{what}: missing key {key!r}")
        source = self.port(keys["from"], f"{what}.from")
        target_text = self.text(keys["to"], f"{what}.to")
        target = None if target_text == SELF else self.port(keys["to"], f"{what}.to")
        file = self.text(keys["file"], f"{what}.file") if "file" in keys else None
        stream = self.flag(keys["stream"], f"{what}.stream") if "stream" in keys else False
        return Connection(source, target, file, stream)

    def port(self, node: yaml.Node, what: str) -> PortRef:
        text = self.text(node, what)
        try:
            return PortRef.parse(text)
        except ValueError as exc:
            raise self.fail(node, f"{what}: {exc}") from None


def _job_label(node: yaml.Node, index: int) -> str:
    """``job 'count'`` when the job's name is readable, else ``jobs[1]``."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if (isinstance(key, yaml.ScalarNode) and key.value == "name"
                    and isinstance(value, yaml.ScalarNode) and value.value):
                return f"job {value.value!r}"
    return f"jobs[{index}]"


def _mark(node: yaml.Node | None) -> tuple[int, int]:
    if node is None or node.start_mark is None:
        return (0, 0)
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _kind(node: yaml.Node | None, value: Any = None) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if value is None:
        return "empty (null)"
    return f"{type(value).__name__} {value!r}"


def load_workflow(text: str, source: str = "<workflow>") -> LoadedWorkflow:
    """Parse workflow YAML; raise ``WorkflowInvalid`` listing every located problem."""
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        detail = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise WorkflowInvalid([Problem(line, col, f"invalid YAML: {detail}", source)]) from None
    except yaml.YAMLError as exc:
        raise WorkflowInvalid([Problem(0, 0, f"invalid YAML: {exc}", source)]) from None
    if root is None:
        raise WorkflowInvalid([Problem(1, 1, "the file is empty; a workflow needs a name and "
                                             "jobs", source)])
    reader = _Reader(source)
    workflow = reader.workflow(root)
    if workflow is None or reader.problems:
        raise WorkflowInvalid(reader.problems)
    return LoadedWorkflow(workflow, dict(reader.marks), source)


def load_workflow_file(path: str) -> LoadedWorkflow:
    """Read and parse a workflow file; a file that cannot be read is one located problem."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowInvalid([Problem(0, 0, f"cannot read: {exc}", path)]) from None
    return load_workflow(text, path)


def workflow_to_dict(workflow: Workflow) -> dict[str, Any]:
    """The plain-data form (what the YAML holds; also what the JSON Schema describes)."""
    out: dict[str, Any] = {"name": workflow.name}
    if workflow.description:
        out["description"] = workflow.description
    out["jobs"] = [_job_to_dict(job) for job in workflow.jobs]
    if workflow.connections:
        out["connections"] = [_connection_to_dict(c) for c in workflow.connections]
    return out


def _job_to_dict(job: Job) -> dict[str, Any]:
    out: dict[str, Any] = {"name": job.name}
    if job.description:
        out["description"] = job.description
    if job.service.peer is None:
        out["service"] = job.service.service
    else:
        out["service"] = {"name": job.service.service, "peer": str(job.service.peer)}
    if job.args:
        out["args"] = list(job.args)
    if job.env:
        out["env"] = dict(job.env)
    if job.mounts:
        out["mounts"] = {m.path: m.direction.value for m in job.mounts}
    if job.defaults:
        out["defaults"] = dict(job.defaults)
    if job.limits is not None:
        out["limits"] = {k: getattr(job.limits, k) for k in _LIMIT_KEYS
                         if getattr(job.limits, k) is not None}
    if job.timeout_s is not None:
        out["timeout_s"] = job.timeout_s
    if job.retry != RetryPolicy():
        out["retry"] = {"attempts": job.retry.attempts, "other_peer": job.retry.other_peer,
                        "backoff_s": job.retry.backoff_s}
    if job.position is not None:
        out["position"] = {"x": job.position.x, "y": job.position.y}
    if job.redundancy != 1:
        out["redundancy"] = job.redundancy
    if job.confidence is not None:
        out["confidence"] = job.confidence
    return out


def _connection_to_dict(conn: Connection) -> dict[str, Any]:
    out: dict[str, Any] = {"from": str(conn.source),
                           "to": SELF if conn.target is None else str(conn.target)}
    if conn.file is not None:
        out["file"] = conn.file
    if conn.stream:
        out["stream"] = True
    return out


class _Dumper(yaml.SafeDumper):
    """SafeDumper that keeps every string exact and scripts readable.

    Why: with ``allow_unicode`` a plain or single-quoted scalar may carry characters that YAML
    itself treats as line breaks (NEL, LS, PS) or folds (trailing spaces), and they come back
    changed.  Those strings are double-quoted (every character escaped as needed); multi-line
    strings such as shell scripts use a literal block when YAML allows it.
    """


_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    tag = "tag:yaml.org,2002:str"
    if _UNSAFE.search(value) or value != value.strip(" "):
        return dumper.represent_scalar(tag, value, style='"')
    if "\n" in value and all(line == line.rstrip() for line in value.split("\n")):
        return dumper.represent_scalar(tag, value, style="|")
    return dumper.represent_scalar(tag, value)


_Dumper.add_representer(str, _represent_str)


def dump_workflow(workflow: Workflow) -> str:
    """Deterministic YAML that ``load_workflow`` reads back to an equal workflow."""
    return yaml.dump(workflow_to_dict(workflow), Dumper=_Dumper, sort_keys=False,
                     allow_unicode=True, default_flow_style=False, width=100)
