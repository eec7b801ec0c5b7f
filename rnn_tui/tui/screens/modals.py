"""Small modal screens: confirm, prompt, describe, help, pick a service, failures.

Each returns its answer through ``dismiss`` (``push_screen(..., callback)`` or
``push_screen_wait``), so callers stay linear and no modal knows who asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from rnn_tui.api import ServiceInfo

__all__ = ["ConfirmScreen", "PromptScreen", "DescribeScreen", "HelpScreen", "FailureScreen",
           "TooSmallScreen", "PickServiceScreen"]

_MODAL_CSS = """
{name} {{ align: center middle; background: $background 60%; }}
{name} > Vertical {{ width: 80%; max-width: 100; height: auto; max-height: 90%;
    border: thick $primary; background: $surface; padding: 1 2; }}
{name} .title {{ text-style: bold; margin-bottom: 1; }}
{name} Horizontal {{ height: auto; align-horizontal: right; margin-top: 1; }}
{name} Button {{ margin-left: 2; }}
"""


class ConfirmScreen(ModalScreen[bool]):
    """Yes/no for destructive actions; ``y`` confirms, ``n``/Esc cancels."""

    DEFAULT_CSS = _MODAL_CSS.format(name="ConfirmScreen")
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n", "answer(False)", "No"),
                Binding("escape", "answer(False)", "Cancel")]

    def __init__(self, question: str, *, action: str = "Delete") -> None:
        super().__init__()
        self.question = question
        self.action_label = action

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, classes="title")
            with Horizontal():
                yield Button("Cancel (n)", id="no")
                yield Button(f"{self.action_label} (y)", id="yes", variant="error")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class PromptScreen(ModalScreen[str | None]):
    """One line of input; Enter answers, Esc cancels (None)."""

    DEFAULT_CSS = _MODAL_CSS.format(name="PromptScreen")
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, *, value: str = "", placeholder: str = "",
                 help_text: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.placeholder = placeholder
        self.help_text = help_text

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            yield Input(value=self.value, placeholder=self.placeholder, id="prompt")
            if self.help_text:
                yield Static(self.help_text, classes="help")

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class DescribeScreen(ModalScreen[None]):
    """A scrollable read-only description (k9s ``d``)."""

    DEFAULT_CSS = _MODAL_CSS.format(name="DescribeScreen") + """
    DescribeScreen VerticalScroll { height: auto; max-height: 30; }
    """
    BINDINGS = [Binding("escape,q,d", "close", "Close")]

    def __init__(self, title: str, body: Text | str) -> None:
        super().__init__()
        self.title_text = title
        self.body = body

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            with VerticalScroll():
                yield Static(self.body, id="describe-body")

    def action_close(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """``?``: every key of the screen underneath, generated from its bindings."""

    DEFAULT_CSS = _MODAL_CSS.format(name="HelpScreen") + """
    HelpScreen VerticalScroll { height: auto; max-height: 40; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, sections: Sequence[tuple[str, Iterable[tuple[str, str]]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        text = Text()
        for title, keys in self.sections:
            rows = list(keys)
            if not rows:
                continue
            text.append(f"{title}\n", style="bold underline")
            for key, description in rows:
                text.append(f"  {key:<14}", style="bold cyan")
                text.append(f"{description}\n")
            text.append("\n")
        text.append("Command palette: ctrl+p or ':' — peers, services, workflows, runs, "
                    "run NAME, connect ADDR, theme", style="italic")
        with Vertical():
            yield Label("Keys", classes="title")
            with VerticalScroll():
                yield Static(text, id="help-body")

    def action_close(self) -> None:
        self.dismiss(None)


class FailureScreen(Screen[None]):
    """Shown instead of the app when the node cannot start: the reason, not a traceback."""

    DEFAULT_CSS = """
    FailureScreen { align: center middle; }
    FailureScreen > Vertical { width: 80%; height: auto; border: thick $error; padding: 1 2; }
    FailureScreen .title { text-style: bold; color: $error; margin-bottom: 1; }
    """
    BINDINGS = [Binding("q,escape", "app.quit", "Quit")]

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("The node could not start", classes="title")
            yield Static(self.reason, id="failure-reason")
            yield Static("\nFix the cause (see `rnn config show`) and start again. "
                         "Press q to quit.", classes="help")


class TooSmallScreen(Screen[None]):
    """Replaces the layout when the terminal is smaller than the app can draw."""

    DEFAULT_CSS = """
    TooSmallScreen { align: center middle; }
    TooSmallScreen Static { width: auto; text-align: center; }
    """
    BINDINGS = [Binding("q", "app.quit", "Quit")]

    def __init__(self, need: tuple[int, int]) -> None:
        super().__init__()
        self.need = need

    def compose(self) -> ComposeResult:
        yield Static("", id="too-small")

    def on_mount(self) -> None:
        self.update_size(self.app.size.width, self.app.size.height)

    def update_size(self, width: int, height: int) -> None:
        self.query_one("#too-small", Static).update(
            f"Terminal too small: {width}×{height}.\n"
            f"rnn needs at least {self.need[0]}×{self.need[1]}.\nEnlarge the window or press q.")


class PickServiceScreen(ModalScreen[ServiceInfo | None]):
    """Pick a service (local or remote) to add as a job; type to filter."""

    DEFAULT_CSS = _MODAL_CSS.format(name="PickServiceScreen") + """
    PickServiceScreen OptionList { height: auto; max-height: 20; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, services: Sequence[ServiceInfo]) -> None:
        super().__init__()
        self.services = list(services)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Add a job: pick a service", classes="title")
            yield Input(placeholder="filter services", id="pick-filter")
            yield OptionList(id="pick-list")

    def on_mount(self) -> None:
        self._fill("")

    def _fill(self, term: str) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        for i, info in enumerate(self.services):
            hay = f"{info.name} {info.service.description}".lower()
            if term.lower() in hay:
                where = "local" if info.local else f"@{info.peer_id[:10]}"
                label = Text.assemble((info.name, "bold"), f"  {where}  ",
                                      (info.service.description[:50], "dim"))
                options.add_option(Option(label, id=str(i)))
        if options.option_count:
            options.highlighted = 0

    @on(Input.Changed)
    def _filter(self, event: Input.Changed) -> None:
        self._fill(event.value)

    @on(Input.Submitted)
    def _enter(self, event: Input.Submitted) -> None:
        options = self.query_one(OptionList)
        if options.highlighted is not None:
            option = options.get_option_at_index(options.highlighted)
            self.dismiss(self.services[int(option.id or 0)])

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.services[int(event.option.id or 0)])

    def key_down(self) -> None:
        self.query_one(OptionList).action_cursor_down()

    def key_up(self) -> None:
        self.query_one(OptionList).action_cursor_up()

    def action_cancel(self) -> None:
        self.dismiss(None)
