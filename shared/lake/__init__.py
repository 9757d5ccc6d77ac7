"""The lake: where loads land, how they become visible, and how crashes are recovered.

`TableLake` is the one interface the runner and the split steps use: a per-table lock,
attempt-scoped staging, the commit (journal + idempotent roll-forward) and recovery. The
protocol and what a reader may rely on are described in docs/lake-protocol.md.
"""

from shared.lake.lock import LockLost, LockTimeout
from shared.lake.protocol import APPEND, REPLACE, CommitError, TableLake
from shared.lake.store import StoreError, open_store

__all__ = ["APPEND", "REPLACE", "CommitError", "LockLost", "LockTimeout", "StoreError", "TableLake", "open_store"]
