"""The wiring of one run as a graph of job names: who feeds whom, by which connection.

Why apart from the scheduler: the graph is fixed once the run's jobs (and their redundant
replicas) are placed, while the scheduler's state changes with every report.  Indexing it
once keeps each report's cost at O(the job's connections), and keeps the state machine's
module to its transitions.  Pure data: no clock, no IO.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rnn_tui.errors import LocalProtocolError
from rnn_tui.workflow.model import Connection

__all__ = ["RunGraph"]


class RunGraph:
    """Connections of a run indexed by job: ``(connection index, connection)`` both ways,
    the jobs up- and downstream of each, and the producers that pipe into each live.

    Raises ``LocalProtocolError`` if the connections make a cycle (a run must be a DAG).
    """

    __slots__ = ("conn_in", "conn_out", "downstream", "streamed_from", "upstream")

    def __init__(self, workflow_name: str, jobs: Iterable[str],
                 connections: Sequence[Connection]) -> None:
        names = list(jobs)
        self.conn_out: dict[str, list[tuple[int, Connection]]] = {n: [] for n in names}
        self.conn_in: dict[str, list[tuple[int, Connection]]] = {n: [] for n in names}
        for index, conn in enumerate(connections):
            if conn.source.job in self.conn_out:
                self.conn_out[conn.source.job].append((index, conn))
            if conn.target is not None and conn.target.job in self.conn_in:
                self.conn_in[conn.target.job].append((index, conn))
        self.upstream = {n: frozenset(c.source.job for _, c in self.conn_in[n]) for n in names}
        self.downstream = {n: frozenset(c.target.job for _, c in self.conn_out[n]
                                        if c.target is not None) for n in names}
        self.streamed_from = {n: frozenset(c.source.job for _, c in self.conn_in[n] if c.stream)
                              for n in names}
        self._check_acyclic(workflow_name, names)

    def descendants(self, name: str) -> list[str]:
        """Every job downstream of ``name``, directly or not, sorted."""
        seen: set[str] = set()
        stack = list(self.downstream[name])
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self.downstream[current])
        return sorted(seen)

    def _check_acyclic(self, workflow_name: str, names: list[str]) -> None:
        visiting: set[str] = set()
        done: set[str] = set()

        def visit(node: str) -> None:
            if node in done:
                return
            if node in visiting:
                raise LocalProtocolError(f"workflow {workflow_name!r} has a cycle through "
                                         f"{node!r}; validate it before running")
            visiting.add(node)
            for nxt in self.downstream[node]:
                visit(nxt)
            visiting.discard(node)
            done.add(node)

        for name in names:
            visit(name)
