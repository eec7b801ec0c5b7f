"""House rules checked on every run: import boundaries, lint and types.

The import-linter contracts live in ``pyproject.toml``; this runs them.  A second check
imports every protocol core in a fresh interpreter and proves that neither asyncio's
event loop machinery, textual, peewee nor docker was loaded with it (after harlequin).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; install the dev extra: pip install -e '.[dev]'")
    return found


def _core_modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    sans_io = next(c for c in contracts if "sans-IO" in c["name"])
    return list(sans_io["source_modules"])


def test_import_linter_contracts_hold() -> None:
    proc = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout


def test_cores_load_without_io_frameworks() -> None:
    modules = _core_modules()
    assert len(modules) >= 8
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(k for k in sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = set(json.loads(proc.stdout))
    for forbidden in ("textual", "peewee", "docker", "aioquic.asyncio"):
        assert forbidden not in loaded, f"a protocol core imports {forbidden}"


def test_only_tui_imports_textual() -> None:
    offenders = []
    for path in (ROOT / "rnn_tui").rglob("*.py"):
        if "tui" in path.relative_to(ROOT / "rnn_tui").parts[:1]:
            continue
        text = path.read_text()
        if "import textual" in text or "from textual" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_no_pickle_anywhere() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "rnn_tui").rglob("*.py")
                 if "import pickle" in p.read_text() or "pickle.loads" in p.read_text()]
    assert offenders == []


@pytest.mark.slow
def test_ruff_passes() -> None:
    proc = subprocess.run([_tool("ruff"), "check", "rnn_tui", "tests", "bench"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:]


@pytest.mark.slow
def test_mypy_passes_strict_on_cores() -> None:
    proc = subprocess.run([_tool("mypy"), "rnn_tui"], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:]
