"""k-way redundancy: the vote among the replicas of one job (pure; the scheduler's helper).

Why by output hashes: each replica's outputs reach the scheduler only after the orchestrator
checked them against that executor's signed receipt, so a vote is an attributable claim.
Agreement is identical hashes of the compared outputs (STDOUT and every output a connection
ships; never LOGS, whose timestamps differ).  The job completes when ``quorum`` replicas,
including the one whose outputs were delivered, agree; it fails as soon as no group can
reach the quorum any more, naming every replica's hash.  This is Bacalhau's
concurrency/confidence: it catches a minority of faulty or dishonest executors, not a
colluding majority, and costs k times the compute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from rnn_tui.identity.keys import PeerId
from rnn_tui.workflow.messages import OutputDigest
from rnn_tui.workflow.model import Job

__all__ = ["Vote", "Verdict", "compared_sources", "plan_replicas", "replica_name",
           "tally"]


class _Placed(Protocol):
    @property
    def peer(self) -> PeerId: ...


C = TypeVar("C", bound=_Placed)


def plan_replicas(job: Job, options: Sequence[C]) -> list[tuple[Job, list[C]]]:
    """Replicas 2..k of ``job`` with their candidates, each placed first on another peer.

    ``ValueError`` when fewer than k distinct peers offer the service.
    """
    peers = list(dict.fromkeys(c.peer for c in options))
    if len(peers) < job.redundancy:
        raise ValueError(f"job {job.name!r}: redundancy {job.redundancy} needs as many "
                         f"distinct peers offering {job.service.service!r}; {len(peers)} found")
    out = []
    for number in range(2, job.redundancy + 1):
        peer = peers[number - 1]
        first = [c for c in options if c.peer == peer]
        out.append((replace(job, name=replica_name(job.name, number), redundancy=1,
                            confidence=None), first + [c for c in options if c.peer != peer]))
    return out


def replica_name(job: str, number: int) -> str:
    """``count#2``: not a valid job name in YAML, so it never clashes with one."""
    return f"{job}#{number}"


def compared_sources(shipped: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(({"STDOUT", *shipped}) - {"LOGS"}))


@dataclass(frozen=True, slots=True)
class Vote:
    """One replica: its executor, and its outputs (``None`` while it has not finished)."""

    executor: PeerId | None
    outputs: tuple[OutputDigest, ...] | None
    finished: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    decided: bool
    agreed: bool
    reason: str


def tally(primary: Vote, others: Sequence[Vote], sources: Sequence[str], quorum: int
          ) -> Verdict:
    """Has ``primary`` (delivered) reached ``quorum`` agreeing replicas, or can it no longer?"""
    def key(vote: Vote) -> tuple[tuple[str, str], ...]:
        got: Mapping[str, str] = {d.source: d.sha256 for d in vote.outputs or ()}
        return tuple((source, got.get(source, "")) for source in sources)

    mine = key(primary)
    # one vote per executor: a replica retried onto a peer that already voted (or one peer
    # holding two replicas) must not let a single executor make the quorum on its own
    agreeing: set[PeerId | None] = {primary.executor}
    pending = 0
    voters = [primary]
    for vote in others:
        if vote.outputs is not None:
            voters.append(vote)
            if key(vote) == mine and vote.executor is not None:
                agreeing.add(vote.executor)
        elif not vote.finished:
            pending += 1
    agree = len(agreeing)
    total = 1 + len(others)
    if agree >= quorum:
        return Verdict(True, True, f"{agree} of {total} replicas, on {agree} distinct peers, "
                                   f"agree on its outputs")
    if agree + pending >= quorum:
        return Verdict(False, False, "")

    def describe(vote: Vote) -> str:
        who = vote.executor.short if vote.executor is not None else "?"
        pairs = key(vote)
        if len(pairs) == 1:
            return f"peer {who} sha {pairs[0][1][:16] or 'none'}…"
        return f"peer {who} " + " ".join(f"{s}={h[:12] or 'none'}…" for s, h in pairs)

    failed = total - len(voters)
    extra = f"; {failed} replica(s) produced nothing" if failed else ""
    return Verdict(True, False, "outputs disagree: " + ", ".join(describe(v) for v in voters)
                   + f" (need {quorum} of {total}, on distinct peers, to agree{extra})")
