"""Schema drift: did a table's columns or types change since its previous successful run?

The signature of each successful load (column -> Arrow type of the Parquet written) is kept in
the lake beside the data, `<dataset>/_ingestion/schemas/<table>.json`, so it survives fresh
machines like the incremental cursor does.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import pyarrow as pa

SCHEMAS_FOLDER = "_ingestion/schemas"


def signature(schema: pa.Schema) -> dict[str, str]:
    """Column name -> type, without dlt's bookkeeping columns."""
    return {f.name: str(f.type) for f in schema if not f.name.startswith("_dlt")}


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
    import pyarrow.parquet as pq

    with fs.open(parquet_file, "rb") as fh:
        current = signature(pq.read_schema(fh))
    path = f"{dataset_path.rstrip('/')}/{SCHEMAS_FOLDER}/{table}.json"
    previous = None
    if fs.exists(path):
        with fs.open(path, "rb") as fh:
            previous = json.loads(fh.read())
    if previous != current:
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(path, "wb") as fh:
            fh.write(json.dumps(current, indent=1).encode())
    return compare(previous, current)
