"""The lake's file format: Parquet. The one module to change for another file format.

It names the format dlt writes (`FILE_FORMAT`, `TABLE_HINTS`) and reads a data file's columns
back (`columns`), which is all the rest of the code knows about the files themselves. A table
format (Delta, Iceberg) changes this module and, having its own commit log, how a day is made
visible (`TableLake._publish_day`, `shared.lake.protocol`).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

FILE_FORMAT = "parquet"
"""dlt's `loader_file_format` of every load (and the data files' extension in the layout)."""
TABLE_HINTS: dict[str, Any] = {}
"""dlt resource hints the format needs: none for plain files (a table format sets `table_format`)."""


def columns(store: Any, path: str) -> pa.Schema:
    """The Arrow schema of one data file in the lake (a Parquet file: only its footer is read).

    Args:
        store: The lake's store (`shared.lake.store`).
        path: The file, relative to the lake root.
    """
    import pyarrow.parquet as pq

    with store.open(path) as fh:
        return pq.read_schema(fh)
