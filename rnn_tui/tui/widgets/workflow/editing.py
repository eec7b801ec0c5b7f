"""Editing operations on a ``Workflow``, with the rules the graph editor enforces.

Why separate from the widget: every editor operation (add a job from a service, connect an
output to an input, refuse an incompatible pair, rename, delete, edit parameters) is a pure
function of the workflow and the known services.  Keeping it here makes each rule testable
without a terminal and keeps the widget about drawing and keys.

A job's ports come from its service's interfaces (when the service is known), plus the
mounts the job itself declares; an unknown service offers the four standard streams.
Refusals raise ``EditRefused`` with a sentence for the status line; they never leave a
half-applied change behind (the workflow is immutable; we return a new one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import networkx as nx

from rnn_tui.api import ServiceInfo, input_keys, output_keys
from rnn_tui.errors import RnnError
from rnn_tui.services.model import InterfaceType, MountDirection
from rnn_tui.workflow.model import (
    NAME_PATTERN,
    Connection,
    Job,
    PortRef,
    ServiceRef,
    Workflow,
    is_input,
    is_output,
)

from .layout import BoxSpec, EdgeSpec

__all__ = ["EditRefused", "JobPorts", "ports_of", "add_job", "connect", "disconnect",
           "delete_job", "rename_job", "set_params", "to_specs", "port_for", "unique_name"]

_STANDARD_IN = ("STDIN",)
_STANDARD_OUT = ("STDOUT", "STDERR", "LOGS")


class EditRefused(RnnError):
    """An editor operation was refused; the message says why, for the status line."""


@dataclass(frozen=True, slots=True)
class JobPorts:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def _find_service(job: Job, services: Mapping[str, ServiceInfo]) -> ServiceInfo | None:
    return services.get(job.service.service)


def ports_of(job: Job, services: Mapping[str, ServiceInfo]) -> JobPorts:
    """Input and output port keys of ``job`` (service interfaces + declared mounts)."""
    info = _find_service(job, services)
    if info is not None:
        inputs = list(input_keys(info.service.interfaces))
        outputs = list(output_keys(info.service.interfaces))
    else:
        inputs, outputs = list(_STANDARD_IN), list(_STANDARD_OUT)
    for mount in job.mounts:
        key = f"MOUNT:{mount.path}"
        if is_input(InterfaceType.MOUNT, mount.direction) and key not in inputs:
            inputs.append(key)
        if is_output(InterfaceType.MOUNT, mount.direction) and key not in outputs:
            outputs.append(key)
    return JobPorts(tuple(inputs), tuple(outputs))


def port_for(ref: PortRef, ports: Iterable[str]) -> str | None:
    """The port key a reference attaches to (a file inside a mount → that mount's key)."""
    if ref.interface is not InterfaceType.MOUNT:
        key = ref.key
        return key if key in ports else None
    best: str | None = None
    assert ref.path is not None
    for key in ports:
        if not key.startswith("MOUNT:"):
            continue
        mount = key[len("MOUNT:"):]
        if ref.path == mount or ref.path.startswith(mount.rstrip("/") + "/"):
            if best is None or len(key) > len(best):
                best = key
    return best


def unique_name(base: str, taken: Iterable[str]) -> str:
    """A valid job name derived from ``base`` that is not in ``taken``."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "-", base).strip("-_") or "job"
    if not cleaned[0].isalpha():
        cleaned = f"j-{cleaned}"
    cleaned = cleaned[:56]
    taken_set = set(taken)
    if cleaned not in taken_set:
        return cleaned
    n = 2
    while f"{cleaned}-{n}" in taken_set:
        n += 1
    return f"{cleaned}-{n}"


def add_job(workflow: Workflow, service: ServiceInfo, name: str | None = None,
            *, pin_peer: bool = False) -> tuple[Workflow, str]:
    """Add a job running ``service``; returns the new workflow and the job's name.

    Remote services are pinned to their peer only on request: "any peer offering this
    service" survives a peer going away.
    """
    job_name = name or unique_name(service.name, workflow.job_names)
    if not NAME_PATTERN.match(job_name):
        raise EditRefused(f"{job_name!r} is not a valid job name (letters, digits, - and _)")
    if job_name in workflow.job_names:
        raise EditRefused(f"a job called {job_name!r} already exists")
    peer = service.service.owner if pin_peer else None
    job = Job(name=job_name, service=ServiceRef(service.name, peer),
              description=service.service.description[:200])
    return replace(workflow, jobs=(*workflow.jobs, job)), job_name


def connect(workflow: Workflow, services: Mapping[str, ServiceInfo],
            src_job: str, src_port: str, dst_job: str, dst_port: str) -> Workflow:
    """Connect an output port to an input port, or refuse with the reason."""
    try:
        src = workflow.job(src_job)
        dst = workflow.job(dst_job)
    except KeyError as exc:
        raise EditRefused(str(exc.args[0])) from None
    if src_job == dst_job:
        raise EditRefused(f"{src_job}: a job cannot feed itself")
    if src_port not in ports_of(src, services).outputs:
        raise EditRefused(f"{src_job}.{src_port} is not an output; connect from "
                          "STDOUT, STDERR, LOGS or an output MOUNT")
    if dst_port not in ports_of(dst, services).inputs:
        raise EditRefused(f"{dst_job}.{dst_port} is not an input; connect to STDIN or an input MOUNT")
    if dst_port == "STDIN" and any(port_for(c.target, ("STDIN",)) == "STDIN"
                                   for c in workflow.inputs_of(dst_job) if c.target is not None):
        raise EditRefused(f"{dst_job}.STDIN already has a source; a stream has one writer")
    source = PortRef.parse(f"{src_job}.{src_port}")
    target = PortRef.parse(f"{dst_job}.{dst_port}")
    if any(c.source == source and c.target == target for c in workflow.connections):
        raise EditRefused(f"{source} -> {target} is already connected")
    graph: nx.DiGraph[str] = nx.DiGraph()
    graph.add_nodes_from(workflow.job_names)
    graph.add_edges_from((c.source.job, c.target.job) for c in workflow.connections
                         if c.target is not None)
    if nx.has_path(graph, dst_job, src_job):
        raise EditRefused(f"{source} -> {target} would make a cycle "
                          f"({dst_job} already feeds {src_job})")
    file = None
    if target.interface is InterfaceType.MOUNT:
        file = _default_file_name(source)
    return replace(workflow, connections=(*workflow.connections, Connection(source, target, file)))


def _default_file_name(source: PortRef) -> str:
    if source.interface is InterfaceType.MOUNT:
        return f"{source.job}-out"
    return f"{source.job}.{source.interface.value.lower()}"


def disconnect(workflow: Workflow, connection: Connection) -> Workflow:
    if connection not in workflow.connections:
        raise EditRefused(f"{connection} is not in the workflow")
    return replace(workflow, connections=tuple(c for c in workflow.connections if c != connection))


def delete_job(workflow: Workflow, name: str) -> Workflow:
    if name not in workflow.job_names:
        raise EditRefused(f"no job called {name!r}")
    return workflow.without_job(name)


def rename_job(workflow: Workflow, old: str, new: str) -> Workflow:
    """Rename a job and every connection end that names it."""
    if old not in workflow.job_names:
        raise EditRefused(f"no job called {old!r}")
    if new == old:
        return workflow
    if not NAME_PATTERN.match(new):
        raise EditRefused(f"{new!r} is not a valid job name (a letter, then letters, digits, - or _)")
    if new in workflow.job_names:
        raise EditRefused(f"a job called {new!r} already exists")

    def moved(ref: PortRef) -> PortRef:
        return replace(ref, job=new) if ref.job == old else ref

    jobs = tuple(replace(j, name=new) if j.name == old else j for j in workflow.jobs)
    connections = tuple(
        replace(c, source=moved(c.source), target=None if c.target is None else moved(c.target))
        for c in workflow.connections)
    return replace(workflow, jobs=jobs, connections=connections)


def set_params(workflow: Workflow, name: str, *, args: tuple[str, ...] | None = None,
               env: tuple[tuple[str, str], ...] | None = None,
               description: str | None = None) -> Workflow:
    """Replace a job's arguments, environment or description."""
    job = workflow.job(name)
    changes: dict[str, object] = {}
    if args is not None:
        changes["args"] = args
    if env is not None:
        for key, _value in env:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise EditRefused(f"{name}: {key!r} is not a valid environment variable name")
        changes["env"] = env
    if description is not None:
        changes["description"] = description
    return workflow.with_job(replace(job, **changes))  # type: ignore[arg-type]


def parse_env(text: str) -> tuple[tuple[str, str], ...]:
    """``KEY=value`` pairs separated by spaces or newlines → env tuple; bad pairs refused."""
    pairs: list[tuple[str, str]] = []
    for item in text.split():
        key, sep, value = item.partition("=")
        if not sep:
            raise EditRefused(f"{item!r}: write KEY=value")
        pairs.append((key, value))
    return tuple(pairs)


def to_specs(workflow: Workflow, services: Mapping[str, ServiceInfo]
             ) -> tuple[list[BoxSpec], list[EdgeSpec]]:
    """Boxes and edges for the layout engine (connections to ``self`` are not drawn)."""
    boxes: list[BoxSpec] = []
    ports: dict[str, JobPorts] = {}
    for job in workflow.jobs:
        p = ports_of(job, services)
        ports[job.name] = p
        where = "any" if job.service.peer is None else job.service.peer.short
        boxes.append(BoxSpec(job.name, job.name, f"{job.service.service}@{where}",
                             p.inputs, p.outputs))
    edges: list[EdgeSpec] = []
    to_self: dict[str, list[str]] = {}
    for c in workflow.connections:
        if c.target is None and c.source.job in ports:
            sp = port_for(c.source, ports[c.source.job].outputs)
            if sp is not None:
                to_self.setdefault(c.source.job, []).append(sp)
        if c.target is None or c.source.job not in ports or c.target.job not in ports:
            continue
        sp = port_for(c.source, ports[c.source.job].outputs)
        dp = port_for(c.target, ports[c.target.job].inputs)
        if sp is not None and dp is not None:
            edges.append(EdgeSpec(c.source.job, sp, c.target.job, dp))
    if to_self:
        boxes = [replace(b, to_self=tuple(to_self[b.node_id])) if b.node_id in to_self else b
                 for b in boxes]
    return boxes, edges


def mount_direction_label(direction: MountDirection | None) -> str:
    return "" if direction is None else direction.value.lower()
