"""Issue 8 acceptance: the example workflows across real node processes and real Docker.

One requester and four executors on loopback: executor 0 serves the DATA sets, executors
1-3 offer the ``busybox`` service.  Every example runs with its jobs spread over at least
three peers; results delivered to ``self`` are compared with outputs computed here, in
Python, from the same data; every receipt verifies; a tampered result or receipt is caught.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.workflow_cluster import (
    DATA,
    REPO,
    control,
    start_run,
    wait_run,
    workflow_cluster,
)
from tests.nodes import NodeProcess

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.slow]

WORKFLOWS = REPO / "workflows"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, base_image: str,
         docker_client: Any) -> Iterator[tuple[NodeProcess, list[NodeProcess]]]:
    home = tmp_path_factory.mktemp("wf-e2e")
    data = {0: ["wordcount-corpus.txt", "forest-grid.csv", "pollinators-site-a.csv",
                "pollinators-site-b.csv"]}
    with workflow_cluster(home, 110, base_image, 4, data, busybox_on=(1, 2, 3),
                          docker_client=docker_client) as pair:
        yield pair


def _results(requester: NodeProcess, run_id: str) -> dict[str, str]:
    listing = requester.call("run", "results", run_id)
    assert all(f["matches_receipt"] for f in listing["files"]), listing
    return {f["file"]: Path(f["path"]).read_text() for f in listing["files"]}


def _executors(status: dict[str, Any]) -> dict[str, str]:
    assert status["status"] == "COMPLETED", status
    return {j["job"]: j["executor"] for j in status["jobs"]}


def _verify_receipts(requester: NodeProcess, run_id: str, jobs: int) -> dict[str, Any]:
    res = requester.rnn("run", "receipts", run_id, "--verify", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    assert report["ok"]
    current = [r for r in report["receipts"] if r["current"]]
    assert len(current) == jobs and all(r["verified"] for r in current)
    return dict(report)


# --------------------------------------------------------------------------- expectations


def expected_word_count() -> tuple[str, str]:
    words = [w.lower() for w in re.findall(r"[A-Za-z]+", (DATA / "wordcount-corpus.txt")
                                           .read_text(encoding="utf-8", errors="replace"))]
    table = sorted(Counter(words).items(), key=lambda kv: (-kv[1], kv[0]))
    lines = [f"{n} {w}\n" for w, n in table]
    return "".join(lines), "".join(lines[:10])


def expected_pollinators() -> tuple[str, str]:
    rows = ["date,site,species,family,count"]
    for line in (DATA / "pollinators-site-a.csv").read_text().splitlines()[1:]:
        f = line.split(",")
        if len(f) >= 5 and re.fullmatch(r"[0-9]+", f[4]):
            rows.append(f"{f[0]},A-{f[1]},{f[2]},{f[3]},{f[4]}")
    for line in (DATA / "pollinators-site-b.csv").read_text().splitlines()[1:]:
        f = line.split(";")
        if len(f) >= 5 and re.fullmatch(r"[0-9]+", f[4]):
            d = f[1].split("/")
            species = f[2].replace("_", " ")
            species = species[:1].upper() + species[1:].lower()
            rows.append(f"{d[2]}-{d[1]}-{d[0]},B-{f[0]},{species},{f[3]},{f[4]}")
    total: Counter[str] = Counter()
    family: dict[str, str] = {}
    plots: defaultdict[str, set[str]] = defaultdict(set)
    for row in rows[1:]:
        _date, site, species, fam, count = row.split(",")
        total[species] += int(count)
        family[species] = fam
        plots[species].add(site)
    summary = ["species,family,total_visits,plots"] + [
        f"{s},{family[s]},{total[s]},{len(plots[s])}"
        for s in sorted(total, key=lambda s: (-total[s], s))]
    return "\n".join(rows) + "\n", "\n".join(summary) + "\n"


def expected_deforestation() -> tuple[str, str]:
    ndvi_lines = []
    for line in (DATA / "forest-grid.csv").read_text().splitlines()[1:]:
        x, y, r0, n0, r1, n1 = line.split(",")
        a, b = float(n0) + float(r0), float(n1) + float(r1)
        v0 = (float(n0) - float(r0)) / a if a > 0 else 0.0
        v1 = (float(n1) - float(r1)) / b if b > 0 else 0.0
        ndvi_lines.append(f"{x},{y},{v0:.4f},{v1:.4f}")
    cells = forest0 = forest1 = lost = regrown = 0
    for line in ndvi_lines:
        f0 = float(line.split(",")[2]) >= 0.5
        f1 = float(line.split(",")[3]) >= 0.5
        cells += 1
        forest0 += f0
        forest1 += f1
        lost += f0 and not f1
        regrown += (not f0) and f1
    pct = 100 * lost / forest0 if forest0 else 0
    report = (f"cells={cells}\nforest_2015={forest0}\nforest_2023={forest1}\n"
              f"deforested_cells={lost}\nregrown_cells={regrown}\n"
              f"deforested_ha={lost * 0.09:.2f}\nforest_loss_pct={pct:.2f}\n")
    return "\n".join(ndvi_lines) + "\n", report


# --------------------------------------------------------------------------- tests


def test_word_count_stdout_to_stdin_across_peers(mesh: tuple[NodeProcess, list[NodeProcess]]
                                                 ) -> None:
    requester, _nodes = mesh
    run_id = start_run(requester, WORKFLOWS / "word-count.yaml")
    status = wait_run(requester, run_id)
    where = _executors(status)
    assert len(set(where.values())) >= 3
    assert requester.peer_id not in where.values()
    assert where["tokenize"] != where["count"]  # a STDOUT -> STDIN edge between two peers
    table, top = expected_word_count()
    results = _results(requester, run_id)
    assert results["word-counts.txt"] == table
    assert results["top10.txt"] == top
    _verify_receipts(requester, run_id, 4)
    # live logs: the executors streamed each job's STDOUT lines to the requester
    logs = requester.rnn("run", "logs", run_id, "top").stdout
    assert logs.splitlines() == top.splitlines()


def test_pollinator_mount_to_mount_across_peers(mesh: tuple[NodeProcess, list[NodeProcess]]
                                                ) -> None:
    requester, _nodes = mesh
    run_id = start_run(requester, WORKFLOWS / "pollinator-integration.yaml")
    status = wait_run(requester, run_id)
    where = _executors(status)
    assert len(set(where.values())) >= 3
    assert where["merge"] != where["aggregate"]  # a MOUNT -> MOUNT edge between two peers
    merged, summary = expected_pollinators()
    results = _results(requester, run_id)
    assert results["merged.csv"] == merged
    assert results["species-summary.csv"] == summary
    _verify_receipts(requester, run_id, 4)


def test_deforestation_across_peers(mesh: tuple[NodeProcess, list[NodeProcess]]) -> None:
    requester, _nodes = mesh
    # through the CLI this time: import, export, start by name and follow the logs
    spec = WORKFLOWS / "deforestation.yaml"
    res = requester.rnn("workflow", "import", str(spec))
    assert res.returncode == 0, res.stderr
    assert requester.rnn("workflow", "export", "deforestation").stdout == spec.read_text()
    res = requester.rnn("run", "start", "deforestation", "--follow", "--json", timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    logs, _, tail = res.stdout.partition("\n{\n")
    run_id = json.loads("{\n" + tail)["run_id"]
    assert "[classify] deforested_cells=" in logs and "[ndvi] 0,0," in logs
    status = wait_run(requester, run_id)
    where = _executors(status)
    assert len(set(where.values())) >= 3
    ndvi, report = expected_deforestation()
    results = _results(requester, run_id)
    assert results["ndvi.csv"] == ndvi
    assert results["deforestation.txt"] == report
    _verify_receipts(requester, run_id, 3)


def test_tampered_result_and_receipt_are_detected(mesh: tuple[NodeProcess, list[NodeProcess]]
                                                  ) -> None:
    requester, _nodes = mesh
    run_id = start_run(requester, WORKFLOWS / "word-count.yaml")
    assert wait_run(requester, run_id)["status"] == "COMPLETED"
    _verify_receipts(requester, run_id, 4)
    listing = requester.call("run", "results", run_id)
    top = Path(next(f["path"] for f in listing["files"] if f["file"] == "top10.txt"))
    original = top.read_bytes()
    top.write_bytes(original.replace(b"\n", b"\n ", 1))
    res = requester.rnn("run", "receipts", run_id, "--verify")
    assert res.returncode == 1
    assert "top10.txt: does not match its receipt" in res.stdout
    top.write_bytes(original)
    _verify_receipts(requester, run_id, 4)
    # flip one byte of a stored receipt: its signature no longer verifies
    db = sqlite3.connect(requester.data_dir / "node.db", timeout=10)
    try:
        rid, body = db.execute("SELECT id, body FROM receipts WHERE run_id = ? AND job = 'count'",
                               (run_id,)).fetchone()
        forged = bytes(body).replace(b"i0e", b"i1e", 1)
        assert forged != bytes(body)
        db.execute("UPDATE receipts SET body = ? WHERE id = ?", (forged, rid))
        db.commit()
    finally:
        db.close()
    res = requester.rnn("run", "receipts", run_id, "--verify", "--json")
    assert res.returncode == 1
    report = json.loads(res.stdout)
    bad = [r for r in report["receipts"] if not r["verified"]]
    assert len(bad) == 1 and "signature" in bad[0]["problems"][0]


def test_an_executor_that_refuses_explains_the_run(mesh: tuple[NodeProcess, list[NodeProcess]],
                                                   tmp_path: Path) -> None:
    requester, nodes = mesh
    data_peer = nodes[0].peer_id  # offers data sets only, no busybox
    spec = tmp_path / "refused.yaml"
    spec.write_text(f"""\
name: refused
jobs:
  - name: shout
    service: {{name: busybox, peer: {data_peer}}}
    args: [sh, -c, echo hi]
connections:
  - {{from: shout.STDOUT, to: self, file: out.txt}}
""")
    run_id = start_run(requester, spec)
    status = wait_run(requester, run_id, timeout=30)
    assert status["status"] == "FAILED"
    assert "refused by" in status["reason"] and "no service" in status["reason"]


def test_resume_reuses_identical_jobs(mesh: tuple[NodeProcess, list[NodeProcess]]) -> None:
    requester, _nodes = mesh
    spec = WORKFLOWS / "word-count.yaml"
    runs = []
    for _ in range(2):
        run = control(requester, "run.start", yaml=spec.read_text(), source=str(spec),
                      resume=True)
        status = wait_run(requester, run["run_id"])
        assert status["status"] == "COMPLETED", status
        runs.append(status)
    first, second = (r["run_id"] for r in runs)
    res = requester.rnn("run", "logs", first)
    assert "[resume]" not in res.stdout + res.stderr
    res = requester.rnn("run", "logs", second)
    logs = res.stderr  # the executor's notice goes to the job's STDERR stream
    reused = {line.split("]")[0].strip("[") for line in logs.splitlines() if "[resume]" in line}
    assert reused == {"tokenize", "count", "top"}  # the DATA job is not cached
    table, top = expected_word_count()
    results = _results(requester, second)
    assert results == {"word-counts.txt": table, "top10.txt": top}
    _verify_receipts(requester, second, 4)
