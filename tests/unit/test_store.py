from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from rnn_tui.errors import StoreError
from rnn_tui.store import DhtNodeRecord, Store
from rnn_tui.store.migrations import LATEST, MIGRATIONS


def test_fresh_database_is_at_latest_version_with_wal(tmp_path: Path) -> None:
    store = Store(tmp_path / "node.db")
    try:
        assert store.schema_version == LATEST
        mode = store.run(lambda: store._db.execute_sql("PRAGMA journal_mode").fetchone()[0])
        sync = store.run(lambda: store._db.execute_sql("PRAGMA synchronous").fetchone()[0])
        assert mode == "wal" and sync == 1  # NORMAL
    finally:
        store.close()


def _make_v1(path: Path) -> None:
    con = sqlite3.connect(path)
    for sql in MIGRATIONS[0][2]:
        con.execute(sql)
    con.execute("PRAGMA user_version = 1")
    con.execute("INSERT INTO peers (peer_id, addresses, first_seen, last_seen) VALUES (?, '[\"1.2.3.4:5\"]', 1, 2)",
                (b"p" * 32,))
    con.commit()
    con.close()


def test_migrates_an_older_database_keeping_its_data(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    _make_v1(db)
    store = Store(db)
    try:
        assert store.schema_version == LATEST
        peer = store.run(store.get_peer, b"p" * 32)
        assert peer is not None and peer.addresses == ("1.2.3.4:5",) and peer.metadata is None
        store.run(store.upsert_peer, b"p" * 32, metadata={"v": 1}, metadata_seq=3)
        assert store.run(store.get_peer, b"p" * 32).metadata_seq == 3
    finally:
        store.close()


def test_newer_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version = {LATEST + 1}")
    con.close()
    with pytest.raises(StoreError, match="newer than this build"):
        Store(db)


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open database"):
        Store(db)
    assert db.read_bytes() == b"this is not sqlite" * 100


def test_peers_dht_nodes_settings_services_workflows(tmp_path: Path) -> None:
    store = Store(tmp_path / "node.db")
    try:
        pid = b"a" * 32
        store.run(store.upsert_peer, pid, addresses=["127.0.0.1:1"], rtt_ms=2.5)
        store.run(store.upsert_peer, pid, addresses=["127.0.0.1:2"])
        rec = store.run(store.get_peer, pid)
        assert rec.addresses == ("127.0.0.1:2", "127.0.0.1:1") and rec.rtt_ms == 2.5
        store.run(store.upsert_peer, pid, failed=True)
        assert store.run(store.get_peer, pid).failures == 1
        # metadata with an older seq never replaces a newer one
        store.run(store.upsert_peer, pid, metadata={"n": 2}, metadata_seq=2)
        store.run(store.upsert_peer, pid, metadata={"n": 1}, metadata_seq=1)
        assert store.run(store.get_peer, pid).metadata == {"n": 2}

        nodes = [DhtNodeRecord(i.to_bytes(20, "big"), "127.0.0.1", 1000 + i, float(i)) for i in range(300)]
        assert store.run(store.save_dht_nodes, nodes) == 300
        assert len(store.run(store.load_dht_nodes)) == 300

        assert store.run(store.next_counter, "metadata_seq") == 1
        assert store.run(store.next_counter, "metadata_seq", 10) == 10
        assert store.run(store.next_counter, "metadata_seq") == 11

        store.run(store.put_service, "svc1", name="wc", kind="DOCKER", owner="me", version="1",
                  spec={"image": "x"})
        assert store.run(store.get_service, "svc1").body == {"image": "x"}
        assert store.run(store.delete_service, "svc1") and store.run(store.get_service, "svc1") is None

        store.run(store.put_workflow, "wf", "name: wf\n")
        assert store.run(store.get_workflow, "wf") == "name: wf\n"
        assert [n for n, _ in store.run(store.list_workflows)] == ["wf"]
    finally:
        store.close()


async def test_async_calls_run_on_the_db_thread(tmp_path: Path) -> None:
    import threading

    store = Store(tmp_path / "node.db")
    try:
        main = threading.get_ident()
        ident = await store.call(threading.get_ident)
        assert ident != main
        await store.call(store.set_setting, "k", "v")
        assert await store.call(store.get_setting, "k") == "v"
    finally:
        store.close()
    with pytest.raises(StoreError, match="closed"):
        store.run(store.get_setting, "k")


def test_failed_transaction_leaves_nothing_half_written(tmp_path: Path) -> None:
    store = Store(tmp_path / "node.db")
    try:
        def half() -> None:
            store.set_setting("a", "1")
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            store.run(half)
        assert store.run(store.get_setting, "a") is None
    finally:
        store.close()


def test_two_stores_in_one_process_do_not_share_models(tmp_path: Path) -> None:
    a, b = Store(tmp_path / "a.db"), Store(tmp_path / "b.db")
    try:
        a.run(a.set_setting, "who", "a")
        b.run(b.set_setting, "who", "b")
        assert a.run(a.get_setting, "who") == "a" and b.run(b.get_setting, "who") == "b"
    finally:
        a.close()
        b.close()
