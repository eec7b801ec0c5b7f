"""The workflow editor screen: node graph and YAML views of one workflow, kept in sync.

Why the YAML text is canonical between the views: the graph edits the model and we write
the YAML with ``dump_workflow``; the YAML view parses as you type (debounced) and, when the
text parses, the graph adopts it.  While the text has errors the graph keeps the last valid
workflow and the problems panel lists every error at ``line:col``; nothing is saved or
exported from an invalid text without the operator seeing why.

The same screen shows a run: boxes coloured by job state, Enter opens a job's logs.
"""

from __future__ import annotations

import re
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Static, TabbedContent, TabPane, TextArea

from rnn_tui.api import RunInfo, ServiceInfo
from rnn_tui.errors import RnnError
from rnn_tui.tui.paths import resolve_user_path
from rnn_tui.tui.screens.modals import ConfirmScreen, PickServiceScreen, PromptScreen
from rnn_tui.tui.widgets.header import StatusHeader
from rnn_tui.tui.widgets.keybar import KeyBar
from rnn_tui.tui.widgets.workflow import editing
from rnn_tui.tui.widgets.workflow.graph_view import GraphView
from rnn_tui.util.files import atomic_write
from rnn_tui.workflow.model import Workflow
from rnn_tui.workflow.problems import Problem, WorkflowInvalid
from rnn_tui.workflow.validate import ResolvedService, validate_workflow
from rnn_tui.workflow.yaml_io import dump_workflow, load_workflow

__all__ = ["EditorScreen"]

YAML_DEBOUNCE_S = 0.3


class EditorScreen(Screen[None]):
    DEFAULT_CSS = """
    EditorScreen { overflow: hidden; }
    EditorScreen #editor-tabs { height: 1fr; }
    EditorScreen TabPane { height: 1fr; padding: 0; }
    EditorScreen > Vertical { height: auto; }
    EditorScreen #problems { height: auto; max-height: 8; padding: 0 1; background: $panel; }
    EditorScreen #problems.-ok { color: $success; }
    EditorScreen #problems.-bad { color: $error; }
    EditorScreen #editor-status { height: 1; padding: 0 1; color: $text-muted; }
    EditorScreen #editor-status.-error { color: $error; }
    EditorScreen TextArea { height: 1fr; }
    """

    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("f2", "toggle_view", "Graph/YAML"),
        Binding("ctrl+s", "save", "Save"),
        Binding("ctrl+e", "export", "Export"),
        Binding("ctrl+o", "import", "Import"),
        Binding("ctrl+r", "run", "Run"),
    ]

    def __init__(self, workflow: Workflow, services: dict[str, ServiceInfo], *,
                 run: RunInfo | None = None, readonly: bool = False,
                 yaml_text: str | None = None) -> None:
        super().__init__()
        self.workflow = workflow
        self.services = services
        self.run_info = run
        self.readonly = readonly or run is not None
        self.yaml_text = yaml_text if yaml_text is not None else dump_workflow(workflow)
        self.problems: list[Problem] = []
        self.yaml_valid = True
        self.saved_text: str | None = self.yaml_text
        self._debounce: Timer | None = None
        self._syncing = False

    # --- layout -------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        header = StatusHeader()
        header.status = self.app.status if hasattr(self.app, "status") else None
        yield header
        title = (f"run {self.run_info.run_id} of {self.workflow.name}" if self.run_info
                 else f"workflow {self.workflow.name}")
        with TabbedContent(initial="graph-tab", id="editor-tabs"):
            with TabPane(f"Graph · {title}", id="graph-tab"):
                graph = GraphView(self.workflow, self.services, readonly=self.readonly,
                                  id="graph")
                graph.set_run(self.run_info)
                yield graph
            with TabPane("YAML", id="yaml-tab"):
                area = TextArea.code_editor(self.yaml_text, language="yaml", id="yaml",
                                            read_only=self.readonly)
                yield area
        with Vertical():
            yield Static("", id="problems")
            yield Static("", id="editor-status")
        yield KeyBar()

    def on_mount(self) -> None:
        self.validate_text(self.yaml_text)
        self.query_one(GraphView).focus()
        if self.run_info is not None:
            self.set_interval(0.25, self._poll_run, name="editor-run-poll")

    @property
    def graph(self) -> GraphView:
        return self.query_one(GraphView)

    @property
    def yaml_area(self) -> TextArea:
        return self.query_one("#yaml", TextArea)

    def status(self, text: str, error: bool = False) -> None:
        widget = self.query_one("#editor-status", Static)
        widget.update(text)
        widget.set_class(error, "-error")

    # --- validation ---------------------------------------------------------------------
    def _resolver(self, ref: object) -> ResolvedService | str:
        name = getattr(ref, "service", "")
        info = self.services.get(name)
        if info is None:
            return f"no known service {name!r} (search remote services first)"
        return ResolvedService(info.service_id, info.service.interfaces, (info.service.owner,))

    def validate_text(self, text: str) -> Workflow | None:
        """Parse and validate ``text``; update the problems panel; the workflow if it parsed."""
        source = "yaml"
        try:
            loaded = load_workflow(text, source)
        except WorkflowInvalid as exc:
            self.yaml_valid = False
            self.show_problems(list(exc.located))
            return None
        self.yaml_valid = True
        problems = validate_workflow(loaded.workflow, loaded.marks, source, self._resolver)
        self.show_problems(problems)
        return loaded.workflow

    def show_problems(self, problems: list[Problem]) -> None:
        self.problems = problems
        panel = self.query_one("#problems", Static)
        panel.set_class(not problems, "-ok")
        panel.set_class(bool(problems), "-bad")
        if not problems:
            panel.update("✓ valid")
        else:
            text = Text()
            for p in problems[:20]:
                where = f"{p.line}:{p.column}" if p.line else "—"
                text.append(f"{where:>7}  ", style="bold")
                text.append(p.message + "\n")
            if len(problems) > 20:
                text.append(f"… and {len(problems) - 20} more\n")
            panel.update(text)
        per_job: dict[str, list[str]] = {}
        for p in problems:
            for name in self.workflow.job_names:
                if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", p.message):
                    per_job.setdefault(name, []).append(p.message)
        self.graph.set_problems(per_job)

    # --- graph → YAML -------------------------------------------------------------------
    @on(GraphView.Changed)
    def _graph_changed(self, event: GraphView.Changed) -> None:
        self.workflow = event.workflow
        text = dump_workflow(event.workflow)
        self.yaml_text = text
        self._syncing = True
        self.yaml_area.load_text(text)
        self._syncing = False
        self.validate_text(text)

    @on(GraphView.Status)
    def _graph_status(self, event: GraphView.Status) -> None:
        self.status(event.text, event.error)

    @on(GraphView.OpenLogs)
    def _open_logs(self, event: GraphView.OpenLogs) -> None:
        if self.run_info is not None:
            self.app.open_logs(self.run_info.run_id, event.job)  # type: ignore[attr-defined]

    # --- YAML → graph -------------------------------------------------------------------
    @on(TextArea.Changed, "#yaml")
    def _yaml_changed(self, event: TextArea.Changed) -> None:
        if self._syncing or event.text_area.text == self.yaml_text:
            return  # our own load_text (graph → YAML), not the operator typing
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(YAML_DEBOUNCE_S, self.sync_from_yaml)

    def sync_from_yaml(self) -> None:
        text = self.yaml_area.text
        self.yaml_text = text
        workflow = self.validate_text(text)
        if workflow is not None:
            self.workflow = workflow
            self.graph.moving = None  # the text wins over a move in progress
            self.graph.set_workflow(workflow)
            self.status("graph updated from YAML")
        else:
            self.status("YAML has errors: the graph shows the last valid version", True)

    def action_toggle_view(self) -> None:
        tabs = self.query_one(TabbedContent)
        if tabs.active == "graph-tab":
            tabs.active = "yaml-tab"
            self.yaml_area.focus()
        else:
            self.sync_from_yaml()
            tabs.active = "graph-tab"
            self.graph.focus()

    # --- dialogs for graph edits --------------------------------------------------------
    @on(GraphView.Request)
    def _request(self, event: GraphView.Request) -> None:
        self.handle_request(event.kind, event.selection.job, event.selection.side,
                            event.selection.port)

    @work(exclusive=True, group="editor-dialog", exit_on_error=False)
    async def handle_request(self, kind: str, job: str | None, side: str | None,
                             port: str | None) -> None:
        graph = self.graph
        try:
            if kind == "add":
                choices = sorted(self.services.values(), key=lambda s: (not s.local, s.name))
                picked = await self.app.push_screen_wait(PickServiceScreen(choices))
                if picked is not None:
                    wf, name = editing.add_job(self.workflow, picked)
                    graph.apply(wf, f"added job {name} ({picked.name})")
                    graph.select_job(name)
            elif kind == "rename" and job is not None:
                new = await self.app.push_screen_wait(
                    PromptScreen(f"Rename job {job}", value=job))
                if new:
                    graph.apply(editing.rename_job(self.workflow, job, new.strip()),
                                f"renamed {job} → {new.strip()}")
                    graph.select_job(new.strip())
            elif kind == "params" and job is not None:
                current = self.workflow.job(job)
                args = await self.app.push_screen_wait(PromptScreen(
                    f"{job}: arguments (space separated)", value=" ".join(current.args)))
                if args is None:
                    return
                env = await self.app.push_screen_wait(PromptScreen(
                    f"{job}: environment (KEY=value …)",
                    value=" ".join(f"{k}={v}" for k, v in current.env)))
                if env is None:
                    return
                wf = editing.set_params(self.workflow, job, args=tuple(args.split()),
                                        env=editing.parse_env(env))
                graph.apply(wf, f"{job}: parameters updated")
            elif kind == "delete" and job is not None:
                if side is not None and port is not None:
                    key = f"{job}.{port}"
                    conns = [c for c in self.workflow.connections
                             if str(c.source) == key or (c.target is not None
                                                          and str(c.target) == key)]
                    if conns:
                        ok = await self.app.push_screen_wait(ConfirmScreen(
                            f"Remove {len(conns)} connection(s) of {key}?", action="Remove"))
                        if ok:
                            wf = self.workflow
                            for c in conns:
                                wf = editing.disconnect(wf, c)
                            graph.apply(wf, f"removed {len(conns)} connection(s) of {key}")
                        return
                ok = await self.app.push_screen_wait(ConfirmScreen(
                    f"Delete job {job} and its connections?"))
                if ok:
                    graph.apply(editing.delete_job(self.workflow, job), f"deleted job {job}")
        except editing.EditRefused as exc:
            self.status(f"refused: {exc}", True)

    # --- save / import / export / run ---------------------------------------------------
    def _current_text(self) -> str | None:
        self.sync_from_yaml()
        if not self.yaml_valid:
            self.status("fix the YAML errors first (see the problems panel)", True)
            return None
        return self.yaml_text

    @work(exclusive=True, group="editor-io", exit_on_error=False)
    async def action_save(self) -> None:
        if self._refuse_readonly():
            return
        text = self._current_text()
        if text is None:
            return
        try:
            info = await self.app.node.save_workflow(self.workflow.name, text)  # type: ignore[attr-defined]
        except RnnError as exc:
            self.status(f"not saved: {exc}", True)
            return
        self.saved_text = text
        self.status(f"saved workflow {info.name} ({info.job_count} jobs)")

    @work(exclusive=True, group="editor-io", exit_on_error=False)
    async def action_export(self) -> None:
        text = self._current_text()
        if text is None:
            return
        raw = await self.app.push_screen_wait(PromptScreen(
            "Export YAML to path", value=f"{self.workflow.name}.yaml"))
        if not raw:
            return
        path, exists = resolve_user_path(raw)
        if exists:
            ok = await self.app.push_screen_wait(ConfirmScreen(
                f"{path} exists. Overwrite it?", action="Overwrite"))
            if not ok:
                self.status("export cancelled; nothing written")
                return
        try:
            atomic_write(path, text.encode("utf-8"), 0o644)
        except OSError as exc:
            self.status(f"export failed: {path}: {exc.strerror or exc}", True)
            return
        self.status(f"exported to {path}")

    @work(exclusive=True, group="editor-io", exit_on_error=False)
    async def action_import(self) -> None:
        if self._refuse_readonly():
            return
        raw = await self.app.push_screen_wait(PromptScreen("Import YAML from path"))
        if not raw:
            return
        self.import_path(resolve_user_path(raw)[0])

    def import_path(self, path: Path) -> None:
        """Load ``path`` into the editor; unreadable or invalid files show their errors."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.show_problems([Problem(0, 0, f"cannot read {path}: {reason}", str(path))])
            self.status(f"import failed: {path}: {reason}; nothing changed", True)
            return
        self._syncing = True
        self.yaml_area.load_text(text)
        self._syncing = False
        self.sync_from_yaml()
        if not self.yaml_valid:
            self.query_one(TabbedContent).active = "yaml-tab"
            self.status(f"imported {path} with errors: fix them in the YAML view", True)
        else:
            self.status(f"imported {path}")

    @work(exclusive=True, group="editor-io", exit_on_error=False)
    async def action_run(self) -> None:
        if self._refuse_readonly():
            return
        text = self._current_text()
        if text is None:
            return
        node = self.app.node  # type: ignore[attr-defined]
        try:
            await node.save_workflow(self.workflow.name, text)
            run = await node.start_run(self.workflow.name)
        except RnnError as exc:
            self.status(f"cannot run: {exc}", True)
            return
        self.saved_text = text
        self.app.runs_cache[run.run_id] = run  # type: ignore[attr-defined]
        self.app.open_run_graph(run.run_id)  # type: ignore[attr-defined]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("save", "import", "run") and (
                self.readonly or getattr(self.app, "readonly", False)):
            return False
        return True

    def _refuse_readonly(self) -> bool:
        if self.readonly or getattr(self.app, "readonly", False):
            self.status("read-only: this action is disabled", True)
            return True
        return False

    def _poll_run(self) -> None:
        if self.run_info is None:
            return
        run = self.app.runs_cache.get(self.run_info.run_id)  # type: ignore[attr-defined]
        if run is not None and run != self.run_info:
            self.run_info = run
            self.graph.set_run(run)
            done = sum(1 for j in run.jobs if j.is_terminal)
            self.status(f"run {run.run_id}: {run.status.value} ({done}/{len(run.jobs)} jobs "
                        "done) — Enter on a job opens its logs")

    @work(exclusive=True, group="editor-dialog", exit_on_error=False)
    async def action_close(self) -> None:
        if self.graph.pending is not None:
            self.graph.action_cancel_pending()
            return
        if self.graph.moving is not None:
            self.graph.cancel_move()
            return
        if (not self.readonly and self.saved_text is not None
                and self.yaml_area.text != self.saved_text):
            ok = await self.app.push_screen_wait(ConfirmScreen(
                "Discard unsaved changes to this workflow?", action="Discard"))
            if not ok:
                return
        self.dismiss(None)
