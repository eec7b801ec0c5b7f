"""Pilot tests of the main screen: panes, filters, describe, connect, ping, confirm dialogs."""

from __future__ import annotations

import pytest

from rnn_tui.tui.screens.main import MainScreen
from rnn_tui.tui.screens.modals import (
    ConfirmScreen,
    DescribeScreen,
    FailureScreen,
    HelpScreen,
    PromptScreen,
    TooSmallScreen,
)
from rnn_tui.tui.widgets.header import StatusHeader
from rnn_tui.tui.widgets.table import FilterTable

from .conftest import SIZE, make_app

pytestmark = pytest.mark.tui


async def settle(pilot, t: float = 0.05) -> None:
    await pilot.pause(t)
    await pilot.pause()


def table(app, pane: str) -> FilterTable:
    return app.screen.query_one(f"#{pane}-table", FilterTable)


async def test_starts_the_node_and_shows_peers_and_header(demo_app) -> None:
    app, node = demo_app
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 0.2)
        assert isinstance(app.screen, MainScreen)
        assert node._started
        assert len(table(app, "peers").visible_keys()) == 5
        header = app.screen.query_one(StatusHeader).render().plain
        assert node.status().short_id in header and "5 peers" in header and "1 running" in header
    assert not node._started  # the app stopped the node on exit


async def test_number_keys_switch_panes(demo_app) -> None:
    app, _ = demo_app
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 0.2)
        for key, pane in (("2", "services"), ("3", "workflows"), ("4", "runs"), ("1", "peers")):
            await pilot.press(key)
            assert app.screen.active_pane == pane
        await pilot.press("2")
        assert len(table(app, "services").visible_keys()) == 6
        await pilot.press("3")
        assert table(app, "workflows").visible_keys() == ["deforestation", "pollinators"]


async def test_slash_filters_the_table_and_escape_clears(demo_app) -> None:
    app, _ = demo_app
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 0.2)
        await pilot.press("slash", *"symm")
        keys = table(app, "peers").visible_keys()
        assert len(keys) == 1
        await pilot.press("escape")
        assert len(table(app, "peers").visible_keys()) == 5


async def test_describe_peer_shows_metadata_and_receipts(demo_app) -> None:
    app, _ = demo_app
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 0.2)
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, DescribeScreen)
        body = str(app.screen.query_one("#describe-body").render())
        assert "Receipts (" in body and "agent" in body and "executed for us" in body
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_connect_and_ping(demo_app) -> None:
    app, node = demo_app
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 0.2)
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"198.51.100.7:30609", "enter")
        await settle(pilot)
        assert node.connects == ["198.51.100.7:30609"]
        await pilot.press("p")
        await settle(pilot)
        assert node.pings == 1


async def test_remote_search_streams_results_into_services(demo_app) -> None:
    app, _ = demo_app
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 0.2)
        await pilot.press("2", "s")
        await settle(pilot)
        await pilot.press(*"ndvi", "enter")
        await settle(pilot, 0.2)
        assert len(table(app, "services").visible_keys()) == 1


async def test_add_service_wizard_reviews_interfaces_then_adds(demo_app) -> None:
    app, node = demo_app
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 0.2)
        await pilot.press("2", "a")
        await settle(pilot)
        app.screen.query_one("#wizard-ref").value = "ghcr.io/acme/word-count:2"
        await pilot.click("#inspect")
        await settle(pilot, 0.1)
        review = str(app.screen.query_one("#review").render())
        assert "MOUNT:/data" in review and "VOLUME /data" in review
        await pilot.click("#add")
        await settle(pilot, 0.1)
        assert any(s.name == "word-count" for s in await node.services())
        assert any(k for k in table(app, "services").visible_keys()
                   if app.services_cache[k].name == "word-count")


async def test_delete_workflow_asks_first(demo_app) -> None:
    app, node = demo_app
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 0.2)
        await pilot.press("3", "x")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(pilot)
        assert len(await node.workflows()) == 2
        await pilot.press("x")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot, 0.1)
        assert [w.name for w in await node.workflows()] == ["pollinators"]
        assert table(app, "workflows").visible_keys() == ["pollinators"]


async def test_cancel_run_asks_first(demo_app) -> None:
    app, node = demo_app
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 0.2)
        await pilot.press("4", "x")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot, 0.1)
        run = next(r for r in await node.runs() if r.run_id == "r-0001")
        assert run.status.value == "CANCELLED"


async def test_readonly_disables_destructive_keys() -> None:
    app, node = make_app(readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 0.2)
        await pilot.press("3", "x")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert len(await node.workflows()) == 2
        assert "READ-ONLY" in app.screen.query_one(StatusHeader).render().plain


async def test_node_start_failure_is_shown_with_its_reason() -> None:
    app, _ = make_app(fail_start="UDP port 30609 is already in use (127.0.0.1:30609)")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 0.2)
        assert isinstance(app.screen, FailureScreen)
        reason = str(app.screen.query_one("#failure-reason").render())
        assert "already in use" in reason and "Traceback" not in reason
        await pilot.press("q")
    assert app.return_value == 1


async def test_too_small_terminal_shows_a_message_then_recovers(demo_app) -> None:
    app, _ = demo_app
    async with app.run_test(size=(50, 12)) as pilot:
        await settle(pilot, 0.2)
        assert isinstance(app.screen, TooSmallScreen)
        assert "too small" in str(app.screen.query_one("#too-small").render())
        await pilot.resize_terminal(120, 40)
        await settle(pilot, 0.1)
        assert isinstance(app.screen, MainScreen)


async def test_colon_palette_commands(demo_app) -> None:
    app, _ = demo_app
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 0.2)
        await pilot.press("colon", *"runs")
        await settle(pilot, 0.3)
        await pilot.press("enter")
        await settle(pilot, 0.1)
        assert isinstance(app.screen, MainScreen) and app.screen.active_pane == "runs"
        await pilot.press("colon", *"connect 203.0.113.20:41000")
        await settle(pilot, 0.3)
        await pilot.press("enter")
        await settle(pilot, 0.1)
        assert app.node.connects == ["203.0.113.20:41000"]


async def test_help_lists_the_keys_of_the_screen(demo_app) -> None:
    app, _ = demo_app
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 0.2)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        body = str(app.screen.query_one("#help-body").render())
        for words in ("Describe", "Connect", "Ping", "Filter", "Quit"):
            assert words in body
