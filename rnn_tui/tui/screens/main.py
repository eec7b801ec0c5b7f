"""The main screen: header, four panes (peers, services, workflows, runs), footer.

Panes render the app's caches (filled from node snapshots and events) and turn keys into
requests to the app; they never hold node state of their own and never call the node
except through ``app.node`` in named, non-fatal workers.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Label, TabbedContent, TabPane

from rnn_tui.api import PeerInfo, RunInfo, ServiceInfo, WorkflowInfo
from rnn_tui.errors import RnnError
from rnn_tui.tui.screens.modals import ConfirmScreen, DescribeScreen, PromptScreen
from rnn_tui.tui.screens.wizard import ServiceWizardScreen
from rnn_tui.tui.widgets.header import StatusHeader
from rnn_tui.tui.widgets.keybar import KeyBar
from rnn_tui.tui.widgets.table import FilterTable, Row
from rnn_tui.workflow.model import JobStatus, RunStatus

__all__ = ["MainScreen", "PANES"]

PANES = ("peers", "services", "workflows", "runs")

_STATUS_STYLE = {
    RunStatus.COMPLETED: "green", RunStatus.FAILED: "bold red", RunStatus.CANCELLED: "yellow",
    RunStatus.RUNNING: "bold cyan", RunStatus.PENDING: "",
    JobStatus.COMPLETED: "green", JobStatus.ERRORED: "bold red", JobStatus.CANCELLED: "yellow",
    JobStatus.RUNNING: "bold cyan",
}


def ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "—"
    delta = max(0.0, now - ts)
    if delta < 60:
        return f"{int(delta)}s ago"
    if delta < 3600:
        return f"{int(delta // 60)}m ago"
    if delta < 86400:
        return f"{int(delta // 3600)}h ago"
    return f"{int(delta // 86400)}d ago"


def progress_bar(fraction: float, width: int = 10) -> str:
    filled = round(fraction * width)
    return "█" * filled + "░" * (width - filled) + f" {fraction * 100:3.0f}%"


def styled(value: str, status: object) -> Text:
    return Text(value, style=_STATUS_STYLE.get(status, ""))  # type: ignore[call-overload]


class MainScreen(Screen[None]):
    DEFAULT_CSS = """
    MainScreen { overflow: hidden; }
    MainScreen #panes { height: 1fr; }
    MainScreen TabPane { height: 1fr; padding: 0; }
    MainScreen #jobs-title { height: 1; padding: 0 1; background: $boost; text-style: bold; }
    MainScreen #runs-table { height: 1fr; }
    MainScreen #jobs-table { height: 1fr; }
    """

    BINDINGS = [
        Binding("1", "show('peers')", "Peers"),
        Binding("2", "show('services')", "Services"),
        Binding("3", "show('workflows')", "Workflows"),
        Binding("4", "show('runs')", "Runs"),
        # Peers
        Binding("d", "describe", "Describe"),
        Binding("c", "connect", "Connect"),
        Binding("p", "ping", "Ping"),
        # Services
        Binding("a", "add_service", "Add service"),
        Binding("s", "search", "Search remote"),
        # Workflows
        Binding("e", "edit", "Edit"),
        Binding("n", "new_workflow", "New"),
        Binding("i", "import_workflow", "Import"),
        Binding("r", "run", "Run"),
        # Runs
        Binding("l", "logs", "Logs"),
        Binding("g", "run_graph", "Graph"),
        Binding("x", "delete", "Delete/Cancel"),
    ]

    PANE_ACTIONS = {
        "peers": {"describe", "connect", "ping"},
        "services": {"describe", "add_service", "search", "delete"},
        "workflows": {"edit", "new_workflow", "import_workflow", "run", "delete"},
        "runs": {"logs", "run_graph", "delete"},
    }
    MUTATING = {"connect", "add_service", "new_workflow", "import_workflow", "run", "delete"}

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        with TabbedContent(initial="peers", id="panes"):
            with TabPane("1 Peers", id="peers"):
                yield FilterTable(("Peer", "Addresses", "Link", "RTT", "NAT", "Svcs",
                                   "Last seen"), empty="no peers yet", id="peers-table")
            with TabPane("2 Services", id="services"):
                yield FilterTable(("Name", "Where", "Kind", "Inputs", "Outputs", "Description"),
                                  empty="no services: press a to add one, s to search",
                                  id="services-table")
            with TabPane("3 Workflows", id="workflows"):
                yield FilterTable(("Name", "Jobs", "Updated", "Description"),
                                  empty="no workflows: press n for a new one, i to import",
                                  id="workflows-table")
            with TabPane("4 Runs", id="runs"):
                with Vertical():
                    yield FilterTable(("Run", "Workflow", "Status", "Progress", "Started"),
                                      empty="no runs yet", id="runs-table")
                    yield Label("Jobs", id="jobs-title")
                    yield FilterTable(("Job", "Status", "Executor", "Exit", "Reason"),
                                      empty="select a run", id="jobs-table")
        yield KeyBar()

    def on_mount(self) -> None:
        self.render_all()
        self.query_one("#peers-table", FilterTable).focus_table()

    # --- pane switching -----------------------------------------------------------------
    @property
    def active_pane(self) -> str:
        return self.query_one(TabbedContent).active or "peers"

    def action_show(self, pane: str) -> None:
        self.query_one(TabbedContent).active = pane
        self.query_one(f"#{pane}-table", FilterTable).focus_table()
        self.refresh_bindings()

    @on(TabbedContent.TabActivated)
    def _tab(self) -> None:
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        pane_of = {a for acts in self.PANE_ACTIONS.values() for a in acts}
        if action in pane_of and action not in self.PANE_ACTIONS.get(self.active_pane, set()):
            return False
        if action in self.MUTATING and getattr(self.app, "readonly", False):
            return None  # shown disabled
        return True

    # --- rendering from the app caches --------------------------------------------------
    def render_all(self) -> None:
        app = self.app
        now = app.clock()  # type: ignore[attr-defined]
        self.query_one("#header", StatusHeader).status = app.status  # type: ignore[attr-defined]
        self.query_one("#header", StatusHeader).readonly = app.readonly  # type: ignore[attr-defined]
        self.render_peers(list(app.peers_cache.values()), now)  # type: ignore[attr-defined]
        self.render_services(list(app.services_cache.values()))  # type: ignore[attr-defined]
        self.render_workflows(list(app.workflows_cache.values()), now)  # type: ignore[attr-defined]
        self.render_runs(list(app.runs_cache.values()), now)  # type: ignore[attr-defined]

    def render_peers(self, peers: list[PeerInfo], now: float) -> None:
        rows = []
        for p in sorted(peers, key=lambda p: (not p.connected, p.peer_id)):
            link = Text("relayed", style="yellow") if p.relayed else Text("direct", style="green")
            if not p.connected:
                link = Text("offline", style="dim")
            rtt = f"{p.rtt_ms:.0f} ms" if p.rtt_ms is not None else "—"
            rows.append(Row(p.peer_id, (p.short_id, ", ".join(p.addresses), link, rtt,
                                        p.nat_type, str(p.service_count), ago(p.last_seen, now)),
                            f"{p.peer_id} {' '.join(p.addresses)} {p.nat_type} {p.agent}"))
        self.query_one("#peers-table", FilterTable).set_rows(rows)

    def render_services(self, services: list[ServiceInfo]) -> None:
        rows = []
        for s in sorted(services, key=lambda s: (not s.local, s.name)):
            where = Text("local", style="green") if s.local else Text(f"@{s.peer_id[:10]}")
            rows.append(Row(s.service_id, (s.name, where, s.service.kind.value,
                                           " ".join(s.inputs), " ".join(s.outputs),
                                           s.service.description[:48])))
        self.query_one("#services-table", FilterTable).set_rows(rows)

    def render_workflows(self, workflows: list[WorkflowInfo], now: float) -> None:
        rows = [Row(w.name, (w.name, str(w.job_count), ago(w.updated_at, now), w.description[:60]))
                for w in sorted(workflows, key=lambda w: w.name)]
        self.query_one("#workflows-table", FilterTable).set_rows(rows)

    def render_runs(self, runs: list[RunInfo], now: float) -> None:
        rows = [Row(r.run_id, (r.run_id, r.workflow, styled(r.status.value, r.status),
                               progress_bar(r.progress), ago(r.run.started_at, now)))
                for r in sorted(runs, key=lambda r: r.run_id, reverse=True)]
        table = self.query_one("#runs-table", FilterTable)
        table.set_rows(rows)
        self.render_jobs(table.cursor_key)

    def render_jobs(self, run_id: str | None) -> None:
        run = self.app.runs_cache.get(run_id or "")  # type: ignore[attr-defined]
        title = self.query_one("#jobs-title", Label)
        jobs = self.query_one("#jobs-table", FilterTable)
        if run is None:
            title.update("Jobs")
            jobs.set_rows([])
            return
        title.update(f"Jobs of {run.run_id} ({run.workflow})  ·  l logs · g graph · x cancel")
        jobs.set_rows([Row(j.job, (j.job, styled(j.status.value, j.status),
                                   j.executor.short if j.executor else "—",
                                   "" if j.exit_code is None else str(j.exit_code), j.reason))
                       for j in run.jobs])

    @on(FilterTable.Highlighted, "#runs-table")
    def _run_highlighted(self, event: FilterTable.Highlighted) -> None:
        self.render_jobs(event.key)

    # --- selection helpers --------------------------------------------------------------
    def _key(self, pane: str) -> str | None:
        return self.query_one(f"#{pane}-table", FilterTable).cursor_key

    @on(FilterTable.Selected)
    def _enter(self, event: FilterTable.Selected) -> None:
        table_id = event.table.id or ""
        if table_id in ("peers-table", "services-table"):
            self.action_describe()
        elif table_id == "workflows-table":
            self.action_edit()
        elif table_id == "runs-table":
            self.action_run_graph()
        elif table_id == "jobs-table":
            run_id = self._key("runs")
            if run_id:
                self.app.open_logs(run_id, event.key)  # type: ignore[attr-defined]

    # --- peers --------------------------------------------------------------------------
    @work(exclusive=True, group="main-dialog", exit_on_error=False)
    async def action_describe(self) -> None:
        pane = self.active_pane
        key = self._key(pane)
        if key is None:
            return
        if pane == "peers":
            try:
                detail = await self.app.node.describe_peer(key)  # type: ignore[attr-defined]
            except RnnError as exc:
                self.notify(str(exc), severity="error")
                return
            text = Text()
            text.append(f"{detail.peer.peer_id}\n\n", style="bold")
            for k, v in detail.metadata:
                text.append(f"{k:>12}  ", style="bold")
                text.append(f"{v}\n")
            text.append(f"\nReceipts ({len(detail.receipts)})\n", style="underline")
            for r in detail.receipts:
                mark = "✓ verified" if r.verified else "· unverified"
                text.append(f"  {r.run_id} {r.job:<10} {r.status.value:<10} {r.role} {mark}\n")
            if not detail.receipts:
                text.append("  no work done with this peer yet\n", style="dim")
            await self.app.push_screen_wait(DescribeScreen(f"Peer {detail.peer.short_id}", text))
        elif pane == "services":
            info = self.app.services_cache.get(key)  # type: ignore[attr-defined]
            if info is None:
                return
            svc = info.service
            text = Text()
            text.append(f"{svc.name}  ", style="bold")
            text.append(f"{svc.kind.value} · {'local' if info.local else 'remote'} · id {svc.id}\n")
            text.append(f"owner {svc.owner}\n{svc.description}\n\n")
            if svc.image_ref:
                text.append(f"image {svc.image_ref} ({svc.image_digest})\n\n")
            text.append("Interfaces\n", style="underline")
            for iface in svc.interfaces:
                direction = f" ({iface.direction.value})" if iface.direction else ""
                text.append(f"  • {iface.label if iface.path is None else 'MOUNT:' + str(iface.path)}"
                            f"{direction} {iface.description}\n")
            req = svc.requirements
            text.append(f"\nneeds {req.cpu_millis / 1000:g} CPU, {req.memory_bytes // 2**20} MiB, "
                        f"timeout {req.timeout_s}s, network {'on' if req.network_needed else 'off'}\n")
            await self.app.push_screen_wait(DescribeScreen(f"Service {svc.name}", text))

    @work(exclusive=True, group="main-dialog", exit_on_error=False)
    async def action_connect(self) -> None:
        target = await self.app.push_screen_wait(PromptScreen(
            "Connect to a peer", placeholder="host:port or peer id"))
        if target:
            await self.app.connect_to(target)  # type: ignore[attr-defined]

    @work(group="main-ping", exit_on_error=False)
    async def action_ping(self) -> None:
        key = self._key("peers")
        if key is None:
            return
        try:
            rtt = await self.app.node.ping(key)  # type: ignore[attr-defined]
        except RnnError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"ping {key[:10]}: {rtt:.1f} ms")

    # --- services -----------------------------------------------------------------------
    @work(exclusive=True, group="main-dialog", exit_on_error=False)
    async def action_add_service(self) -> None:
        draft = await self.app.push_screen_wait(ServiceWizardScreen())
        if draft is None:
            return
        try:
            info = await self.app.node.add_service(draft)  # type: ignore[attr-defined]
        except RnnError as exc:
            self.notify(f"not added: {exc}", severity="error")
            return
        self.app.services_cache[info.service_id] = info  # type: ignore[attr-defined]
        self.render_all()
        self.notify(f"added service {info.name}")

    @work(exclusive=True, group="main-dialog", exit_on_error=False)
    async def action_search(self) -> None:
        phrase = await self.app.push_screen_wait(PromptScreen(
            "Search remote services", placeholder="words, e.g. ndvi satellite"))
        if phrase is None:
            return
        self.run_search(phrase)

    @work(exclusive=True, group="main-search", exit_on_error=False)
    async def run_search(self, phrase: str) -> None:
        found = 0
        started = time.monotonic()
        self.notify(f"searching for {phrase!r}…")
        try:
            async for info in self.app.node.search_services(phrase):  # type: ignore[attr-defined]
                found += 1
                self.app.services_cache[info.service_id] = info  # type: ignore[attr-defined]
                self.render_services(list(self.app.services_cache.values()))  # type: ignore[attr-defined]
        except RnnError as exc:
            self.notify(f"search: {exc}", severity="error")
            return
        table = self.query_one("#services-table", FilterTable)
        table.filter_term = phrase.split()[0] if phrase.split() else ""
        table.set_rows(table.rows)
        self.notify(f"search {phrase!r}: {found} service(s) in "
                    f"{time.monotonic() - started:.1f}s")

    # --- workflows ----------------------------------------------------------------------
    def action_edit(self) -> None:
        key = self._key("workflows")
        if key is not None:
            self.app.open_editor(key)  # type: ignore[attr-defined]

    @work(exclusive=True, group="main-dialog", exit_on_error=False)
    async def action_new_workflow(self) -> None:
        name = await self.app.push_screen_wait(PromptScreen("New workflow name",
                                                            placeholder="e.g. word-count"))
        if name:
            self.app.open_new_workflow(name.strip())  # type: ignore[attr-defined]

    @work(exclusive=True, group="main-dialog", exit_on_error=False)
    async def action_import_workflow(self) -> None:
        path = await self.app.push_screen_wait(PromptScreen("Import workflow YAML from path"))
        if path:
            self.app.open_import(path.strip())  # type: ignore[attr-defined]

    def action_run(self) -> None:
        key = self._key("workflows")
        if key is not None:
            self.app.run_workflow(key)  # type: ignore[attr-defined]

    # --- runs ---------------------------------------------------------------------------
    def action_logs(self) -> None:
        run_id = self._key("runs")
        if run_id is None:
            return
        jobs = self.query_one("#jobs-table", FilterTable)
        job = jobs.cursor_key if jobs.table.has_focus else None
        self.app.open_logs(run_id, job)  # type: ignore[attr-defined]

    def action_run_graph(self) -> None:
        run_id = self._key("runs")
        if run_id is not None:
            self.app.open_run_graph(run_id)  # type: ignore[attr-defined]

    # --- destructive --------------------------------------------------------------------
    @work(exclusive=True, group="main-dialog", exit_on_error=False)
    async def action_delete(self) -> None:
        pane = self.active_pane
        key = self._key(pane)
        if key is None:
            return
        node = self.app.node  # type: ignore[attr-defined]
        try:
            if pane == "services":
                info = self.app.services_cache.get(key)  # type: ignore[attr-defined]
                if info is None or not info.local:
                    self.notify("only local services can be removed", severity="warning")
                    return
                if await self.app.push_screen_wait(ConfirmScreen(
                        f"Remove service {info.name}? Peers will no longer find it.",
                        action="Remove")):
                    await node.remove_service(key)
                    self.app.services_cache.pop(key, None)  # type: ignore[attr-defined]
                    self.notify(f"removed service {info.name}")
            elif pane == "workflows":
                if await self.app.push_screen_wait(ConfirmScreen(f"Delete workflow {key}?")):
                    await node.delete_workflow(key)
                    self.app.workflows_cache.pop(key, None)  # type: ignore[attr-defined]
                    self.notify(f"deleted workflow {key}")
            elif pane == "runs":
                if await self.app.push_screen_wait(ConfirmScreen(
                        f"Cancel run {key}? Running jobs are stopped.", action="Cancel run")):
                    await node.cancel_run(key)
                    self.notify(f"cancelled run {key}")
        except RnnError as exc:
            self.notify(str(exc), severity="error")
        self.render_all()
