"""Layered layout and drawing of workflow graphs (pure; no terminal)."""

from __future__ import annotations

import random

import pytest

from rnn_tui.tui.widgets.workflow.canvas import draw_layout
from rnn_tui.tui.widgets.workflow.layout import BoxSpec, EdgeSpec, layout_graph

pytestmark = pytest.mark.tui

OUT = ("STDOUT", "STDERR", "LOGS")


def chain(n: int) -> tuple[list[BoxSpec], list[EdgeSpec]]:
    boxes = [BoxSpec(f"j{i}", f"j{i}", "svc@any", ("STDIN", "MOUNT:/in"), OUT) for i in range(n)]
    edges = [EdgeSpec(f"j{i}", "STDOUT", f"j{i + 1}", "STDIN") for i in range(n - 1)]
    return boxes, edges


def random_dag(n: int, seed: int) -> tuple[list[BoxSpec], list[EdgeSpec]]:
    rng = random.Random(seed)
    boxes = [BoxSpec(f"j{i}", f"j{i}", "svc@any", ("STDIN", "MOUNT:/in"), OUT) for i in range(n)]
    edges = []
    for i in range(1, n):
        for _ in range(rng.randint(1, 2)):
            src = rng.randrange(0, i)
            edges.append(EdgeSpec(f"j{src}", rng.choice(OUT), f"j{i}", rng.choice(("STDIN", "MOUNT:/in"))))
    return boxes, edges


def test_every_edge_goes_left_to_right_and_boxes_never_overlap() -> None:
    boxes, edges = random_dag(40, seed=7)
    layout = layout_graph(boxes, edges)
    for e in edges:
        assert layout.boxes[e.src].right < layout.boxes[e.dst].x
    rects = list(layout.boxes.values())
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            disjoint = a.right < b.x or b.right < a.x or a.bottom < b.y or b.bottom < a.y
            assert disjoint, (a, b)


def test_edges_never_cross_a_box_interior() -> None:
    boxes, edges = random_dag(30, seed=3)
    layout = layout_graph(boxes, edges)
    for placed in layout.edges:
        pts = placed.points
        for (ax, ay), (bx, by) in zip(pts, pts[1:], strict=False):
            cells = ([(x, ay) for x in range(min(ax, bx), max(ax, bx) + 1)] if ay == by
                     else [(ax, y) for y in range(min(ay, by), max(ay, by) + 1)])
            for x, y in cells:
                assert layout.node_at(x, y) is None, (placed.edge, x, y)


def test_orthogonal_segments_only() -> None:
    boxes, edges = random_dag(25, seed=11)
    for placed in layout_graph(boxes, edges).edges:
        for (ax, ay), (bx, by) in zip(placed.points, placed.points[1:], strict=False):
            assert ax == bx or ay == by


def test_chain_is_one_layer_per_job_with_labelled_ports() -> None:
    boxes, edges = chain(4)
    layout = layout_graph(boxes, edges)
    assert layout.layers == [["j0"], ["j1"], ["j2"], ["j3"]]
    text = draw_layout(layout).text()
    for label in ("STDIN", "STDOUT", "STDERR", "LOGS", "MOUNT:/in", "▶", "┌", "┘"):
        assert label in text
    assert text.count("▶") == 3


def test_barycentre_ordering_removes_an_avoidable_crossing() -> None:
    # a→d, b→c listed so that naive order crosses; barycentre ordering un-crosses them.
    boxes = [BoxSpec(n, n, "", ("STDIN",), ("STDOUT",)) for n in "abdc"]
    edges = [EdgeSpec("a", "STDOUT", "c", "STDIN"), EdgeSpec("b", "STDOUT", "d", "STDIN")]
    layout = layout_graph(boxes, edges)
    assert layout.layers[0] == ["a", "b"]
    assert layout.layers[1] == ["c", "d"]


def test_cycle_and_unknown_ports_are_ignored_not_fatal() -> None:
    boxes = [BoxSpec(n, n, "", ("STDIN",), ("STDOUT",)) for n in "ab"]
    edges = [EdgeSpec("a", "STDOUT", "b", "STDIN"), EdgeSpec("b", "STDOUT", "a", "STDIN"),
             EdgeSpec("a", "NOPE", "b", "STDIN"), EdgeSpec("zz", "STDOUT", "a", "STDIN")]
    layout = layout_graph(boxes, edges)
    assert [p.edge for p in layout.edges] == [edges[0]]


def test_compact_mode_is_smaller_and_hit_testing_finds_ports() -> None:
    boxes, edges = chain(3)
    full = layout_graph(boxes, edges)
    compact = layout_graph(boxes, edges, compact=True)
    assert compact.height < full.height and compact.width < full.width
    x, y = full.ports[("j1", "out", "STDERR")]
    assert full.port_at(x - 1, y) == ("j1", "out", "STDERR")
    assert full.node_at(x, y) == "j1"


def test_two_hundred_jobs_lay_out_and_draw() -> None:
    boxes, edges = random_dag(200, seed=1)
    layout = layout_graph(boxes, edges)
    canvas = draw_layout(layout, selected="j100")
    assert len(layout.boxes) == 200
    assert canvas.row_runs(layout.boxes["j100"].y)


def test_hints_place_boxes_exactly_and_others_go_below() -> None:
    from rnn_tui.tui.widgets.workflow.layout import HINT_ORIGIN, hint_for

    boxes, edges = chain(3)
    layout = layout_graph(boxes, edges, hints={"j2": (0, 0), "j0": (60, 3), "ghost": (5, 5)})
    assert (layout.boxes["j2"].x, layout.boxes["j2"].y) == HINT_ORIGIN
    assert (layout.boxes["j0"].x - HINT_ORIGIN[0], layout.boxes["j0"].y - HINT_ORIGIN[1]) == (60, 3)
    assert hint_for(layout.boxes["j0"]) == (60, 3)
    lowest_hinted = max(layout.boxes["j0"].bottom, layout.boxes["j2"].bottom)
    assert layout.boxes["j1"].y > lowest_hinted  # unhinted: automatic place, below
    assert "ghost" not in layout.boxes
    # every edge still starts at its output port and ends beside its input port
    for placed in layout.edges:
        e = placed.edge
        sx, sy = layout.ports[(e.src, "out", e.src_port)]
        tx, ty = layout.ports[(e.dst, "in", e.dst_port)]
        assert placed.points[0] == (sx + 1, sy) and placed.points[-1] == (tx - 1, ty)
        for (ax, ay), (bx, by) in zip(placed.points, placed.points[1:], strict=False):
            assert ax == bx or ay == by
        assert min(x for x, _ in placed.points) >= 0
    text = draw_layout(layout).text()
    assert text.count("▶") == 2 and "j0" in text and "j2" in text
    assert layout.width >= max(r.right for r in layout.boxes.values()) + 1


def test_no_hints_or_compact_mode_keep_the_automatic_layout() -> None:
    boxes, edges = chain(3)
    auto = layout_graph(boxes, edges)
    assert layout_graph(boxes, edges, hints={}).boxes == auto.boxes
    assert layout_graph(boxes, edges, hints={"nope": (3, 3)}).boxes == auto.boxes
    compact = layout_graph(boxes, edges, compact=True)
    assert layout_graph(boxes, edges, compact=True, hints={"j0": (50, 50)}).boxes == compact.boxes
