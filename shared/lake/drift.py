"""Schema drift: did a table's columns or types change since its previous successful run?

The signature of each successful load (column -> Arrow type of the data file written) is kept in
the lake beside the data, `<source>/_ingestion/schemas/<table>.json`, so it survives fresh
machines like the incremental cursor does. Files are read back through the lake's store
(`TableLake.store`) and format (`shared.lake.format`), for staged and published files alike.

The signature is of the SOURCE's columns in this load (`keep`): dlt's schema of an INCREMENTAL
table keeps every column it ever saw, so its Parquet still carries a dropped column (as NULLs)
and a renamed one under its old name. A rename is reported as one column removed and one added.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Collection, Optional

import pyarrow as pa

from shared.lake import format as file_format

if TYPE_CHECKING:
    from shared.lake.protocol import TableLake


class SchemaChangeError(Exception):
    """A column changed type and the table's old files would stay beside the new ones; nothing
    was loaded. Retrying will not help."""


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


def file_signature(lake: "TableLake", path: str, keep: Optional[Collection[str]] = None) -> dict[str, str]:
    """The signature of one data file (`path` relative to the lake root)."""
    return signature(file_format.columns(lake.store, path), keep)


def stored_signature(lake: "TableLake", table: str) -> Optional[dict[str, str]]:
    """The signature of the table's previous successful load; None before its first."""
    data = lake.store.read(lake.schema_path(table))
    return None if data is None else json.loads(data)


def store_signature(lake: "TableLake", table: str, current: dict[str, str]) -> None:
    """Keep `current` as the table's signature (written only when it changed)."""
    if stored_signature(lake, table) == current:
        return
    lake.store.write(lake.schema_path(table), json.dumps(current, indent=1).encode())


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


def staged_drift(
    lake: "TableLake", files: list[dict[str, str]], keep: Optional[Collection[str]],
) -> tuple[dict[str, dict[str, str]], dict[str, Any]]:
    """The signature of each table an attempt staged, and the drift since the previous load.

    Args:
        lake: The job's lake table.
        files: The attempt's staged files (`TableLake.staged_files`).
        keep: The source's columns (lake names) of the job's own table; None: every column.

    Returns:
        `(signatures, drift)`, per table name; the drift holds only the tables that changed.
    """
    first: dict[str, str] = {}
    for entry in files:
        first.setdefault(entry["t"], entry["src"])
    signatures: dict[str, dict[str, str]] = {}
    drift: dict[str, Any] = {}
    for name, src in first.items():
        signatures[name] = file_signature(lake, src, keep if name == lake.table else None)
        change = compare(stored_signature(lake, name), signatures[name])
        if change:
            drift[name] = change
    return signatures, drift


def refuse_type_changes(lake: "TableLake", drift: dict[str, Any], except_day: Optional[str]) -> None:
    """Refuse a load that would leave files of a column's old type beside the new ones.

    Args:
        lake: The job's lake table.
        drift: The load's drift (`staged_drift`).
        except_day: The day a FULL load replaces (its old files do not stay); None for INCREMENTAL.

    Raises:
        SchemaChangeError: A column changed type and the table has files in another day folder.
    """
    for name, change in drift.items():
        changed = type_changes(change)
        if changed and lake.has_data(name, except_day=except_day):
            shown = ", ".join(f"{c} {v['from']} -> {v['to']}" for c, v in list(changed.items())[:5])
            raise SchemaChangeError(
                f"schema change: column type changed in {lake.source}/{name} since the previous load "
                f"({shown}); files of both types could not be read as one dataset, so nothing was loaded: move "
                "the table's earlier files aside (README: Schema changes) and run again"
            )


def record_and_compare(lake: "TableLake", table: str, path: str) -> Optional[dict[str, Any]]:
    """Read the schema of a file just published, compare it with the stored one, store the new one.

    Args:
        lake: The lake table.
        table: Table name (the job's own or a child table).
        path: A data file of this load, relative to the lake root.

    Returns:
        The drift (see `compare`), or None.
    """
    current = file_signature(lake, path)
    previous = stored_signature(lake, table)
    if previous != current:
        store_signature(lake, table, current)
    return compare(previous, current)
