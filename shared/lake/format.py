"""The lake's file format: Parquet. The one module to change for another format (Delta, Iceberg).

It names the format dlt writes (`FILE_FORMAT`) and reads a data file's columns back
(`columns`), which is all the rest of the lake needs to know about the files themselves.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

FILE_FORMAT = "parquet"
"""dlt's `loader_file_format` of every load (and the data files' extension in the layout)."""


def columns(store: Any, path: str) -> pa.Schema:
    """The Arrow schema of one data file in the lake (a Parquet file: only its footer is read).

    Args:
        store: The lake's store (`shared.lake.store`).
        path: The file, relative to the lake root.
    """
    import pyarrow.parquet as pq

    with store.open(path) as fh:
        return pq.read_schema(fh)
