"""A running job's STDOUT/STDERR as live log lines for its requester, within a budget.

Why it is apart from the executor: turning container reads into lines (partial lines kept
between reads, a token bucket of lines, counts of the lines over it, batches small enough for
one message) is pure bookkeeping over bytes.  The executor feeds it container chunks with the
time and gives it a ``send`` callback that ships one batch; nothing here touches a socket or
a clock, so the rules are testable as they are.

Why a budget: every live line costs the requester (decode, a log record, an event) on the path
of the job's own reports; a job printing 20 000 lines in 40 ms cost ~200 ms of the
requester's CPU per job (docs/perf/workflow_orchestration.md).  The requester keeps only the
last 5 000 lines of a run anyway; the job's full STDOUT/STDERR are its outputs.  Lines over
the budget are counted, not decoded, and a ``[rnn]`` line says how many were not streamed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LIVE_BURST", "LIVE_PER_S", "LOG_BATCH", "LOG_BATCH_CHARS", "MAX_LOG_LINE",
           "LiveBudget", "LiveLog"]

MAX_LOG_LINE = 4096
"""Characters of one live line (longer lines are cut; a partial line keeps its tail)."""
LIVE_BURST = 2000
"""Live log lines a job may stream at once; then ``LIVE_PER_S`` a second (a token bucket)."""
LIVE_PER_S = 500.0
LOG_BATCH = 2000
"""Lines in one log message at most."""
LOG_BATCH_CHARS = 512 * 1024  # far below the transport's 4 MiB message limit

SendBatch = Callable[[str, list[str]], None]
"""``send(stream, lines)``: ship one batch (``stream`` is ``stdout``/``stderr``); it must
never block nor raise (live lines are best effort: the outputs have them all)."""


@dataclass(slots=True)
class LiveBudget:
    """A token bucket of live log lines for one job: ``burst`` at once, then ``per_s``."""

    burst: int = LIVE_BURST
    per_s: float = LIVE_PER_S
    tokens: float = LIVE_BURST
    at: float | None = None

    def refill(self, now: float) -> float:
        if self.at is not None:
            self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.per_s)
        self.at = now
        return self.tokens

    def take(self, wanted: int, now: float) -> int:
        """How many of ``wanted`` lines may go now (the rest are to be counted, not sent)."""
        allowed = max(0, min(wanted, int(self.refill(now))))
        self.tokens -= allowed
        return allowed


class LiveLog:
    """One job's live log: partial lines and skipped counts per stream, and its budget."""

    __slots__ = ("_send", "budget", "partial", "skipped")

    def __init__(self, send: SendBatch, budget: LiveBudget | None = None) -> None:
        self._send = send
        self.budget = budget or LiveBudget()
        self.partial: dict[str, str] = {}
        self.skipped: dict[str, int] = {}

    def feed(self, stream: str, data: bytes, now: float) -> None:
        """Bytes the container wrote to ``stream``: whole lines go now, within the budget."""
        if self.budget.refill(now) < 1:
            newlines = data.count(b"\n")
            if newlines:
                self.skipped[stream] = self.skipped.get(stream, 0) + newlines
                tail = data[data.rfind(b"\n") + 1:]
                self.partial[stream] = tail[-MAX_LOG_LINE:].decode("utf-8", "replace")
            else:
                rest = self.partial.get(stream, "") + data.decode("utf-8", "replace")
                self.partial[stream] = rest[-MAX_LOG_LINE:]
            return
        text = self.partial.get(stream, "") + data.decode("utf-8", "replace")
        lines = text.split("\n")
        self.partial[stream] = lines.pop()[-MAX_LOG_LINE:]
        allowed = self.budget.take(len(lines), now)
        if allowed < len(lines):
            self.skipped[stream] = self.skipped.get(stream, 0) + len(lines) - allowed
            del lines[allowed:]
        self.send(stream, self._skip_note(stream) + lines)

    def flush(self) -> None:
        """The job has exited: its last partial lines and the skipped counts go now."""
        for stream in sorted(set(self.partial) | set(self.skipped)):
            rest = self.partial.get(stream, "")
            self.send(stream, ([rest] if rest else []) + self._skip_note(stream))
        self.partial.clear()

    def send(self, stream: str, lines: list[str]) -> None:
        """Ship ``lines`` (outside the budget: notes of our own), in batches of
        ``LOG_BATCH`` lines or ``LOG_BATCH_CHARS`` characters at most."""
        batch: list[str] = []
        size = 0
        for line in lines:
            line = line[:MAX_LOG_LINE]
            batch.append(line)
            size += len(line) + 1
            if len(batch) >= LOG_BATCH or size >= LOG_BATCH_CHARS:
                self._send(stream, batch)
                batch, size = [], 0
        if batch:
            self._send(stream, batch)

    def _skip_note(self, stream: str) -> list[str]:
        skipped = self.skipped.pop(stream, 0)
        if not skipped:
            return []
        return [f"[rnn] {skipped} lines of {stream} were not streamed live (over "
                f"{self.budget.burst} lines at once or {self.budget.per_s:g}/s); the job's "
                f"{stream.upper()} output has them all"]
