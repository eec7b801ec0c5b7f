"""Runs one hole-punch cell in a NAT lab: two agents, two rendezvous servers, the test as relay.

Why here and not in a test: the test suite and ``bench/nat_lab.py`` run the same cells;
the test asserts outcomes, the benchmark repeats them and prints figures.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.netlab.lab import LabHost, NatLab, NatMode

AGENT = ["-m", "tests.netlab.punch_agent"]


@dataclass
class AgentResult:
    name: str
    events: list[dict[str, Any]] = field(default_factory=list)
    stderr: str = ""

    def first(self, event: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e.get("event") == event), None)

    @property
    def succeeded(self) -> dict[str, Any] | None:
        return self.first("PunchSucceeded")

    @property
    def done(self) -> dict[str, Any] | None:
        return self.first("done")

    @property
    def ok(self) -> bool:
        done = self.done
        return bool(done and done.get("ok"))

    @property
    def detected(self) -> str | None:
        obs = self.first("observed")
        return None if obs is None else str(obs["detected"])


@dataclass
class CellResult:
    a: AgentResult
    b: AgentResult
    wall: float

    @property
    def ok(self) -> bool:
        return self.a.ok and self.b.ok

    def describe(self) -> str:
        lines = []
        for r in (self.a, self.b):
            lines.append(f"--- {r.name}")
            lines += [json.dumps(e) for e in r.events if e.get("event") != "msg"]
            if r.stderr.strip():
                lines.append("stderr: " + r.stderr.strip()[-2000:])
        return "\n".join(lines)


def start_rendezvous(lab: NatLab, count: int = 2) -> list[str]:
    """``count`` public hosts each running a rendezvous server; returns 'ip:port' strings."""
    addrs = []
    for _ in range(count):
        host = lab.add_public_host()
        proc = host.python(AGENT + ["rendezvous"])
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"rendezvous on {host.netns} did not start: "
                               f"{proc.stderr.read() if proc.stderr else ''}")
        addrs.append(f"{host.ip}:{json.loads(line)['port']}")
    return addrs


def build_pair(lab: NatLab, mode_a: NatMode | None, mode_b: NatMode | None,
               same_nat: bool = False) -> tuple[LabHost, LabHost]:
    """Two hosts: behind their own NAT of the given mode (None: public), or one shared NAT."""
    if same_nat:
        assert mode_a is not None
        router = lab.add_nat(mode_a)
        return lab.add_host_behind(router), lab.add_host_behind(router)
    hosts = []
    for mode in (mode_a, mode_b):
        hosts.append(lab.add_public_host() if mode is None
                     else lab.add_host_behind(lab.add_nat(mode)))
    return hosts[0], hosts[1]


def _reader(name: str, proc: subprocess.Popen[str], out: queue.Queue[tuple[str, Any]]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        try:
            out.put((name, json.loads(line)))
        except json.JSONDecodeError:
            out.put((name, {"event": "garbage", "line": line}))
    out.put((name, {"event": "eof"}))


def run_punch_cell(host_a: LabHost, host_b: LabHost, rendezvous: list[str], *,
                   claim_a: str | None = None, claim_b: str | None = None,
                   timeout: float = 20.0, attempts: int = 1, punch_timeout: float = 3.0,
                   exchange_timeout: float = 5.0, tamper: Any = None) -> CellResult:
    """A is the initiator.

    ``tamper(direction, hex)`` plays a malicious relay: it returns the hex to deliver, None
    to drop the message, or a list of hex messages (to inject or replay).
    """
    procs: dict[str, subprocess.Popen[str]] = {}
    results = {"a": AgentResult("a"), "b": AgentResult("b")}
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    for name, host, claim in (("a", host_a, claim_a), ("b", host_b, claim_b)):
        argv = AGENT + ["peer", "--lan-ip", host.ip, "--timeout", str(timeout),
                        "--attempts", str(attempts), "--punch-timeout", str(punch_timeout),
                        "--exchange-timeout", str(exchange_timeout)]
        for addr in rendezvous:
            argv += ["--rendezvous", addr]
        if name == "a":
            argv.append("--initiator")
        if claim:
            argv += ["--claim-nat", claim]
        procs[name] = host.python(argv)
        threading.Thread(target=_reader, args=(name, procs[name], events), daemon=True).start()
    observed: set[str] = set()
    finished: set[str] = set()
    started = time.monotonic()
    end = started + timeout + 5
    while len(finished) < 2 and time.monotonic() < end:
        try:
            name, ev = events.get(timeout=0.5)
        except queue.Empty:
            continue
        results[name].events.append(ev)
        kind = ev.get("event")
        if kind == "observed":
            observed.add(name)
            if observed == {"a", "b"}:
                _send(procs["a"], {"cmd": "start"})
        elif kind == "msg":
            other = "b" if name == "a" else "a"
            payload = ev["hex"] if tamper is None else tamper(f"{name}->{other}", ev["hex"])
            for item in ([] if payload is None else
                         [payload] if isinstance(payload, str) else payload):
                _send(procs[other], {"msg": item})
        elif kind in ("done", "timeout", "eof"):
            finished.add(name)
    wall = time.monotonic() - started
    for name, proc in procs.items():
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=3)
        if proc.stderr is not None:
            results[name].stderr = proc.stderr.read()
    return CellResult(results["a"], results["b"], wall)


def _send(proc: subprocess.Popen[str], obj: dict[str, Any]) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(json.dumps(obj) + "\n")
        proc.stdin.flush()
    except (BrokenPipeError, ValueError):
        pass
