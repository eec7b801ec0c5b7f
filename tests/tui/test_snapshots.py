"""SVG snapshots of the main screens (pytest-textual-snapshot).

Regenerate after an intended change with ``pytest tests/tui/test_snapshots.py
--snapshot-update`` and review the SVGs under ``__snapshots__/``.
"""

from __future__ import annotations

import pytest

from . import scenes
from .conftest import make_app

pytestmark = pytest.mark.tui


# A rare hang (1 run in ~10 on the loaded 2-core machine: the app's loop idles inside
# take_svg_screenshot and never exits) is not understood yet; bound it and retry rather
# than let it eat the suite's time budget.  A snapshot that really differs fails all tries.
@pytest.mark.timeout(90)
@pytest.mark.flaky(reruns=2)
@pytest.mark.parametrize("scene", sorted(scenes.SCENES))
def test_main_screens(snap_compare, scene: str) -> None:
    app, _ = make_app()
    assert snap_compare(app, terminal_size=scenes.SIZE, run_before=scenes.SCENES[scene])
