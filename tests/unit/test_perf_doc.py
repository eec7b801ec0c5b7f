"""docs/PERFORMANCE.md carries every area's record from docs/perf/*.md, not a stale copy."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_performance_doc_is_rebuilt_from_the_area_records() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "perf_doc.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
