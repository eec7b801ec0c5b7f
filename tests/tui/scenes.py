"""The main screens of the demo scene, shared by snapshot tests and ``make_screenshots.py``.

Each scene is (name, setup) where setup drives a Pilot to the screen; every scene starts
from a fresh ``DemoNode`` with fixed keys, data and clock, so pictures are reproducible.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual.pilot import Pilot

from rnn_tui.tui.screens.editor import EditorScreen

SIZE = (140, 42)

Setup = Callable[[Pilot[object]], Awaitable[None]]


async def _start(pilot: Pilot[object]) -> None:
    await pilot.pause(0.3)
    await pilot.pause()


async def peers(pilot: Pilot[object]) -> None:
    await _start(pilot)


async def services(pilot: Pilot[object]) -> None:
    await _start(pilot)
    await pilot.press("2")
    await pilot.pause()


async def workflows(pilot: Pilot[object]) -> None:
    await _start(pilot)
    await pilot.press("3")
    await pilot.pause()


async def runs(pilot: Pilot[object]) -> None:
    await _start(pilot)
    await pilot.press("4")
    await pilot.pause()


async def editor(pilot: Pilot[object]) -> None:
    await _start(pilot)
    pilot.app.open_editor("pollinators")  # type: ignore[attr-defined]
    await pilot.pause(0.2)
    screen = pilot.app.screen
    assert isinstance(screen, EditorScreen)
    screen.graph.select_port("model", "out", "STDOUT")
    await pilot.pause()


async def yaml_view(pilot: Pilot[object]) -> None:
    await editor(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, EditorScreen)
    screen.yaml_area.cursor_blink = False  # a blinking cursor makes pictures differ
    await pilot.press("f2")
    await pilot.pause(0.2)


async def run_graph(pilot: Pilot[object]) -> None:
    await _start(pilot)
    pilot.app.open_run_graph("r-0001")  # type: ignore[attr-defined]
    await pilot.pause(0.3)


async def logs(pilot: Pilot[object]) -> None:
    await _start(pilot)
    pilot.app.open_logs("r-0001", None)  # type: ignore[attr-defined]
    await pilot.pause(0.4)


async def help_keys(pilot: Pilot[object]) -> None:
    await _start(pilot)
    await pilot.press("question_mark")
    await pilot.pause(0.1)


async def wizard(pilot: Pilot[object]) -> None:
    """The add-service wizard's review step, editing the detected MOUNT with a mistake."""
    await _start(pilot)
    await pilot.press("2", "a")
    await pilot.pause(0.1)
    await pilot.press(*"ghcr.io/acme/word-count:2", "enter")
    await pilot.pause(0.2)
    await pilot.press("down", "down", "down", "down", "enter")
    await pilot.pause(0.1)
    await pilot.press("tab", "ctrl+u", *"data/in", "enter")
    await pilot.pause(0.1)
    await pilot.pause()


SCENES: dict[str, Setup] = {
    "peers": peers, "services": services, "workflows": workflows, "runs": runs,
    "editor": editor, "yaml": yaml_view, "run-graph": run_graph, "logs": logs,
    "help": help_keys, "wizard": wizard,
}
