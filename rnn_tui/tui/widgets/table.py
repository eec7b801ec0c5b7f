"""A DataTable with a ``/`` filter, keyed rows and a stable cursor (k9s-style lists).

Why a wrapper: every list in the app (peers, services, workflows, runs, jobs) needs the
same three things: filter-as-you-type, re-rendering from a fresh snapshot without losing
the operator's place, and knowing the key of the row under the cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Label

__all__ = ["Row", "FilterTable"]


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    cells: tuple[str | Text, ...]
    search: str = ""  # extra text the filter matches (defaults to the cells)


class FilterTable(Vertical):
    DEFAULT_CSS = """
    FilterTable { height: 1fr; }
    FilterTable > Input { display: none; height: 3; }
    FilterTable.-filtering > Input { display: block; }
    FilterTable > #table-empty { display: none; color: $text-muted; padding: 1 2; }
    FilterTable.-empty > #table-empty { display: block; }
    FilterTable > DataTable { height: 1fr; }
    """

    BINDINGS = [
        Binding("slash", "start_filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    class Selected(Message):
        """Enter on a row."""

        def __init__(self, table: FilterTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> FilterTable:
            return self.table

    class Highlighted(Message):
        def __init__(self, table: FilterTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> FilterTable:
            return self.table

    def __init__(self, columns: Sequence[str], *, empty: str = "nothing here yet",
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns = tuple(columns)
        self.empty_text = empty
        self.rows: list[Row] = []
        self.filter_term = ""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter (Enter keeps it, Esc clears)")
        yield Label(self.empty_text, id="table-empty")
        table: DataTable[str | Text] = DataTable(cursor_type="row", zebra_stripes=True)
        table.add_columns(*self.columns)
        yield table

    @property
    def table(self) -> DataTable[str | Text]:
        return self.query_one(DataTable)

    @property
    def cursor_key(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return key.value

    def set_rows(self, rows: Sequence[Row]) -> None:
        self.rows = list(rows)
        self._render_rows()

    def visible_keys(self) -> list[str]:
        return [r.key for r in self.rows if self._match(r)]

    def _match(self, row: Row) -> bool:
        if not self.filter_term:
            return True
        hay = row.search or " ".join(c.plain if isinstance(c, Text) else c for c in row.cells)
        return self.filter_term.lower() in hay.lower()

    def _render_rows(self) -> None:
        if not self.is_mounted:
            return
        table = self.table
        keep = self.cursor_key
        table.clear()
        for row in self.rows:
            if self._match(row):
                table.add_row(*row.cells, key=row.key)
        self.set_class(table.row_count == 0, "-empty")
        if keep is not None:
            try:
                table.move_cursor(row=table.get_row_index(keep), animate=False)
            except Exception:  # the row left the snapshot or the filter: stay at the top
                pass

    def on_mount(self) -> None:
        self._render_rows()

    def focus_table(self) -> None:
        self.table.focus()

    def action_start_filter(self) -> None:
        self.add_class("-filtering")
        field = self.query_one(Input)
        field.value = self.filter_term
        field.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":
            return self.has_class("-filtering") or bool(self.filter_term)
        return True

    def action_clear_filter(self) -> None:
        self.filter_term = ""
        self.query_one(Input).value = ""
        self.remove_class("-filtering")
        self._render_rows()
        self.table.focus()

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        self.filter_term = event.value
        self._render_rows()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value:
            self.remove_class("-filtering")
        self.table.focus()

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.Selected(self, event.row_key.value))

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.Highlighted(self, event.row_key.value))
