"""TUI benchmarks: log flood, startup, and a 200-job graph.

Prints figures (no pass/fail): the targets from issue 9 are shown next to each median.

1. Log flood: a producer feeds the logs view at RATE lines/s for SECONDS (batches every
   10 ms, as a node's log reader would).  Meanwhile we measure
   - keypress latency: a key event posted to the app until its bound action runs;
   - event-loop lag: how late a 20 ms sleep wakes up.
2. Startup: ``RnnApp`` on the demo node until the peers table has its rows (headless).
3. Graph: a random 200-job DAG laid out, drawn, and every row turned into styled runs.

Runs headless (Textual composes and renders frames; the driver discards the bytes), so
terminal write cost over SSH is not included.

Usage: ``.venv/bin/python bench/tui_logs.py [--seconds 5] [--rate 50000] [--runs 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding

from rnn_tui.api import LogLine, LogStream
from rnn_tui.tui.app import RnnApp
from rnn_tui.tui.demo import DEMO_NOW, DemoNode
from rnn_tui.tui.widgets.logs.view import LogView
from rnn_tui.tui.widgets.table import FilterTable
from rnn_tui.tui.widgets.workflow.canvas import draw_layout
from rnn_tui.tui.widgets.workflow.layout import BoxSpec, EdgeSpec, layout_graph

POOL = 20_000


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


class FloodApp(App[None]):
    BINDINGS = [Binding("k", "mark", "mark")]

    def __init__(self) -> None:
        super().__init__()
        self.marked: asyncio.Event = asyncio.Event()
        self.marked_at = 0.0

    def compose(self) -> ComposeResult:
        yield LogView(max_lines=20_000, id="view")

    def action_mark(self) -> None:
        self.marked_at = time.perf_counter()
        self.marked.set()


async def flood(rate: int, seconds: float) -> dict[str, float]:
    app = FloodApp()
    key_lat: list[float] = []
    lag: list[float] = []
    async with app.run_test(size=(160, 48)) as pilot:
        view = app.query_one(LogView)
        view.log_widget.focus()
        await pilot.pause()
        stop = time.perf_counter() + seconds
        sent = 0
        text = "x" * 60

        # The lines are made once: producing them is the node's cost, not the view's.
        jobs = ("fetch", "clean", "model", "report")
        pool = [LogLine("r", jobs[i % 4], LogStream.STDOUT if i % 5 else LogStream.STDERR,
                        f"{i} {text}", 0.0) for i in range(POOL)]

        async def producer() -> None:
            nonlocal sent
            start = time.perf_counter()
            while time.perf_counter() < stop:
                due = int((time.perf_counter() - start) * rate)
                while sent < due:
                    at = sent % POOL
                    take = min(due - sent, POOL - at)
                    view.feed(pool[at:at + take])
                    sent += take
                await asyncio.sleep(0.01)

        async def lag_probe() -> None:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                await asyncio.sleep(0.02)
                lag.append(time.perf_counter() - t0 - 0.02)

        async def keys() -> None:
            await asyncio.sleep(0.2)
            while time.perf_counter() < stop - 0.2:
                app.marked.clear()
                t0 = time.perf_counter()
                app.post_message(events.Key("k", "k"))
                try:
                    await asyncio.wait_for(app.marked.wait(), 5)
                    key_lat.append(app.marked_at - t0)
                except TimeoutError:
                    key_lat.append(5.0)
                await asyncio.sleep(0.1)

        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(producer(), lag_probe(), keys())
        cpu_share = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        await pilot.pause(0.2)
        shown = view.log_widget.line_count
        dropped = view.buffer.dropped
    return {"lines_per_s": sent / seconds, "key_p95_ms": p95(key_lat) * 1000,
            "lag_p95_ms": p95(lag) * 1000, "shown": shown, "dropped": dropped,
            "received": sent, "cpu_share": cpu_share}


async def startup() -> float:
    t0 = time.perf_counter()
    app = RnnApp(DemoNode(), clock=lambda: DEMO_NOW)
    async with app.run_test(size=(160, 48)) as pilot:
        while True:
            screen = app.screen
            tables = screen.query(FilterTable) if screen.is_mounted else []
            if any(t.id == "peers-table" and t.table.row_count for t in tables):
                break
            await pilot.pause(0.005)
        return time.perf_counter() - t0


def graph_200(seed: int) -> tuple[float, float]:
    rng = random.Random(seed)
    out = ("STDOUT", "STDERR", "LOGS")
    boxes = [BoxSpec(f"job{i}", f"job{i}", "svc@any", ("STDIN", "MOUNT:/in"), out)
             for i in range(200)]
    edges = [EdgeSpec(f"job{rng.randrange(0, i)}", rng.choice(out), f"job{i}",
                      rng.choice(("STDIN", "MOUNT:/in")))
             for i in range(1, 200) for _ in range(rng.randint(1, 2))]
    t0 = time.perf_counter()
    layout = layout_graph(boxes, edges)
    canvas = draw_layout(layout, selected="job100")
    rect = layout.boxes["job100"]  # a 160x46 viewport around the selection, as on screen
    top, left = max(0, rect.y - 20), max(0, rect.x - 60)
    for y in range(top, min(canvas.height, top + 46)):
        canvas.row_runs(y, left, left + 160)
    screen = time.perf_counter() - t0
    for y in range(canvas.height):
        canvas.row_runs(y)
    whole = time.perf_counter() - t0
    return screen, whole, float(canvas.width * canvas.height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    floods = [asyncio.run(flood(args.rate, args.seconds)) for _ in range(args.runs)]
    for i, f in enumerate(floods, 1):
        print(f"flood run {i}: {f['lines_per_s']:,.0f} lines/s offered, key p95 "
              f"{f['key_p95_ms']:.1f} ms, loop lag p95 {f['lag_p95_ms']:.1f} ms, "
              f"{f['dropped']:,} dropped from history (bounded at 20k), "
              f"process CPU {f['cpu_share'] * 100:.0f}% of one core")
    print(f"log flood   median key p95 {statistics.median(f['key_p95_ms'] for f in floods):6.1f} ms"
          f"  (target ≤ 50)   median loop-lag p95 "
          f"{statistics.median(f['lag_p95_ms'] for f in floods):6.1f} ms (target ≤ 50)"
          f"   at {statistics.median(f['lines_per_s'] for f in floods):,.0f} lines/s")

    starts = [asyncio.run(startup()) for _ in range(args.runs)]
    print(f"startup     median {statistics.median(starts) * 1000:6.0f} ms to a populated peers "
          f"table (target ≤ 1500)  runs: {', '.join(f'{s * 1000:.0f}' for s in starts)}")

    graphs = [graph_200(seed) for seed in range(max(args.runs, 5))]
    print(f"graph 200   median {statistics.median(g[0] for g in graphs) * 1000:6.1f} ms layout + draw "
          f"of the visible 160x46 screen (target ≤ 200); painting the whole canvas "
          f"(~{statistics.median(g[2] for g in graphs):,.0f} cells): "
          f"{statistics.median(g[1] for g in graphs) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
