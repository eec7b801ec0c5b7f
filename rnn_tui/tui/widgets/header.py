"""The status header: who we are and how reachable we are, at a glance.

It renders a ``NodeStatus`` (set by the app as an attribute: "attributes down") and never
asks the node for anything itself.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from rnn_tui.api import NodeStatus

__all__ = ["StatusHeader"]


class StatusHeader(Static):
    DEFAULT_CSS = """
    StatusHeader { height: 1; background: $primary-background; color: $text; padding: 0 1; }
    """

    status: reactive[NodeStatus | None] = reactive(None, always_update=True)
    readonly: reactive[bool] = reactive(False)

    def render(self) -> Text:
        s = self.status
        text = Text()
        text.append(" rnn ", style="bold reverse")
        if s is None or not s.started:
            text.append("  node starting…", style="italic")
            return text
        parts: list[tuple[str, str]] = [
            (f" {s.short_id} ", "bold"),
            (f"{s.reachability}/{s.nat_type}", "green" if s.reachability == "public" else "yellow"),
            (f"relay {s.relay}" if s.relay else "no relay", ""),
            (s.listen_addrs[0] if s.listen_addrs else "not listening", ""),
            (f"{s.peer_count} peers", "bold"),
            (f"{s.running_jobs} running", "bold cyan" if s.running_jobs else ""),
        ]
        for i, (part, style) in enumerate(parts):
            if i:
                text.append(" │ ", style="dim")
            text.append(part, style=style)
        if self.readonly:
            text.append(" │ ", style="dim")
            text.append("READ-ONLY", style="bold red")
        return text
