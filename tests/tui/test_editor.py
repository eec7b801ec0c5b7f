"""Pilot tests of the workflow editor: graph edits, refusals, YAML sync, import/export, runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnn_tui.tui.screens.editor import EditorScreen
from rnn_tui.tui.screens.logs import LogsScreen
from rnn_tui.tui.screens.modals import ConfirmScreen, PickServiceScreen, PromptScreen
from rnn_tui.tui.widgets.workflow.graph_view import GraphView
from rnn_tui.workflow.yaml_io import load_workflow

from .conftest import SIZE, make_app

pytestmark = pytest.mark.tui


async def settle(pilot, t: float = 0.05) -> None:
    await pilot.pause(t)
    await pilot.pause()


async def open_pollinators(pilot) -> EditorScreen:
    await settle(pilot, 0.2)
    await pilot.press("colon", *"edit pollinators")
    await settle(pilot, 0.3)
    await pilot.press("enter")
    await settle(pilot, 0.1)
    screen = pilot.app.screen
    assert isinstance(screen, EditorScreen)
    return screen


def status_text(screen: EditorScreen) -> str:
    return str(screen.query_one("#editor-status").render())


def problems_text(screen: EditorScreen) -> str:
    return str(screen.query_one("#problems").render())


async def test_editor_draws_the_four_job_workflow_valid(demo_app) -> None:
    app, _ = demo_app
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pollinators(pilot)
        text = screen.graph.canvas.text()
        for name in ("fetch", "clean", "model", "report", "MOUNT:/data/in", "▶"):
            assert name in text
        assert "valid" in problems_text(screen)


async def test_add_job_by_picking_a_service_updates_yaml(demo_app) -> None:
    app, _ = demo_app
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pollinators(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, PickServiceScreen)
        await pilot.press(*"ndvi", "enter")
        await settle(pilot, 0.1)
        assert "ndvi" in screen.graph.workflow.job_names
        assert "name: ndvi" in screen.yaml_area.text
        assert screen.graph.selection.job == "ndvi"


async def test_connect_ports_with_the_keyboard_and_refuse_incompatible(demo_app) -> None:
    app, _ = demo_app
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pollinators(pilot)
        graph = screen.graph
        before = len(graph.workflow.connections)
        # select model, walk to its STDERR output, start a connection
        graph.select_job("model")
        await pilot.press("tab", "tab", "tab")  # STDIN, STDOUT, STDERR
        assert (graph.selection.side, graph.selection.port) == ("out", "STDERR")
        await pilot.press("c")
        assert graph.pending == ("model", "STDERR")
        # fetch's STDIN is upstream of model: a cycle, refused with the reason
        graph.select_job("fetch")
        await pilot.press("tab")
        assert graph.selection.port == "STDIN"
        await pilot.press("c")
        await settle(pilot)
        assert "refused" in status_text(screen) and "cycle" in status_text(screen)
        assert len(graph.workflow.connections) == before
        # report's MOUNT:/data/in is compatible
        graph.select_job("report")
        await pilot.press("tab", "tab")
        assert graph.selection.port == "MOUNT:/data/in"
        await pilot.press("c")
        await settle(pilot)
        assert len(graph.workflow.connections) == before + 1
        assert "model.STDERR" in screen.yaml_area.text
        assert graph.pending is None


async def test_output_cannot_be_connected_to_an_output(demo_app) -> None:
    app, _ = demo_app
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pollinators(pilot)
        graph = screen.graph
        assert not graph.try_connect("clean", "STDERR", "model", "STDOUT")
        await settle(pilot)
        assert "not an input" in status_text(screen)


async def test_delete_job_asks_then_removes_job_and_connections(demo_app) -> None:
    app, _ = demo_app
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pollinators(pilot)
        screen.graph.select_job("model")
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(pilot)
        assert "model" in screen.graph.workflow.job_names
        await pilot.press("x")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot, 0.1)
        assert "model" not in screen.graph.workflow.job_names
        assert "model" not in screen.yaml_area.text.replace("species-model", "")


async def test_rename_and_edit_parameters(demo_app) -> None:
    app, _ = demo_app
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pollinators(pilot)
        screen.graph.select_job("clean")
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, PromptScreen)
        app.screen.query_one("#prompt").value = "tidy"
        await pilot.press("enter")
        await settle(pilot, 0.1)
        assert "tidy" in screen.graph.workflow.job_names
        assert "from: tidy.STDOUT" in screen.yaml_area.text
        await pilot.press("e")
        await settle(pilot)
        app.screen.query_one("#prompt").value = "--strict --limit 10"
        await pilot.press("enter")
        await settle(pilot)
        app.screen.query_one("#prompt").value = "LANG=C"
        await pilot.press("enter")
        await settle(pilot, 0.1)
        job = screen.graph.workflow.job("tidy")
        assert job.args == ("--strict", "--limit", "10") and job.env == (("LANG", "C"),)


async def test_yaml_with_an_error_then_fixed(demo_app) -> None:
    app, _ = demo_app
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pollinators(pilot)
        await pilot.press("f2")
        good = screen.yaml_area.text
        bad = good.replace("to: clean.STDIN", "to: clean.STDINN")
        screen.yaml_area.load_text(bad)
        screen.sync_from_yaml()
        await settle(pilot)
        problems = problems_text(screen)
        line = next(i for i, t in enumerate(bad.splitlines(), 1) if "STDINN" in t)
        assert f"{line}:" in problems and "STDINN" in problems
        assert "errors" in status_text(screen)
        assert len(screen.graph.workflow.jobs) == 4  # graph keeps the last valid version
        screen.yaml_area.load_text(good.replace("name: report", "name: summary")
                                   .replace("report.", "summary."))
        screen.sync_from_yaml()
        await settle(pilot)
        assert "valid" in problems_text(screen)
        assert "summary" in screen.graph.workflow.job_names


async def test_typing_in_yaml_validates_as_you_type(demo_app) -> None:
    app, _ = demo_app
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pollinators(pilot)
        await pilot.press("f2")
        screen.yaml_area.move_cursor((0, 0))
        await pilot.press(*"x: [")
        await settle(pilot, 0.5)  # debounce
        assert "1:" in problems_text(screen) or "2:" in problems_text(screen)
        assert not screen.yaml_valid


async def test_graph_yaml_round_trip(demo_app) -> None:
    app, _ = demo_app
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pollinators(pilot)
        screen.graph.select_job("fetch")
        await pilot.press("a")
        await settle(pilot)
        await pilot.press(*"report", "enter")
        await settle(pilot, 0.1)
        assert screen.graph.try_connect("model", "STDERR", "report-md", "STDIN")
        await settle(pilot)
        from_yaml = load_workflow(screen.yaml_area.text).workflow
        assert from_yaml == screen.graph.workflow
        await pilot.press("f2")
        await pilot.press("f2")  # back to the graph: re-parsed, still equal
        await settle(pilot)
        assert screen.graph.workflow == from_yaml


async def test_import_missing_and_invalid_files_show_errors_and_change_nothing(demo_app, tmp_path: Path) -> None:
    app, _ = demo_app
    invalid = tmp_path / "bad.yaml"
    invalid.write_text("name: bad\njobs:\n  - name: a\n    servce: x\n")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pollinators(pilot)
        before = screen.yaml_area.text
        screen.import_path(tmp_path / "missing.yaml")
        await settle(pilot)
        assert "cannot read" in problems_text(screen)
        assert screen.yaml_area.text == before
        screen.import_path(invalid)
        await settle(pilot)
        assert "4:" in problems_text(screen) and "servce" in problems_text(screen)
        assert invalid.read_text().endswith("servce: x\n")  # never overwritten
        assert len(screen.graph.workflow.jobs) == 4


async def test_import_from_the_workflows_pane(demo_app, tmp_path: Path) -> None:
    app, _ = demo_app
    src = tmp_path / "wc.yaml"
    src.write_text("name: wc\njobs:\n  - name: count\n    service: csv-clean\n")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 0.2)
        await pilot.press("3", "i")
        await settle(pilot)
        app.screen.query_one("#prompt").value = str(src)
        await pilot.press("enter")
        await settle(pilot, 0.2)
        assert isinstance(app.screen, EditorScreen)
        assert app.screen.graph.workflow.job_names == ("count",)


async def test_export_to_an_existing_path_asks_first(demo_app, tmp_path: Path) -> None:
    app, _ = demo_app
    target = tmp_path / "out.yaml"
    target.write_text("keep me\n")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pollinators(pilot)
        await pilot.press("ctrl+e")
        await settle(pilot)
        app.screen.query_one("#prompt").value = str(target)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(pilot)
        assert target.read_text() == "keep me\n"
        await pilot.press("ctrl+e")
        await settle(pilot)
        app.screen.query_one("#prompt").value = str(target)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot, 0.1)
        assert load_workflow(target.read_text()).workflow == screen.graph.workflow


async def test_save_goes_to_the_node(demo_app) -> None:
    app, node = demo_app
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pollinators(pilot)
        screen.graph.select_job("clean")
        await pilot.press("x")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot, 0.1)
        await pilot.press("ctrl+s")
        await settle(pilot, 0.1)
        saved = {w.name: w for w in await node.workflows()}["pollinators"]
        assert saved.job_count == 3 and "clean" not in load_workflow(saved.yaml_text).workflow.job_names
        assert "saved" in status_text(screen)


async def test_unsaved_changes_ask_before_leaving(demo_app) -> None:
    app, _ = demo_app
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pollinators(pilot)
        screen.graph.select_job("clean")
        await pilot.press("x")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot, 0.1)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(pilot)
        assert app.screen is screen


async def test_run_from_the_editor_colours_boxes_and_opens_logs() -> None:
    app, _ = make_app(step_s=0.02)
    async with app.run_test(size=SIZE) as pilot:
        await open_pollinators(pilot)
        await pilot.press("ctrl+r")
        for _ in range(400):  # generous: the machine may be loaded; no timing asserted
            await settle(pilot, 0.05)
            screen = app.screen
            if (isinstance(screen, EditorScreen) and screen.run_info is not None
                    and screen.run_info.run.is_terminal):
                break
        screen = app.screen
        assert isinstance(screen, EditorScreen) and screen.run_info is not None
        assert {j.status.value for j in screen.run_info.jobs} == {"COMPLETED"}
        graph = screen.query_one(GraphView)
        assert graph.canvas.text().count("COMPLETED") == 4
        keys = {graph.canvas.row(r.y)[1][r.x] for r in graph.graph_layout.boxes.values()}
        assert keys <= {"state.ok", "state.ok.sel"}
        graph.select_job("model")
        await pilot.press("enter")
        await settle(pilot, 0.2)
        assert isinstance(app.screen, LogsScreen) and app.screen.job == "model"
        lines = app.screen.query_one("#logview").log_widget.lines
        assert any("epoch 2/5" in ln for ln in lines)


async def test_mouse_selects_boxes_and_completes_a_connection(demo_app) -> None:
    app, _ = demo_app
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pollinators(pilot)
        graph = screen.graph
        rect = graph.graph_layout.boxes["model"]
        await pilot.click(GraphView, offset=(rect.x + 3, rect.y + 1))
        assert graph.selection.job == "model" and graph.selection.port is None
        ox, oy = graph.graph_layout.ports[("model", "out", "STDERR")]
        await pilot.click(GraphView, offset=(ox - 2, oy))
        assert (graph.selection.side, graph.selection.port) == ("out", "STDERR")
        await pilot.press("c")
        ix, iy = graph.graph_layout.ports[("report", "in", "MOUNT:/data/in")]
        await pilot.click(GraphView, offset=(ix + 2, iy))
        await settle(pilot)
        assert any(str(c) == "model.STDERR -> report.MOUNT:/data/in as model.stderr"
                   for c in graph.workflow.connections), [str(c) for c in graph.workflow.connections]


async def test_move_mode_records_layout_hints_that_export_and_reload(demo_app, tmp_path: Path) -> None:
    app, _ = demo_app
    target = tmp_path / "moved.yaml"
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pollinators(pilot)
        graph = screen.graph
        assert all(j.position is None for j in graph.workflow.jobs)
        drawn = {n: (r.x, r.y) for n, r in graph.graph_layout.boxes.items()}
        graph.select_job("model")
        await pilot.press("m")
        await settle(pilot)
        # the first move pins every job where it was drawn: nothing jumps
        assert all(j.position is not None for j in graph.workflow.jobs)
        assert {n: (r.x, r.y) for n, r in graph.graph_layout.boxes.items()} == drawn
        start = graph.workflow.job("model").position
        await pilot.press("right", "right", "down", "shift+right")
        await pilot.press("enter")
        await settle(pilot)
        assert graph.moving is None
        moved = graph.workflow.job("model").position
        assert (moved.x, moved.y) == (start.x + 6, start.y + 1)
        assert graph.graph_layout.boxes["model"].x == drawn["model"][0] + 6
        assert "placed model" in status_text(screen)
        assert f"position: {{x: {moved.x}, y: {moved.y}}}" in screen.yaml_area.text \
            or f"x: {moved.x}" in screen.yaml_area.text
        # arrows navigate again once placed
        await pilot.press("left")
        assert graph.selection.job != "model"
        # export and load: the hints survive the round trip
        await pilot.press("ctrl+e")
        await settle(pilot)
        app.screen.query_one("#prompt").value = str(target)
        await pilot.press("enter")
        await settle(pilot, 0.1)
        reloaded = load_workflow(target.read_text()).workflow
        assert reloaded == graph.workflow
        assert reloaded.job("model").position == moved


async def test_move_cancel_and_auto_layout(demo_app) -> None:
    app, _ = demo_app
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pollinators(pilot)
        graph = screen.graph
        original = graph.workflow
        graph.select_job("fetch")
        await pilot.press("m", "down", "down")
        await settle(pilot)
        assert graph.workflow != original
        await pilot.press("escape")  # puts it back, does not leave the editor
        await settle(pilot)
        assert app.screen is screen and graph.moving is None
        assert graph.workflow == original
        await pilot.press("m", "right", "enter")
        await settle(pilot)
        assert any(j.position is not None for j in graph.workflow.jobs)
        await pilot.press("o")
        await settle(pilot)
        assert all(j.position is None for j in graph.workflow.jobs)
        assert "position" not in screen.yaml_area.text
        # compact view refuses moving, with the reason
        await pilot.press("z", "m")
        await settle(pilot)
        assert graph.moving is None
        assert "compact" in status_text(screen)


async def test_imported_hints_place_boxes_and_bad_hints_are_errors_at_line_col(
        demo_app, tmp_path: Path) -> None:
    app, _ = demo_app
    src = tmp_path / "hinted.yaml"
    src.write_text("name: hinted\njobs:\n"
                   "  - {name: first, service: csv-clean, position: {x: 50, y: 20}}\n"
                   "  - {name: second, service: csv-clean}\n"
                   "connections:\n  - {from: first.STDOUT, to: second.STDIN}\n")
    bad = tmp_path / "bad-hint.yaml"
    bad.write_text("name: bad\njobs:\n  - name: a\n    service: csv-clean\n"
                   "    position: {x: 3, y: -1}\n")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pollinators(pilot)
        screen.import_path(src)
        await settle(pilot, 0.1)
        boxes = screen.graph.graph_layout.boxes
        assert (boxes["first"].x, boxes["first"].y) == (51, 21)  # hint + the canvas margin
        assert boxes["second"].y > boxes["first"].bottom  # unhinted: automatic, below
        assert "position: {x: 50, y: 20}" in screen.yaml_area.text
        screen.import_path(bad)
        await settle(pilot)
        assert "5:" in problems_text(screen) and "position.y must be at least 0" in problems_text(screen)
        assert screen.graph.workflow.job_names == ("first", "second")


async def test_another_edit_during_a_move_ends_it(demo_app) -> None:
    app, _ = demo_app
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pollinators(pilot)
        graph = screen.graph
        graph.select_job("report")
        await pilot.press("m", "down")
        await settle(pilot)
        assert graph.moving is not None
        await pilot.press("r")  # rename: the move ends where the box is
        await settle(pilot)
        await pilot.press("ctrl+u", *"summary", "enter")
        await settle(pilot, 0.1)
        assert graph.moving is None and "summary" in graph.workflow.job_names
        await pilot.press("escape")  # nothing to put back: Esc is Back (asks: unsaved)
        await settle(pilot)
        assert "summary" in graph.workflow.job_names
