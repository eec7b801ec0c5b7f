"""The contract between the TUI and the node: everything a widget may ask of the node.

Why a Protocol: the UI must never call network, Docker or store code directly.  It talks
to one object that ``node.py`` implements (and ``demo.DemoNode`` imitates for tests and
screenshots).  Everything crossing this line is a domain dataclass from ``rnn_tui.api``.

Rules the implementation keeps:
- ``start()`` raises ``RnnError`` with a one-line reason (port in use, bad passphrase); the
  app shows that reason in place of the screens, never a traceback.
- Commands raise ``RnnError`` for expected failures (unknown peer, timeout, invalid
  workflow); the app turns them into notifications.  Every command has its own timeout.
- ``subscribe_events()`` yields events until the node stops; each call is an independent
  subscriber.  The node may coalesce events: the UI re-reads snapshots when it needs to.
- ``job_logs(run_id, job)`` yields the lines already produced, then (with ``follow``)
  new ones until the job ends.  ``job=None`` merges every job of the run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from rnn_tui.api import (
    LogLine,
    NodeEvent,
    NodeStatus,
    PeerDetail,
    PeerInfo,
    RunInfo,
    ServiceDraft,
    ServiceInfo,
    ServiceSource,
    WorkflowInfo,
)

__all__ = ["NodeFacade"]


@runtime_checkable
class NodeFacade(Protocol):
    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Start the node; raise ``RnnError`` with the reason when it cannot."""

    async def stop(self) -> None:
        """Stop the node and every task it owns; safe to call twice or before start."""

    def status(self) -> NodeStatus:
        """Identity and reachability summary for the header (cheap, in-memory)."""

    def subscribe_events(self) -> AsyncIterator[NodeEvent]:
        """A fresh stream of node events; ends when the node stops."""

    # --- snapshots ----------------------------------------------------------------------
    async def peers(self) -> list[PeerInfo]: ...

    async def describe_peer(self, peer_id: str) -> PeerDetail: ...

    async def services(self) -> list[ServiceInfo]:
        """Local services and remote services already known (from search or gossip)."""

    async def workflows(self) -> list[WorkflowInfo]: ...

    async def runs(self) -> list[RunInfo]: ...

    # --- commands -----------------------------------------------------------------------
    async def connect(self, target: str) -> PeerInfo:
        """Connect to ``host:port`` or a peer id (looked up in the DHT)."""

    async def ping(self, peer_id: str) -> float:
        """Round-trip time to the peer in milliseconds."""

    def search_services(self, phrase: str) -> AsyncIterator[ServiceInfo]:
        """Remote services matching ``phrase``, streamed as peers answer."""

    async def inspect_service_source(self, source: ServiceSource) -> ServiceDraft:
        """Build or pull ``source`` and detect its interfaces, without adding it."""

    async def add_service(self, draft: ServiceDraft) -> ServiceInfo: ...

    async def remove_service(self, service_id: str) -> None: ...

    async def save_workflow(self, name: str, yaml_text: str) -> WorkflowInfo:
        """Validate and store a workflow; raise ``ValidationError`` listing every problem."""

    async def delete_workflow(self, name: str) -> None: ...

    async def start_run(self, workflow_name: str) -> RunInfo: ...

    async def cancel_run(self, run_id: str) -> None: ...

    def job_logs(self, run_id: str, job: str | None = None,
                 follow: bool = True) -> AsyncIterator[LogLine]: ...
