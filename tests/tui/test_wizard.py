"""Pilot tests of the add-service wizard's review step: editing interfaces, keyboard first."""

from __future__ import annotations

import pytest

from rnn_tui.services.model import InterfaceType, MountDirection
from rnn_tui.tui.screens.main import MainScreen
from rnn_tui.tui.screens.wizard import ServiceWizardScreen
from rnn_tui.tui.widgets.interfaces import InterfaceEditor, InterfaceTable

from .conftest import SIZE

pytestmark = pytest.mark.tui


async def settle(pilot, t: float = 0.05) -> None:
    await pilot.pause(t)
    await pilot.pause()


async def open_and_inspect(pilot, ref: str = "ghcr.io/acme/tiles:1") -> InterfaceEditor:
    await settle(pilot, 0.2)
    await pilot.press("2", "a")
    await settle(pilot)
    assert isinstance(pilot.app.screen, ServiceWizardScreen)
    await pilot.press(*ref, "enter")  # Enter in the reference field inspects
    await settle(pilot, 0.1)
    editor = pilot.app.screen.query_one(InterfaceEditor)
    assert isinstance(pilot.app.focused, InterfaceTable)  # review starts on the table
    return editor


def problems(app) -> str:
    return str(app.screen.query_one("#if-problems").render())


async def type_into(pilot, text: str) -> None:
    await pilot.press("ctrl+u", *text)  # clear the field, then type


async def test_edit_add_remove_interfaces_with_the_keyboard_then_add(demo_app) -> None:
    app, node = demo_app
    async with app.run_test(size=SIZE) as pilot:
        editor = await open_and_inspect(pilot)
        assert [r.type for r in editor.rows] == ["STDIN", "STDOUT", "STDERR", "LOGS", "MOUNT"]
        # edit the detected MOUNT /data (BOTH): path /data/in, direction INPUT, a description
        await pilot.press("down", "down", "down", "down", "enter")
        await settle(pilot)
        assert editor.editing == 4
        await pilot.press("tab")
        await type_into(pilot, "/data/in")
        await pilot.press("tab", "enter")  # open the direction list
        await settle(pilot)
        await pilot.press("up", "up", "enter")  # BOTH → OUTPUT → INPUT
        await settle(pilot)
        await pilot.press("tab", *"raw tiles", "enter")
        await settle(pilot)
        assert editor.editing is None
        assert editor.rows[4].path == "/data/in" and editor.rows[4].direction == "INPUT"
        assert editor.rows[4].description == "raw tiles"
        # add a MOUNT with a relative path: refused, naming the row and the field
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("tab")
        await type_into(pilot, "out")
        await pilot.press("enter")
        await settle(pilot)
        assert editor.editing == 5 and len(editor.rows) == 5
        assert "interface 6 path: 'out' is relative; a MOUNT path must be absolute" in problems(app)
        # the same path as another MOUNT: refused too
        await type_into(pilot, "/data/in")
        await pilot.press("enter")
        await settle(pilot)
        assert "interface 6 path: MOUNT path /data/in is already interface 5" in problems(app)
        await type_into(pilot, "/out")
        await pilot.press("enter")
        await settle(pilot)
        assert editor.editing is None and editor.rows[5].path == "/out"
        assert problems(app).strip() == ""
        # remove LOGS (row 4)
        editor.table.move_cursor(row=3)
        await pilot.press("x")
        await settle(pilot)
        assert [r.type for r in editor.rows] == ["STDIN", "STDOUT", "STDERR", "MOUNT", "MOUNT"]
        await pilot.click("#add")
        await settle(pilot, 0.1)
        assert isinstance(app.screen, MainScreen)
        added = next(s for s in await node.services() if s.name == "tiles")
        got = [(i.type, i.path, i.direction, i.description) for i in added.service.interfaces]
        assert got == [
            (InterfaceType.STDIN, None, None, ""), (InterfaceType.STDOUT, None, None, ""),
            (InterfaceType.STDERR, None, None, ""),
            (InterfaceType.MOUNT, "/data/in", MountDirection.INPUT, "raw tiles"),
            (InterfaceType.MOUNT, "/out", MountDirection.BOTH, ""),
        ]


async def test_escape_drops_an_edit_first_and_type_change_clears_the_path(demo_app) -> None:
    app, node = demo_app
    async with app.run_test(size=SIZE) as pilot:
        editor = await open_and_inspect(pilot)
        await pilot.press("down", "down", "down", "down", "enter")
        await settle(pilot)
        await pilot.press("tab")
        await type_into(pilot, "/elsewhere")
        await pilot.press("escape")  # drops the edit, keeps the wizard
        await settle(pilot)
        assert isinstance(app.screen, ServiceWizardScreen)
        assert editor.editing is None and editor.rows[4].path == "/data"
        # change the MOUNT into a STDOUT: path and direction are disabled, and a second
        # STDOUT is refused on the type field
        await pilot.press("enter")
        await settle(pilot)
        app.screen.query_one("#if-type").value = "STDOUT"
        await settle(pilot)
        assert app.screen.query_one("#if-path").disabled
        await pilot.press("tab", "enter")  # focus skips the disabled fields: description
        await settle(pilot)
        assert "interface 5 type: STDOUT is already interface 2" in problems(app)
        await pilot.press("escape", "escape")  # edit dropped, then the wizard cancelled
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert not any(s.name == "tiles" for s in await node.services())


async def test_add_refuses_an_empty_interface_list(demo_app) -> None:
    app, node = demo_app
    async with app.run_test(size=SIZE) as pilot:
        editor = await open_and_inspect(pilot)
        await pilot.press(*"x" * 5)
        await settle(pilot)
        assert editor.rows == []
        await pilot.click("#add")
        await settle(pilot)
        assert isinstance(app.screen, ServiceWizardScreen)
        assert "interfaces: a service needs at least one" in problems(app)
        assert not any(s.name == "tiles" for s in await node.services())
