"""Layered (Sugiyama-style) layout of a workflow DAG on a character grid.

Why our own: no terminal toolkit has a node-graph layout, and grandalf works in floating
point for pixel canvases.  We need integer cells, boxes with ports on their sides and
orthogonal edges that never run through a box.  The recipe:

1. layers from ``networkx.topological_generations`` (longest path from a source), drawn
   left to right so data flows the way the eye reads;
2. edges spanning several layers get one *dummy* cell per intermediate layer, so they pass
   between boxes instead of through them;
3. a few barycentre sweeps (down and up) order each layer to reduce crossings;
4. boxes are stacked per layer; every edge gets its own vertical channel column in each
   gap it crosses, so vertical segments never overlap.

Layout hints: a job may carry a ``position`` (the top-left cell of its box, saved in the
workflow's YAML).  When any job has one, hinted boxes go exactly there, the others keep
their automatic place below the hinted ones, and edges are routed point to point (a
channel right of the source, or around the boxes when the target is to the left).  The
operator chose the places, so we do not second-guess them; boxes may then overlap edges.
Compact mode ("fit") ignores hints: it is for seeing the whole graph at once.

Pure: no textual, no IO.  ``layout_graph`` returns geometry; ``canvas.py`` draws it.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import networkx as nx

__all__ = ["BoxSpec", "EdgeSpec", "Rect", "PlacedEdge", "Layout", "layout_graph", "box_size",
           "hint_for", "HINT_ORIGIN"]

BOX_GAP_Y = 1  # blank rows between stacked boxes
GAP_MIN_X = 6  # minimum columns between layers
MARGIN = 1
HINT_ORIGIN = (MARGIN, MARGIN)
"""Canvas cell of hint (0, 0): where the automatic layout starts too, so pinning moves nothing.
An edge coming around into a box at x = 0 then arrives from below, in column 0."""


@dataclass(frozen=True, slots=True)
class BoxSpec:
    """A job box: title on top, subtitle under it, input ports left, output ports right."""

    node_id: str
    title: str
    subtitle: str = ""
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    to_self: tuple[str, ...] = ()  # outputs delivered to the requester (drawn as "→ self")


@dataclass(frozen=True, slots=True)
class EdgeSpec:
    src: str
    src_port: str
    dst: str
    dst_port: str


@dataclass(frozen=True, slots=True)
class Rect:
    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width - 1

    @property
    def bottom(self) -> int:
        return self.y + self.height - 1

    def contains(self, x: int, y: int) -> bool:
        return self.x <= x <= self.right and self.y <= y <= self.bottom


@dataclass(frozen=True, slots=True)
class PlacedEdge:
    edge: EdgeSpec
    points: tuple[tuple[int, int], ...]  # polyline of orthogonal segments, src → dst


@dataclass(slots=True)
class Layout:
    boxes: dict[str, Rect] = field(default_factory=dict)
    specs: dict[str, BoxSpec] = field(default_factory=dict)
    # (node_id, "in"|"out", port) → the cell on the box border where the port sits
    ports: dict[tuple[str, str, str], tuple[int, int]] = field(default_factory=dict)
    edges: list[PlacedEdge] = field(default_factory=list)
    layers: list[list[str]] = field(default_factory=list)
    width: int = 0
    height: int = 0
    compact: bool = False

    def node_at(self, x: int, y: int) -> str | None:
        for node_id, rect in self.boxes.items():
            if rect.contains(x, y):
                return node_id
        return None

    def port_at(self, x: int, y: int) -> tuple[str, str, str] | None:
        """The port whose label row was hit (anywhere on that half of the box row)."""
        node_id = self.node_at(x, y)
        if node_id is None or self.compact:
            return None
        rect = self.boxes[node_id]
        mid = rect.x + rect.width // 2
        side = "in" if x < mid else "out"
        for (nid, s, port), (_px, py) in self.ports.items():
            if nid == node_id and s == side and py == y:
                return (nid, s, port)
        return None


def box_size(spec: BoxSpec, compact: bool) -> tuple[int, int]:
    """Width and height of a box in cells."""
    if compact:
        return max(len(spec.title) + 6, 8), 3
    rows = max(len(spec.inputs), len(spec.outputs), 1)
    in_w = max((len(p) for p in spec.inputs), default=0)
    out_w = max((len(p) for p in spec.outputs), default=0)
    width = max(len(spec.title) + 6, len(spec.subtitle) + 4, in_w + out_w + 7, 14)
    # top border(title) + subtitle + separator + port rows + bottom border
    return width, rows + 4


def _port_rows(spec: BoxSpec, rect: Rect, compact: bool) -> dict[tuple[str, str], int]:
    rows: dict[tuple[str, str], int] = {}
    if compact:
        mid = rect.y + 1
        for p in spec.inputs:
            rows[("in", p)] = mid
        for p in spec.outputs:
            rows[("out", p)] = mid
        return rows
    first = rect.y + 3
    for i, p in enumerate(spec.inputs):
        rows[("in", p)] = first + i
    for i, p in enumerate(spec.outputs):
        rows[("out", p)] = first + i
    return rows


def _order_layers(layers: list[list[str]], preds: dict[str, list[str]],
                  succs: dict[str, list[str]], sweeps: int = 4) -> list[list[str]]:
    """Barycentre heuristic: sort each layer by the mean index of its neighbours."""
    layers = [list(layer) for layer in layers]

    def positions(layer: list[str]) -> dict[str, int]:
        return {n: i for i, n in enumerate(layer)}

    for sweep in range(sweeps):
        down = sweep % 2 == 0
        rng = range(1, len(layers)) if down else range(len(layers) - 2, -1, -1)
        for li in rng:
            ref = positions(layers[li - 1] if down else layers[li + 1])
            current = positions(layers[li])

            def key(n: str, ref: dict[str, int] = ref, current: dict[str, int] = current,
                    down: bool = down) -> tuple[float, int]:
                neigh = [ref[m] for m in (preds[n] if down else succs[n]) if m in ref]
                bary = sum(neigh) / len(neigh) if neigh else float(current[n])
                return (bary, current[n])

            layers[li].sort(key=key)
    return layers


def layout_graph(boxes: Sequence[BoxSpec], edges: Sequence[EdgeSpec],
                 compact: bool = False,
                 hints: Mapping[str, tuple[int, int]] | None = None) -> Layout:
    """Place ``boxes`` in layers and route ``edges`` orthogonally.

    Edges naming unknown nodes or ports are ignored (validation reports them); a cycle is
    broken by ignoring the edges that close it, so a half-edited graph still draws.
    ``hints`` maps a node id to the (x, y) cell of its box's top-left corner (see module
    docstring); hints for unknown nodes are ignored.
    """
    auto = _layered(boxes, edges, compact)
    placed = {n: xy for n, xy in (hints or {}).items() if n in auto.boxes}
    if compact or not placed:
        return auto
    return _with_hints(auto, placed)


def hint_for(rect: Rect) -> tuple[int, int]:
    """The hint that puts a box where ``rect`` is (the inverse of the hinted placement)."""
    return max(rect.x - HINT_ORIGIN[0], 0), max(rect.y - HINT_ORIGIN[1], 0)


def _with_hints(auto: Layout, hints: Mapping[str, tuple[int, int]]) -> Layout:
    """``auto`` with hinted boxes moved to their hints and every edge routed again."""
    result = Layout(specs=auto.specs, layers=auto.layers)
    bottom = max(hints[n][1] + HINT_ORIGIN[1] + auto.boxes[n].height for n in hints)
    shift = bottom + BOX_GAP_Y - MARGIN  # unhinted boxes go below the hinted ones
    for n, rect in auto.boxes.items():
        if n in hints:
            x, y = hints[n]
            result.boxes[n] = Rect(x + HINT_ORIGIN[0], y + HINT_ORIGIN[1], rect.width,
                                   rect.height)
        else:
            result.boxes[n] = Rect(rect.x, rect.y + shift, rect.width, rect.height)
        for (side, port), row in _port_rows(auto.specs[n], result.boxes[n], False).items():
            px = result.boxes[n].x if side == "in" else result.boxes[n].right
            result.ports[(n, side, port)] = (px, row)
    fanout: dict[str, int] = defaultdict(int)
    for placed in sorted(auto.edges, key=lambda p: result.ports[
            (p.edge.dst, "in", p.edge.dst_port)][1]):
        e = placed.edge
        sx, sy = result.ports[(e.src, "out", e.src_port)]
        tx, ty = result.ports[(e.dst, "in", e.dst_port)]
        k = fanout[e.src]
        fanout[e.src] += 1
        if tx - sx >= 2:  # target to the right: one channel column between them
            cx = max(sx + 1, min(sx + 2 + 2 * k, tx - 2))
            pts = [(sx + 1, sy), (cx, sy), (cx, ty), (tx - 1, ty)]
        else:  # target to the left (or overlapping): around, below both boxes
            below = max(result.boxes[e.src].bottom, result.boxes[e.dst].bottom) + 1 + k
            c1 = sx + 2 + 2 * k
            c2 = max(tx - 2, 0)
            pts = [(sx + 1, sy), (c1, sy), (c1, below), (c2, below), (c2, ty), (tx - 1, ty)]
        result.edges.append(PlacedEdge(e, tuple(_dedupe(pts))))
    xs = [r.right for r in result.boxes.values()]
    xs.extend(result.boxes[n].right + 6 for n, spec in auto.specs.items() if spec.to_self)
    ys = [r.bottom for r in result.boxes.values()]
    for placed in result.edges:
        xs.extend(x for x, _ in placed.points)
        ys.extend(y for _, y in placed.points)
    result.width = max(xs) + 1 + MARGIN
    result.height = max(ys) + 1 + MARGIN
    return result


def _layered(boxes: Sequence[BoxSpec], edges: Sequence[EdgeSpec], compact: bool) -> Layout:
    """The automatic layered layout (see module docstring)."""
    specs = {b.node_id: b for b in boxes}
    graph: nx.DiGraph[str] = nx.DiGraph()
    graph.add_nodes_from(specs)
    candidates = [e for e in edges
                  if e.src in specs and e.dst in specs and e.src != e.dst
                  and e.src_port in specs[e.src].outputs and e.dst_port in specs[e.dst].inputs]
    graph.add_edges_from((e.src, e.dst) for e in candidates)
    usable: list[EdgeSpec] = candidates
    if not nx.is_directed_acyclic_graph(graph):
        # Rare (a half-edited graph): keep edges in order, skipping each that closes a cycle.
        graph.remove_edges_from(list(graph.edges))
        usable = []
        for e in candidates:
            if not graph.has_edge(e.src, e.dst):
                if nx.has_path(graph, e.dst, e.src):
                    continue
                graph.add_edge(e.src, e.dst)
            usable.append(e)

    order_hint = {n: i for i, n in enumerate(specs)}
    generations = [sorted(g, key=order_hint.__getitem__) for g in nx.topological_generations(graph)]
    layer_of = {n: i for i, g in enumerate(generations) for n in g}

    # Dummy chains for long edges: one dummy per (edge, intermediate layer).
    layers: list[list[str]] = [list(g) for g in generations]
    preds: dict[str, list[str]] = defaultdict(list)
    succs: dict[str, list[str]] = defaultdict(list)
    chains: dict[int, list[str]] = {}
    for idx, e in enumerate(usable):
        chain = [e.src]
        for li in range(layer_of[e.src] + 1, layer_of[e.dst]):
            dummy = f"\x00{idx}:{li}"
            layers[li].append(dummy)
            chain.append(dummy)
        chain.append(e.dst)
        chains[idx] = chain
        for a, b in zip(chain, chain[1:], strict=False):
            succs[a].append(b)
            preds[b].append(a)
    layers = _order_layers(layers, preds, succs)

    sizes = {n: box_size(specs[n], compact) for n in specs}
    layer_widths = [max((sizes[n][0] for n in layer if n in specs), default=1)
                    for layer in layers]

    # Each gap i (between layer i and i+1) gets one channel column per edge crossing it.
    gap_edges: dict[int, list[int]] = defaultdict(list)
    for idx, chain in chains.items():
        for a in chain[:-1]:
            gap_edges[layer_of[a] if a in layer_of else int(a.split(":")[1])].append(idx)

    x = MARGIN
    layer_x: list[int] = []
    gap_x: list[int] = []
    for li, w in enumerate(layer_widths):
        layer_x.append(x)
        x += w
        gap_x.append(x)
        x += max(GAP_MIN_X, len(gap_edges.get(li, [])) * 2 + 4)

    result = Layout(compact=compact, specs=specs)
    dummy_y: dict[str, int] = {}
    height = 0
    for li, layer in enumerate(layers):
        y = MARGIN
        for n in layer:
            if n in specs:
                w, h = sizes[n]
                rect = Rect(layer_x[li], y, w, h)
                result.boxes[n] = rect
                for (side, port), row in _port_rows(specs[n], rect, compact).items():
                    px = rect.x if side == "in" else rect.right
                    result.ports[(n, side, port)] = (px, row)
                y += h + BOX_GAP_Y
            else:
                dummy_y[n] = y
                y += 2
        height = max(height, y)
    result.layers = [[n for n in layer if n in specs] for layer in layers]

    # Channel column for (edge, gap): spread the edges of a gap over its width, ordered by
    # their target row so parallel edges do not cross needlessly.
    channel: dict[tuple[int, int], int] = {}
    first_layer = {idx: layer_of[chain[0]] for idx, chain in chains.items()}
    for gi, idxs in gap_edges.items():

        def chain_pos(idx: int, gi: int = gi) -> int:
            return gi - first_layer[idx]  # a chain holds one node per layer

        def row_of(idx: int, pos: int) -> int:
            node = chains[idx][pos]
            if node not in specs:
                return dummy_y[node]
            e = usable[idx]
            if pos == 0:
                return result.ports[(node, "out", e.src_port)][1]
            return result.ports[(node, "in", e.dst_port)][1]

        def target_row(idx: int) -> int:
            return row_of(idx, chain_pos(idx) + 1)

        def source_row(idx: int) -> int:
            return row_of(idx, chain_pos(idx))

        ordered = _order_channels(idxs, target_row, source_row)
        for k, idx in enumerate(ordered):
            channel[(idx, gi)] = gap_x[gi] + 2 + 2 * k

    for idx, e in enumerate(usable):
        chain = chains[idx]
        sx, sy = result.ports[(e.src, "out", e.src_port)]
        pts: list[tuple[int, int]] = [(sx + 1, sy)]
        cur_y = sy
        li = layer_of[e.src]
        for nxt in chain[1:]:
            cx = channel[(idx, li)]
            pts.append((cx, cur_y))
            if nxt in specs:
                tx, ty = result.ports[(nxt, "in", e.dst_port)]
                pts.append((cx, ty))
                pts.append((tx - 1, ty))
            else:
                dy = dummy_y[nxt]
                pts.append((cx, dy))
                li += 1
                end_x = layer_x[li] + layer_widths[li] - 1
                pts.append((end_x, dy))
                cur_y = dy
        result.edges.append(PlacedEdge(e, tuple(_dedupe(pts))))

    result.width = x + MARGIN
    result.height = height + MARGIN
    return result


def _order_channels(idxs: list[int], target_row: Callable[[int], int],
                    source_row: Callable[[int], int]) -> list[int]:
    """Left-to-right order of the channel columns of one gap.

    Sorted by target row so parallel edges do not cross, with one hard rule: when edge A
    *leaves* on the row where edge B *arrives*, A's column must be left of B's, or their
    horizontal segments would overlap and read as one line.  Cycles in those rules (rare)
    fall back to the plain sort.
    """
    targets = {i: target_row(i) for i in idxs}
    sources = {i: source_row(i) for i in idxs}
    base = sorted(idxs, key=lambda i: (targets[i], sources[i], i))
    rank = {i: k for k, i in enumerate(base)}
    by_target: dict[int, list[int]] = defaultdict(list)
    for i in base:
        by_target[targets[i]].append(i)
    after: dict[int, list[int]] = defaultdict(list)  # a -> edges that must be right of a
    blockers = dict.fromkeys(base, 0)
    for a in base:
        for b in by_target.get(sources[a], []):
            if a != b and sources[b] != targets[a]:
                after[a].append(b)
                blockers[b] += 1
    # Kahn's algorithm, always taking the lowest-ranked free edge (stable w.r.t. the sort).
    ready = [rank[i] for i in base if blockers[i] == 0]
    heapq.heapify(ready)
    ordered: list[int] = []
    while ready:
        a = base[heapq.heappop(ready)]
        ordered.append(a)
        for b in after[a]:
            blockers[b] -= 1
            if blockers[b] == 0:
                heapq.heappush(ready, rank[b])
    return ordered if len(ordered) == len(base) else base


def _dedupe(points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for p in points:
        if not out or out[-1] != p:
            out.append(p)
    return out
