"""Draw a ``Layout`` as rows of box-drawing characters, one row at a time, on demand.

Why lazy rows: a 200-job workflow is a canvas of ~500k cells, but a terminal shows ~40
rows.  ``draw_layout`` only indexes segments and boxes by row (cheap); ``row(y)`` paints a
single row when the widget asks for it and caches it.  Moving the selection redraws
only what is visible.

Why a direction mask: edges cross, fork and merge.  Where lines meet, each cell records
which of its four sides a line leaves by (up, down, left, right) and the character comes
from the mask, so corners, tees and crossings come out right whatever the drawing order.

Every cell also carries a *style key* (``"edge"``, ``"box.sel"``, ``"state.ok"`` …) that
the widget maps to theme colours; this module stays free of textual and Rich.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from rnn_tui.tui.widgets.workflow.layout import Layout, Rect

__all__ = ["Canvas", "draw_layout", "LINE_CHARS"]

UP, DOWN, LEFT, RIGHT = 1, 2, 4, 8

LINE_CHARS = {
    0: " ",
    UP: "│", DOWN: "│", UP | DOWN: "│",
    LEFT: "─", RIGHT: "─", LEFT | RIGHT: "─",
    DOWN | RIGHT: "┌", DOWN | LEFT: "┐", UP | RIGHT: "└", UP | LEFT: "┘",
    UP | DOWN | RIGHT: "├", UP | DOWN | LEFT: "┤",
    LEFT | RIGHT | DOWN: "┬", LEFT | RIGHT | UP: "┴",
    UP | DOWN | LEFT | RIGHT: "┼",
}

LIGHT = {"tl": "┌", "tr": "┐", "bl": "└", "br": "┘", "h": "─", "v": "│", "lt": "├", "rt": "┤"}
HEAVY = {"tl": "┏", "tr": "┓", "bl": "┗", "br": "┛", "h": "━", "v": "┃", "lt": "┣", "rt": "┫"}

PORT_CONNECTED = "●"
PORT_FREE = "○"
ARROW = "▶"

Row = tuple[list[str], list[str]]


@dataclass(slots=True)
class _BoxStyle:
    key: str  # border key (with .sel when selected)
    base: str  # key without .sel, for the badge
    heavy: bool
    badge: str
    selected_port: tuple[str, str] | None
    pending_port: str | None


@dataclass(slots=True)
class Canvas:
    """Row-indexed drawing of a layout; rows are painted on first use and cached."""

    width: int
    height: int
    layout: Layout = field(default_factory=Layout)
    hsegs: dict[int, list[tuple[int, int, str]]] = field(default_factory=dict)
    vsegs: dict[int, list[tuple[int, int, int, str]]] = field(default_factory=dict)
    starts: dict[int, list[int]] = field(default_factory=dict)
    ends: dict[int, list[int]] = field(default_factory=dict)
    box_rows: dict[int, list[str]] = field(default_factory=dict)
    labels: dict[int, list[tuple[int, str, str]]] = field(default_factory=dict)
    box_styles: dict[str, _BoxStyle] = field(default_factory=dict)
    connected: set[tuple[str, str, str]] = field(default_factory=set)
    _rows: dict[int, Row] = field(default_factory=dict)
    _boxes: dict[str, list[Row]] = field(default_factory=dict)

    # --- public -------------------------------------------------------------------------
    def row(self, y: int) -> Row:
        """Characters and style keys of row ``y``."""
        cached = self._rows.get(y)
        if cached is None:
            cached = self._paint_row(y)
            self._rows[y] = cached
        return cached

    def row_runs(self, y: int, x0: int = 0, x1: int | None = None) -> list[tuple[str, str]]:
        """Columns ``x0``..``x1`` of row ``y`` as runs of (text, style key).

        The widget asks only for the visible columns: a wide graph costs what fits on screen.
        """
        chars, keys = self.row(y)
        end = self.width if x1 is None else min(x1, self.width)
        runs: list[tuple[str, str]] = []
        start = max(0, x0)
        for x in range(start + 1, end + 1):
            if x == end or keys[x] != keys[start]:
                runs.append(("".join(chars[start:x]), keys[start]))
                start = x
        return runs

    def text(self) -> str:
        """The whole canvas as plain text (tests and the tmux smoke test read this)."""
        return "\n".join("".join(self.row(y)[0]).rstrip() for y in range(self.height))

    # --- painting -----------------------------------------------------------------------
    def _paint_row(self, y: int) -> Row:
        w = self.width
        chars = [" "] * w
        keys = ["bg"] * w
        hsegs = self.hsegs.get(y, [])
        for lo, hi, key in hsegs:
            chars[lo:hi + 1] = ["─"] * (hi - lo + 1)
            keys[lo:hi + 1] = [key] * (hi - lo + 1)
        bits: dict[int, int] = defaultdict(int)
        for lo, hi, _key in hsegs:
            bits[lo] |= RIGHT
            bits[hi] |= LEFT
        for x in self.starts.get(y, []):
            bits[x] |= LEFT
        for x in self.ends.get(y, []):
            bits[x] |= RIGHT
        for x, lo, hi, key in self.vsegs.get(y, []):
            bits[x] |= (UP if y > lo else 0) | (DOWN if y < hi else 0)
            if keys[x] != "edge.sel":
                keys[x] = key
        for x in bits:
            for lo, hi, _key in hsegs:
                if lo < x < hi:
                    bits[x] |= LEFT | RIGHT
                    break
            chars[x] = LINE_CHARS[bits[x]]
        for x in self.ends.get(y, []):
            chars[x] = ARROW
        for x, text, key in self.labels.get(y, []):
            if all(c == " " for c in chars[x:x + len(text)]):
                chars[x:x + len(text)] = list(text)
                keys[x:x + len(text)] = [key] * len(text)
        for node_id in self.box_rows.get(y, []):
            rect = self.layout.boxes[node_id]
            bchars, bkeys = self._box(node_id)[y - rect.y]
            chars[rect.x:rect.right + 1] = bchars
            keys[rect.x:rect.right + 1] = bkeys
        return chars, keys

    def _box(self, node_id: str) -> list[Row]:
        cached = self._boxes.get(node_id)
        if cached is None:
            cached = self._paint_box(node_id)
            self._boxes[node_id] = cached
        return cached

    def _paint_box(self, node_id: str) -> list[Row]:
        rect: Rect = self.layout.boxes[node_id]
        spec = self.layout.specs[node_id]
        st = self.box_styles[node_id]
        g = HEAVY if st.heavy else LIGHT
        w, h = rect.width, rect.height
        rows: list[Row] = []
        for r in range(h):
            if r in (0, h - 1):
                left, right = (g["tl"], g["tr"]) if r == 0 else (g["bl"], g["br"])
                rows.append(([left] + [g["h"]] * (w - 2) + [right], [st.key] * w))
            else:
                rows.append(([g["v"]] + [" "] * (w - 2) + [g["v"]],
                             [st.key] + ["inside"] * (w - 2) + [st.key]))

        def put(r: int, x: int, text: str, key: str) -> None:
            chars, keys = rows[r]
            for i, ch in enumerate(text):
                if 0 <= x + i < w:
                    chars[x + i] = ch
                    keys[x + i] = key

        title_key = "title.sel" if st.heavy else "title"
        put(0, 2, f" {spec.title} "[: w - 4], title_key)
        if self.layout.compact:
            if st.badge:
                put(h - 1, 1, st.badge[: w - 2], st.base)
            return rows
        put(1, 2, spec.subtitle[: w - 4], "subtitle")
        if st.badge:
            put(h - 1, 2, f" {st.badge} "[: w - 4], st.base)
        rows[2] = ([g["lt"]] + [g["h"]] * (w - 2) + [g["rt"]], [st.key] * w)
        for side, ports in (("in", spec.inputs), ("out", spec.outputs)):
            for port in ports:
                px, py = self.layout.ports[(node_id, side, port)]
                r, x = py - rect.y, px - rect.x
                linked = (node_id, side, port) in self.connected or (
                    side == "out" and port in spec.to_self)
                pkey = "port"
                if st.selected_port == (side, port):
                    pkey = "port.sel"
                if side == "out" and st.pending_port == port:
                    pkey = "port.pending"
                put(r, x, PORT_CONNECTED if linked else PORT_FREE, pkey)
                if side == "in":
                    put(r, x + 1, port, pkey)
                else:
                    put(r, x - len(port), port, pkey)
        return rows


def draw_layout(layout: Layout, *, selected: str | None = None,
                selected_port: tuple[str, str] | None = None,
                box_keys: dict[str, str] | None = None,
                box_badges: dict[str, str] | None = None,
                pending_src: tuple[str, str] | None = None) -> Canvas:
    """Index boxes, ports and edges by row; rows are painted when asked for.

    ``selected_port`` is ``(side, port)`` of the selected node; ``box_keys`` gives each box a
    style key (job state or validation error); ``box_badges`` a short text shown on the
    box's bottom border (the job state during a run); ``pending_src`` marks the output
    port a connection is being made from.
    """
    canvas = Canvas(max(layout.width, 1), max(layout.height, 1), layout)
    box_keys = box_keys or {}
    box_badges = box_badges or {}
    hsegs: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
    vsegs: dict[int, list[tuple[int, int, int, str]]] = defaultdict(list)
    starts: dict[int, list[int]] = defaultdict(list)
    ends: dict[int, list[int]] = defaultdict(list)
    # Edges of the selection last, so their key wins where lines overlap.
    ordered = sorted(layout.edges, key=lambda p: selected in (p.edge.src, p.edge.dst))
    for placed in ordered:
        e = placed.edge
        canvas.connected.add((e.src, "out", e.src_port))
        canvas.connected.add((e.dst, "in", e.dst_port))
        key = "edge.sel" if selected in (e.src, e.dst) else "edge"
        pts = placed.points
        starts[pts[0][1]].append(pts[0][0])
        ends[pts[-1][1]].append(pts[-1][0])
        for (ax, ay), (bx, by) in zip(pts, pts[1:], strict=False):
            if ay == by:
                hsegs[ay].append((min(ax, bx), max(ax, bx), key))
            else:
                lo, hi = min(ay, by), max(ay, by)
                for y in range(lo, hi + 1):
                    vsegs[y].append((ax, lo, hi, key))
    canvas.hsegs, canvas.vsegs = dict(hsegs), dict(vsegs)
    canvas.starts, canvas.ends = dict(starts), dict(ends)
    box_rows: dict[int, list[str]] = defaultdict(list)
    for node_id, rect in layout.boxes.items():
        for y in range(rect.y, rect.bottom + 1):
            box_rows[y].append(node_id)
        is_sel = node_id == selected
        base = box_keys.get(node_id, "box")
        canvas.box_styles[node_id] = _BoxStyle(
            key=f"{base}.sel" if is_sel else base, base=base, heavy=is_sel,
            badge=box_badges.get(node_id, ""),
            selected_port=selected_port if is_sel else None,
            pending_port=pending_src[1] if pending_src and pending_src[0] == node_id else None)
    canvas.box_rows = dict(box_rows)
    labels: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
    for node_id, spec in layout.specs.items():
        if layout.compact or node_id not in layout.boxes:
            continue
        for port in spec.to_self:
            px, py = layout.ports[(node_id, "out", port)]
            labels[py].append((px + 1, "▷self", "edge"))
    canvas.labels = dict(labels)
    return canvas
