"""peewee models mirroring the latest schema in ``migrations.py`` (which creates the tables).

Why a factory: several nodes may live in one process (simulations, tests), each with its own
database on its own DB thread.  peewee binds models to a database globally, so each Store
gets its own set of model classes from ``bind_models(db)``.
"""

from __future__ import annotations

from types import SimpleNamespace

import peewee as pw


def bind_models(db: pw.Database) -> SimpleNamespace:
    class _Base(pw.Model):
        class Meta:
            database = db
            legacy_table_names = False


    class Setting(_Base):
        key = pw.TextField(primary_key=True)
        value = pw.TextField()

        class Meta:
            table_name = "settings"


    class Peer(_Base):
        peer_id = pw.BlobField(primary_key=True)
        addresses = pw.TextField(default="[]")
        first_seen = pw.FloatField()
        last_seen = pw.FloatField()
        rtt_ms = pw.FloatField(null=True)
        failures = pw.IntegerField(default=0)
        blocked = pw.IntegerField(default=0)
        metadata = pw.TextField(null=True)
        metadata_seq = pw.IntegerField(null=True)

        class Meta:
            table_name = "peers"


    class DhtNode(_Base):
        node_id = pw.BlobField(primary_key=True)
        host = pw.TextField()
        port = pw.IntegerField()
        last_seen = pw.FloatField()

        class Meta:
            table_name = "dht_nodes"


    class Service(_Base):
        id = pw.TextField(primary_key=True)
        name = pw.TextField()
        kind = pw.TextField()
        owner = pw.TextField()
        version = pw.TextField(default="")
        spec = pw.TextField()
        created = pw.FloatField()
        updated = pw.FloatField()

        class Meta:
            table_name = "services"


    class WorkflowRow(_Base):
        name = pw.TextField(primary_key=True)
        yaml = pw.TextField()
        created = pw.FloatField()
        updated = pw.FloatField()

        class Meta:
            table_name = "workflows"


    class Run(_Base):
        id = pw.TextField(primary_key=True)
        workflow_name = pw.TextField()
        state = pw.TextField()
        reason = pw.TextField(default="")
        spec = pw.TextField()
        created = pw.FloatField()
        updated = pw.FloatField()

        class Meta:
            table_name = "runs"


    class Job(_Base):
        run_id = pw.TextField()
        name = pw.TextField()
        state = pw.TextField()
        executor = pw.TextField(default="")
        reason = pw.TextField(default="")
        spec = pw.TextField(default="{}")
        updated = pw.FloatField()

        class Meta:
            table_name = "jobs"
            primary_key = pw.CompositeKey("run_id", "name")


    class Transfer(_Base):
        id = pw.TextField(primary_key=True)
        run_id = pw.TextField()
        job = pw.TextField()
        peer = pw.TextField()
        direction = pw.TextField()
        object_hash = pw.TextField(default="")
        size = pw.IntegerField(default=0)
        verified_chunks = pw.IntegerField(default=0)
        state = pw.TextField()
        updated = pw.FloatField()

        class Meta:
            table_name = "transfers"


    class Receipt(_Base):
        id = pw.TextField(primary_key=True)
        run_id = pw.TextField()
        job = pw.TextField()
        executor = pw.TextField()
        body = pw.BlobField()
        signature = pw.BlobField()
        verified = pw.IntegerField(default=0)
        created = pw.FloatField()

        class Meta:
            table_name = "receipts"

    class PunchAttempt(_Base):
        id = pw.AutoField()
        peer = pw.TextField()
        started = pw.FloatField()
        strategy = pw.TextField()
        outcome = pw.TextField()
        time_to_direct = pw.FloatField(null=True)
        attempts = pw.IntegerField(default=0)
        remote = pw.TextField(default="")
        error = pw.TextField(default="")

        class Meta:
            table_name = "punch_attempts"

    class ExecutorJob(_Base):
        run_id = pw.TextField()
        job = pw.TextField()
        attempt = pw.IntegerField()
        requester = pw.TextField()
        job_id = pw.TextField()
        service = pw.TextField()
        state = pw.TextField()
        routing = pw.TextField(default="{}")
        updated = pw.FloatField()

        class Meta:
            table_name = "executor_jobs"
            primary_key = pw.CompositeKey("run_id", "job")

    return SimpleNamespace(
        Setting=Setting, Peer=Peer, DhtNode=DhtNode, Service=Service, WorkflowRow=WorkflowRow,
        Run=Run, Job=Job, Transfer=Transfer, Receipt=Receipt, ExecutorJob=ExecutorJob,
        PunchAttempt=PunchAttempt,
    )
