"""Live logs of one job, or of every job of a run merged and prefixed by job.

The screen owns one worker that reads ``node.job_logs`` and feeds the ``LogView``; the
view batches.  The worker never touches widgets except through ``feed`` (a deque append).
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from rnn_tui.errors import RnnError
from rnn_tui.tui.paths import resolve_user_path
from rnn_tui.tui.screens.modals import ConfirmScreen, PromptScreen
from rnn_tui.tui.widgets.header import StatusHeader
from rnn_tui.tui.widgets.keybar import KeyBar
from rnn_tui.tui.widgets.logs.view import LogView

__all__ = ["LogsScreen"]


class LogsScreen(Screen[None]):
    DEFAULT_CSS = """
    LogsScreen { overflow: hidden; }
    LogsScreen #logs-title { height: 1; padding: 0 1; text-style: bold; background: $boost; }
    """
    BINDINGS = [Binding("escape,q", "close", "Back")]

    def __init__(self, run_id: str, job: str | None = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.job = job

    def compose(self) -> ComposeResult:
        header = StatusHeader()
        header.status = getattr(self.app, "status", None)
        yield header
        what = f"job {self.job}" if self.job else "all jobs (merged)"
        yield Static(f"Logs · run {self.run_id} · {what}", id="logs-title")
        yield LogView(merged=self.job is None, id="logview")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(LogView).log_widget.focus()
        self.stream_logs()

    @work(exclusive=True, group="logs-stream", exit_on_error=False)
    async def stream_logs(self) -> None:
        view = self.query_one(LogView)
        try:
            async for line in self.app.node.job_logs(self.run_id, self.job):  # type: ignore[attr-defined]
                view.feed_one(line)
        except RnnError as exc:
            self.notify(f"logs: {exc}", severity="error")

    @on(LogView.SaveRequested)
    def _save(self, event: LogView.SaveRequested) -> None:
        self.save_dialog(event.view)

    @work(exclusive=True, group="logs-save", exit_on_error=False)
    async def save_dialog(self, view: LogView) -> None:
        default = f"{self.run_id}-{self.job or 'all'}.log"
        raw = await self.app.push_screen_wait(PromptScreen("Save logs to path", value=default))
        if not raw:
            return
        path, exists = resolve_user_path(raw)
        overwrite = False
        if exists:
            ok = await self.app.push_screen_wait(
                ConfirmScreen(f"{path} exists. Overwrite it?", action="Overwrite"))
            overwrite = bool(ok)
            if not overwrite:
                self.notify("save cancelled; nothing written")
                return
        try:
            count = view.save_to(path, overwrite=overwrite)
        except OSError as exc:
            self.notify(f"save failed: {path}: {exc.strerror or exc}", severity="error")
            return
        self.notify(f"saved {count} lines to {path}")

    def action_close(self) -> None:
        self.dismiss(None)
