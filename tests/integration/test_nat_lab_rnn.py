"""The issue's NAT matrix with real ``rnn start --headless`` processes (the product itself).

One NAT lab per round (``tests/netlab/rnn_cells.py``): two public nodes (``pub0`` is the
DHT bootstrap, both run ``--relay``), an EIM router with two hosts, another EIM router, two
symmetric routers.  Every NATed node must show its NAT type in ``rnn status --json`` and
hold a relay; then each cell joins a fresh pair with ``rnn connect PEER_ID`` (BEP 44 record
→ direct dial, else the peer's relay and a punch), pings across it, and both ends must list
the expected path in ``rnn peers --json``:

| cell | expected |
|---|---|
| public ↔ NAT (NAT side dials) | direct, by a plain dial |
| EIM ↔ EIM | direct, by a punch over the relayed connection |
| EIM ↔ symmetric | direct, by a birthday punch |
| symmetric ↔ symmetric | relayed, pings answered over the relay |
| same NAT | direct, on the LAN address from the record |

Rounds: ``RNN_NAT_LAB_RUNS`` (default 1; the benchmark runs ≥ 10).  A separate test floods
a real relay node with reservations from more peers than its limit.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.netlab.lab import lab_unavailable_reason
from tests.netlab.rnn_cells import CELLS, NAT_TYPE, ROLES, run_round

pytestmark = [
    pytest.mark.integration,
    pytest.mark.netns,
    pytest.mark.slow,
    pytest.mark.skipif(lab_unavailable_reason() is not None,
                       reason=lab_unavailable_reason() or ""),
]

RUNS = int(os.environ.get("RNN_NAT_LAB_RUNS", "1"))


@pytest.mark.timeout(240 * RUNS)
def test_the_nat_matrix_with_real_nodes(tmp_path: Path) -> None:
    failures = []
    for n in range(RUNS):
        rnd = run_round(tmp_path / f"round{n}", list(CELLS.values()))
        assert not rnd.error, rnd.error + "\n" + "\n".join(
            f"===== {k}\n{v[-4000:]}" for k, v in rnd.logs.items())
        for role, nat_type in rnd.nat_types.items():
            assert nat_type == NAT_TYPE[ROLES[role][1]], (role, nat_type)
        # Behind either NAT type, the node's own dial to a public node is direct.
        assert rnd.to_public == {role: "direct" for role in rnd.nat_types}, rnd.to_public
        assert [c.cell for c in rnd.cells] == list(CELLS)
        failures += [f"round {n} {c.cell}: {c.error}" for c in rnd.cells if not c.ok]
        for c in rnd.cells:  # the punch history is stored and shown by ``rnn peer``
            if c.ok and CELLS[c.cell].punch == "punch":
                won = [p for p in c.punches if p["outcome"] == "direct"]
                assert won and won[0]["time_to_direct"] > 0 and won[0]["remote"], c.punches
            if c.ok and CELLS[c.cell].punch == "dial":
                assert c.punches == [], c.punches
        for log in rnd.logs.values():
            assert "Traceback" not in log, log
    assert not failures, "\n".join(failures)
