"""Regenerate ``screenshots/*.svg`` from the demo scene.

Run: ``.venv/bin/python -m tests.tui.make_screenshots`` from the repository root.
``save_screenshot`` does not create its directory, so we do.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.tui import scenes
from tests.tui.conftest import make_app

OUT = Path(__file__).resolve().parents[2] / "screenshots"


async def shoot(name: str) -> Path:
    app, _ = make_app()
    async with app.run_test(size=scenes.SIZE) as pilot:
        await scenes.SCENES[name](pilot)
        return Path(app.save_screenshot(f"{name}.svg", path=str(OUT)))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name in scenes.SCENES:
        print(asyncio.run(shoot(name)))


if __name__ == "__main__":
    main()
