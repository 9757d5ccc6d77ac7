"""Schema drift: did a table's columns or types change since its previous successful run?

The signature of each successful load (column -> Arrow type of the Parquet written) is kept in
the lake beside the data, `<dataset>/_ingestion/schemas/<table>.json`, so it survives fresh
machines like the incremental cursor does.

The signature is of the SOURCE's columns in this load (`keep`): dlt's schema of an INCREMENTAL
table keeps every column it ever saw, so its Parquet still carries a dropped column (as NULLs)
and a renamed one under its old name. A rename is reported as one column removed and one added.
"""

from __future__ import annotations

import json
from typing import Any, Collection, Optional

import pyarrow as pa

SCHEMAS_FOLDER = "_ingestion/schemas"


def signature(schema: pa.Schema, keep: Optional[Collection[str]] = None) -> dict[str, str]:
    """Column name -> type, without dlt's bookkeeping columns (and only the `keep` ones, if given)."""
    return {
        f.name: str(f.type) for f in schema
        if not f.name.startswith("_dlt") and (keep is None or f.name in keep)
    }


def type_changes(drift: Optional[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """The type changes of a drift that make old and new files unreadable as one dataset (any
    change of a column's Arrow type, except from or to the `null` type of an all-NULL column)."""
    changed = (drift or {}).get("changed") or {}
    return {name: c for name, c in changed.items() if "null" not in (c["from"], c["to"])}


def file_signature(fs: Any, parquet_file: str, keep: Optional[Collection[str]] = None) -> dict[str, str]:
    """The signature of one Parquet file (only its footer is read)."""
    import pyarrow.parquet as pq

    with fs.open(parquet_file, "rb") as fh:
        return signature(pq.read_schema(fh), keep)


def _path(dataset_path: str, table: str) -> str:
    return f"{dataset_path.rstrip('/')}/{SCHEMAS_FOLDER}/{table}.json"


def stored_signature(fs: Any, dataset_path: str, table: str) -> Optional[dict[str, str]]:
    """The signature of the table's previous successful load; None before its first."""
    path = _path(dataset_path, table)
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as fh:
        return json.loads(fh.read())


def store_signature(fs: Any, dataset_path: str, table: str, current: dict[str, str]) -> None:
    """Keep `current` as the table's signature (written only when it changed)."""
    path = _path(dataset_path, table)
    if stored_signature(fs, dataset_path, table) == current:
        return
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as fh:
        fh.write(json.dumps(current, indent=1).encode())


def compare(previous: Optional[dict[str, str]], current: dict[str, str]) -> Optional[dict[str, Any]]:
    """What changed from `previous` to `current`; None when nothing did or there is no previous run."""
    if previous is None or previous == current:
        return None
    return {
        "added": sorted(set(current) - set(previous)),
        "removed": sorted(set(previous) - set(current)),
        "changed": {
            name: {"from": previous[name], "to": current[name]}
            for name in sorted(set(previous) & set(current))
            if previous[name] != current[name]
        },
    }


def record_and_compare(fs: Any, dataset_path: str, table: str, parquet_file: str) -> Optional[dict[str, Any]]:
    """Read the schema of a file just written, compare it with the stored one, store the new one.

    Args:
        fs: The destination's fsspec filesystem.
        dataset_path: The dataset folder in the bucket (as the dlt filesystem client names it).
        table: Table name.
        parquet_file: A Parquet file of this load.

    Returns:
        The drift (see `compare`), or None.
    """
    current = file_signature(fs, parquet_file)
    previous = stored_signature(fs, dataset_path, table)
    if previous != current:
        store_signature(fs, dataset_path, table, current)
    return compare(previous, current)
