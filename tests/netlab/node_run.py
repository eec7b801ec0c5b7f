"""Runs one cell of the NAT matrix with real QUIC node agents (see node_agent.py).

Two public relay nodes give every peer two independent observers (NAT detection needs
agreement) and a relay; A then reaches B either directly (public↔NAT: the NAT side
dials) or through a relayed circuit followed by a hole punch.
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

AGENT = ["-m", "tests.netlab.node_agent"]


class Agent:
    """A node agent process: JSON events in, commands out, bounded waits only."""

    def __init__(self, name: str, host: LabHost, argv: list[str]) -> None:
        self.name = name
        self.host = host
        self.proc = host.python(AGENT + argv)
        self.events: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self._queue.put(json.loads(line))
            except json.JSONDecodeError:
                self._queue.put({"event": "garbage", "line": line})
        self._queue.put({"event": "eof"})

    def wait_for(self, name: str, timeout: float) -> dict[str, Any]:
        end = time.monotonic() + timeout
        for ev in self.events:
            if ev.get("event") == name and not ev.get("_taken"):
                ev["_taken"] = True
                return ev
        while time.monotonic() < end:
            try:
                ev = self._queue.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                break
            self.events.append(ev)
            if ev.get("event") == name:
                ev["_taken"] = True
                return ev
            if ev.get("event") == "eof":
                break
        raise TimeoutError(f"{self.name}: no {name!r} within {timeout:g}s\n{self.describe()}")

    def drain(self) -> None:
        while True:
            try:
                self.events.append(self._queue.get_nowait())
            except queue.Empty:
                return

    def send(self, cmd: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def all(self, name: str) -> list[dict[str, Any]]:
        self.drain()
        return [e for e in self.events if e.get("event") == name]

    def describe(self) -> str:
        self.drain()
        lines = [f"--- {self.name} ({self.host.netns})"] + [json.dumps(e) for e in self.events]
        if self.proc.poll() is not None and self.proc.stderr is not None:
            lines.append("stderr: " + self.proc.stderr.read()[-3000:])
        return "\n".join(lines)

    def stop(self) -> None:
        self.send({"cmd": "quit"})
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(timeout=5)


@dataclass
class QuicCell:
    a: Agent
    b: Agent
    relays: list[Agent] = field(default_factory=list)

    def describe(self) -> str:
        return "\n".join(x.describe() for x in (self.a, self.b))


def start_relays(lab: NatLab, count: int = 2) -> tuple[list[Agent], list[str]]:
    agents, specs = [], []
    for i in range(count):
        host = lab.add_public_host()
        agent = Agent(f"relay{i}", host, ["relay", "--ip", host.ip])
        ready = agent.wait_for("ready", 20)
        agents.append(agent)
        specs.append(f"{ready['addr'][0]}:{ready['addr'][1]}:{ready['peer']}")
    return agents, specs


def start_peers(host_a: LabHost, host_b: LabHost, specs: list[str], *,
                claim_a: str | None = None, claim_b: str | None = None) -> tuple[Agent, Agent]:
    agents = []
    for name, host, claim in (("a", host_a, claim_a), ("b", host_b, claim_b)):
        argv = ["peer", "--ip", host.ip]
        for spec in specs:
            argv += ["--relay", spec]
        if claim:
            argv += ["--claim-nat", claim]
        agents.append(Agent(name, host, argv))
    for agent in agents:
        agent.wait_for("ready", 30)
    return agents[0], agents[1]


def run_relayed_then_punch(a: Agent, b: Agent, timeout: float = 40) -> None:
    """A opens a relayed circuit to B, exchanges data, punches, exchanges again."""
    b_ready = b.all("ready")[0]
    a.send({"cmd": "connect", "peer": b_ready["peer"]})
    a.wait_for("cmd-done", timeout)


def run_direct_dial(nat_side: Agent, public_side: Agent, timeout: float = 20) -> None:
    ready = public_side.all("ready")[0]
    nat_side.send({"cmd": "dial-direct", "addr": [public_side.host.ip, ready["port"]],
                   "peer": ready["peer"]})
    nat_side.wait_for("cmd-done", timeout)


def run_quic_cell(mode_a: NatMode | None, mode_b: NatMode | None, same_nat: bool = False,
                  direct_dial: bool = False, prefix: str = "rnnlab") -> tuple[Agent, Agent, str]:
    """One fresh lab, relays and two peers; returns the agents (stopped) and their story."""
    from tests.netlab.punch_run import build_pair

    lab = NatLab(prefix=prefix)
    try:
        relays, specs = start_relays(lab)
        host_a, host_b = build_pair(lab, mode_a, mode_b, same_nat)
        a, b = start_peers(host_a, host_b, specs)
        if direct_dial:
            run_direct_dial(b, a)
        else:
            run_relayed_then_punch(a, b)
        for agent in (a, b):
            agent.drain()
        story = a.describe() + "\n" + b.describe()
        for agent in (a, b, *relays):
            agent.stop()
        return a, b, story
    finally:
        lab.close()
