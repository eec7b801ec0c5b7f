"""Punch history in the store: recorded, newest first, bounded per peer."""

from __future__ import annotations

from rnn_tui.store import Store
from rnn_tui.store.punches import PunchRow, list_punches, record_punch


def row(peer: str, started: float, outcome: str = "direct") -> PunchRow:
    return PunchRow(peer, started, "plain", outcome, 0.12 if outcome == "direct" else None,
                    1, "198.51.100.2:4000" if outcome == "direct" else "",
                    "" if outcome == "direct" else "no probe answered")


def test_attempts_are_kept_newest_first_and_bounded_per_peer(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    try:
        for i in range(7):
            store.run(record_punch, store, row("peerA", float(i), "relayed" if i % 2 else "direct"),
                      keep=5)
        store.run(record_punch, store, row("peerB", 3.0), keep=5)
        a = store.run(list_punches, store, "peerA")
        assert [r.started for r in a] == [6.0, 5.0, 4.0, 3.0, 2.0]
        assert a[1].outcome == "relayed" and a[1].error == "no probe answered"
        assert a[0].time_to_direct == 0.12 and a[0].remote == "198.51.100.2:4000"
        assert [r.peer for r in store.run(list_punches, store, "peerB")] == ["peerB"]
        assert store.run(list_punches, store, "nobody") == []
    finally:
        store.close()


def test_history_survives_a_reopen(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    store.run(record_punch, store, row("peerA", 1.0))
    store.close()
    again = Store(tmp_path / "db.sqlite")
    try:
        assert again.run(list_punches, again, "peerA") == [row("peerA", 1.0)]
    finally:
        again.close()
