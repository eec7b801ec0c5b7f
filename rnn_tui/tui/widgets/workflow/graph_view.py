"""The node-graph editor widget: draws a workflow and edits it, keyboard first.

Keys: arrows move between jobs (left/right across layers, up/down within one); tab and
shift+tab walk the selected job's ports; ``c`` on an output port starts a connection and
``c``/Enter on an input port of another job completes it (refusals are explained);
``a`` add a job, ``r`` rename, ``e`` edit parameters, ``x`` delete (job, or the selected
port's connections), ``z`` fit (compact boxes), ``shift+arrows`` pan.  Mouse: click a box to
select it, click a port to select it (and complete a pending connection).

Moving boxes: ``m`` starts moving the selected job; arrows move it one cell (shift+arrows
four), Enter or ``m`` places it, Esc puts it back.  The first move pins every job where it
is drawn, so the rest of the picture does not jump; the places become the jobs' ``position``
hints and are saved with the workflow.  ``o`` drops all hints (automatic layout again).

"Attributes down, messages up": the screen sets ``workflow``/``services``/``run``; every
edit posts ``GraphView.Changed`` with the new workflow, and the screen decides what else
follows (YAML text, validation, saving).  Edits that need input from the user (service to
add, new name, parameters) post ``GraphView.Request`` so the screen owns the modals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from rnn_tui.api import RunInfo, ServiceInfo
from rnn_tui.workflow.model import JOB_IN_PROGRESS, MAX_POSITION, JobStatus, Position, Workflow

from . import editing
from .canvas import Canvas, draw_layout
from .layout import Layout, hint_for, layout_graph

__all__ = ["GraphView"]

STATE_KEYS = {
    JobStatus.COMPLETED: "state.ok", JobStatus.ERRORED: "state.err",
    JobStatus.CANCELLED: "state.cancel", JobStatus.RUNNING: "state.run",
    JobStatus.IDLE: "state.idle",
}


@dataclass(frozen=True, slots=True)
class Selection:
    job: str | None = None
    side: str | None = None  # "in" | "out"
    port: str | None = None


class GraphView(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    GraphView { height: 1fr; background: $surface; }
    GraphView:focus { background-tint: $foreground 3%; }
    """

    BINDINGS = [
        Binding("left", "move(-1, 0)", "←", show=False),
        Binding("right", "move(1, 0)", "→", show=False),
        Binding("up", "move(0, -1)", "↑", show=False),
        Binding("down", "move(0, 1)", "↓", show=False),
        Binding("tab", "next_port(1)", "Next port", show=False, priority=True),
        Binding("shift+tab", "next_port(-1)", "Prev port", show=False, priority=True),
        Binding("shift+left", "pan(-8, 0)", "Pan", show=False),
        Binding("shift+right", "pan(8, 0)", "Pan", show=False),
        Binding("shift+up", "pan(0, -4)", "Pan", show=False),
        Binding("shift+down", "pan(0, 4)", "Pan", show=False),
        Binding("a", "request('add')", "Add job"),
        Binding("c", "connect", "Connect"),
        Binding("enter", "enter", "Open/Connect"),
        Binding("r", "request('rename')", "Rename"),
        Binding("e", "request('params')", "Params"),
        Binding("x,delete", "request('delete')", "Delete"),
        Binding("z", "toggle_compact", "Fit/zoom"),
        Binding("m", "move_mode", "Move"),
        Binding("o", "auto_layout", "Auto-layout", show=False),
    ]

    class Changed(Message):
        def __init__(self, view: GraphView, workflow: Workflow, what: str) -> None:
            super().__init__()
            self.view = view
            self.workflow = workflow
            self.what = what

    class Request(Message):
        """The user asked for an edit that needs a dialog: add | rename | params | delete."""

        def __init__(self, view: GraphView, kind: str, selection: Selection) -> None:
            super().__init__()
            self.view = view
            self.kind = kind
            self.selection = selection

    class OpenLogs(Message):
        def __init__(self, view: GraphView, job: str) -> None:
            super().__init__()
            self.view = view
            self.job = job

    class Status(Message):
        """A one-line status (refusal reason, pending connection hint)."""

        def __init__(self, view: GraphView, text: str, error: bool = False) -> None:
            super().__init__()
            self.view = view
            self.text = text
            self.error = error

    def __init__(self, workflow: Workflow, services: Mapping[str, ServiceInfo], *,
                 readonly: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.workflow = workflow
        self.services = dict(services)
        self.readonly = readonly
        self.run: RunInfo | None = None
        self.problems: dict[str, list[str]] = {}
        self.compact = False
        self.selection = Selection(workflow.jobs[0].name if workflow.jobs else None)
        self.pending: tuple[str, str] | None = None  # (job, output port)
        self.moving: Workflow | None = None  # while moving a box: the workflow before it
        self.graph_layout: Layout = Layout()
        self.canvas: Canvas = Canvas(1, 1)
        self._styles: dict[str, Style] = {}
        self._relayout()

    # --- model → drawing ----------------------------------------------------------------
    def set_workflow(self, workflow: Workflow, *, keep_selection: bool = True) -> None:
        self.workflow = workflow
        if not keep_selection or self.selection.job not in workflow.job_names:
            self.selection = Selection(workflow.jobs[0].name if workflow.jobs else None)
        if self.pending and self.pending[0] not in workflow.job_names:
            self.pending = None
        self._relayout()

    def set_run(self, run: RunInfo | None) -> None:
        self.run = run
        self._redraw()

    def set_problems(self, problems: dict[str, list[str]]) -> None:
        self.problems = problems
        self._redraw()

    def _relayout(self) -> None:
        boxes, edges = editing.to_specs(self.workflow, self.services)
        hints = {j.name: (j.position.x, j.position.y) for j in self.workflow.jobs
                 if j.position is not None}
        self.graph_layout = layout_graph(boxes, edges, compact=self.compact, hints=hints)
        self._redraw()

    def _redraw(self) -> None:
        box_keys: dict[str, str] = {}
        badges: dict[str, str] = {}
        for name in self.problems:
            box_keys[name] = "box.error"
        if self.run is not None:
            for job in self.run.jobs:
                key = STATE_KEYS.get(job.status)
                if key is None and job.status in JOB_IN_PROGRESS:
                    key = "state.run"
                box_keys[job.job] = key or "box"
                badges[job.job] = job.status.value
        sel = self.selection
        self.canvas = draw_layout(
            self.graph_layout, selected=sel.job,
            selected_port=(sel.side, sel.port) if sel.side and sel.port else None,
            box_keys=box_keys, box_badges=badges, pending_src=self.pending)
        self.virtual_size = Size(self.canvas.width, self.canvas.height)
        self.refresh()

    def _style(self, key: str) -> Style:
        if not self._styles:
            self._build_styles()
        return self._styles.get(key) or self._styles["bg"]

    def _build_styles(self) -> None:
        theme = self.app.current_theme
        fg = theme.foreground or "white"
        bg = theme.surface or "black"

        def s(color: str | None, *, bold: bool = False, reverse: bool = False) -> Style:
            return Style(color=color or fg, bgcolor=bg, bold=bold, reverse=reverse)

        self._styles = {
            "bg": s(fg), "inside": s(fg), "edge": s(theme.secondary or fg),
            "edge.sel": s(theme.accent or fg, bold=True),
            "box": s(fg), "box.sel": s(theme.accent or fg, bold=True),
            "title": s(fg, bold=True), "title.sel": s(theme.accent or fg, bold=True),
            "subtitle": Style(color=fg, bgcolor=bg, dim=True),
            "port": s(theme.primary or fg), "port.sel": s(theme.accent or fg, reverse=True),
            "port.pending": s(theme.warning or "yellow", bold=True, reverse=True),
            "box.error": s(theme.error or "red", bold=True),
            "state.ok": s(theme.success or "green", bold=True),
            "state.err": s(theme.error or "red", bold=True),
            "state.cancel": s(theme.warning or "yellow"),
            "state.run": s(theme.primary or "cyan", bold=True),
            "state.idle": s(fg),
        }
        for key in list(self._styles):
            if key.startswith(("state.", "box.error")):
                self._styles[f"{key}.sel"] = self._styles[key] + Style(bold=True, underline=True)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = {}

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = y + scroll_y
        width = self.size.width
        if row >= self.canvas.height:
            return Strip.blank(width, self._style("bg"))
        runs = self.canvas.row_runs(row, scroll_x, scroll_x + width)
        segments = [Segment(text, self._style(key)) for text, key in runs]
        strip = Strip(segments, sum(len(text) for text, _key in runs))
        return strip.extend_cell_length(width, self._style("bg"))

    # --- selection ----------------------------------------------------------------------
    def _select(self, selection: Selection) -> None:
        self.selection = selection
        self._redraw()
        self._scroll_to_selection()
        if self.pending and selection.port:
            self.post_message(self.Status(self, f"connect {self.pending[0]}.{self.pending[1]} → "
                                          f"{selection.job}.{selection.port}: press c or Enter"))

    def _scroll_to_selection(self) -> None:
        rect = self.graph_layout.boxes.get(self.selection.job or "")
        if rect is not None and self.is_mounted:
            from textual.geometry import Region

            self.scroll_to_region(Region(rect.x, rect.y, rect.width, rect.height),
                                  animate=False, force=True)

    def action_move(self, dx: int, dy: int) -> None:
        if self.moving is not None:
            self._nudge(dx, dy)
            return
        layers = self.graph_layout.layers
        if not layers:
            return
        current = self.selection.job
        pos = next(((li, i) for li, layer in enumerate(layers) for i, n in enumerate(layer)
                    if n == current), None)
        if pos is None:
            self._select(Selection(layers[0][0]))
            return
        li, i = pos
        if dy:
            i = max(0, min(len(layers[li]) - 1, i + dy))
            target = layers[li][i]
        else:
            nli = li + dx
            while 0 <= nli < len(layers) and not layers[nli]:
                nli += dx
            if not 0 <= nli < len(layers):
                return
            here = self.graph_layout.boxes[layers[li][i]]
            target = min(layers[nli], key=lambda n: abs(self.graph_layout.boxes[n].y - here.y))
        self._select(Selection(target))

    def ports_of_selected(self) -> list[tuple[str, str]]:
        job = self.selection.job
        if job is None or job not in self.workflow.job_names:
            return []
        ports = editing.ports_of(self.workflow.job(job), self.services)
        return [("in", p) for p in ports.inputs] + [("out", p) for p in ports.outputs]

    def action_next_port(self, step: int) -> None:
        ports = self.ports_of_selected()
        if not ports:
            return
        sel = self.selection
        current = (sel.side, sel.port)
        idx = ports.index(current) + step if current in ports else (0 if step > 0 else -1)
        if 0 <= idx < len(ports) or current not in ports:
            side, port = ports[idx % len(ports)]
            self._select(Selection(sel.job, side, port))
        else:
            self._select(Selection(sel.job))  # past the last port: back to the box

    def select_port(self, job: str, side: str, port: str) -> None:
        self._select(Selection(job, side, port))

    def select_job(self, job: str) -> None:
        self._select(Selection(job))

    def action_pan(self, dx: int, dy: int) -> None:
        if self.moving is not None:
            self._nudge((dx > 0) - (dx < 0), (dy > 0) - (dy < 0), 4)
            return
        self.scroll_to(self.scroll_x + dx, self.scroll_y + dy, animate=False)

    def action_toggle_compact(self) -> None:
        self.compact = not self.compact
        self._relayout()
        self.scroll_to(0, 0, animate=False)

    EDIT_ACTIONS = frozenset({"request", "connect", "move_mode", "auto_layout"})

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.readonly and action in self.EDIT_ACTIONS:
            return False  # hidden from the key bar; a run's graph is not editable
        return True

    # --- editing ------------------------------------------------------------------------
    def _refuse_readonly(self) -> bool:
        if self.readonly:
            self.post_message(self.Status(self, "read-only: this graph cannot be edited", True))
        return self.readonly

    def action_request(self, kind: str) -> None:
        if self._refuse_readonly():
            return
        if kind != "add" and self.selection.job is None:
            self.post_message(self.Status(self, "select a job first", True))
            return
        self.post_message(self.Request(self, kind, self.selection))

    def action_connect(self) -> None:
        if self._refuse_readonly():
            return
        sel = self.selection
        if self.pending is None:
            if sel.side != "out" or sel.job is None or sel.port is None:
                self.post_message(self.Status(
                    self, "select an output port (tab) of a job, then press c", True))
                return
            self.pending = (sel.job, sel.port)
            self._redraw()
            self.post_message(self.Status(
                self, f"connecting from {sel.job}.{sel.port}: pick an input port and press c "
                "(Esc cancels)"))
            return
        if sel.side != "in" or sel.job is None or sel.port is None:
            self.post_message(self.Status(self, "pick an input port (tab) of another job", True))
            return
        self.try_connect(self.pending[0], self.pending[1], sel.job, sel.port)

    def try_connect(self, src_job: str, src_port: str, dst_job: str, dst_port: str) -> bool:
        try:
            workflow = editing.connect(self.workflow, self.services, src_job, src_port,
                                       dst_job, dst_port)
        except editing.EditRefused as exc:
            self.post_message(self.Status(self, f"refused: {exc}", True))
            return False
        self.pending = None
        self.apply(workflow, f"connected {src_job}.{src_port} → {dst_job}.{dst_port}")
        return True

    def apply(self, workflow: Workflow, what: str) -> None:
        """Adopt an edited workflow and tell the screen (another edit ends a move: the box
        stays where it is, and Esc can no longer undo more than the move)."""
        self.moving = None
        self.set_workflow(workflow)
        self.post_message(self.Changed(self, workflow, what))
        self.post_message(self.Status(self, what))

    # --- moving boxes (layout hints) -----------------------------------------------------
    def action_move_mode(self) -> None:
        """Start moving the selected job's box, or place it when already moving."""
        if self.moving is not None:
            self.finish_move()
            return
        if self._refuse_readonly():
            return
        job = self.selection.job
        if job is None:
            self.post_message(self.Status(self, "select a job to move first", True))
            return
        if self.compact:
            self.post_message(self.Status(
                self, "boxes cannot be moved in the compact view: press z first", True))
            return
        before = self.workflow
        pinned = self.workflow
        for j in self.workflow.jobs:  # pin every box where it is drawn now
            if j.position is None and j.name in self.graph_layout.boxes:
                x, y = hint_for(self.graph_layout.boxes[j.name])
                pinned = pinned.with_job(replace(j, position=Position(x, y)))
        if pinned != self.workflow:
            self.set_workflow(pinned)
            self.post_message(self.Changed(self, pinned, "pinned the layout"))
        self.moving = before
        self.post_message(self.Status(
            self, f"moving {job}: arrows move it (shift+arrows by 4), Enter or m places it, "
            "Esc puts it back"))

    def _nudge(self, dx: int, dy: int, step: int = 1) -> None:
        job = self.workflow.job(self.selection.job) if self.selection.job in \
            self.workflow.job_names else None
        if job is None or job.position is None:
            return
        x = max(0, min(MAX_POSITION, job.position.x + dx * step))
        y = max(0, min(MAX_POSITION, job.position.y + dy * step))
        if (x, y) == (job.position.x, job.position.y):
            return
        workflow = self.workflow.with_job(replace(job, position=Position(x, y)))
        self.set_workflow(workflow)
        self.post_message(self.Changed(self, workflow, f"moved {job.name} to ({x}, {y})"))
        self.post_message(self.Status(self, f"moving {job.name}: at ({x}, {y}) — Enter or m "
                                      "places it, Esc puts it back"))
        self._scroll_to_selection()

    def finish_move(self) -> None:
        if self.moving is None:
            return
        self.moving = None
        job = self.selection.job
        pos = self.workflow.job(job).position if job in self.workflow.job_names else None
        where = f" at ({pos.x}, {pos.y})" if pos is not None else ""
        self.post_message(self.Status(self, f"placed {job}{where}"))

    def cancel_move(self) -> None:
        """Esc while moving: back to the workflow as it was before the move started."""
        if self.moving is None:
            return
        before, self.moving = self.moving, None
        self.apply(before, "move cancelled")

    def action_auto_layout(self) -> None:
        if self._refuse_readonly():
            return
        self.moving = None
        if all(j.position is None for j in self.workflow.jobs):
            self.post_message(self.Status(self, "already laid out automatically"))
            return
        workflow = replace(self.workflow, jobs=tuple(replace(j, position=None)
                                                      for j in self.workflow.jobs))
        self.apply(workflow, "layout hints removed: automatic layout")

    def action_cancel_pending(self) -> None:
        if self.pending is not None:
            self.pending = None
            self._redraw()
            self.post_message(self.Status(self, "connection cancelled"))

    def action_enter(self) -> None:
        if self.moving is not None:
            self.finish_move()
            return
        sel = self.selection
        if self.run is not None and sel.job is not None:
            self.post_message(self.OpenLogs(self, sel.job))
            return
        if self.pending is not None or sel.side == "out":
            self.action_connect()
        elif sel.job is not None and sel.port is None:
            self.action_next_port(1)

    # --- mouse --------------------------------------------------------------------------
    def on_click(self, event: events.Click) -> None:
        x = event.x + int(self.scroll_x)
        y = event.y + int(self.scroll_y)
        hit = self.graph_layout.port_at(x, y)
        if hit is not None:
            job, side, port = hit
            self._select(Selection(job, side, port))
            if self.pending is not None and side == "in" and not self.readonly:
                self.try_connect(self.pending[0], self.pending[1], job, port)
            elif event.chain == 2 and side == "out" and not self.readonly:
                self.action_connect()
            return
        job_hit = self.graph_layout.node_at(x, y)
        if job_hit is not None:
            self._select(Selection(job_hit))
            if event.chain == 2 and self.run is not None:
                self.post_message(self.OpenLogs(self, job_hit))
