"""The real ``NodeFacade`` (see ``rnn_tui/tui/facade.py``): the TUI's view of a live ``Node``.

Why a separate adapter: ``Node`` wires subsystems; this turns their state into the domain
values the UI renders (``rnn_tui.api``) and routes the UI's commands to the right part.
Everything here is async and cheap; slow work (Docker builds, DHT lookups) happens in the
subsystems with their own timeouts, and failures arrive as ``RnnError`` with one line.

Workflow runs are delegated to ``node.workflows`` (the workflow component) when the node
has one; without it the run methods say so rather than pretending.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from rnn_tui.api import (
    LogLine,
    NodeEvent,
    NodeFailed,
    NodeStatus,
    NodeStatusChanged,
    PeerDetail,
    PeerInfo,
    PeerRemoved,
    PeerUpdated,
    RunInfo,
    RunUpdated,
    ServiceDraft,
    ServiceInfo,
    ServiceRemoved,
    ServiceSource,
    ServiceUpdated,
    SourceKind,
    WorkflowDeleted,
    WorkflowInfo,
    WorkflowSaved,
)
from rnn_tui.errors import RnnError, ServiceError, WorkflowError
from rnn_tui.identity import PeerId
from rnn_tui.node import Node

EVENT_TYPES = (NodeStatusChanged, PeerUpdated, PeerRemoved, ServiceUpdated, ServiceRemoved,
               WorkflowSaved, WorkflowDeleted, RunUpdated, NodeFailed)


class NodeFacadeImpl:
    def __init__(self, node: Node) -> None:
        self.node = node

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        await self.node.start()
        self.node.tasks.every("status-events", 2.0, self._publish_status, delay=0.5)

    async def stop(self) -> None:
        await self.node.stop()

    def status(self) -> NodeStatus:
        node = self.node
        if node.identity is None:
            return NodeStatus()
        listen: tuple[str, ...] = ()
        if node.transport is not None:
            listen = tuple(f"{h}:{p}" for h, p in node.transport.listen_addrs)
        running = 0
        workflows = getattr(node, "workflows", None)
        if workflows is not None and hasattr(workflows, "running_jobs"):
            running = int(workflows.running_jobs())
        return NodeStatus(
            peer_id=str(node.identity.peer_id), reachability=node.reachability,
            nat_type=node.nat_type, relay=node.relay_addrs[0].split("@")[0][:10] if node.relay_addrs else "",
            listen_addrs=listen, peer_count=node.peers.connected_count() if node.peers else 0,
            running_jobs=running, started=node.started_at is not None)

    async def _publish_status(self) -> None:
        self.node.events.publish(NodeStatusChanged(self.status()))

    async def subscribe_events(self) -> AsyncIterator[NodeEvent]:
        async for event in self.node.events.subscribe():
            if isinstance(event, EVENT_TYPES):
                yield event

    # -- snapshots ----------------------------------------------------------------------
    async def peers(self) -> list[PeerInfo]:
        if self.node.peers is None:
            return []
        states = sorted(self.node.peers.peers.values(),
                        key=lambda s: (not s.connected, -(s.last_seen or 0)))
        return [s.to_info() for s in states]

    async def describe_peer(self, peer_id: str) -> PeerDetail:
        pid = _peer_id(peer_id)
        if self.node.peers is None or (state := self.node.peers.get(pid)) is None:
            raise RnnError(f"unknown peer {peer_id[:10]}")
        meta = state.metadata.to_dict() if state.metadata else {}
        rows = tuple((k, ", ".join(map(str, v)) if isinstance(v, list) else str(v))
                     for k, v in sorted(meta.items()))
        rows += (("metadata seq", str(state.metadata_seq)), ("path", state.path or "—"),
                 ("failures", str(state.failures)))
        receipts = ()
        workflows = getattr(self.node, "workflows", None)
        if workflows is not None and hasattr(workflows, "receipts_with"):
            receipts = tuple(await workflows.receipts_with(peer_id))
        return PeerDetail(state.to_info(), rows, receipts)

    async def services(self) -> list[ServiceInfo]:
        comp = self.node.services
        if comp is None:
            return []
        local = [ServiceInfo(s, True) for s in await comp.registry.list()]
        remote = [ServiceInfo(s, False) for s in comp.cache.services(time.time())]
        return local + remote

    async def workflows(self) -> list[WorkflowInfo]:
        store = self.node.store
        if store is None:
            return []
        out = []
        for name, updated in await store.call(store.list_workflows):
            text = await store.call(store.get_workflow, name) or ""
            out.append(_workflow_info(name, text, updated))
        return out

    async def runs(self) -> list[RunInfo]:
        workflows = getattr(self.node, "workflows", None)
        if workflows is None:
            return []
        return list(await workflows.runs())

    # -- commands -----------------------------------------------------------------------
    async def connect(self, target: str) -> PeerInfo:
        if self.node.peers is None:
            raise RnnError("the node's network is not started")
        state = await self.node.peers.connect(target)
        info = state.to_info()
        self.node.events.publish(PeerUpdated(info))
        return info

    async def ping(self, peer_id: str) -> float:
        if self.node.peers is None:
            raise RnnError("the node's network is not started")
        return await self.node.peers.ping(_peer_id(peer_id))

    async def search_services(self, phrase: str) -> AsyncIterator[ServiceInfo]:
        comp = self.node.services
        if comp is None:
            return
        async for item in comp.control_api.remote({"phrase": phrase}):
            service = item.get("service") if isinstance(item, dict) else None
            if service is None:
                continue
            from rnn_tui.services.model import Service

            yield ServiceInfo(Service.from_dict(service), False)

    async def inspect_service_source(self, source: ServiceSource) -> ServiceDraft:
        """Build or pull the source, detect interfaces, and hand the result back for review.

        The image stays in the engine; the service is only saved by ``add_service``.
        """
        comp = self.node.services
        if comp is None:
            raise ServiceError("services are not available on this node")
        registry = comp.registry
        ref = source.ref.strip()
        if not ref:
            raise ServiceError(f"{source.kind.value}: give a reference")
        if source.kind is SourceKind.IMAGE:
            try:
                service = await registry.add_local_image(ref)
            except ServiceError:
                service = await registry.add_from_image(ref)
        elif source.kind is SourceKind.GIT:
            url, _, git_ref = ref.partition("#")
            service = await registry.add_from_git(url, git_ref or "HEAD")
        else:
            from pathlib import Path

            service = await registry.add_from_dockerfile_dir(Path(ref))
        await registry.remove(service.id, remove_image=False)  # saved again on add_service
        notes = tuple(f"{i.type.value}{':' + i.path if i.path else ''}"
                      f"{' (' + i.direction.value + ')' if i.direction else ''}"
                      f"{' — ' + i.description if i.description else ''}" for i in service.interfaces)
        return ServiceDraft(source, service, notes)

    async def add_service(self, draft: ServiceDraft) -> ServiceInfo:
        comp = self.node.services
        if comp is None:
            raise ServiceError("services are not available on this node")
        if await comp.repository.get(draft.service.id) is not None:
            raise ServiceError(f"a service named {draft.service.name!r} already exists")
        await comp.repository.save(draft.service)
        await comp.announce()
        info = ServiceInfo(draft.service, True)
        self.node.events.publish(ServiceUpdated(info))
        return info

    async def remove_service(self, service_id: str) -> None:
        comp = self.node.services
        if comp is None:
            raise ServiceError("services are not available on this node")
        await comp.registry.remove(service_id)
        await comp.announce()
        self.node.events.publish(ServiceRemoved(service_id))

    async def save_workflow(self, name: str, yaml_text: str) -> WorkflowInfo:
        from rnn_tui.workflow.yaml_io import load_workflow

        loaded = load_workflow(yaml_text, name)  # raises with every problem at line:col
        wf = loaded.workflow
        store = self.node.store
        if store is None:
            raise WorkflowError("the store is not open")
        await store.call(store.put_workflow, wf.name, yaml_text)
        info = WorkflowInfo(wf.name, yaml_text, len(wf.jobs), time.time(), wf.description)
        self.node.events.publish(WorkflowSaved(info))
        return info

    async def delete_workflow(self, name: str) -> None:
        store = self.node.store
        if store is None or not await store.call(store.delete_workflow, name):
            raise WorkflowError(f"no workflow named {name!r}")
        self.node.events.publish(WorkflowDeleted(name))

    async def start_run(self, workflow_name: str) -> RunInfo:
        return await self._workflows().start_run(workflow_name)  # type: ignore[no-any-return]

    async def cancel_run(self, run_id: str) -> None:
        await self._workflows().cancel_run(run_id)

    async def job_logs(self, run_id: str, job: str | None = None,
                       follow: bool = True) -> AsyncIterator[LogLine]:
        async for line in self._workflows().job_logs(run_id, job, follow):
            yield line

    def _workflows(self) -> Any:
        workflows = getattr(self.node, "workflows", None)
        if workflows is None:
            raise WorkflowError("workflow runs are not available on this node")
        return workflows


def _peer_id(text: str) -> PeerId:
    try:
        return PeerId.parse(text)
    except ValueError as exc:
        raise RnnError(str(exc)) from None


def _workflow_info(name: str, text: str, updated: float) -> WorkflowInfo:
    from rnn_tui.workflow.yaml_io import load_workflow

    try:
        wf = load_workflow(text, name).workflow
        return WorkflowInfo(name, text, len(wf.jobs), updated, wf.description)
    except (RnnError, ValueError):
        return WorkflowInfo(name, text, 0, updated, "(invalid: open it to see the errors)")

