"""Bounded log buffer and line formatting for the logs view (pure, no textual).

Why a buffer in front of the widget: writing one line per call freezes Textual at ~5k
lines/s (FACTS.md).  Producers append here at any rate; the view drains ``take_pending``
10-20 times a second and writes the batch in one ``Log.write_lines`` call.  Both the
pending queue and the history are bounded: when full, the oldest lines go and
``dropped`` counts them, so a flood never grows memory and the operator *sees* the loss.

The history (not the widget) is the source of truth: changing the filter, timestamps or
wrap re-formats the history into the widget; saving and copying read the history.
"""

from __future__ import annotations

import re
import textwrap
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from rnn_tui.api import LogLine, LogStream

__all__ = ["LogBuffer", "LogFormat", "format_line", "format_lines", "STREAM_TAGS", "TAG_PATTERN"]

STREAM_TAGS = {LogStream.STDOUT: "OUT│", LogStream.STDERR: "ERR│", LogStream.LOGS: "LOG│"}
TAG_PATTERN = re.compile(r"(OUT|ERR|LOG)│")


@dataclass(frozen=True, slots=True)
class LogFormat:
    """How history lines become text: the toggles of the logs view."""

    timestamps: bool = False
    job_prefix: bool = True  # merged multi-job view
    job_width: int = 8
    wrap_width: int | None = None  # None: no wrap (horizontal scroll)
    utc: bool = True


def _stamp(ts: float, utc: bool) -> str:
    t = time.gmtime(ts) if utc else time.localtime(ts)
    return time.strftime("%H:%M:%S", t) + f".{int((ts % 1) * 1000):03d}"


def format_line(line: LogLine, fmt: LogFormat) -> list[str]:
    """One history line → one or more display lines (several when wrapped)."""
    prefix = ""
    if fmt.timestamps:
        prefix += _stamp(line.ts, fmt.utc) + " "
    if fmt.job_prefix:
        prefix += f"{line.job[: fmt.job_width]:<{fmt.job_width}} "
    head = prefix + STREAM_TAGS[line.stream] + " "
    text = line.text.replace("\r", "").replace("\t", "    ")
    if fmt.wrap_width is None or len(head) + len(text) <= fmt.wrap_width:
        return [head + text]
    room = max(fmt.wrap_width - len(head), 10)
    chunks = textwrap.wrap(text, room, break_long_words=True, replace_whitespace=False,
                           drop_whitespace=False) or [""]
    cont = " " * len(prefix) + STREAM_TAGS[line.stream] + " "
    return [head + chunks[0]] + [cont + c for c in chunks[1:]]


def format_lines(lines: Iterable[LogLine], fmt: LogFormat, term: str = "") -> list[str]:
    """Format many lines (the drain's hot path): heads are cached per (job, stream).

    Without timestamps or wrap, a line costs one dict lookup and one concatenation; that
    is what keeps a 50k lines/s flood cheap.
    """
    if fmt.timestamps or fmt.wrap_width is not None:
        return [t for ln in lines if matches(ln, term) for t in format_line(ln, fmt)]
    heads: dict[tuple[str, LogStream], str] = {}
    out: list[str] = []
    append = out.append
    needle = term.lower()
    for ln in lines:
        if needle and needle not in ln.text.lower() and needle not in ln.job.lower():
            continue
        head = heads.get((ln.job, ln.stream))
        if head is None:
            prefix = f"{ln.job[: fmt.job_width]:<{fmt.job_width}} " if fmt.job_prefix else ""
            head = heads[(ln.job, ln.stream)] = prefix + STREAM_TAGS[ln.stream] + " "
        text = ln.text
        if "\t" in text or "\r" in text:
            text = text.replace("\r", "").replace("\t", "    ")
        append(head + text)
    return out


class LogBuffer:
    """History (bounded) + pending batch (bounded) + drop counter."""

    def __init__(self, max_lines: int = 20_000, max_pending: int = 100_000) -> None:
        self.max_lines = max_lines
        self.history: deque[LogLine] = deque(maxlen=max_lines)
        self._pending: deque[LogLine] = deque()
        self.max_pending = max_pending
        self.dropped = 0  # lines that left the history or never reached it
        self.received = 0

    def append(self, line: LogLine) -> None:
        self.received += 1
        if len(self._pending) >= self.max_pending:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append(line)

    def extend(self, lines: Iterable[LogLine]) -> None:
        for line in lines:
            self.append(line)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def take_pending(self, limit: int | None = None) -> list[LogLine]:
        """Move up to ``limit`` pending lines into the history and return them."""
        n = len(self._pending) if limit is None else min(limit, len(self._pending))
        if n == len(self._pending):
            batch = list(self._pending)
            self._pending.clear()
        else:
            batch = [self._pending.popleft() for _ in range(n)]
        overflow = len(self.history) + len(batch) - self.max_lines
        if overflow > 0:
            self.dropped += min(overflow, len(self.history) + len(batch))
        self.history.extend(batch)
        if len(batch) > self.max_lines:
            batch = batch[-self.max_lines:]
        return batch

    def matching(self, term: str, jobs: frozenset[str] | None = None) -> list[LogLine]:
        """History lines containing ``term`` (case-insensitive) from ``jobs`` (None: all)."""
        return [ln for ln in self.history if matches(ln, term, jobs)]

    def clear(self) -> None:
        self.history.clear()
        self._pending.clear()


def matches(line: LogLine, term: str, jobs: frozenset[str] | None = None) -> bool:
    if jobs is not None and line.job not in jobs:
        return False
    return not term or term.lower() in line.text.lower() or term.lower() in line.job.lower()
