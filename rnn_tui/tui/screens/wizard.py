"""Add-service wizard: pick a source (image, Git, Dockerfile), inspect, review interfaces.

Why two steps: detection is a heuristic (VOLUME and WORKDIR become mounts), so the operator
sees what was detected, and why, and corrects it (add, remove, edit interfaces in the
``InterfaceEditor``) before the service is offered to the network.  "Add service" refuses
an invalid list and says which row and field are wrong.
"""

from __future__ import annotations

from dataclasses import replace

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from rnn_tui.api import ServiceDraft, ServiceSource, SourceKind, interface_key
from rnn_tui.errors import RnnError
from rnn_tui.tui.widgets.interfaces import InterfaceEditor

__all__ = ["ServiceWizardScreen"]

_HINTS = {
    SourceKind.IMAGE: "image name, e.g. python:3.11-slim (pulled or already local)",
    SourceKind.GIT: "Git URL of a repository with a Dockerfile at its root",
    SourceKind.DOCKERFILE: "path to a directory holding a Dockerfile",
}


class ServiceWizardScreen(ModalScreen[ServiceDraft | None]):
    DEFAULT_CSS = """
    ServiceWizardScreen { align: center middle; background: $background 60%; }
    ServiceWizardScreen > Vertical { width: 90%; max-width: 120; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 1 2; }
    ServiceWizardScreen .title { text-style: bold; margin-bottom: 1; }
    ServiceWizardScreen #review { height: auto; margin-top: 1; }
    ServiceWizardScreen Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    ServiceWizardScreen Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self) -> None:
        super().__init__()
        self.draft: ServiceDraft | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Add a local service", classes="title")
            yield Select([(k.value, k) for k in SourceKind], value=SourceKind.IMAGE,
                         allow_blank=False, id="wizard-kind")
            yield Input(placeholder=_HINTS[SourceKind.IMAGE], id="wizard-ref")
            yield Static("", id="review")
            yield InterfaceEditor(id="iface-editor")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Inspect", id="inspect", variant="primary")
                yield Button("Add service", id="add", variant="success", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#wizard-ref", Input).focus()  # type a reference at once; shift+tab: kind

    @on(Select.Changed, "#wizard-kind")
    def _kind(self, event: Select.Changed) -> None:
        if isinstance(event.value, SourceKind):
            self.query_one("#wizard-ref", Input).placeholder = _HINTS[event.value]

    @on(Input.Submitted, "#wizard-ref")
    def _submitted(self) -> None:
        self.inspect()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "inspect":
            self.inspect()
        elif event.button.id == "add" and self.draft is not None:
            self.add()
        else:
            self.dismiss(None)

    @work(exclusive=True, group="wizard", exit_on_error=False)
    async def inspect(self) -> None:
        kind = self.query_one("#wizard-kind", Select).value
        ref = self.query_one("#wizard-ref", Input).value.strip()
        review = self.query_one("#review", Static)
        if not isinstance(kind, SourceKind) or not ref:
            review.update(Text("give a source reference first", style="bold red"))
            return
        review.update("inspecting…")
        try:
            draft = await self.app.node.inspect_service_source(ServiceSource(kind, ref))  # type: ignore[attr-defined]
        except RnnError as exc:
            review.update(Text(f"cannot use {ref}: {exc}", style="bold red"))
            return
        self.draft = draft
        text = Text()
        text.append(f"{draft.service.name}", style="bold")
        text.append(f"  {draft.service.kind.value}  {draft.service.description}\n\n")
        text.append("Detected: ", style="underline")
        text.append(", ".join(interface_key(i) for i in draft.service.interfaces) + "\n")
        for note in draft.notes:
            text.append(f"  ↳ {note}\n", style="dim")
        review.update(text)
        editor = self.query_one(InterfaceEditor)
        editor.load(draft.service.interfaces)
        self.query_one("#add", Button).disabled = False
        editor.table.focus()

    def add(self) -> None:
        """Dismiss with the draft carrying the reviewed interfaces, or show what is wrong."""
        if self.draft is None:
            return
        editor = self.query_one(InterfaceEditor)
        if editor.editing is not None and not editor.apply_edit():
            return
        try:
            interfaces = editor.interfaces()
        except RnnError:
            editor.table.focus()
            return
        service = self.draft.service
        if interfaces != service.interfaces:
            service = service.with_changes(service.updated, interfaces=interfaces)
        self.dismiss(replace(self.draft, service=service))

    def action_cancel(self) -> None:
        if self.query_one(InterfaceEditor).cancel_edit():
            return
        self.dismiss(None)
