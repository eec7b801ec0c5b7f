"""Fixtures for the TUI tests: the app on a deterministic DemoNode, fixed clock and size."""

from __future__ import annotations

import pytest

from rnn_tui.tui.app import RnnApp
from rnn_tui.tui.demo import DEMO_NOW, DemoNode

SIZE = (140, 42)


def make_app(**node_kwargs: object) -> tuple[RnnApp, DemoNode]:
    readonly = bool(node_kwargs.pop("readonly", False))
    node = DemoNode(step_s=float(node_kwargs.pop("step_s", 0.02)), **node_kwargs)  # type: ignore[arg-type]
    app = RnnApp(node, readonly=readonly, clock=lambda: DEMO_NOW, theme="textual-dark")
    return app, node


@pytest.fixture
def demo_app() -> tuple[RnnApp, DemoNode]:
    return make_app()
