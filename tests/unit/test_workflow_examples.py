"""The example workflows in ``workflows/``: they validate, and their shell steps compute what
an independent Python computation says they should.

Why locally: the end-to-end run across peers needs the orchestrator and Docker.  Here we run
exactly the job commands from the YAML with busybox (the base image's only program), feeding
each job its inputs the way an executor would: STDIN from the connected output, MOUNT inputs
as files in a directory, and the job's env.  Mount paths in env values are mapped to local
directories, which is why the examples read their mounts through ``$IN``/``$OUT``.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from rnn_tui.workflow.model import InterfaceType, Workflow
from rnn_tui.workflow.validate import topological_jobs, validate_workflow
from rnn_tui.workflow.yaml_io import dump_workflow, load_workflow, load_workflow_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "workflows"
DATA = EXAMPLES / "data"
BUSYBOX = Path("/bin/busybox")

pytestmark = pytest.mark.skipif(not BUSYBOX.exists(), reason="busybox is not installed")


@pytest.fixture(scope="module")
def busybox_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH holding only busybox applets, as in the base image (no GNU tools leak in)."""
    bindir = tmp_path_factory.mktemp("bin")
    listing = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True)
    for applet in listing.stdout.split():
        (bindir / applet).symlink_to(BUSYBOX)
    return str(bindir)


def run_locally(workflow: Workflow, workdir: Path, path_env: str) -> dict[str, bytes]:
    """Run every job in dependency order; return what ``self`` receives, by file name."""
    produced: dict[str, bytes] = {}  # "job.PORT" -> bytes
    results: dict[str, bytes] = {}
    for name in topological_jobs(workflow):
        job = workflow.job(name)
        data_file = DATA / job.service.service
        if job.service.service != "busybox":
            produced[f"{name}.STDOUT"] = data_file.read_bytes()
            continue
        local = {m.path: workdir / name / m.path.strip("/") for m in job.mounts}
        for directory in local.values():
            directory.mkdir(parents=True)
        stdin = b""
        for conn in workflow.inputs_of(name):
            assert conn.target is not None
            data = produced[str(conn.source)]
            if conn.target.interface is InterfaceType.STDIN:
                stdin = data
            else:
                assert conn.target.path is not None and conn.file is not None
                (local[conn.target.path] / conn.file).write_bytes(data)
        env = {"PATH": path_env, "LC_ALL": "C"}
        env.update({k: str(local.get(v, v)) for k, v in job.env})
        proc = subprocess.run([str(BUSYBOX), *job.args], input=stdin, capture_output=True,
                              env=env, cwd=workdir, timeout=60, check=False)
        assert proc.returncode == 0, (name, proc.stderr.decode())
        produced[f"{name}.STDOUT"] = proc.stdout
        produced[f"{name}.STDERR"] = proc.stderr
        for conn in workflow.outputs_of(name):
            port = conn.source
            if port.interface is InterfaceType.MOUNT:
                assert port.path is not None
                mount = job.mount_for(port.path)
                assert mount is not None
                relative = os.path.relpath(port.path, mount.path)
                produced[str(port)] = (local[mount.path] / relative).read_bytes()
    for conn in workflow.connections:
        if conn.target is None:
            assert conn.file is not None
            results[conn.file] = produced[str(conn.source)]
    return results


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_examples_validate_and_round_trip(path: Path) -> None:
    loaded = load_workflow_file(str(path))
    assert validate_workflow(loaded.workflow, loaded.marks, str(path)) == []
    assert load_workflow(dump_workflow(loaded.workflow)).workflow == loaded.workflow
    # every example spans at least three jobs, so at least three peers can share it
    assert len(loaded.workflow.jobs) >= 3
    for job in loaded.workflow.jobs:
        assert job.service.is_any, f"{path.name}: {job.name} should use an 'any' service ref"
        if job.service.service != "busybox":
            assert (DATA / job.service.service).is_file()


def test_word_count(tmp_path: Path, busybox_path: str) -> None:
    wf = load_workflow_file(str(EXAMPLES / "word-count.yaml")).workflow
    results = run_locally(wf, tmp_path, busybox_path)
    text = (DATA / "wordcount-corpus.txt").read_text()
    counts = Counter(w.lower() for w in re.findall(r"[A-Za-z]+", text))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    expected = "".join(f"{n} {w}\n" for w, n in ranked)
    assert results["word-counts.txt"].decode() == expected
    assert results["top10.txt"].decode() == "".join(expected.splitlines(True)[:10])
    assert ranked[0][0] == "the"


def _expected_pollinators() -> tuple[str, str]:
    rows: list[tuple[str, str, str, str, int]] = []
    with open(DATA / "pollinators-site-a.csv", newline="") as handle:
        for rec in csv.DictReader(handle):
            if rec["count"].isdigit():
                rows.append((rec["date"], "A-" + rec["transect"], rec["species"],
                             rec["family"], int(rec["count"])))
    with open(DATA / "pollinators-site-b.csv", newline="") as handle:
        for rec in csv.DictReader(handle, delimiter=";"):
            if rec["visits"].isdigit():
                day, month, year = rec["observed_on"].split("/")
                species = rec["taxon"].replace("_", " ").capitalize()
                rows.append((f"{year}-{month}-{day}", "B-" + rec["plot"], species,
                             rec["family"], int(rec["visits"])))
    merged = "date,site,species,family,count\n" + "".join(
        f"{d},{s},{sp},{f},{c}\n" for d, s, sp, f, c in rows)
    totals: Counter[str] = Counter()
    families: dict[str, str] = {}
    plots: dict[str, set[str]] = {}
    for _, site, species, family, count in rows:
        totals[species] += count
        families[species] = family
        plots.setdefault(species, set()).add(site)
    ranked = sorted(totals, key=lambda s: (-totals[s], s))
    summary = "species,family,total_visits,plots\n" + "".join(
        f"{s},{families[s]},{totals[s]},{len(plots[s])}\n" for s in ranked)
    return merged, summary


def test_pollinator_integration(tmp_path: Path, busybox_path: str) -> None:
    wf = load_workflow_file(str(EXAMPLES / "pollinator-integration.yaml")).workflow
    results = run_locally(wf, tmp_path, busybox_path)
    merged, summary = _expected_pollinators()
    assert results["merged.csv"].decode() == merged
    assert results["species-summary.csv"].decode() == summary
    # the integration really merged both sites: blank and NA counts are gone
    assert "Syrphus ribesii" in summary and "Andrena cineraria" in summary
    assert ",NA" not in merged and ",,," not in merged


def test_deforestation(tmp_path: Path, busybox_path: str) -> None:
    wf = load_workflow_file(str(EXAMPLES / "deforestation.yaml")).workflow
    results = run_locally(wf, tmp_path, busybox_path)
    ndvi_lines = []
    forest0 = forest1 = lost = regrown = 0
    with open(DATA / "forest-grid.csv", newline="") as handle:
        for rec in csv.DictReader(handle):
            red0, nir0 = int(rec["red_2015"]), int(rec["nir_2015"])
            red1, nir1 = int(rec["red_2023"]), int(rec["nir_2023"])
            n0 = f"{(nir0 - red0) / (nir0 + red0):.4f}"
            n1 = f"{(nir1 - red1) / (nir1 + red1):.4f}"
            ndvi_lines.append(f"{rec['x']},{rec['y']},{n0},{n1}\n")
            f0, f1 = float(n0) >= 0.5, float(n1) >= 0.5
            forest0 += f0
            forest1 += f1
            lost += f0 and not f1
            regrown += f1 and not f0
    assert results["ndvi.csv"].decode() == "".join(ndvi_lines)
    cells = len(ndvi_lines)
    expected = (f"cells={cells}\nforest_2015={forest0}\nforest_2023={forest1}\n"
                f"deforested_cells={lost}\nregrown_cells={regrown}\n"
                f"deforested_ha={lost * 0.09:.2f}\nforest_loss_pct={100 * lost / forest0:.2f}\n")
    assert results["deforestation.txt"].decode() == expected
    assert lost > 50 and regrown > 0  # the data tells the story it was made for


def test_the_example_in_the_docs_validates() -> None:
    text = (ROOT / "docs" / "WORKFLOWS.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    loaded = load_workflow(block, "docs/WORKFLOWS.md")
    assert validate_workflow(loaded.workflow, loaded.marks) == []
    assert not loaded.workflow.job("count").service.is_any
