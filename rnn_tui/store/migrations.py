"""Forward-only schema migrations, tracked in SQLite's ``PRAGMA user_version``.

Why raw SQL instead of ``create_tables`` from the models: a migration must create the
schema *as it was at that version*, forever, even after the models move on.  Each step
runs in one transaction with the version bump, so a crash mid-migration leaves the old
version intact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "settings and known peers", [
        """CREATE TABLE settings (
            key TEXT PRIMARY KEY NOT NULL,
            value TEXT NOT NULL)""",
        """CREATE TABLE peers (
            peer_id BLOB PRIMARY KEY NOT NULL,
            addresses TEXT NOT NULL DEFAULT '[]',
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL,
            rtt_ms REAL,
            failures INTEGER NOT NULL DEFAULT 0,
            blocked INTEGER NOT NULL DEFAULT 0)""",
    ]),
    (2, "peer metadata, DHT routing table, services", [
        "ALTER TABLE peers ADD COLUMN metadata TEXT",
        "ALTER TABLE peers ADD COLUMN metadata_seq INTEGER",
        """CREATE TABLE dht_nodes (
            node_id BLOB PRIMARY KEY NOT NULL,
            host TEXT NOT NULL,
            port INTEGER NOT NULL,
            last_seen REAL NOT NULL)""",
        """CREATE TABLE services (
            id TEXT PRIMARY KEY NOT NULL,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            owner TEXT NOT NULL,
            version TEXT NOT NULL DEFAULT '',
            spec TEXT NOT NULL,
            created REAL NOT NULL,
            updated REAL NOT NULL)""",
        "CREATE INDEX services_name ON services (name)",
    ]),
    (3, "workflows, runs, jobs, transfers, receipts", [
        """CREATE TABLE workflows (
            name TEXT PRIMARY KEY NOT NULL,
            yaml TEXT NOT NULL,
            created REAL NOT NULL,
            updated REAL NOT NULL)""",
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY NOT NULL,
            workflow_name TEXT NOT NULL,
            state TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            spec TEXT NOT NULL,
            created REAL NOT NULL,
            updated REAL NOT NULL)""",
        """CREATE TABLE jobs (
            run_id TEXT NOT NULL,
            name TEXT NOT NULL,
            state TEXT NOT NULL,
            executor TEXT NOT NULL DEFAULT '',
            reason TEXT NOT NULL DEFAULT '',
            spec TEXT NOT NULL DEFAULT '{}',
            updated REAL NOT NULL,
            PRIMARY KEY (run_id, name))""",
        """CREATE TABLE transfers (
            id TEXT PRIMARY KEY NOT NULL,
            run_id TEXT NOT NULL,
            job TEXT NOT NULL,
            peer TEXT NOT NULL,
            direction TEXT NOT NULL,
            object_hash TEXT NOT NULL DEFAULT '',
            size INTEGER NOT NULL DEFAULT 0,
            verified_chunks INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL,
            updated REAL NOT NULL)""",
        """CREATE TABLE receipts (
            id TEXT PRIMARY KEY NOT NULL,
            run_id TEXT NOT NULL,
            job TEXT NOT NULL,
            executor TEXT NOT NULL,
            body BLOB NOT NULL,
            signature BLOB NOT NULL,
            verified INTEGER NOT NULL DEFAULT 0,
            created REAL NOT NULL)""",
        "CREATE INDEX receipts_run ON receipts (run_id)",
        "CREATE INDEX jobs_run ON jobs (run_id)",
    ]),
    (4, "hole-punch attempts (bounded per peer)", [
        """CREATE TABLE punch_attempts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            peer TEXT NOT NULL,
            started REAL NOT NULL,
            strategy TEXT NOT NULL,
            outcome TEXT NOT NULL,
            time_to_direct REAL,
            attempts INTEGER NOT NULL DEFAULT 0,
            remote TEXT NOT NULL DEFAULT '',
            error TEXT NOT NULL DEFAULT '')""",
        "CREATE INDEX punch_attempts_peer ON punch_attempts (peer, started)",
    ]),
    (5, "jobs this node holds as an executor (restart recovery)", [
        """CREATE TABLE executor_jobs (
            run_id TEXT NOT NULL,
            job TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            requester TEXT NOT NULL,
            job_id TEXT NOT NULL,
            service TEXT NOT NULL,
            state TEXT NOT NULL,
            routing TEXT NOT NULL DEFAULT '{}',
            updated REAL NOT NULL,
            PRIMARY KEY (run_id, job))""",
    ]),
]

LATEST = MIGRATIONS[-1][0]


def current_version(execute: Callable[[str], Any]) -> int:
    return int(execute("PRAGMA user_version").fetchone()[0])


def migrate(db: Any, target: int = LATEST) -> list[int]:
    """Apply every migration above the database's version up to ``target``.

    ``db`` is a peewee ``Database``.  Returns the versions applied.  A database newer than
    this build is refused rather than silently misread.
    """
    from rnn_tui.errors import StoreError

    version = current_version(db.execute_sql)
    if version > LATEST:
        raise StoreError(
            f"{db.database}: database schema version {version} is newer than this build "
            f"understands ({LATEST}); upgrade rnn"
        )
    applied = []
    for number, _title, statements in MIGRATIONS:
        if number <= version or number > target:
            continue
        with db.atomic():
            for sql in statements:
                db.execute_sql(sql)
            db.execute_sql(f"PRAGMA user_version = {number}")
        applied.append(number)
    return applied
