"""Workflow validation: a DAG of jobs whose ports fit together, every problem located.

Why networkx: cycle detection and "name the jobs of the cycle" are one call each, and the
same graph gives the scheduler its topological order.  Validation never stops at the first
problem: an author fixing a file wants the whole list, each with its YAML line and column
(from the reader's source map; ``0:0`` for workflows built in the editor).

Services and peers are checked through an injected ``resolver`` so this module stays pure:
offline (``rnn workflow validate FILE``) there is none and only the workflow's own
declarations are checked; in a node the resolver looks at the local catalog and search
results, and its answer also supplies the service's interfaces (mount paths, directions).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx

from rnn_tui.identity.keys import PeerId
from rnn_tui.services.model import Interface, InterfaceType, MountDirection
from rnn_tui.workflow.model import (
    SELF,
    Connection,
    Job,
    MountSpec,
    PortRef,
    ServiceRef,
    Workflow,
    is_input,
    is_output,
)
from rnn_tui.workflow.problems import Problem, SourceMap, SourcePath, WorkflowInvalid, locate
from rnn_tui.workflow.transfer import check_file_name

__all__ = ["ResolvedService", "Resolver", "validate_workflow", "check_workflow",
           "workflow_graph", "check_file_name", "topological_jobs"]

MAX_CYCLES_REPORTED = 5


@dataclass(frozen=True, slots=True)
class ResolvedService:
    """What a resolver knows about a job's service: its id, interfaces, offering peers."""

    service_id: str
    interfaces: tuple[Interface, ...] = ()
    peers: tuple[PeerId, ...] = ()


Resolver = Callable[[ServiceRef], "ResolvedService | str"]
"""Answer a ``ResolvedService``, or a sentence saying why not ("no peer offers 'x'")."""


def workflow_graph(workflow: Workflow) -> nx.DiGraph:
    """Jobs as nodes, one edge per job-to-job connection (``self`` is not a node)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(workflow.job_names)
    for conn in workflow.connections:
        if conn.target is not None:
            graph.add_edge(conn.source.job, conn.target.job)
    return graph


class _Checker:
    def __init__(self, workflow: Workflow, marks: SourceMap | None, source: str,
                 resolver: Resolver | None) -> None:
        self.workflow = workflow
        self.marks = marks
        self.source = source
        self.resolver = resolver
        self.problems: list[Problem] = []
        self.jobs: dict[str, Job] = {}
        self.mounts: dict[str, list[MountSpec]] = {}

    def add(self, path: SourcePath, message: str) -> None:
        line, col = locate(self.marks, path)
        self.problems.append(Problem(line, col, message, self.source))

    def run(self) -> list[Problem]:
        if not self.workflow.jobs:
            self.add(("jobs",), "a workflow needs at least one job")
        self.check_jobs()
        self.check_connections()
        self.check_cycles()
        self.check_dangling_inputs()
        return sorted(set(self.problems))

    # ---- jobs and services
    def check_jobs(self) -> None:
        for index, job in enumerate(self.workflow.jobs):
            if job.name in self.jobs:
                self.add(("jobs", index, "name"), f"job name {job.name!r} is used twice; "
                                                  "job names must be unique")
                continue
            if job.name == SELF:
                self.add(("jobs", index, "name"), f"{SELF!r} is reserved for the requester")
            self.jobs[job.name] = job
            self.mounts[job.name] = list(job.mounts)
            path: SourcePath = ("jobs", job.name)
            if job.redundancy > 1 and job.service.peer is not None:
                self.add((*path, "redundancy"), f"job {job.name!r}: redundancy needs a service "
                                                "on any peer; this one names a fixed peer")
            if job.confidence is not None and job.confidence > job.redundancy:
                self.add((*path, "confidence"), f"job {job.name!r}: confidence "
                                                f"{job.confidence} is more than its "
                                                f"redundancy {job.redundancy}")
            if job.retry.other_peer and job.service.peer is not None:
                self.add((*path, "retry"), f"job {job.name!r}: retry.other_peer needs a service "
                                           "on any peer; this one names a fixed peer")
            seen: set[str] = set()
            for mount in job.mounts:
                if mount.path in seen:
                    self.add((*path, "mounts"), f"job {job.name!r}: mount {mount.path} twice")
                seen.add(mount.path)
            if self.resolver is not None:
                self.check_service(job, path)
            for key, _ in job.defaults:
                self.check_default(job, key, (*path, "defaults", key))

    def check_service(self, job: Job, path: SourcePath) -> None:
        assert self.resolver is not None
        answer = self.resolver(job.service)
        if isinstance(answer, str):
            self.add((*path, "service"), f"job {job.name!r}: {answer}")
            return
        declared = {m.path: m for m in job.mounts}
        for interface in answer.interfaces:
            if interface.type is not InterfaceType.MOUNT:
                continue
            assert interface.path is not None and interface.direction is not None
            mine = declared.get(interface.path)
            if mine is None:
                self.mounts[job.name].append(MountSpec(interface.path, interface.direction))
            elif mine.direction is not interface.direction:
                self.add((*path, "mounts"),
                         f"job {job.name!r}: mount {interface.path} is {mine.direction.value} "
                         f"here but {interface.direction.value} in service "
                         f"{job.service.service!r}")

    def mount_of(self, job: str, path: str) -> MountSpec | None:
        best: MountSpec | None = None
        for mount in self.mounts.get(job, ()):
            if mount.contains(path) and (best is None or len(mount.path) > len(best.path)):
                best = mount
        return best

    def check_default(self, job: Job, key: str, path: SourcePath) -> None:
        try:
            port = job.port(key)
        except ValueError as exc:
            self.add(path, f"job {job.name!r}: default {key!r}: {exc}")
            return
        direction = None
        if port.interface is InterfaceType.MOUNT:
            assert port.path is not None
            mount = self.mount_of(job.name, port.path)
            if mount is None:
                self.add(path, f"job {job.name!r}: default {key!r} is in no declared mount")
                return
            direction = mount.direction
            if port.path == mount.path:
                self.add(path, f"job {job.name!r}: a MOUNT default names a file below the "
                               f"mount, e.g. MOUNT:{mount.path}/input.txt")
        if not is_input(port.interface, direction):
            self.add(path, f"job {job.name!r}: default {key!r} is not an input")

    # ---- connections
    def check_connections(self) -> None:
        targets: dict[tuple[str, str], int] = {}
        for index, conn in enumerate(self.workflow.connections):
            path: SourcePath = ("connections", index)
            self.check_source(conn.source, (*path, "from"))
            if conn.target is None:
                self.check_self_target(conn, path)
                destination = (SELF, conn.file or "")
            else:
                destination = self.check_target(conn, conn.target, path)
            if destination[1]:
                if destination in targets:
                    where = "the requester" if destination[0] == SELF else destination[0]
                    self.add((*path, "to"),
                             f"connections[{index}]: {where} already receives "
                             f"{destination[1]} from connections[{targets[destination]}]")
                else:
                    targets[destination] = index
        self.check_streams()

    def check_streams(self) -> None:
        """``stream: true`` pipes a live STDOUT/STDERR into one job's STDIN, nothing else."""
        streamed: dict[str, int] = {}
        for index, conn in enumerate(self.workflow.connections):
            if not conn.stream:
                continue
            path: SourcePath = ("connections", index, "stream")
            if conn.source.interface not in (InterfaceType.STDOUT, InterfaceType.STDERR):
                self.add(path, f"{conn}: only STDOUT or STDERR can be streamed")
            elif conn.target is None or conn.target.interface is not InterfaceType.STDIN:
                self.add(path, f"{conn}: a stream must end at a job's STDIN")
            key = str(conn.source)
            if key in streamed:
                self.add(path, f"{conn}: {key} is already streamed by "
                               f"connections[{streamed[key]}]; a stream has one consumer")
            else:
                streamed[key] = index
        for index, conn in enumerate(self.workflow.connections):
            key = str(conn.source)
            if not conn.stream and key in streamed:
                self.add(("connections", index, "from"),
                         f"{conn}: {key} is streamed by connections[{streamed[key]}]; a "
                         "streamed output has exactly one consumer")

    def check_source(self, port: PortRef, path: SourcePath) -> None:
        if port.job not in self.jobs:
            self.add(path, f"{port}: no job called {port.job!r}")
            return
        known, direction = self.port_direction(port, path)
        if not known:
            return
        if not is_output(port.interface, direction):
            what = (f"mount {direction.value}" if direction is not None else port.interface.value)
            self.add(path, f"{port} is an input ({what}); a connection must start at an output "
                           "(STDOUT, STDERR, LOGS or an OUTPUT/BOTH mount)")
            return
        mount = self.mount_of(port.job, port.path) if port.path is not None else None
        if mount is not None and port.path == mount.path:
            # a transfer carries one file: a whole directory has no single hash or name
            self.add(path, f"{port} is a whole mount; name the file to send, e.g. "
                           f"{port.job}.MOUNT:{mount.path.rstrip('/')}/result.csv")

    def check_target(self, conn: Connection, port: PortRef, path: SourcePath) -> tuple[str, str]:
        where: SourcePath = (*path, "to")
        if port.job not in self.jobs:
            self.add(where, f"{port}: no job called {port.job!r}")
            return (port.job, "")
        known, direction = self.port_direction(port, where)
        if not known:
            return (port.job, "")
        if not is_input(port.interface, direction):
            what = (f"mount {direction.value}" if direction is not None else port.interface.value)
            self.add(where, f"{port} is an output ({what}); a connection must end at an input "
                            "(STDIN or an INPUT/BOTH mount) or at self")
            return (port.job, "")
        if port.interface is InterfaceType.STDIN:
            if conn.file is not None:
                self.add((*path, "file"), f"{conn}: 'file' applies to MOUNT and self targets, "
                                          "not STDIN")
            return (port.job, "STDIN")
        assert port.path is not None
        mount = self.mount_of(port.job, port.path)
        assert mount is not None
        if port.path == mount.path:
            if conn.file is None:
                self.add(where, f"{conn}: a MOUNT target needs 'file' (the name the data gets "
                                f"in {mount.path})")
                return (port.job, "")
            problem = check_file_name(conn.file)
            if problem is not None:
                self.add((*path, "file"), f"{conn}: {problem}")
                return (port.job, "")
            return (port.job, posixpath.join(mount.path, posixpath.normpath(conn.file)))
        if conn.file is not None:
            self.add((*path, "file"), f"{conn}: the target already names a file "
                                      f"({port.path}); drop 'file' or target the mount")
        return (port.job, port.path)

    def check_self_target(self, conn: Connection, path: SourcePath) -> None:
        if conn.file is None:
            self.add((*path, "to"), f"{conn}: a result sent to self needs 'file' (its name "
                                    "in the run's results)")
            return
        problem = check_file_name(conn.file)
        if problem is not None:
            self.add((*path, "file"), f"{conn}: {problem}")

    def port_direction(self, port: PortRef,
                       path: SourcePath) -> tuple[bool, MountDirection | None]:
        """(known, the mount direction for MOUNT ports or ``None`` for the others)."""
        if port.interface is not InterfaceType.MOUNT:
            return True, None
        assert port.path is not None
        mount = self.mount_of(port.job, port.path)
        if mount is None:
            self.add(path, f"{port}: job {port.job!r} has no mount containing {port.path}; "
                           "declare it under the job's 'mounts'")
            return False, None
        return True, mount.direction

    # ---- graph
    def check_cycles(self) -> None:
        graph = workflow_graph(self.workflow)
        if nx.is_directed_acyclic_graph(graph):
            return
        for count, cycle in enumerate(nx.simple_cycles(graph)):
            if count >= MAX_CYCLES_REPORTED:
                break
            names = [str(n) for n in cycle]
            start = names.index(min(names))
            names = names[start:] + names[:start]  # stable wording: start at the first name
            loop = " -> ".join([*names, names[0]])
            index = self.closing_connection(names)
            self.add(("connections", index) if index is not None else ("jobs", names[0]),
                     f"cycle between jobs {', '.join(repr(n) for n in sorted(names))}: {loop}; "
                     "a workflow must be a DAG")

    def closing_connection(self, cycle: list[str]) -> int | None:
        last, first = cycle[-1], cycle[0]
        for index, conn in enumerate(self.workflow.connections):
            if conn.source.job == last and conn.target is not None and conn.target.job == first:
                return index
        return None

    def check_dangling_inputs(self) -> None:
        for name, job in self.jobs.items():
            defaults = [job.port(k) for k, _ in job.defaults if _parses(job, k)]
            incoming = [c.target for c in self.workflow.inputs_of(name) if c.target is not None]
            for mount in self.mounts[name]:
                if mount.direction is not MountDirection.INPUT:
                    continue
                fed = any(p.interface is InterfaceType.MOUNT and p.path is not None
                          and mount.contains(p.path) for p in (*incoming, *defaults))
                if not fed:
                    self.add(("jobs", name, "mounts"),
                             f"job {name!r}: input MOUNT:{mount.path} has no connection and no "
                             "default; connect an output to it or add a default under "
                             "'defaults'")


def _parses(job: Job, key: str) -> bool:
    try:
        job.port(key)
    except ValueError:
        return False
    return True


def validate_workflow(workflow: Workflow, marks: SourceMap | None = None,
                      source: str = "<workflow>",
                      resolver: Resolver | None = None) -> list[Problem]:
    """Every problem with ``workflow``, sorted by position; empty when it is runnable."""
    return _Checker(workflow, marks, source, resolver).run()


def check_workflow(workflow: Workflow, marks: SourceMap | None = None,
                   source: str = "<workflow>", resolver: Resolver | None = None) -> None:
    """Raise ``WorkflowInvalid`` unless ``workflow`` validates."""
    problems = validate_workflow(workflow, marks, source, resolver)
    if problems:
        raise WorkflowInvalid(problems)


def topological_jobs(workflow: Workflow) -> list[str]:
    """Job names in an order where every job comes after the jobs it reads from."""
    return [str(n) for n in nx.lexicographical_topological_sort(workflow_graph(workflow))]
