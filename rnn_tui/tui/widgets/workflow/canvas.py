"""Draw a ``Layout`` into a grid of characters with box-drawing lines.

Why a direction mask: edges cross, fork and merge.  Each cell records which of its four
sides a line leaves by (up, down, left, right); the character is chosen from the mask at
the end, so corners, tees and crossings come out right whatever the drawing order.

Every cell also carries a *style key* (``"edge"``, ``"box.sel"``, ``"state.RUNNING"`` …)
that the widget maps to theme colours; this module stays free of textual and Rich.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rnn_tui.tui.widgets.workflow.layout import Layout

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


@dataclass(slots=True)
class Canvas:
    width: int
    height: int
    chars: list[list[str]] = field(default_factory=list)
    keys: list[list[str]] = field(default_factory=list)

    def row_runs(self, y: int) -> list[tuple[str, str]]:
        """Row ``y`` as runs of (text, style key), merged for cheap rendering."""
        runs: list[tuple[str, str]] = []
        chars, keys = self.chars[y], self.keys[y]
        start = 0
        for x in range(1, self.width + 1):
            if x == self.width or keys[x] != keys[start]:
                runs.append(("".join(chars[start:x]), keys[start]))
                start = x
        return runs

    def text(self) -> str:
        """The whole canvas as plain text (tests and the tmux smoke test read this)."""
        return "\n".join("".join(row).rstrip() for row in self.chars)


def draw_layout(layout: Layout, *, selected: str | None = None,
                selected_port: tuple[str, str] | None = None,
                box_keys: dict[str, str] | None = None,
                box_badges: dict[str, str] | None = None,
                pending_src: tuple[str, str] | None = None) -> Canvas:
    """Render boxes, ports and edges.

    ``selected_port`` is ``(side, port)`` of the selected node; ``box_keys`` gives each box a
    style key (job state or validation error); ``box_badges`` a short text shown in the
    box's subtitle row (e.g. the job state during a run); ``pending_src`` marks the output
    port a connection is being dragged from.
    """
    w, h = max(layout.width, 1), max(layout.height, 1)
    canvas = Canvas(w, h, [[" "] * w for _ in range(h)], [["bg"] * w for _ in range(h)])
    mask = [[0] * w for _ in range(h)]
    edge_key: dict[tuple[int, int], str] = {}
    box_keys = box_keys or {}
    box_badges = box_badges or {}
    connected: set[tuple[str, str, str]] = set()

    for placed in layout.edges:
        e = placed.edge
        connected.add((e.src, "out", e.src_port))
        connected.add((e.dst, "in", e.dst_port))
        key = "edge.sel" if selected in (e.src, e.dst) else "edge"
        pts = placed.points
        x0, y0 = pts[0]
        if 0 <= y0 < h and 0 <= x0 < w:
            mask[y0][x0] |= LEFT
        for (ax, ay), (bx, by) in zip(pts, pts[1:], strict=False):
            if ay == by:
                lo, hi = min(ax, bx), max(ax, bx)
                for x in range(lo, hi + 1):
                    if x > lo:
                        mask[ay][x] |= LEFT
                    if x < hi:
                        mask[ay][x] |= RIGHT
                    if key == "edge.sel" or (x, ay) not in edge_key:
                        edge_key[(x, ay)] = key
            else:
                lo, hi = min(ay, by), max(ay, by)
                for y in range(lo, hi + 1):
                    if y > lo:
                        mask[y][ax] |= UP
                    if y < hi:
                        mask[y][ax] |= DOWN
                    if key == "edge.sel" or (ax, y) not in edge_key:
                        edge_key[(ax, y)] = key
        ex, ey = pts[-1]
        mask[ey][ex] |= RIGHT

    chars, keys = canvas.chars, canvas.keys
    for (x, y), key in edge_key.items():
        chars[y][x] = LINE_CHARS[mask[y][x]]
        keys[y][x] = key
    for placed in layout.edges:
        ex, ey = placed.points[-1]
        chars[ey][ex] = ARROW

    for node_id, rect in layout.boxes.items():
        spec = layout.specs[node_id]
        is_sel = node_id == selected
        g = HEAVY if is_sel else LIGHT
        base = box_keys.get(node_id, "box")
        key = f"{base}.sel" if is_sel else base
        x0, y0, x1, y1 = rect.x, rect.y, rect.right, rect.bottom
        for x in range(x0, x1 + 1):
            chars[y0][x] = g["h"]
            chars[y1][x] = g["h"]
            keys[y0][x] = key
            keys[y1][x] = key
        for y in range(y0, y1 + 1):
            chars[y][x0] = g["v"]
            chars[y][x1] = g["v"]
            keys[y][x0] = key
            keys[y][x1] = key
            if y in (y0, y1):
                continue
            for x in range(x0 + 1, x1):
                chars[y][x] = " "
                keys[y][x] = "inside"
        chars[y0][x0], chars[y0][x1] = g["tl"], g["tr"]
        chars[y1][x0], chars[y1][x1] = g["bl"], g["br"]
        _put(canvas, x0 + 2, y0, f" {spec.title} "[: rect.width - 4], "title.sel" if is_sel else "title")
        if layout.compact:
            badge = box_badges.get(node_id)
            if badge:
                _put(canvas, x0 + 1, y1, badge[: rect.width - 2], key)
            continue
        badge = box_badges.get(node_id, "")
        _put(canvas, x0 + 2, y0 + 1, spec.subtitle[: rect.width - 4], "subtitle")
        if badge:
            _put(canvas, x0 + 2, y1, f" {badge} "[: rect.width - 4], base)
        for x in range(x0 + 1, x1):
            chars[y0 + 2][x] = g["h"]
            keys[y0 + 2][x] = key
        chars[y0 + 2][x0], chars[y0 + 2][x1] = g["lt"], g["rt"]
        for side, ports in (("in", spec.inputs), ("out", spec.outputs)):
            for port in ports:
                px, py = layout.ports[(node_id, side, port)]
                linked = (node_id, side, port) in connected or (
                    side == "out" and port in spec.to_self)
                mark = PORT_CONNECTED if linked else PORT_FREE
                pkey = "port"
                if is_sel and selected_port == (side, port):
                    pkey = "port.sel"
                if pending_src == (node_id, port) and side == "out":
                    pkey = "port.pending"
                chars[py][px] = mark
                keys[py][px] = pkey
                if side == "in":
                    _put(canvas, px + 1, py, port, pkey)
                else:
                    _put(canvas, px - len(port), py, port, pkey)
                    if port in spec.to_self and not any(
                            (px + k, py) in edge_key for k in range(1, 6)):
                        _put(canvas, px + 1, py, "▷self", "edge")
    return canvas


def _put(canvas: Canvas, x: int, y: int, text: str, key: str) -> None:
    row, krow = canvas.chars[y], canvas.keys[y]
    for i, ch in enumerate(text):
        if 0 <= x + i < canvas.width:
            row[x + i] = ch
            krow[x + i] = key
