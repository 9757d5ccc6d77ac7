"""The lake: its layout, its file format, and every operation on it (load staging, commit,
recovery, split publish, drift read-back, pre-flight). docs/lake-protocol.md says what a reader
may rely on.

`TableLake` is the one interface the runner and the split steps use: a per-table lock,
attempt-scoped staging, the commit (journal + idempotent roll-forward), recovery, the publish of
a split table's slices, and the table's data and records. Modules, one job each:

- `layout`: the root (`bucket_url`), the day folders and the bookkeeping folders;
- `format`: the file format (Parquet), the one module to change for another one;
- `store`: the few storage operations, on a local folder or an Azure container;
- `lock`, `protocol`: the table lock, and `TableLake` (staging, journal, commit, recovery);
- `drift`: schema signatures of the loaded files, and the type changes a load must not make;
- `destination`: dlt's filesystem destination for one attempt; `azure`: bounded adlfs calls;
- `preflight`: prove the lake reachable and writable before any job runs.

May import: the standard library, dlt, pyarrow, the Azure SDKs and `shared.storage`,
`shared.settings` and `shared.redaction`; nothing of the runner, the steps, the workbook or the Functions modules.
"""

from shared.lake import drift
from shared.lake.format import FILE_FORMAT, TABLE_HINTS
from shared.lake.layout import bucket_url, date_folder
from shared.lake.lock import LockLost, LockTimeout
from shared.lake.preflight import PreflightError, check_lake
from shared.lake.protocol import APPEND, REPLACE, CommitError, TableLake
from shared.lake.store import StoreError, open_store

__all__ = ["APPEND", "FILE_FORMAT", "REPLACE", "TABLE_HINTS", "CommitError", "LockLost", "LockTimeout",
           "PreflightError", "StoreError", "TableLake", "bucket_url", "check_lake", "date_folder", "drift",
           "open_store"]
