"""Big tables are read in parallel slices without a workbook `partition_column`, against the real
PostgreSQL and MariaDB: a whole PostgreSQL table (keyed or not) on ctid page ranges, an INCREMENTAL
one and a MariaDB table on the leading column of a composite key (on PostgreSQL in one snapshot,
also while rows change), a small table stays one stream."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from shared.runner import run_job
from shared.sources import connectorx_loader
from shared.workbook.models import Job
from tests.checksums import parquet_checksums, read_parquet, source_checksums

KINDS = {"a": "number", "b": "number", "amount": "decimal", "t": "text", "ts": "timestamp"}
PG_FILL = (
    "INSERT INTO {table} (a, b, amount, t, ts) SELECT g / 4, g % 4, "
    "CASE WHEN g % 9 = 0 THEN NULL ELSE g * 1.25 END, CASE WHEN g % 5 = 0 THEN NULL ELSE 'zeile ☕ ' || g END, "
    "timestamp '2024-01-01' + g * interval '1 second' FROM generate_series(0, {last}) g"
)


@pytest.fixture
def pg_schema(pg_engine: sa.Engine) -> Iterator[str]:
    """A schema of this test's own, dropped afterwards."""
    name = f"slicing_{uuid.uuid4().hex[:8]}"
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {name}"))
    yield name
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {name} CASCADE"))


@pytest.fixture
def maria_schema(mariadb_engine: sa.Engine) -> Iterator[str]:
    """A database of this test's own (a schema, in MariaDB), dropped afterwards."""
    name = f"slicing_{uuid.uuid4().hex[:8]}"
    with mariadb_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    yield name
    with mariadb_engine.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE {name}"))


def pg_table(engine: sa.Engine, table: str, rows: int, key: str) -> None:
    """`rows` rows, four per value of `a`; `key` is the PRIMARY KEY clause (or nothing)."""
    with engine.begin() as conn:
        conn.execute(sa.text(
            f"CREATE TABLE {table} (a int NOT NULL, b int NOT NULL, amount numeric(12,2), t text, ts timestamp{key})"
        ))
        conn.execute(sa.text(PG_FILL.format(table=table, last=rows - 1)))
        conn.execute(sa.text(f"ANALYZE {table}"))


def change_while_reading(monkeypatch: pytest.MonkeyPatch, engine: sa.Engine, table: str, key_moves: bool) -> None:
    """After the snapshot is exported, before and while the slices read: update rows (their new
    versions go to other pages; with `key_moves`, also to another key slice), insert and
    delete rows. None of it may show: the slices read the one snapshot."""
    real = connectorx_loader._open_stream
    move = "a = a + 1000000, " if key_moves else ""

    def change(sql: str) -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(sql))

    def open_then_change(*args: Any) -> Any:
        change(f"UPDATE {table} SET {move}t = 'changed' WHERE a % 50 = 0")
        change(f"INSERT INTO {table} (a, b, t) SELECT -g, 0, 'new' FROM generate_series(1, 500) g")
        reader = real(*args)
        change(f"UPDATE {table} SET amount = -1, t = 'changed again' WHERE a % 50 = 25")
        change(f"DELETE FROM {table} WHERE a % 50 = 10")
        change(f"INSERT INTO {table} (a, b, t) SELECT 2000000 + g, 0, 'new' FROM generate_series(1, 500) g")
        return reader

    monkeypatch.setattr(connectorx_loader, "_open_stream", open_then_change)


def assert_landed_once(result: Any, expected: dict[str, Any], rows: int) -> None:
    """Every source row landed exactly once, with the source's values (`expected`: checksums
    ordered by `a * 4 + b`, unique)."""
    import pyarrow.compute as pc

    assert result.status == "success", result.error
    landed = read_parquet(result.files)
    keys = {(a, b) for a, b in zip(landed["a"].to_pylist(), landed["b"].to_pylist())}
    assert result.rows_processed == landed.num_rows == len(keys) == rows
    order = pc.add(pc.multiply(landed["a"].cast("int64"), 4), landed["b"].cast("int64"))
    sums = parquet_checksums(landed.append_column("order_key", order), "order_key")
    del sums["order_key"]
    assert sums == expected


@pytest.mark.parametrize(("load", "sliced_on"), [
    # A key range over half of a big table (TPC-H lineitem in two slices) is a Seq Scan with a
    # filter to the planner, so every key slice would read the whole heap; page ranges read each
    # page once.
    ({"load_type": "FULL"}, "ctid pages"),
    # A cursor filter may use an index that a page range would not: INCREMENTAL keeps key slices.
    ({"load_type": "INCREMENTAL", "watermark_column": "ts"}, "a"),
], ids=["full_on_ctid_pages", "incremental_on_the_leading_key_column"])
def test_postgresql_keyed_table_slices_in_one_snapshot(
    pg_engine: sa.Engine, pg_schema: str, pg_secrets: Any, lake: Path, connectorx_reads: list, four_cores: None,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, load: dict[str, str], sliced_on: str,
) -> None:
    table = f"{pg_schema}.lines"
    pg_table(pg_engine, table, 20_000, ", PRIMARY KEY (a, b)")
    expected = source_checksums(pg_engine, table, "a * 4 + b", KINDS)
    change_while_reading(monkeypatch, pg_engine, table, key_moves=True)
    pg_secrets("erp")
    with caplog.at_level(logging.INFO, logger=connectorx_loader.__name__):
        result = run_job(Job("postgresql", "erp", "lines", schema_name=pg_schema, chunk_size=1_000, **load),
                         bucket_url=str(lake))
    assert f"table lines: reading 4 slice(s) of {sliced_on} in parallel" in caplog.text
    assert len(connectorx_reads) == 1
    by_pages = [("ctid" in q) for q in connectorx_reads[0]]
    assert by_pages == [sliced_on == "ctid pages"] * 4
    if sliced_on == "ctid pages":
        with pg_engine.connect() as conn:
            plan = "\n".join(conn.execute(sa.text(f"EXPLAIN {connectorx_reads[0][1]}")).scalars())
        assert "Tid Range Scan" in plan, plan
    assert_landed_once(result, expected, 20_000)


def test_postgresql_keyless_table_slices_on_ctid_pages_in_one_snapshot(
    pg_engine: sa.Engine, pg_schema: str, pg_secrets: Any, lake: Path, connectorx_reads: list, four_cores: None,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    table = f"{pg_schema}.heap"
    pg_table(pg_engine, table, 20_000, "")
    expected = source_checksums(pg_engine, table, "a * 4 + b", KINDS)
    pg_secrets("erp")
    job = Job("postgresql", "erp", "heap", "FULL", schema_name=pg_schema, chunk_size=1_000)
    # Each slice is a TID range scan, not a scan of the whole table.
    run_job(job, bucket_url=str(lake / "plain"))
    assert len(connectorx_reads) == 1 and len(connectorx_reads[0]) == 4 and all("ctid" in q for q in connectorx_reads[0])
    with pg_engine.connect() as conn:
        plan = "\n".join(conn.execute(sa.text(f"EXPLAIN {connectorx_reads[0][1]}")).scalars())
    assert "Tid Range Scan" in plan, plan

    change_while_reading(monkeypatch, pg_engine, table, key_moves=False)
    with caplog.at_level(logging.INFO, logger=connectorx_loader.__name__):
        result = run_job(job, bucket_url=str(lake / "changing"))
    assert "table heap: reading 4 slice(s) of ctid pages in parallel" in caplog.text
    assert_landed_once(result, expected, 20_000)


def test_postgresql_before_14_reads_a_keyless_table_as_one_stream_and_a_keyed_one_by_key(
    pg_engine: sa.Engine, pg_schema: str, pg_secrets: Any, lake: Path, connectorx_reads: list, four_cores: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without TID range scans each ctid slice would scan the whole table: one stream instead, or
    key slices where the table has a sliceable key."""
    pg_table(pg_engine, f"{pg_schema}.heap", 20_000, "")
    pg_table(pg_engine, f"{pg_schema}.lines", 20_000, ", PRIMARY KEY (a, b)")
    expected = source_checksums(pg_engine, f"{pg_schema}.lines", "a * 4 + b", KINDS)
    monkeypatch.setattr(connectorx_loader, "TID_RANGE_SCAN_VERSION", 10**9)  # "this server is too old"
    pg_secrets("erp")
    result = run_job(Job("postgresql", "erp", "heap", "FULL", schema_name=pg_schema, chunk_size=1_000),
                     bucket_url=str(lake / "heap"))
    assert (result.status, result.rows_processed) == ("success", 20_000), result.error
    keyed = run_job(Job("postgresql", "erp", "lines", "FULL", schema_name=pg_schema, chunk_size=1_000),
                    bucket_url=str(lake / "lines"))
    assert [len(q) for q in connectorx_reads] == [1, 4]
    assert "ctid" not in connectorx_reads[0][0] and not any("ctid" in q for q in connectorx_reads[1])
    assert_landed_once(keyed, expected, 20_000)


def test_small_postgresql_tables_stay_one_stream(
    pg_engine: sa.Engine, pg_schema: str, pg_secrets: Any, lake: Path, connectorx_reads: list, four_cores: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pg_table(pg_engine, f"{pg_schema}.small_key", 1_500, ", PRIMARY KEY (a, b)")
    pg_table(pg_engine, f"{pg_schema}.small_heap", 1_500, "")
    pg_secrets("erp")
    with caplog.at_level(logging.INFO, logger=connectorx_loader.__name__):
        for name in ("small_key", "small_heap"):
            result = run_job(Job("postgresql", "erp", name, "FULL", schema_name=pg_schema, chunk_size=1_000),
                             bucket_url=str(lake / name))
            assert (result.status, result.rows_processed) == ("success", 1_500), result.error
    assert [len(q) for q in connectorx_reads] == [1, 1] and "slice(s)" not in caplog.text


def test_mariadb_composite_key_slices_on_its_leading_column(
    mariadb_engine: sa.Engine, maria_schema: str, mariadb_secrets: Any, lake: Path, connectorx_reads: list, four_cores: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with mariadb_engine.begin() as conn:
        for name, rows in (("lines", 20_000), ("small", 1_500)):
            table = f"{maria_schema}.{name}"
            conn.execute(sa.text(
                f"CREATE TABLE {table} (a int NOT NULL, b int NOT NULL, amount decimal(12,2), t text, "
                "ts datetime(6), PRIMARY KEY (a, b))"
            ))
            conn.execute(sa.text(
                f"INSERT INTO {table} (a, b, amount, t, ts) SELECT seq DIV 4, seq MOD 4, "
                "CASE WHEN seq MOD 9 = 0 THEN NULL ELSE seq * 1.25 END, "
                "CASE WHEN seq MOD 5 = 0 THEN NULL ELSE CONCAT('zeile ☕ ', seq) END, "
                f"TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_0_to_{rows - 1}"
            ))
            conn.execute(sa.text(f"ANALYZE TABLE {table}"))
    expected = source_checksums(mariadb_engine, f"{maria_schema}.lines", "a * 4 + b", KINDS)
    mariadb_secrets("shop")
    with caplog.at_level(logging.INFO, logger=connectorx_loader.__name__):
        result = run_job(Job("mysql", "shop", "lines", "FULL", schema_name=maria_schema, chunk_size=1_000),
                         bucket_url=str(lake / "lines"))
        assert "table lines: reading 4 slice(s) of a in parallel" in caplog.text
        small = run_job(Job("mysql", "shop", "small", "FULL", schema_name=maria_schema, chunk_size=1_000),
                        bucket_url=str(lake / "small"))
    assert_landed_once(result, expected, 20_000)
    assert (small.status, small.rows_processed) == ("success", 1_500), small.error
    assert [len(q) for q in connectorx_reads] == [4, 1] and "table small: reading" not in caplog.text


def test_postgresql_partitioned_keyless_table_reads_one_stream(
    pg_engine: sa.Engine, pg_schema: str, pg_secrets: Any, lake: Path, connectorx_reads: list, four_cores: None,
) -> None:
    """A partitioned table keeps no rows in its own pages: no ctid slices (each would miss rows)."""
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {pg_schema}.parts (a int NOT NULL, b int NOT NULL, amount numeric(12,2), "
                             "t text, ts timestamp) PARTITION BY RANGE (b)"))
        for part, low, high in (("low", 0, 2), ("high", 2, 4)):
            conn.execute(sa.text(f"CREATE TABLE {pg_schema}.parts_{part} PARTITION OF {pg_schema}.parts "
                                 f"FOR VALUES FROM ({low}) TO ({high})"))
        conn.execute(sa.text(PG_FILL.format(table=f"{pg_schema}.parts", last=19_999)))
        conn.execute(sa.text(f"ANALYZE {pg_schema}.parts"))
        estimate = conn.execute(sa.text(f"SELECT reltuples FROM pg_class WHERE oid = '{pg_schema}.parts'::regclass"))
        assert estimate.scalar_one() == 20_000  # big enough to be sliced, were it a plain table
    pg_secrets("erp")
    result = run_job(Job("postgresql", "erp", "parts", "FULL", schema_name=pg_schema, chunk_size=1_000),
                     bucket_url=str(lake))
    assert (result.status, result.rows_processed) == ("success", 20_000), result.error
    assert [len(q) for q in connectorx_reads] == [1] and "ctid" not in connectorx_reads[0][0]
