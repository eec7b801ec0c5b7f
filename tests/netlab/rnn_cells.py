"""The issue's NAT matrix with real ``rnn start --headless`` processes in a NAT lab.

Why a module of its own: the test suite (one run per cell) and ``bench/nat_lab.py --rnn``
(many runs, figures) must run exactly the same scenario.

Scenario per cell: two public nodes on the lab "internet" (``pub0`` is the DHT bootstrap and
runs with ``--relay``; ``pub1`` bootstraps from it and gives the NATed nodes a second,
distinct reporter, because NAT detection needs agreement between peers).  Two nodes A and B
are placed according to the cell; they bootstrap from ``pub0`` only.  Once each NATed node
reports its NAT type and a relay in ``rnn status``, A runs ``rnn connect <B's peer id>``:
the node looks up B's BEP 44 record, dials its addresses, and otherwise goes through B's
relay and punches.  Then A pings B (end-to-end request/response over the chosen path) and
``rnn peers --json`` on both sides gives the path type.

Every address used here belongs to namespaces the lab created (203.0.113.0/24 on the lab
bridge, 10.k.0.0/24 behind lab routers); nothing is sent from the root namespace.
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.netlab.lab import LabHost, NatLab, NatMode
from tests.netlab.rnn_nodes import RnnNode

__all__ = ["CELLS", "Cell", "CellResult", "RoundResult", "run_round"]


@dataclass(frozen=True, slots=True)
class Cell:
    name: str
    a: str                  # the dialling node (role in the round's lab)
    b: str                  # the node it connects to by peer id
    expected: str           # the path type both ends must list: "direct" | "relayed"
    punch: str              # how the path must come about: "dial" | "punch" | "none"


# One lab per round holds every role; each cell joins a pair that was never connected.
ROLES = {  # role -> (router key or None for a public host, NAT mode of that router)
    "e1a": ("E1", NatMode.EIM), "e1b": ("E1", NatMode.EIM), "e2": ("E2", NatMode.EIM),
    "s1": ("S1", NatMode.SYMMETRIC), "s2": ("S2", NatMode.SYMMETRIC),
}
NAT_TYPE = {NatMode.EIM: "eim", NatMode.SYMMETRIC: "edm"}

CELLS = {
    # the NAT side dials the public node: a plain direct QUIC dial
    "public-nat": Cell("public-nat", "e1a", "pub1", "direct", "dial"),
    "eim-eim": Cell("eim-eim", "e1a", "e2", "direct", "punch"),
    "eim-sym": Cell("eim-sym", "e2", "s1", "direct", "punch"),      # birthday
    "sym-sym": Cell("sym-sym", "s1", "s2", "relayed", "none"),
    # two hosts behind one router: the LAN address in B's record answers a direct dial
    "same-nat": Cell("same-nat", "e1a", "e1b", "direct", "dial"),
}


@dataclass
class CellResult:
    cell: str
    ok: bool = False
    path_a: str = ""
    path_b: str = ""
    how: str = ""                       # "dial" | "punch" | "none" (from A's log)
    strategy: str = ""
    connect_s: float | None = None      # wall time of ``rnn connect`` (CLI start included)
    time_to_direct_ms: float | None = None  # the node's own punch timing
    relayed_rtt_ms: float | None = None     # measured by the punch's CONNECT exchange
    rtts_ms: list[float] = field(default_factory=list)
    punches: list[dict[str, Any]] = field(default_factory=list)  # ``rnn peer B``'s history
    error: str = ""

    @property
    def rtt_ms(self) -> float | None:
        return statistics.median(self.rtts_ms) if self.rtts_ms else None


@dataclass
class RoundResult:
    nat_types: dict[str, str] = field(default_factory=dict)  # role -> ``rnn status`` nat_type
    to_public: dict[str, str] = field(default_factory=dict)  # role -> path it lists to pub0
    cells: list[CellResult] = field(default_factory=list)
    error: str = ""
    logs: dict[str, str] = field(default_factory=dict)


def _wait(pred: Any, timeout: float, what: str, step: float = 0.5) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(step)


def _peer_entry(node: RnnNode, peer_id: str) -> dict[str, Any] | None:
    for p in node.cli("peers", "--connected") or []:
        if p.get("peer_id") == peer_id:
            return dict(p)
    return None


def _natted_ready(node: RnnNode, nat_type: str) -> dict[str, Any] | None:
    status = node.cli("status") or {}
    if status.get("nat_type") == nat_type and status.get("relays"):
        return dict(status)
    return None


def run_round(workdir: Path, cells: list[Cell], pings: int = 5) -> RoundResult:
    """Build one lab, run ``cells`` in it, tear it down.

    Never raises for a failed cell (its result says what went wrong), only when the lab
    itself cannot be built.  Every NATed node announces on a topic of its own, so no
    discovery round dials another NATed node behind our back (between two EIM NATs such
    crossing dials can open a path by chance): only ``rnn connect`` joins a pair, through
    the peer's BEP 44 record, its relay and a punch.  NATed nodes join the two public
    nodes by address (``rnn connect HOST:PORT``).  NATed nodes are DHT read-only (BEP 43),
    as nodes nobody can reach should be: otherwise they enter each other's routing tables,
    and the DHT queries they exchange open each other's NAT filters, so a plain dial
    between two EIM hosts succeeds and the punch is never exercised.
    """
    rnd = RoundResult()
    roles = sorted({r for c in cells for r in (c.a, c.b) if r in ROLES})
    with NatLab() as lab:
        hosts: dict[str, LabHost] = {"pub0": lab.add_public_host(), "pub1": lab.add_public_host()}
        routers: dict[str, Any] = {}
        for role in roles:
            key, mode = ROLES[role]
            if key not in routers:
                routers[key] = lab.add_nat(mode)
            hosts[role] = lab.add_host_behind(routers[key])
        nodes: dict[str, RnnNode] = {}
        try:
            nodes["pub0"] = RnnNode(hosts["pub0"], workdir / "pub0", extra=("--relay",))
            boot = f"{hosts['pub0'].ip}:{nodes['pub0'].port()}"
            nodes["pub1"] = RnnNode(hosts["pub1"], workdir / "pub1", bootstrap=boot,
                                    extra=("--relay",))
            for role in roles:
                nodes[role] = RnnNode(hosts[role], workdir / role, bootstrap=boot,
                                      config=f"dht:\n  topic: rnn-natlab-{role}\n"
                                             "  read_only: true\n")
            pub1_addr = f"{hosts['pub1'].ip}:{nodes['pub1'].port()}"
            ids = {name: str(node.wait_status()["peer_id"]) for name, node in nodes.items()}
            for role in roles:
                for target in (boot, pub1_addr):
                    if nodes[role].cli("connect", target) is None:
                        raise RuntimeError(f"{role} could not connect to {target}")
            for role in roles:
                want = NAT_TYPE[ROLES[role][1]]
                st = _wait(lambda n=nodes[role], w=want: _natted_ready(n, w), 60,
                           f"{role} to detect NAT type {want} and reserve a relay")
                rnd.nat_types[role] = str(st["nat_type"])
                entry = _peer_entry(nodes[role], ids["pub0"])  # every NAT type dials out
                rnd.to_public[role] = str(entry["path"]) if entry else "not connected"
            for cell in cells:
                rnd.cells.append(_run_cell(cell, nodes[cell.a], nodes[cell.b], ids[cell.a],
                                           ids[cell.b], pings))
        except (TimeoutError, RuntimeError) as exc:
            rnd.error = str(exc)
        finally:
            for name, node in nodes.items():
                rnd.logs[name] = node.stop()
    for res in rnd.cells:
        cell = CELLS[res.cell]
        _read_log(res, rnd.logs.get(cell.a, ""), ids_short(rnd, cell))
        if res.ok and res.how != cell.punch:
            res.ok = False
            res.error = f"path came about by {res.how!r}, expected {cell.punch!r}"
    return rnd


def ids_short(rnd: RoundResult, cell: Cell) -> str:
    """B's short id (first 10 characters), as node logs print it."""
    for line in rnd.logs.get(cell.b, "").splitlines():
        m = re.search(r"node (\w{10}) started", line)
        if m:
            return m.group(1)
    return "?"


def _read_log(res: CellResult, log_a: str, b_short: str) -> None:
    res.how = "dial"
    for line in log_a.splitlines():
        if f"reached {b_short} via relay" in line:
            res.how = "none"
        m = re.search(rf"punch with {b_short}: direct at .* by ([\w-]+) in (\d+) ms", line)
        if m:
            res.how, res.strategy = "punch", m.group(1)
            res.time_to_direct_ms = float(m.group(2))
        m = re.search(rf"punch with {b_short}: attempt \d+, .* relayed rtt ([\d.]+) ms", line)
        if m:
            res.relayed_rtt_ms = float(m.group(1))
        m = re.search(rf"punch with {b_short}: stays relayed \(([\w-]+)", line)
        if m:
            res.strategy = m.group(1)


def _run_cell(cell: Cell, a: RnnNode, b: RnnNode, a_id: str, b_id: str,
              pings: int) -> CellResult:
    res = CellResult(cell.name)
    try:
        t0 = time.monotonic()
        if a.cli("connect", b_id, timeout=90) is None:
            raise RuntimeError(f"'rnn connect {b_id}' failed on {cell.a}")
        res.connect_s = time.monotonic() - t0
        entry_a = _wait(lambda: _peer_entry(a, b_id), 20, f"{cell.a} to list {cell.b}")
        res.rtts_ms = _rtts(a.cli("ping", b_id, "--count", str(pings), timeout=60))
        entry_a = _peer_entry(a, b_id) or entry_a
        entry_b = _wait(lambda: _peer_entry(b, a_id), 20, f"{cell.b} to list {cell.a}")
        res.path_a, res.path_b = str(entry_a["path"]), str(entry_b["path"])
        res.punches = list((a.cli("peer", b_id) or {}).get("punches") or [])
        res.ok = (res.path_a == cell.expected and res.path_b == cell.expected
                  and len(res.rtts_ms) == pings)
        if not res.ok:
            res.error = (f"paths {cell.a}={res.path_a} {cell.b}={res.path_b} (expected "
                         f"{cell.expected}), {len(res.rtts_ms)}/{pings} pings answered")
    except (TimeoutError, RuntimeError) as exc:
        res.error = str(exc)
    return res


def _rtts(res: Any) -> list[float]:
    """``rnn ping --json`` output: a number, a dict with ``rtt_ms`` or a list of them."""
    if isinstance(res, int | float):
        return [float(res)]
    if isinstance(res, dict):
        for key in ("rtt_ms", "rtts_ms"):
            if key in res:
                v = res[key]
                return [float(x) for x in v] if isinstance(v, list) else [float(v)]
    if isinstance(res, list):
        return [x for r in res for x in _rtts(r)]
    return []
