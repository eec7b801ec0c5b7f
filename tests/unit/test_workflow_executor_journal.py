"""The executor's journal of held jobs in the store, and what it says about a lost job."""

from __future__ import annotations

from pathlib import Path

from rnn_tui.store import Store
from rnn_tui.store import runs as R
from rnn_tui.workflow.executor_journal import lost_reason as _lost_reason


def _row(job: str, attempt: int, state: str = "accepted", updated: float = 1.0) -> R.ExecutorJobRow:
    return R.ExecutorJobRow("run1", job, attempt, "requester-id", f"run1-{job}-{attempt}",
                            "busybox", state, {"outputs": [[0, "STDOUT", "peer"]]}, updated)


def test_journal_rows_round_trip_and_a_new_attempt_replaces_the_old(tmp_path: Path) -> None:
    store = Store(tmp_path / "node.db")
    try:
        store.run(R.save_executor_job, store, _row("a", 1))
        store.run(R.save_executor_job, store, _row("b", 1, "running", 2.0))
        store.run(R.save_executor_job, store, _row("a", 1, "running", 3.0))
        rows = store.run(R.list_executor_jobs, store)
        assert [(r.job, r.attempt, r.state) for r in rows] == [("b", 1, "running"),
                                                                ("a", 1, "running")]
        assert rows[0].routing == {"outputs": [[0, "STDOUT", "peer"]]}
        # attempt 2 of a replaces attempt 1; forgetting attempt 1 late keeps attempt 2
        store.run(R.save_executor_job, store, _row("a", 2, "accepted", 4.0))
        store.run(R.forget_executor_job, store, "run1", "a", 1)
        assert [(r.job, r.attempt) for r in store.run(R.list_executor_jobs, store)] == [
            ("b", 1), ("a", 2)]
        store.run(R.forget_executor_job, store, "run1", "a", 2)
        store.run(R.forget_executor_job, store, "run1", "b", 1)
        assert store.run(R.list_executor_jobs, store) == []
    finally:
        store.close()


def test_the_journal_survives_a_reopen(tmp_path: Path) -> None:
    store = Store(tmp_path / "node.db")
    store.run(R.save_executor_job, store, _row("a", 1, "running"))
    store.close()
    store = Store(tmp_path / "node.db")
    try:
        (row,) = store.run(R.list_executor_jobs, store)
        assert (row.job_id, row.state) == ("run1-a-1", "running")
    finally:
        store.close()


def test_lost_reasons_say_what_became_of_the_container() -> None:
    assert "before the job started" in _lost_reason("accepted", None)
    assert "delivering the outputs" in _lost_reason("delivering", None)
    assert _lost_reason("running", None).endswith("container lost")
    running = _lost_reason("running", {"Status": "running", "Running": True})
    assert "still running: stopped and removed" in running
    exited = _lost_reason("running", {"Status": "exited", "Running": False, "ExitCode": 0})
    assert "exited with code 0 but its output was not captured" in exited
    assert "engine down" in _lost_reason("running", {"Error": "engine down"})


def test_executor_job_ids_never_collide_for_names_that_sanitise_alike() -> None:
    from rnn_tui.identity.keys import Identity
    from rnn_tui.workflow.executor_journal import executor_job_id

    peer = Identity.generate().peer_id
    replica = executor_job_id(peer, "run1", "calc#2", 1)
    plain = executor_job_id(peer, "run1", "calc_2", 1)
    assert replica != plain
    assert replica.startswith("run1-calc_2-1-") and plain.startswith("run1-calc_2-1-")
    long_a = executor_job_id(peer, "r", "x" * 200 + "a", 1)
    long_b = executor_job_id(peer, "r", "x" * 200 + "b", 1)
    assert long_a != long_b and len(long_a) <= 128
    assert executor_job_id(peer, "run1", "calc#2", 1) == replica  # stable across restarts
