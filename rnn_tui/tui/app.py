"""The Textual app: it owns the node, consumes its events and shows the screens.

Why the App owns the node (FACTS.md): a worker's exception exits the app by default, and
screens come and go.  So the node is started and stopped here, every node call runs in a
worker with ``exit_on_error=False``, and a node that cannot start is shown as a reason on
a failure screen, never as a traceback.

Data flow: node events → ``_apply`` (caches) → a 5 Hz refresh renders dirty panes.  Events
can arrive far faster than a terminal can redraw, so they are coalesced, never rendered
one by one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.events import Resize

from rnn_tui.api import (
    NodeEvent,
    NodeFailed,
    NodeStatus,
    NodeStatusChanged,
    PeerInfo,
    PeerRemoved,
    PeerUpdated,
    RunInfo,
    RunUpdated,
    ServiceInfo,
    ServiceRemoved,
    ServiceUpdated,
    WorkflowDeleted,
    WorkflowInfo,
    WorkflowSaved,
)
from rnn_tui.errors import RnnError
from rnn_tui.tui.commands import NodeCommands
from rnn_tui.tui.facade import NodeFacade
from rnn_tui.tui.paths import resolve_user_path
from rnn_tui.tui.screens.editor import EditorScreen
from rnn_tui.tui.screens.logs import LogsScreen
from rnn_tui.tui.screens.main import PANES, MainScreen
from rnn_tui.tui.screens.modals import FailureScreen, HelpScreen, PromptScreen, TooSmallScreen
from rnn_tui.workflow.model import Workflow
from rnn_tui.workflow.problems import WorkflowInvalid
from rnn_tui.workflow.yaml_io import load_workflow

__all__ = ["RnnApp", "run_app", "MIN_SIZE"]

MIN_SIZE = (60, 16)
REFRESH_HZ = 5
RELOAD_S = 15.0  # full snapshot re-read: recovers from events a busy node coalesced or dropped
THEMES = ("textual-dark", "nord", "gruvbox", "tokyo-night", "textual-light")


class RnnApp(App[int]):
    TITLE = "rnn"
    COMMANDS = App.COMMANDS | {NodeCommands}
    BINDINGS = [
        Binding("question_mark", "help", "Help"),
        Binding("colon", "command_palette", "Commands", show=False),
        Binding("ctrl+t", "next_theme", "Theme", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, node: NodeFacade, *, readonly: bool = False,
                 clock: Callable[[], float] = time.time, theme: str | None = None) -> None:
        super().__init__()
        self.node = node
        self.readonly = readonly
        self.clock = clock
        self.status: NodeStatus | None = None
        self.peers_cache: dict[str, PeerInfo] = {}
        self.services_cache: dict[str, ServiceInfo] = {}
        self.workflows_cache: dict[str, WorkflowInfo] = {}
        self.runs_cache: dict[str, RunInfo] = {}
        self.node_started = False
        self.node_error: str | None = None
        self._dirty = False
        self._stopped = False
        if theme:
            self.theme = theme

    # --- lifecycle ----------------------------------------------------------------------
    def on_mount(self) -> None:
        self.push_screen(MainScreen())
        self._check_size(self.size.width, self.size.height)
        self.set_interval(1 / REFRESH_HZ, self._refresh_if_dirty, name="app-refresh")
        self.start_node()

    @work(exclusive=True, group="node-start", exit_on_error=False)
    async def start_node(self) -> None:
        try:
            await self.node.start()
        except RnnError as exc:
            self.show_failure(str(exc))
            return
        except Exception as exc:  # an unexpected failure is still a reason, not a traceback
            self.show_failure(f"{type(exc).__name__}: {exc}")
            return
        self.node_started = True
        self.status = self.node.status()
        self.consume_events()
        await self.reload()
        self.set_interval(RELOAD_S, self.periodic_reload, name="app-reload")

    @work(exclusive=True, group="node-reload", exit_on_error=False)
    async def periodic_reload(self) -> None:
        await self.reload()

    def show_failure(self, reason: str) -> None:
        self.node_error = reason
        self.push_screen(FailureScreen(reason))

    async def reload(self) -> None:
        """Re-read every snapshot (at start, and when events were dropped)."""
        try:
            self.peers_cache = {p.peer_id: p for p in await self.node.peers()}
            self.services_cache = {s.service_id: s for s in await self.node.services()}
            self.workflows_cache = {w.name: w for w in await self.node.workflows()}
            self.runs_cache = {r.run_id: r for r in await self.node.runs()}
        except RnnError as exc:
            self.notify(f"node: {exc}", severity="error")
        self.status = self.node.status()
        self._dirty = True
        self._refresh_if_dirty()

    @work(exclusive=True, group="node-events", exit_on_error=False)
    async def consume_events(self) -> None:
        async for event in self.node.subscribe_events():
            self._apply(event)

    def _apply(self, event: NodeEvent) -> None:
        match event:
            case NodeStatusChanged(status=status):
                self.status = status
            case PeerUpdated(peer=peer):
                self.peers_cache[peer.peer_id] = peer
            case PeerRemoved(peer_id=peer_id):
                self.peers_cache.pop(peer_id, None)
            case ServiceUpdated(service=service):
                self.services_cache[service.service_id] = service
            case ServiceRemoved(service_id=service_id):
                self.services_cache.pop(service_id, None)
            case WorkflowSaved(workflow=workflow):
                self.workflows_cache[workflow.name] = workflow
            case WorkflowDeleted(name=name):
                self.workflows_cache.pop(name, None)
            case RunUpdated(run=run):
                self.runs_cache[run.run_id] = run
            case NodeFailed(reason=reason, fatal=fatal):
                if fatal:
                    self.show_failure(reason)
                else:
                    self.notify(reason, severity="error", timeout=8)
        self._dirty = True

    def _refresh_if_dirty(self) -> None:
        if not self._dirty:
            return
        main = self.main_screen()
        if main is None or not main.is_mounted:
            return  # stay dirty until the main screen can render
        self._dirty = False
        main.render_all()
        from rnn_tui.tui.widgets.header import StatusHeader

        for header in self.screen.query(StatusHeader):
            header.status = self.status
            header.readonly = self.readonly

    async def stop_node(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            await self.node.stop()
        except Exception as exc:  # stopping must never hide the exit
            self.log.error(f"node stop failed: {exc!r}")

    async def action_quit(self) -> None:
        await self.stop_node()
        self.exit(0 if self.node_error is None else 1)

    async def on_unmount(self) -> None:
        await self.stop_node()

    # --- size ---------------------------------------------------------------------------
    def on_resize(self, event: Resize) -> None:
        self._check_size(event.size.width, event.size.height)

    def _check_size(self, width: int, height: int) -> None:
        small = width < MIN_SIZE[0] or height < MIN_SIZE[1]
        top = self.screen_stack[-1] if self.screen_stack else None
        if small and not isinstance(top, TooSmallScreen):
            self.push_screen(TooSmallScreen(MIN_SIZE))
        elif small and isinstance(top, TooSmallScreen):
            top.update_size(width, height)
        elif not small and isinstance(top, TooSmallScreen):
            self.pop_screen()

    # --- navigation used by screens and the palette -------------------------------------
    def main_screen(self) -> MainScreen | None:
        return next((s for s in self.screen_stack if isinstance(s, MainScreen)), None)

    def show_pane(self, pane: str) -> None:
        if pane not in PANES:
            return
        while len(self.screen_stack) > 1 and not isinstance(self.screen, MainScreen):
            self.pop_screen()
        main = self.main_screen()
        if main is not None:
            main.action_show(pane)

    def services_by_name(self) -> dict[str, ServiceInfo]:
        """Name → service for the editor; a local service wins over a remote namesake."""
        out: dict[str, ServiceInfo] = {}
        for info in sorted(self.services_cache.values(), key=lambda s: s.local):
            out[info.name] = info
        return out

    def open_editor(self, name: str) -> None:
        info = self.workflows_cache.get(name)
        if info is None:
            self.notify(f"no workflow {name!r}", severity="error")
            return
        try:
            workflow = load_workflow(info.yaml_text, name).workflow
            text = None
        except WorkflowInvalid:
            workflow, text = Workflow(name), info.yaml_text
        self.push_screen(EditorScreen(workflow, self.services_by_name(), yaml_text=text,
                                      readonly=self.readonly))

    def open_new_workflow(self, name: str) -> None:
        self.push_screen(EditorScreen(Workflow(name), self.services_by_name(),
                                      readonly=self.readonly))

    @work(exclusive=True, group="app-import", exit_on_error=False)
    async def open_import(self, raw_path: str) -> None:
        path, _exists = resolve_user_path(raw_path)
        screen = EditorScreen(Workflow(path.stem or "imported"), self.services_by_name(),
                              readonly=self.readonly)
        await self.push_screen(screen)
        screen.import_path(path)

    @work(exclusive=True, group="app-run", exit_on_error=False)
    async def run_workflow(self, name: str) -> None:
        if self.readonly:
            self.notify("read-only: cannot start runs", severity="warning")
            return
        try:
            run = await self.node.start_run(name)
        except RnnError as exc:
            self.notify(f"cannot run {name}: {exc}", severity="error")
            return
        self.runs_cache[run.run_id] = run
        self._dirty = True
        self.open_run_graph(run.run_id)

    def open_run_graph(self, run_id: str) -> None:
        run = self.runs_cache.get(run_id)
        if run is None:
            self.notify(f"no run {run_id}", severity="error")
            return
        info = self.workflows_cache.get(run.workflow)
        try:
            workflow = (load_workflow(info.yaml_text, run.workflow).workflow if info
                        else Workflow(run.workflow))
        except WorkflowInvalid:
            workflow = Workflow(run.workflow)
        if isinstance(self.screen, EditorScreen) and self.screen.run_info is None:
            self.pop_screen()
        self.push_screen(EditorScreen(workflow, self.services_by_name(), run=run))

    def open_logs(self, run_id: str, job: str | None) -> None:
        self.push_screen(LogsScreen(run_id, job))

    @work(group="app-connect", exit_on_error=False)
    async def run_connect(self, target: str) -> None:
        await self.connect_to(target)

    async def connect_to(self, target: str) -> None:
        if self.readonly:
            self.notify("read-only: cannot connect", severity="warning")
            return
        try:
            peer = await self.node.connect(target)
        except RnnError as exc:
            self.notify(str(exc), severity="error")
            return
        self.peers_cache[peer.peer_id] = peer
        self._dirty = True
        self.notify(f"connected to {peer.short_id}")

    @work(exclusive=True, group="app-dialog", exit_on_error=False)
    async def action_connect_prompt(self) -> None:
        target = await self.push_screen_wait(PromptScreen(
            "Connect to a peer", placeholder="host:port or peer id"))
        if target:
            await self.connect_to(target)

    # --- help and themes ----------------------------------------------------------------
    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        sections: dict[str, list[tuple[str, str]]] = {}
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if not binding.description:
                continue
            owner = type(active.node).__name__
            title = {"RnnApp": "Everywhere"}.get(owner, owner)
            display = self.get_key_display(binding)
            sections.setdefault(title, []).append((display or key, binding.description))
        def order(title: str) -> int:
            if title == "Everywhere":
                return 0
            return 1 if title.endswith("Screen") or title in ("GraphView", "LogView",
                                                                  "FilterTable") else 2

        self.push_screen(HelpScreen(sorted(sections.items(), key=lambda kv: order(kv[0]))))

    def action_next_theme(self) -> None:
        names = [t for t in THEMES if t in self.available_themes]
        current = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(current + 1) % len(names)]
        self.notify(f"theme: {self.theme}")


def run_app(facade: NodeFacade, readonly: bool = False, *, mouse: bool = True,
            theme: str | None = None) -> int:
    """Run the TUI until the operator quits; the exit code for the CLI."""
    app = RnnApp(facade, readonly=readonly, theme=theme)
    result: Any = app.run(mouse=mouse)
    return int(result) if isinstance(result, int) else (1 if app.node_error else 0)


def demo_main() -> int:
    """``python -m rnn_tui.tui.app``: the demo scene, live."""
    from rnn_tui.tui.demo import DemoNode

    return run_app(DemoNode.live_scene())


if __name__ == "__main__":
    raise SystemExit(demo_main())
