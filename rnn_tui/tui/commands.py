"""Command palette entries (``ctrl+p`` or ``:``), k9s-style: ``:peers``, ``:run NAME``…

Commands that take an argument (``run NAME``, ``connect ADDR``, ``logs RUN``) are matched
on the typed text itself, so ``:connect 127.0.0.1:30609`` works without a second dialog.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

__all__ = ["NodeCommands"]


class NodeCommands(Provider):
    def _fixed(self) -> list[tuple[str, str, Callable[[], Any]]]:
        app: Any = self.app
        return [
            ("peers", "Show the peers pane", partial(app.show_pane, "peers")),
            ("services", "Show the services pane", partial(app.show_pane, "services")),
            ("workflows", "Show the workflows pane", partial(app.show_pane, "workflows")),
            ("runs", "Show the runs pane", partial(app.show_pane, "runs")),
            ("help", "Show the keys of this screen", app.action_help),
            ("theme next", "Switch to the next colour theme", app.action_next_theme),
        ]

    def _with_argument(self, query: str) -> list[tuple[str, str, Callable[[], Any]]]:
        app: Any = self.app
        verb, _, arg = query.strip().lstrip(":").partition(" ")
        arg = arg.strip()
        hits: list[tuple[str, str, Callable[[], Any]]] = []
        verb = verb.lower()
        if verb == "run":
            for name in sorted(app.workflows_cache):
                if not arg or arg.lower() in name.lower():
                    hits.append((f"run {name}", f"Start a run of workflow {name}",
                                 partial(app.run_workflow, name)))
        elif verb == "edit":
            for name in sorted(app.workflows_cache):
                if not arg or arg.lower() in name.lower():
                    hits.append((f"edit {name}", f"Open workflow {name} in the editor",
                                 partial(app.open_editor, name)))
        elif verb == "connect" and arg:
            hits.append((f"connect {arg}", "Connect to this address or peer id",
                         partial(app.run_connect, arg)))
        elif verb == "logs":
            for run_id in sorted(app.runs_cache, reverse=True):
                if not arg or arg in run_id:
                    hits.append((f"logs {run_id}", "Follow every job of this run",
                                 partial(app.open_logs, run_id, None)))
        return hits

    async def discover(self) -> Hits:
        for title, help_text, callback in self._fixed():
            yield DiscoveryHit(title, callback, help=help_text)
        yield DiscoveryHit("connect …", self._connect_prompt,
                           help="type 'connect host:port' or 'connect <peer id>'")
        for name in sorted(getattr(self.app, "workflows_cache", {})):
            yield DiscoveryHit(f"run {name}", partial(self.app.run_workflow, name),  # type: ignore[attr-defined]
                               help=f"Start a run of workflow {name}")

    def _connect_prompt(self) -> None:
        self.app.action_connect_prompt()  # type: ignore[attr-defined]

    async def search(self, query: str) -> Hits:
        query = query.strip().lstrip(":")
        matcher = self.matcher(query)
        for title, help_text, callback in self._fixed():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, text=title, help=help_text)
        for title, help_text, callback in self._with_argument(query):
            yield Hit(1.0, title, callback, text=title, help=help_text)
        if "connect".startswith(query.lower()) and query:
            yield Hit(0.5, "connect …", self._connect_prompt, text="connect",
                      help="type 'connect host:port' or 'connect <peer id>'")
