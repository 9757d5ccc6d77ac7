"""PostgreSQL jobs against the real local server: types, FULL snapshots, INCREMENTAL cursor."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pytest
import sqlalchemy as sa

from shared.workbook.models import Job
from shared.runner import run_job
from tests.checksums import parquet_checksums, read_parquet, source_checksums

COLUMNS = {
    "id": "number", "big": "number", "amount": "decimal", "n": "number", "t1": "text", "t2": "text",
    "ts": "timestamptz", "tsn": "timestamp", "flag": "bool", "d": "date",
}


def create_typed_table(engine: sa.Engine, name: str, rows: int) -> None:
    """The ten-column table of the acceptance test, with unicode, newlines and NULLs."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
        conn.execute(sa.text(
            f"CREATE TABLE {name} (id int PRIMARY KEY, big bigint, amount numeric(12,2), n int, t1 text, "
            "t2 varchar(40), ts timestamptz NOT NULL, tsn timestamp, flag boolean, d date)"
        ))
        conn.execute(sa.text(
            f"INSERT INTO {name} SELECT g, g::bigint * 3000000000, "
            "CASE WHEN g % 11 = 0 THEN NULL ELSE round((g % 100000) * 1.37 - 5000, 2) END, g % 1000, "
            "'héllo ☕ ' || g || E'\\nsecond line', CASE WHEN g % 7 = 0 THEN NULL ELSE 'v' || (g % 13) END, "
            "timestamptz '2024-03-01 12:00:00+02' + g * interval '1 second', "
            "CASE WHEN g % 5 = 0 THEN NULL ELSE timestamp '2024-01-01' + g * interval '1 minute' END, "
            "CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 = 0 END, date '2020-01-01' + (g % 2000) "
            f"FROM generate_series(1, {rows}) g"
        ))
        conn.execute(sa.text(f"ANALYZE {name}"))


def assert_types(table: pa.Table) -> None:
    schema = table.schema
    assert schema.field("amount").type == pa.decimal128(12, 2)
    assert schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert schema.field("tsn").type == pa.timestamp("us")
    assert schema.field("id").type == pa.int32() and schema.field("n").type == pa.int32()  # int4
    assert schema.field("big").type == pa.int64()
    assert pa.types.is_string(schema.field("t1").type) or pa.types.is_large_string(schema.field("t1").type)
    assert schema.field("flag").type == pa.bool_()
    assert schema.field("d").type == pa.date32()


def landed(lake: Path, source: str, table: str) -> list[Path]:
    return sorted((lake / source / table).rglob("*.parquet"))


@pytest.fixture
def typed_table(pg_engine: sa.Engine, unique_name: Callable[[str], str]) -> Any:
    names: list[str] = []

    def _make(rows: int) -> str:
        name = unique_name("typed")
        create_typed_table(pg_engine, name, rows)
        names.append(name)
        return name

    yield _make
    with pg_engine.begin() as conn:
        for name in names:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


def test_full_load_keeps_values_and_types(pg_engine: sa.Engine, typed_table: Any, pg_secrets: Any, lake: Path) -> None:
    name = typed_table(20_000)
    pg_secrets("erp")
    result = run_job(Job("postgresql", "erp", name, "FULL", schema_name="public", primary_key=("id",)), bucket_url=str(lake))
    assert result.status == "success", result.error
    assert result.rows_processed == 20_000
    files = landed(lake, "erp", name)
    assert [str(f) for f in files] == result.files
    day = files[0].parent
    assert len(day.parts[-3]) == 4 and len(day.parts[-2]) == 2 and len(day.parts[-1]) == 2  # YYYY/MM/DD
    table = read_parquet(files)
    assert_types(table)
    assert parquet_checksums(table, "id") == source_checksums(pg_engine, name, "id", COLUMNS)
    assert result.schema_version and result.rows_per_second > 0


def test_full_same_day_rerun_replaces_only_that_days_snapshot(typed_table: Any, pg_secrets: Any, lake: Path) -> None:
    name = typed_table(1_000)
    pg_secrets("erp")
    job = Job("postgresql", "erp", name, "FULL")
    first = run_job(job, bucket_url=str(lake))
    # Pretend the first snapshot was taken on an earlier day.
    older_day = lake / "erp" / name / "2020" / "01" / "02"
    older_day.mkdir(parents=True)
    older_file = older_day / Path(first.files[0]).name
    Path(first.files[0]).rename(older_file)
    first_again = run_job(job, bucket_url=str(lake))
    second = run_job(job, bucket_url=str(lake))
    assert first.status == first_again.status == second.status == "success"
    today = [f for f in landed(lake, "erp", name) if f.parent != older_day]
    assert [str(f) for f in today] == second.files  # only the latest snapshot is left today
    assert read_parquet(today).num_rows == 1_000
    assert older_file.exists() and read_parquet([older_file]).num_rows == 1_000  # earlier days stay


def _incremental_rows(result_files: list[str]) -> pa.Table:
    return read_parquet(result_files) if result_files else pa.table({})


def test_incremental_loads_only_changes_and_survives_a_fresh_workdir(
    pg_engine: sa.Engine, typed_table: Any, pg_secrets: Any, lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = typed_table(5_000)
    pg_secrets("erp")
    job = Job("postgresql", "erp", name, "INCREMENTAL", watermark_column="ts", primary_key=("id",),
              last_watermark="2024-03-01T10:00:00+00:00")
    first = run_job(job, bucket_url=str(lake))
    assert (first.status, first.rows_processed) == ("success", 5_000), first.error

    def change(inserts: int, updates: int, start_id: int) -> None:
        with pg_engine.begin() as conn:
            conn.execute(sa.text(
                f"INSERT INTO {name} (id, big, amount, t1, ts) SELECT g, g, 1.50, 'new ' || g, "
                f"now() + interval '1 day' FROM generate_series({start_id}, {start_id + inserts - 1}) g"))
            conn.execute(sa.text(
                f"UPDATE {name} SET t1 = 'updated', ts = now() + interval '1 day' WHERE id IN "
                f"(SELECT id FROM {name} WHERE id < {start_id} ORDER BY id LIMIT {updates} OFFSET 10)"))

    change(10, 5, 100_000)
    second = run_job(job, bucket_url=str(lake))
    assert (second.status, second.rows_processed) == ("success", 15)
    rows = _incremental_rows(second.files)
    assert rows.num_rows == 15 and sorted(rows["t1"].to_pylist()).count("updated") == 5

    third = run_job(job, bucket_url=str(lake))
    assert (third.status, third.rows_processed, third.files) == ("success", 0, [])

    # A fresh machine: new temp folder; the cursor comes back from the lake.
    monkeypatch.setenv("INGESTION_WORK_DIR", str(tmp_path / "another-machine"))
    change(10, 5, 200_000)
    fourth = run_job(job, bucket_url=str(lake))
    assert (fourth.status, fourth.rows_processed) == ("success", 15)
    assert run_job(job, bucket_url=str(lake)).rows_processed == 0

    # The lake, de-duplicated to the newest version per id, equals the source.
    everything = read_parquet(landed(lake, "erp", name))
    assert everything.num_rows == 5_000 + 15 + 15
    latest = {}
    for row in everything.sort_by("ts").to_pylist():
        latest[row["id"]] = row
    with pg_engine.connect() as conn:
        source_rows = {r.id: r.t1 for r in conn.execute(sa.text(f"SELECT id, t1 FROM {name}"))}
    assert {k: v["t1"] for k, v in latest.items()} == source_rows


def test_missing_table_fails_cleanly(pg_secrets: Any, lake: Path) -> None:
    pg_secrets("erp")
    result = run_job(Job("postgresql", "erp", "no_such_table_xyz", "FULL"), bucket_url=str(lake))
    assert result.status == "failed" and "no_such_table_xyz" in result.error
    assert not any(lake.rglob("*.parquet"))
