"""Located problems: one message with the YAML line and column it is about.

Why a module of its own: both the YAML reader and the validator report problems, the
validator also runs on workflows built in the editor (no YAML at all), and the CLI and TUI
print them the same way, ``FILE:LINE:COL: message``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rnn_tui.errors import ValidationError

__all__ = ["Problem", "SourcePath", "SourceMap", "WorkflowInvalid", "locate"]

SourcePath = tuple[str | int, ...]
"""Where a value sits in the model: ``("jobs", "count", "service")``,
``("connections", 2, "to")``.  Jobs are addressed by name, connections by index."""

SourceMap = Mapping[SourcePath, tuple[int, int]]
"""Model path → (line, column), both 1-based, as recorded by the YAML reader."""


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One thing wrong with a workflow; ``line``/``column`` are 1-based, 0 when unknown."""

    line: int
    column: int
    message: str
    source: str = "<workflow>"

    def __str__(self) -> str:
        if self.line:
            return f"{self.source}:{self.line}:{self.column}: {self.message}"
        return f"{self.source}: {self.message}"


def locate(marks: SourceMap | None, path: SourcePath) -> tuple[int, int]:
    """The mark of ``path`` or of its nearest recorded ancestor; (0, 0) if none."""
    if not marks:
        return (0, 0)
    probe = path
    while probe:
        if probe in marks:
            return marks[probe]
        probe = probe[:-1]
    return marks.get((), (0, 0))


class WorkflowInvalid(ValidationError):
    """A workflow failed to load or validate; ``problems`` holds every located problem."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        located = sorted(problems)
        lines = [str(p) for p in located]
        count = len(lines)
        summary = lines[0] if count == 1 else f"{count} problems:\n" + "\n".join(lines)
        super().__init__(summary, lines)
        self.located = located
