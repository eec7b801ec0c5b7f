"""Pilot tests of the logs view: colours, follow, filter, wrap, drops, save, copy."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.app import App, ComposeResult

from rnn_tui.api import LogLine, LogStream
from rnn_tui.tui.screens.logs import LogsScreen
from rnn_tui.tui.screens.modals import ConfirmScreen
from rnn_tui.tui.widgets.logs.view import LogView, StreamHighlighter

from .conftest import SIZE

pytestmark = pytest.mark.tui


class LogApp(App[None]):
    def __init__(self, max_lines: int = 20_000) -> None:
        super().__init__()
        self.max_lines = max_lines
        self.copied: list[str] = []

    def compose(self) -> ComposeResult:
        yield LogView(max_lines=self.max_lines, id="view")

    def copy_to_clipboard(self, text: str) -> None:  # record what OSC 52 would carry
        self.copied.append(text)
        super().copy_to_clipboard(text)


def lines(n: int, job: str = "a", stream: LogStream = LogStream.STDOUT, start: int = 0):
    return [LogLine("r", job, stream, f"{job} line {i}", 1_790_000_000.0 + i)
            for i in range(start, start + n)]


async def settle(pilot, t: float = 0.15) -> None:
    await pilot.pause(t)
    await pilot.pause()


async def settle_until(pilot, done, within: float = 5.0) -> None:
    """Pause until ``done()`` holds (the view flushes on a timer, late on a busy machine)."""
    for _ in range(int(within / 0.05)):
        if done():
            return
        await pilot.pause(0.05)
    await pilot.pause()


async def test_batched_lines_appear_prefixed_by_job() -> None:
    app = LogApp()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.log_widget.focus()
        view.feed(lines(3, "fetch") + lines(2, "clean", LogStream.STDERR))
        assert view.log_widget.line_count == 0  # nothing written until the drain tick
        await settle(pilot)
        got = list(view.log_widget.lines)
        assert got[0] == "fetch    OUT│ fetch line 0"
        assert got[-1] == "clean    ERR│ clean line 1"


def test_highlighter_colours_by_stream_and_marks_the_filter() -> None:
    from rich.text import Text

    hl = StreamHighlighter()
    hl.set_term("line")
    text = Text("model    ERR│ bad line here")
    hl.highlight(text)
    styles = {str(span.style) for span in text.spans}
    assert "bold red" in styles and "bold black on yellow" in styles


async def test_filter_as_you_type_and_clear() -> None:
    app = LogApp()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.log_widget.focus()
        view.feed(lines(5, "fetch") + lines(5, "clean"))
        await settle(pilot)
        await pilot.press("slash", *"clean line 3")
        await settle(pilot)
        assert list(view.log_widget.lines) == ["clean    OUT│ clean line 3"]
        assert view.highlighter.term == "clean line 3"
        view.feed(lines(1, "clean", start=3))  # new matching lines still arrive
        await settle(pilot)
        assert len(view.log_widget.lines) == 2
        await pilot.press("escape")
        await settle(pilot)
        assert len(view.log_widget.lines) == 11


async def test_follow_toggle_keeps_the_view_in_place() -> None:
    app = LogApp()
    async with app.run_test(size=(80, 20)) as pilot:
        view = app.query_one(LogView)
        log = view.log_widget
        log.focus()
        view.feed(lines(200))
        await settle(pilot)
        assert log.is_vertical_scroll_end
        await pilot.press("f")
        assert not view.follow
        log.scroll_home(animate=False)
        view.feed(lines(50, start=200))
        await settle(pilot)
        assert log.scroll_y == 0 and log.line_count == 250
        await pilot.press("f")
        await settle(pilot)
        assert log.is_vertical_scroll_end


async def test_wrap_and_timestamps_reformat_history() -> None:
    app = LogApp()
    async with app.run_test(size=(60, 20)) as pilot:
        view = app.query_one(LogView)
        view.log_widget.focus()
        view.feed([LogLine("r", "a", LogStream.LOGS, "word " * 40, 1_790_000_000.5)])
        await settle(pilot)
        assert view.log_widget.line_count == 1
        await pilot.press("w")
        await settle(pilot)
        assert view.log_widget.line_count > 3
        await pilot.press("w", "t")
        await settle(pilot)
        assert list(view.log_widget.lines)[0].startswith("14:13:20.500 a")


async def test_bounded_buffer_shows_dropped_counter() -> None:
    app = LogApp(max_lines=100)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.feed(lines(250))
        await settle_until(pilot, lambda: view.log_widget.line_count >= 100)
        assert view.log_widget.line_count == 100
        assert str(view.query_one("#log-dropped").render()) == "150 dropped"


async def test_copy_uses_the_clipboard_and_save_writes_the_filtered_history(tmp_path: Path) -> None:
    app = LogApp()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.log_widget.focus()
        view.feed(lines(3, "x") + lines(2, "y"))
        await settle(pilot)
        view.filter_term = "y line"
        await pilot.press("y")
        assert app.copied and app.copied[-1].count("\n") == 2 and "y line 1" in app.copied[-1]
        out = tmp_path / "logs.txt"
        assert view.save_to(out, overwrite=False) == 2
        assert "x line" not in out.read_text()


async def test_logs_screen_streams_a_run_and_asks_before_overwriting(demo_app, tmp_path: Path) -> None:
    app, _ = demo_app
    target = tmp_path / "saved.log"
    target.write_text("old\n")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 0.2)
        app.open_logs("r-0001", None)
        await settle(pilot, 0.3)
        screen = app.screen
        assert isinstance(screen, LogsScreen)
        log_lines = list(screen.query_one(LogView).log_widget.lines)
        assert {ln.split()[0] for ln in log_lines} == {"fetch", "clean", "model"}
        await pilot.press("s")
        await settle(pilot)
        app.screen.query_one("#prompt").value = str(target)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(pilot)
        assert target.read_text() == "old\n"
        await pilot.press("s")
        await settle(pilot)
        app.screen.query_one("#prompt").value = str(target)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert "epoch 2/5" in target.read_text()
