"""A one-line footer of the keys that apply now, drawn as text.

Why not Textual's ``Footer``: it recomposes one widget per key on every focus change, which
profiled at over a second per screen switch on a loaded 2-core machine (and worse over
SSH).  This bar re-renders a single line of text from the same ``active_bindings``.
"""

from __future__ import annotations

from rich.text import Text
from textual.screen import Screen
from textual.widgets import Static

__all__ = ["KeyBar"]


class KeyBar(Static):
    DEFAULT_CSS = """
    KeyBar { dock: bottom; height: 1; background: $panel; color: $text-muted; padding: 0 1; }
    """

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self.call_after_refresh(self.update_keys)

    def on_unmount(self) -> None:
        try:
            self.screen.bindings_updated_signal.unsubscribe(self)
        except Exception:  # the screen is already gone at app exit; nothing to undo
            pass

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if self.is_attached and screen is self.screen:
            self.call_after_refresh(self.update_keys)

    def update_keys(self) -> None:
        if not self.is_attached:
            return  # called after refresh, but our screen was closed meanwhile
        text = Text(no_wrap=True, overflow="ellipsis")
        seen: set[str] = set()
        for _key, active in self.screen.active_bindings.items():
            binding = active.binding
            if not binding.show or not binding.description or binding.action in seen:
                continue
            seen.add(binding.action)
            style = "" if active.enabled else "dim strike"
            text.append(f" {self.app.get_key_display(binding)} ", style=f"bold reverse {style}")
            text.append(f" {binding.description}  ", style=style)
        self.update(text)
