"""Rebuild ``docs/PERFORMANCE.md`` from its own header and summary plus ``docs/perf/*.md``.

Why: each area keeps its record in ``docs/perf/<area>.md`` (one engineer, one file, no
merge fights); ``docs/PERFORMANCE.md`` is what readers open, so it carries the summary
table and every area's record, in a fixed order.  ``--check`` exits 1 when the file is
stale (``tests/unit/test_perf_doc.py`` runs it).

Usage: ``python bench/perf_doc.py [--check]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "PERFORMANCE.md"
ORDER = ("dht", "transport", "nat", "gossip", "runtime", "workflow", "workflow_orchestration",
         "tui")
MARK = "The sections below are each area's own record"


def build() -> str:
    text = DOC.read_text()
    head_end = text.index("\n\n", text.index(MARK)) + 2
    parts = [text[:head_end]]
    for name in ORDER:
        parts.append((ROOT / "docs" / "perf" / f"{name}.md").read_text().strip() + "\n\n")
    return "".join(parts).rstrip("\n") + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args()
    fresh = build()
    if args.check:
        if DOC.read_text() != fresh:
            print(f"{DOC} is stale: run python bench/perf_doc.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
