"""Persistence: peewee on SQLite.  Only this package imports peewee.

Repositories return frozen domain dataclasses; rows never leave ``store/``.
"""

from rnn_tui.store.db import Store
from rnn_tui.store.records import DhtNodeRecord, PeerRecord

__all__ = ["Store", "PeerRecord", "DhtNodeRecord"]
