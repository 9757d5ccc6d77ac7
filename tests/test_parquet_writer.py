"""The lake's Parquet writer: dictionaries only for columns whose dictionary fits, files otherwise
as dlt's own writer makes them, and a real PostgreSQL job landing with those encodings."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from shared.lake.parquet_writer import SAMPLE_ROWS, LakeParquetWriter, dictionary_columns
from shared.runner import run_job
from shared.workbook.models import Job


def mixed_table(rows: int) -> pa.Table:
    """Low-cardinality columns of every common kind, and nearly unique ones."""
    ids = range(rows)
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "flag": pa.array(["AFRN"[i % 4] for i in ids]),
        "quantity": pa.array([Decimal(i % 50) for i in ids], pa.decimal128(15, 2)),
        "price": pa.array([Decimal(i * 7919 % 10_000_019) / 100 for i in ids], pa.decimal128(15, 2)),
        "day": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=i % 2_500) for i in ids]),
        "supplier": pa.array([i * 31 % 10_000 for i in ids], pa.int32()),
        "comment": pa.array([f"comment {i * 2654435761 % 10**9} of row {i}" for i in ids]),
        "empty": pa.array([None] * rows, pa.string()),
    })


def encodings(path: Any, column: str) -> set[str]:
    """The encodings of `column` in every row group of a Parquet file."""
    meta = pq.ParquetFile(path).metadata
    index = meta.schema.to_arrow_schema().get_field_index(column)
    return {e for g in range(meta.num_row_groups) for e in meta.row_group(g).column(index).encodings}


def test_low_cardinality_columns_get_dictionaries_nearly_unique_ones_do_not() -> None:
    table = mixed_table(250_000)
    chosen = dictionary_columns([table])
    assert chosen == ["flag", "quantity", "day", "supplier", "empty"]
    # Tables or batches written together count as one row group.
    assert dictionary_columns(table.to_batches(max_chunksize=10_000)) == chosen


def test_a_small_row_group_is_counted_exactly() -> None:
    """Without sampling the count is exact: 4,096 distinct 8-byte ids fit in 1 MiB, not in 31,999 bytes."""
    small = mixed_table(SAMPLE_ROWS // 2)
    assert "id" in dictionary_columns([small]) and "comment" in dictionary_columns([small])
    assert "id" not in dictionary_columns([small], limit=4_000 * 8 - 1)


def test_items_that_cannot_be_sampled_together_keep_every_dictionary() -> None:
    table = mixed_table(100)
    assert dictionary_columns([table, table.drop_columns(["comment"])]) is True
    nested = pa.table({"id": [1, 2], "tags": [["a"], ["b", "c"]]})
    assert dictionary_columns([nested]) is True


def test_an_all_null_column_of_the_null_type_is_sized_and_written() -> None:
    """Arrow's null type has no fixed width and no values: its dictionary is empty."""
    table = pa.table({"id": pa.array(range(20_000), pa.int64()), "nothing": pa.array([None] * 20_000, pa.null())})
    assert "nothing" in dictionary_columns([table])  # (20,000 ids x 8 bytes fit too)
    assert pq.read_table(io.BytesIO(write_with(LakeParquetWriter, table))).num_rows == 20_000


def test_string_views_keep_every_dictionary() -> None:
    """Arrow's `take` has no kernel for views: no sample, Arrow's default."""
    table = pa.table({"id": [1, 2], "label": pa.array(["a", "b"], pa.string_view())})
    assert dictionary_columns([table]) is True


def write_with(writer_cls: Any, table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    writer = writer_cls(buffer)
    writer.write_header({})
    writer.write_data([table])
    writer.write_footer()
    writer.close()
    return buffer.getvalue()


def test_with_every_dictionary_the_file_is_byte_for_byte_dlts_own() -> None:
    """The writer repeats dlt's writer arguments: with all dictionaries on, nothing may differ."""
    from dlt.common.data_writers.writers import ArrowToParquetWriter

    class EveryDictionary(LakeParquetWriter):
        def write_data(self, items: Any) -> None:
            ArrowToParquetWriter.write_data(self, items)  # skips the choice: Arrow's default, all columns

    table = mixed_table(5_000)
    assert write_with(EveryDictionary, table) == write_with(ArrowToParquetWriter, table)


def test_a_job_lands_plain_nearly_unique_columns_and_the_same_values(
    pg_engine: sa.Engine, unique_name: Any, pg_secrets: Any, lake: Path,
) -> None:
    """Real PostgreSQL -> dlt -> lake: the nearly unique text column (2.4 MB of values per row
    group, over the 1 MiB dictionary limit) is written plain, the flag column with a dictionary,
    and every value arrives."""
    name = unique_name("encodings")
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {name} (id int PRIMARY KEY, flag char(1), note text)"))
        conn.execute(sa.text(f"INSERT INTO {name} SELECT g, chr(65 + g % 3), md5(g::text) || ' note ' || g "
                             "FROM generate_series(1, 60000) g"))
        conn.execute(sa.text(f"ANALYZE {name}"))
    pg_secrets("erp")
    try:
        result = run_job(Job("postgresql", "erp", name, "FULL"), bucket_url=str(lake))
        assert (result.status, result.rows_processed) == ("success", 60_000), result.error
        files = [lake / f for f in result.files]
        assert all("RLE_DICTIONARY" not in encodings(f, "note") for f in files)
        assert all("RLE_DICTIONARY" in encodings(f, "flag") for f in files)
        landed = pa.concat_tables(pq.read_table(f) for f in files).sort_by("id")
        assert landed["note"].to_pylist()[:2] == [f"{hashlib.md5(b'1').hexdigest()} note 1",
                                                  f"{hashlib.md5(b'2').hexdigest()} note 2"]
        assert landed["flag"].to_pylist()[:4] == ["B", "C", "A", "B"]
    finally:
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
