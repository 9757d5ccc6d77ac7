"""dlt's Arrow-to-Parquet writer, dictionary-encoding only the columns whose dictionary would fit.

A Parquet writer tries a dictionary for every column and falls back to plain encoding in each row
group once the dictionary page outgrows its limit (Arrow: 1 MiB). On nearly unique columns
(comments, prices, order keys) the attempt is pure cost: on TPC-H lineitem (250,000-row groups)
it was a third of the writer's CPU, and the fallback pages are what plain encoding writes anyway.
`LakeParquetWriter` estimates each column's distinct values from a sample of the rows of the
file's first row group and asks Arrow for a dictionary only where it would fit; the choice holds
for the whole file. Columns it keeps behave exactly as before (Arrow still falls back if a later
row group outgrows the limit), and every file stays plain Parquet that any reader opens.

dlt picks writers from its registry (`dlt.common.data_writers.writers.WRITER_SPECS`) by file and
item format; `install()` puts this writer in place of dlt's own for Parquet from Arrow items.
"""

from __future__ import annotations

import math
from typing import Any, Sequence, Union

import pyarrow as pa
from dlt.common.data_writers.writers import WRITER_SPECS, ArrowToParquetWriter

DICTIONARY_PAGE_LIMIT = 1024 * 1024
"""Arrow's default `dictionary_pagesize_limit` (dlt does not set it): beyond it Arrow falls back."""
SAMPLE_ROWS = 8192
"""Rows sampled (evenly spread) to estimate each column's distinct values."""


def dictionary_columns(
    items: Sequence[Union[pa.Table, pa.RecordBatch]], limit: int = DICTIONARY_PAGE_LIMIT, sample_rows: int = SAMPLE_ROWS,
) -> Union[list[str], bool]:
    """Names of the columns whose dictionary is estimated to fit `limit` bytes in one row group.

    Args:
        items: The Arrow tables or batches written together as one row group.
        limit: The dictionary page limit in bytes.
        sample_rows: How many rows to sample; all rows when there are no more than this.

    Returns:
        The column names, or True (every column, Arrow's default) when the items cannot be
        sampled together, hold nested columns (their dictionaries are per leaf, not per name) or
        string or binary views.
    """
    schema = items[0].schema if items else None
    if schema is None or any(not item.schema.equals(schema) for item in items):
        return True
    if any(pa.types.is_nested(f.type) or pa.types.is_dictionary(f.type) or _is_view(f.type) for f in schema):
        return True
    table = pa.Table.from_batches([b for item in items for b in _batches(item)], schema=schema)
    rows = table.num_rows
    if rows <= sample_rows:
        sample, sampled_all = table, True
    else:
        step = rows / sample_rows
        sample, sampled_all = table.take(pa.array([int(i * step) for i in range(sample_rows)])), False
    return [f.name for f in schema if _estimated_bytes(sample.column(f.name), rows, sampled_all) <= limit]


def _is_view(kind: pa.DataType) -> bool:
    """String and binary views: Arrow's `take` has no kernel for them, so they are not sampled."""
    return pa.types.is_string_view(kind) or pa.types.is_binary_view(kind)


def _batches(item: Union[pa.Table, pa.RecordBatch]) -> list[pa.RecordBatch]:
    return item.to_batches() if isinstance(item, pa.Table) else [item]


def _estimated_bytes(values: pa.ChunkedArray, rows: int, sampled_all: bool) -> float:
    """Estimated size of the column's dictionary: distinct values (Chao1 from the sample's
    singletons and doubletons, at most `rows`) times the bytes of one plain-encoded value."""
    import pyarrow.compute as pc

    counts = pc.value_counts(values.drop_null()).field("counts")
    distinct = float(len(counts))
    if not sampled_all and distinct:
        ones = pc.sum(pc.equal(counts, 1)).as_py() or 0
        twos = pc.sum(pc.equal(counts, 2)).as_py() or 0
        distinct = min(float(rows), distinct + ones * (ones - 1) / (2 * (twos + 1)))
    return distinct * _value_bytes(values)


def _value_bytes(values: pa.ChunkedArray) -> float:
    """Bytes of one value in a plain-encoded dictionary page."""
    kind = values.type
    if pa.types.is_decimal(kind):
        return math.ceil((kind.precision * math.log2(10) + 1) / 8)  # Parquet's fixed-length decimal
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind) \
            or pa.types.is_large_binary(kind):
        import pyarrow.compute as pc

        present = len(values) - values.null_count
        total = pc.sum(pc.binary_length(values)).as_py() or 0
        return 4 + total / max(1, present)  # a 4-byte length before each value
    try:
        return max(1, kind.bit_width // 8)
    except ValueError:  # no fixed width and no values to size (Arrow's null type)
        return 1


class LakeParquetWriter(ArrowToParquetWriter):
    """dlt's `ArrowToParquetWriter` that asks for dictionaries only where they would fit."""

    _dictionary: Union[list[str], bool] = True

    def write_data(self, items: Sequence[Any]) -> None:
        if not self.writer and items:
            self._dictionary = dictionary_columns(items)
        super().write_data(items)

    def _create_writer(self, schema: pa.Schema) -> Any:
        import pyarrow.parquet as pq

        # dlt's own keyword arguments (ParquetDataWriter._create_writer), plus the dictionary columns.
        fmt = self.parquet_format
        kwargs: dict[str, Any] = {
            "flavor": fmt.flavor,
            "version": fmt.version,
            "compression": fmt.compression,
            "data_page_size": fmt.data_page_size,
            "coerce_timestamps": fmt.coerce_timestamps,
            "allow_truncated_timestamps": fmt.allow_truncated_timestamps,
            "use_compliant_nested_type": fmt.use_compliant_nested_type,
            "write_page_index": fmt.write_page_index,
        }
        if int(pa.__version__.split(".")[0]) >= 21:
            kwargs["use_content_defined_chunking"] = fmt.use_content_defined_chunking
        dictionary = self._dictionary
        if isinstance(dictionary, list):
            dictionary = [name for name in dictionary if name in schema.names]
        return pq.ParquetWriter(self._f, schema, use_dictionary=dictionary, **kwargs)


def install() -> None:
    """Make dlt write Parquet from Arrow items with `LakeParquetWriter` (idempotent: one dict
    store of the same value, so no lock is needed)."""
    WRITER_SPECS[ArrowToParquetWriter.writer_spec()] = LakeParquetWriter
