"""Boundaries: the domain dataclasses and the pure TUI cores never load textual."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.tui

PURE = ["rnn_tui.api", "rnn_tui.tui.widgets.workflow.layout", "rnn_tui.tui.widgets.workflow.canvas",
        "rnn_tui.tui.widgets.workflow.editing", "rnn_tui.tui.widgets.logs.buffer"]


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_do_not_import_textual_or_asyncio_io(module: str) -> None:
    code = (f"import sys, {module}; bad = [m for m in ('textual', 'rich', 'peewee', 'docker') "
            "if m in sys.modules]; print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
