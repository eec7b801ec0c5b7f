"""The live logs view: coloured streams, follow, wrap, timestamps, filter, save, copy.

Why this shape (FACTS.md, Textual section): lines arrive at up to 50k/s.  They go into a
``LogBuffer``; a 10 Hz timer drains it into ``Log.write_lines`` in one batch.  Colour and
filter highlighting are applied by a Rich ``Highlighter`` at render time, so only visible
lines pay for styling and the widget stores plain strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from rich.highlighter import Highlighter
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Input, Label, Log

from rnn_tui.api import LogLine
from rnn_tui.tui.widgets.logs.buffer import (
    TAG_PATTERN,
    LogBuffer,
    LogFormat,
    format_line,
    format_lines,
)
from rnn_tui.util.files import atomic_write

__all__ = ["LogView", "StreamHighlighter"]

DRAIN_HZ = 10
MAX_BATCH = 20_000  # lines written per tick at most; the rest waits for the next tick
STREAM_STYLES = {"OUT": "", "ERR": "bold red", "LOG": "cyan"}
JOB_STYLES = ("magenta", "green", "yellow", "blue", "bright_magenta", "bright_green")
MAX_COPY_BYTES = 100_000  # OSC 52 payloads beyond this are refused by many terminals


class StreamHighlighter(Highlighter):
    """Colour a formatted line by its stream tag; mark every match of the filter term."""

    def __init__(self) -> None:
        self.term = ""
        self._term_re: re.Pattern[str] | None = None

    def set_term(self, term: str) -> None:
        self.term = term
        self._term_re = re.compile(re.escape(term), re.IGNORECASE) if term else None

    def highlight(self, text: Text) -> None:
        plain = text.plain
        m = TAG_PATTERN.search(plain)
        if m is not None:
            if m.start() > 0:
                job = plain[: m.start()].split()[-1] if plain[: m.start()].split() else ""
                text.stylize("dim", 0, m.start())
                if job:
                    colour = JOB_STYLES[sum(map(ord, job)) % len(JOB_STYLES)]
                    at = plain.rfind(job, 0, m.start())
                    text.stylize(colour, at, at + len(job))
            style = STREAM_STYLES[m.group(1)]
            text.stylize("dim", m.start(), m.end())
            if style:
                text.stylize(style, m.end(), len(plain))
        if self._term_re is not None:
            for hit in self._term_re.finditer(plain, m.end() if m else 0):
                text.stylize("bold black on yellow", hit.start(), hit.end())


class LogView(Vertical, can_focus=False):
    """A bounded, batched, filterable log pane.  Feed it with ``feed(lines)``."""

    DEFAULT_CSS = """
    LogView { height: 1fr; }
    LogView > #log-bar { height: 1; background: $panel; color: $text-muted; }
    LogView > #log-bar > Label { width: auto; margin-right: 2; }
    LogView > #log-bar > #log-dropped { color: $warning; }
    LogView > #log-filter { display: none; height: 3; }
    LogView.-filtering > #log-filter { display: block; }
    LogView > Log { height: 1fr; }
    """

    BINDINGS = [
        Binding("slash", "start_filter", "Filter"),
        Binding("f", "toggle_follow", "Follow"),
        Binding("w", "toggle_wrap", "Wrap"),
        Binding("t", "toggle_timestamps", "Timestamps"),
        Binding("s", "save", "Save"),
        Binding("y", "copy", "Copy"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    follow: reactive[bool] = reactive(True)
    wrap: reactive[bool] = reactive(False)
    timestamps: reactive[bool] = reactive(False)
    filter_term: reactive[str] = reactive("")

    class SaveRequested(Message):
        """The user pressed save; the screen asks for a path and calls ``save_to``."""

        def __init__(self, view: LogView) -> None:
            super().__init__()
            self.view = view

    def __init__(self, *, merged: bool = True, max_lines: int = 20_000,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.buffer = LogBuffer(max_lines=max_lines)
        self.merged = merged
        self.highlighter = StreamHighlighter()
        self._timer: Timer | None = None
        self._last_stats = ("", "")

    def compose(self) -> ComposeResult:
        with Horizontal(id="log-bar"):
            yield Label("", id="log-mode")
            yield Label("", id="log-count")
            yield Label("", id="log-dropped")
        yield Input(placeholder="filter (Enter keeps it, Esc clears)", id="log-filter")
        log = Log(max_lines=self.buffer.max_lines, highlight=True, id="log")
        log.highlighter = self.highlighter
        yield log

    @property
    def log_widget(self) -> Log:
        return self.query_one("#log", Log)

    def on_mount(self) -> None:
        self._timer = self.set_interval(1 / DRAIN_HZ, self.drain, name="logs-drain")
        self._update_bar()

    # --- feeding ------------------------------------------------------------------------
    def feed(self, lines: Iterable[LogLine]) -> None:
        """Queue lines for the next drain (cheap; safe at any rate)."""
        self.buffer.extend(lines)

    def feed_one(self, line: LogLine) -> None:
        self.buffer.append(line)

    def drain(self) -> None:
        """Move pending lines into the widget in one batch (called at ``DRAIN_HZ``)."""
        if self.buffer.pending_count:
            batch = self.buffer.take_pending(MAX_BATCH)
            out = format_lines(batch, self._format(), self.filter_term)
            if out:
                self.log_widget.write_lines(out, scroll_end=self.follow)
        self._update_bar()

    def _format(self) -> LogFormat:
        width = None
        if self.wrap:
            width = max(self.log_widget.scrollable_content_region.width - 1, 20)
        return LogFormat(timestamps=self.timestamps, job_prefix=self.merged, wrap_width=width)

    def rebuild(self) -> None:
        """Re-render the whole history with the current filter and toggles."""
        log = self.log_widget
        log.clear()
        out = format_lines(self.buffer.history, self._format(), self.filter_term)
        log.write_lines(out, scroll_end=self.follow)
        if not out:
            log.refresh()
        self._update_bar()

    def _update_bar(self) -> None:
        if not self.is_mounted:
            return
        flags = [("follow" if self.follow else "paused"), ("wrap" if self.wrap else "nowrap")]
        if self.timestamps:
            flags.append("ts")
        if self.filter_term:
            flags.append(f"filter: {self.filter_term!r}")
        mode = " · ".join(flags)
        count = f"{len(self.buffer.history)} lines"
        dropped = f"{self.buffer.dropped} dropped" if self.buffer.dropped else ""
        if (mode + count, dropped) == self._last_stats:
            return
        self._last_stats = (mode + count, dropped)
        self.query_one("#log-mode", Label).update(mode)
        self.query_one("#log-count", Label).update(count)
        self.query_one("#log-dropped", Label).update(dropped)

    # --- toggles ------------------------------------------------------------------------
    def watch_follow(self, follow: bool) -> None:
        if not self.is_mounted:
            return
        self.log_widget.auto_scroll = follow
        if follow:
            self.log_widget.scroll_end(animate=False)
        self._update_bar()

    def watch_wrap(self) -> None:
        if self.is_mounted:
            self.rebuild()

    def watch_timestamps(self) -> None:
        if self.is_mounted:
            self.rebuild()

    def watch_filter_term(self, term: str) -> None:
        self.highlighter.set_term(term)
        if self.is_mounted:
            self.rebuild()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow

    def action_toggle_wrap(self) -> None:
        self.wrap = not self.wrap

    def action_toggle_timestamps(self) -> None:
        self.timestamps = not self.timestamps

    def action_start_filter(self) -> None:
        self.add_class("-filtering")
        field = self.query_one("#log-filter", Input)
        field.value = self.filter_term
        field.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":
            # Esc clears a filter; with none, it belongs to the screen (back).
            return self.has_class("-filtering") or bool(self.filter_term)
        return True

    def action_clear_filter(self) -> None:
        self.filter_term = ""
        self.remove_class("-filtering")
        self.log_widget.focus()

    @on(Input.Changed, "#log-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.filter_term = event.value

    @on(Input.Submitted, "#log-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value:
            self.remove_class("-filtering")
        self.log_widget.focus()

    def on_resize(self) -> None:
        if self.wrap:
            self.rebuild()

    # --- save / copy --------------------------------------------------------------------
    def visible_text(self) -> str:
        """The filtered history as plain text (what save and copy write)."""
        fmt = LogFormat(timestamps=True, job_prefix=self.merged)
        return "\n".join(t for ln in self.buffer.matching(self.filter_term)
                         for t in format_line(ln, fmt)) + "\n"

    def save_to(self, path: Path, *, overwrite: bool) -> int:
        """Write the filtered history to ``path``; returns the number of lines."""
        text = self.visible_text()
        atomic_write(path, text.encode("utf-8"), 0o644, overwrite=overwrite)
        return text.count("\n")

    def action_save(self) -> None:
        self.post_message(self.SaveRequested(self))

    def action_copy(self) -> None:
        text = self.visible_text()
        data = text.encode("utf-8")
        if len(data) > MAX_COPY_BYTES:
            text = data[-MAX_COPY_BYTES:].decode("utf-8", "ignore")
            self.notify(f"copied the last {MAX_COPY_BYTES // 1000} kB (terminal clipboard limit)")
        else:
            self.notify(f"copied {text.count(chr(10))} lines to the clipboard (OSC 52)")
        self.app.copy_to_clipboard(text)
