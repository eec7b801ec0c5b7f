"""Interface editor for the add-service wizard's review step, keyboard first.

Why: detection is a heuristic (every VOLUME and the WorkingDir become BOTH mounts; a label
may be missing), so the operator fixes the list before the service is offered.  Keys on the
table: ``a`` adds an interface, ``x``/Delete removes the selected one, Enter edits it.  In
the form below the table, Tab moves between type, path, direction and description; Enter in
a text field applies the row, Esc drops the edit.  Every rule (absolute MOUNT path, no two
interfaces with one port key, a known type and direction) comes from
``rnn_tui.services.interface_edits``, the same module the CLI's ``--interface`` uses, and
each problem is shown with the row and field it belongs to.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Label, Select, Static

from rnn_tui.services.interface_edits import (
    InterfaceProblem,
    InterfaceRow,
    check_rows,
    row_of,
    rows_to_interfaces,
)
from rnn_tui.services.model import Interface, InterfaceType, MountDirection

__all__ = ["InterfaceEditor", "InterfaceTable"]

_MOUNT = InterfaceType.MOUNT.value


class InterfaceTable(DataTable[str]):
    """The interface rows; the keys only make sense here, so the bindings live here."""

    BINDINGS = [
        Binding("a", "add_row", "Add interface"),
        Binding("x,delete", "remove_row", "Remove interface"),
    ]

    def action_add_row(self) -> None:
        self.editor.begin_edit(None)

    def action_remove_row(self) -> None:
        self.editor.remove_row(self.cursor_row)

    @property
    def editor(self) -> InterfaceEditor:
        parent = self.parent
        assert isinstance(parent, InterfaceEditor)
        return parent


class InterfaceEditor(Vertical):
    DEFAULT_CSS = """
    InterfaceEditor { height: auto; display: none; }
    InterfaceEditor.-shown { display: block; }
    InterfaceEditor .hint { color: $text-muted; }
    InterfaceEditor InterfaceTable { height: auto; max-height: 10; }
    InterfaceEditor #if-form { height: auto; display: none; margin-top: 1; }
    InterfaceEditor #if-form.-editing { display: block; }
    InterfaceEditor #if-fields { height: auto; }
    InterfaceEditor #if-type { width: 16; }
    InterfaceEditor #if-dir { width: 16; }
    InterfaceEditor #if-path { width: 1fr; }
    InterfaceEditor #if-desc { width: 1fr; }
    InterfaceEditor #if-problems { height: auto; color: $error; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[InterfaceRow] = []
        self.editing: int | None = None  # row index being edited; len(rows) for a new row

    def compose(self) -> ComposeResult:
        yield Label("Interfaces — a add · x remove · Enter edit", classes="hint")
        table = InterfaceTable(id="ifaces", cursor_type="row", zebra_stripes=True)
        table.add_columns("#", "type", "path", "direction", "description")
        yield table
        with Vertical(id="if-form"):
            yield Label("", id="if-form-title", classes="hint")
            with Horizontal(id="if-fields"):
                yield Select([(t.value, t.value) for t in InterfaceType], allow_blank=False,
                             value=_MOUNT, id="if-type")
                yield Input(placeholder="/absolute/path (MOUNT only)", id="if-path")
                yield Select([(d.value, d.value) for d in MountDirection], allow_blank=False,
                             value=MountDirection.BOTH.value, id="if-dir")
                yield Input(placeholder="description (optional)", id="if-desc")
        yield Static("", id="if-problems")

    # --- model --------------------------------------------------------------------------
    def load(self, interfaces: tuple[Interface, ...]) -> None:
        self.rows = [row_of(i) for i in interfaces]
        self.editing = None
        self.add_class("-shown")
        self.query_one("#if-form").remove_class("-editing")
        self._refresh_table()
        self._show_problems(check_rows(self.rows))

    def interfaces(self) -> tuple[Interface, ...]:
        """The edited list; raises ``ServiceSpecError`` (and shows why) when it is invalid."""
        problems = check_rows(self.rows)
        self._show_problems(problems)
        return rows_to_interfaces(self.rows)

    @property
    def table(self) -> InterfaceTable:
        return self.query_one(InterfaceTable)

    def _refresh_table(self, cursor: int | None = None) -> None:
        table = self.table
        table.clear()
        for i, row in enumerate(self.rows):
            table.add_row(str(i + 1), row.type, row.path if row.type == _MOUNT else "",
                          (row.direction or "BOTH") if row.type == _MOUNT else "",
                          row.description)
        if cursor is not None and self.rows:
            table.move_cursor(row=max(0, min(cursor, len(self.rows) - 1)))

    def _show_problems(self, problems: list[InterfaceProblem]) -> None:
        text = Text()
        for p in problems:
            text.append(f"✗ {p}\n")
        self.query_one("#if-problems", Static).update(text)

    # --- editing ------------------------------------------------------------------------
    def begin_edit(self, index: int | None) -> None:
        """Edit row ``index``, or a new row (appended when applied) when ``None``."""
        if index is None or not 0 <= index < len(self.rows):
            self.editing = len(self.rows)
            row = InterfaceRow(_MOUNT, "", MountDirection.BOTH.value, "")
        else:
            self.editing = index
            row = self.rows[index]
        self.query_one("#if-type", Select).value = row.type if row.type in \
            InterfaceType.__members__ else _MOUNT
        self.query_one("#if-path", Input).value = row.path
        self.query_one("#if-dir", Select).value = row.direction or MountDirection.BOTH.value
        self.query_one("#if-desc", Input).value = row.description
        self._mount_fields(row.type == _MOUNT)
        what = "new interface" if self.editing == len(self.rows) else \
            f"interface {self.editing + 1}"
        self.query_one("#if-form-title", Label).update(
            f"Editing {what}: type · path · direction · description — "
            "Tab next field, Enter applies, Esc drops the edit")
        self.query_one("#if-form").add_class("-editing")
        self.query_one("#if-type", Select).focus()

    def _mount_fields(self, is_mount: bool) -> None:
        self.query_one("#if-path", Input).disabled = not is_mount
        self.query_one("#if-dir", Select).disabled = not is_mount

    @on(Select.Changed, "#if-type")
    def _type_changed(self, event: Select.Changed) -> None:
        self._mount_fields(event.value == _MOUNT)

    def _form_row(self) -> InterfaceRow:
        itype = str(self.query_one("#if-type", Select).value)
        if itype != _MOUNT:
            return InterfaceRow(itype, "", "", self.query_one("#if-desc", Input).value.strip())
        return InterfaceRow(itype, self.query_one("#if-path", Input).value.strip(),
                            str(self.query_one("#if-dir", Select).value),
                            self.query_one("#if-desc", Input).value.strip())

    @on(Input.Submitted, "#if-path, #if-desc")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.apply_edit()

    def apply_edit(self) -> bool:
        """Put the form's row into the list if that row is valid; else show why."""
        if self.editing is None:
            return False
        index = self.editing
        candidate = list(self.rows)
        if index >= len(candidate):
            candidate.append(self._form_row())
        else:
            candidate[index] = self._form_row()
        mine = [p for p in check_rows(candidate) if p.row == index]
        if mine:
            self._show_problems(mine)
            return False
        self.rows = candidate
        self.editing = None
        self.query_one("#if-form").remove_class("-editing")
        self._refresh_table(cursor=index)
        self._show_problems(check_rows(self.rows))
        self.table.focus()
        return True

    def cancel_edit(self) -> bool:
        """Drop the form (Esc); ``False`` when nothing was being edited."""
        if self.editing is None:
            return False
        self.editing = None
        self.query_one("#if-form").remove_class("-editing")
        self._show_problems(check_rows(self.rows))
        self.table.focus()
        return True

    def remove_row(self, index: int) -> None:
        if not 0 <= index < len(self.rows):
            return
        del self.rows[index]
        self._refresh_table(cursor=index)
        self._show_problems(check_rows(self.rows))

    @on(DataTable.RowSelected, "#ifaces")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.begin_edit(event.cursor_row)
