"""The connectorx fast path against the real PostgreSQL and MariaDB: types on both backends,
fallback, parallel slices (one snapshot), incremental, credentials and clean errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pyarrow as pa
import pytest
import sqlalchemy as sa

from shared.workbook.models import Job
from shared.redaction import clear_secrets
from shared.runner import run_job
from shared.sources import connectorx_loader
from shared.sources.base import SqlSource
from shared.sources.connectorx_loader import ConnectorxError, StreamOptions
from tests.checksums import parquet_checksums, read_parquet, source_checksums
from tests.conftest import free_port
from tests.sources.test_mysql import SPECIAL_PASSWORD, special_user  # noqa: F401 (fixture)
from tests.sources.test_postgresql import COLUMNS, create_typed_table

PG_WIDTHS = {
    "id": pa.int32(), "s": pa.int16(), "i": pa.int32(), "b": pa.int64(), "amount": pa.decimal128(12, 2),
    "ts": pa.timestamp("us", tz="UTC"), "tsn": pa.timestamp("us"), "t": pa.string(),
}
MARIA_WIDTHS = {
    "id": pa.int32(), "ti": pa.int8(), "s": pa.int16(), "m": pa.int32(), "i": pa.int32(), "b": pa.int64(),
    "u": pa.int64(), "amount": pa.decimal128(12, 2), "ts": pa.timestamp("us"), "t": pa.string(),
}


def schema_of(files: list[str]) -> dict[str, pa.DataType]:
    table = read_parquet(files)
    return {f.name: f.type for f in table.schema}


PG_DDL = (
    "CREATE TABLE {name} (id int PRIMARY KEY, s smallint, i int, b bigint, amount numeric(12,2), "
    "ts timestamptz NOT NULL, tsn timestamp, t text{extra});"
    "INSERT INTO {name} (id, s, i, b, amount, ts, tsn, t) SELECT g, (g % 300)::smallint, g * 7, g::bigint * 5000000000, "
    "CASE WHEN g % 4 = 0 THEN NULL ELSE g * 1.01 END, timestamptz '2024-03-01 12:00+02' + g * interval '1 minute', "
    "CASE WHEN g % 5 = 0 THEN NULL ELSE timestamp '2024-01-01' + g * interval '1 second' END, "
    "CASE WHEN g % 3 = 0 THEN NULL ELSE 'ünï ☕ ' || g || E'\\nline' END FROM generate_series(1, 500) g"
)


def pyarrow_backend_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read with dlt's pyarrow backend, as for a database connectorx does not serve."""
    monkeypatch.setattr(SqlSource, "stream_options", lambda self: None)


def test_postgresql_types_are_the_sources_on_both_backends(
    pg_engine: sa.Engine, tables: Any, unique_name: Any, pg_secrets: Any, lake: Path, connectorx_reads: list,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast = tables(pg_engine, unique_name("w_fast"), PG_DDL.replace("{extra}", ", extra interval"))
    slow = tables(pg_engine, unique_name("w_slow"), PG_DDL.replace("{extra}", ", extra interval"))
    pg_secrets("erp")
    # An interval column is read as ISO 8601 text: the table stays on the fast path.
    fast_result = run_job(Job("postgresql", "erp", fast, "FULL"), bucket_url=str(lake))
    assert fast_result.status == "success", fast_result.error
    assert len(connectorx_reads) == 1
    pyarrow_backend_only(monkeypatch)
    slow_result = run_job(Job("postgresql", "erp", slow, "FULL"), bucket_url=str(lake))
    assert slow_result.status == "success", slow_result.error
    assert len(connectorx_reads) == 1  # no connectorx read for the second table

    fast_types, slow_types = schema_of(fast_result.files), schema_of(slow_result.files)
    assert {k: fast_types[k] for k in PG_WIDTHS} == PG_WIDTHS
    assert {k: slow_types[k] for k in PG_WIDTHS} == PG_WIDTHS
    assert fast_types["extra"] == slow_types["extra"] == pa.string()
    kinds = {"id": "number", "s": "number", "i": "number", "b": "number", "amount": "decimal",
             "ts": "timestamptz", "tsn": "timestamp", "t": "text"}
    for result, name in ((fast_result, fast), (slow_result, slow)):
        landed = parquet_checksums(read_parquet(result.files).select(list(kinds)), "id")
        assert landed == source_checksums(pg_engine, name, "id", kinds)


MARIA_DDL = (
    "CREATE TABLE {name} (id INT PRIMARY KEY, ti TINYINT, s SMALLINT, m MEDIUMINT, i INT, b BIGINT, "
    "u INT UNSIGNED, amount DECIMAL(12,2), ts DATETIME(6), t TEXT CHARACTER SET utf8mb4{extra});"
    "INSERT INTO {name} (id, ti, s, m, i, b, u, amount, ts, t) SELECT g, CAST(g % 100 AS SIGNED) - 50, g * 10, g * 1000, g * 70000, "
    "g * 5000000000, 4000000000 + g, IF(g % 4 = 0, NULL, g * 1.01), TIMESTAMP('2024-01-01') + INTERVAL g SECOND, "
    "IF(g % 3 = 0, NULL, CONCAT('ünï ☕ ', g, '\\nline')) FROM (SELECT seq AS g FROM seq_1_to_500) s;"
    "ANALYZE TABLE {name}"
)


def test_mariadb_types_are_the_sources_on_both_backends(
    mariadb_engine: sa.Engine, tables: Any, unique_name: Any, mariadb_secrets: Any, lake: Path, connectorx_reads: list,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast = tables(mariadb_engine, unique_name("mw_fast"), MARIA_DDL.replace("{extra}", ", y YEAR"))
    slow = tables(mariadb_engine, unique_name("mw_slow"), MARIA_DDL.replace("{extra}", ", y YEAR"))
    mariadb_secrets("shop")
    results = [run_job(Job("mysql", "shop", fast, "FULL"), bucket_url=str(lake))]
    pyarrow_backend_only(monkeypatch)
    results.append(run_job(Job("mysql", "shop", slow, "FULL"), bucket_url=str(lake)))
    assert [r.status for r in results] == ["success", "success"], [r.error for r in results]
    assert len(connectorx_reads) == 1
    kinds = {"id": "number", "ti": "number", "s": "number", "m": "number", "i": "number", "b": "number",
             "u": "number", "amount": "decimal", "ts": "timestamp", "t": "text"}
    for result, name in zip(results, (fast, slow)):
        types = schema_of(result.files)
        assert {k: types[k] for k in MARIA_WIDTHS} == MARIA_WIDTHS
        landed = parquet_checksums(read_parquet(result.files).select(list(kinds)), "id")
        assert landed == source_checksums(mariadb_engine, name, "id", kinds)


def test_a_type_connectorx_panics_on_falls_back_to_pyarrow(
    pg_engine: sa.Engine, tables: Any, unique_name: Any, pg_secrets: Any, lake: Path, connectorx_reads: list,
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # timetz is read as text normally; unmapped, it passes the type check (it is a time) but
    # connectorx has no reader for it: a stand-in for any type connectorx panics on.
    monkeypatch.setattr("shared.sources.base.read_plan", lambda *args: {})
    name = tables(pg_engine, unique_name("timetz"),
                  "CREATE TABLE {name} (id int PRIMARY KEY, at timetz);"
                  "INSERT INTO {name} SELECT g, time with time zone '10:00+02' FROM generate_series(1, 50) g")
    pg_secrets("erp")
    result = run_job(Job("postgresql", "erp", name, "FULL"), bucket_url=str(lake))
    assert result.status == "success", result.error
    assert len(connectorx_reads) == 1 and result.rows_processed == 50
    assert "reading it with the pyarrow backend" in caplog.text


def test_parallel_slices_equal_the_source(
    pg_engine: sa.Engine, unique_name: Any, pg_secrets: Any, lake: Path, connectorx_reads: list, four_cores: None,
) -> None:
    name = unique_name("sliced")
    create_typed_table(pg_engine, name, 20_000)
    pg_secrets("erp")
    try:
        by_pages = run_job(Job("postgresql", "erp", name, "FULL", chunk_size=1_000), bucket_url=str(lake / "p"))
        by_key = run_job(Job("postgresql", "erp", name, "FULL", chunk_size=1_000, partition_column="id"),
                         bucket_url=str(lake / "a"))
        # A nullable timestamp key: its NULL rows must land exactly once.
        by_time = run_job(Job("postgresql", "erp", name, "FULL", chunk_size=1_000, partition_column="tsn"),
                          bucket_url=str(lake / "b"))
        assert by_pages.status == by_key.status == by_time.status == "success", (by_key.error, by_time.error)
        assert [len(q) for q in connectorx_reads] == [4, 4, 4]
        assert all("ctid" in q for q in connectorx_reads[0])
        assert all(f"{name}.id >= " in q for q in connectorx_reads[1]) and f"{name}.tsn IS NULL" in connectorx_reads[2][0]
        expected = source_checksums(pg_engine, name, "id", COLUMNS)
        for result in (by_pages, by_key, by_time):
            assert result.rows_processed == 20_000
            assert parquet_checksums(read_parquet(result.files), "id") == expected
    finally:
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


def test_slices_read_one_postgresql_snapshot(
    pg_engine: sa.Engine, unique_name: Any, pg_secrets: Any, lake: Path, monkeypatch: pytest.MonkeyPatch,
    four_cores: None,
) -> None:
    """A row updated and a row deleted after the snapshot was taken (before the slices start)
    look unchanged in every slice: the slices read one consistent state. (Without the shared
    snapshot the slices see both changes.)"""
    name = unique_name("snap")
    create_typed_table(pg_engine, name, 10_000)
    real = connectorx_loader._open_stream

    def change_then_open(*args: Any) -> Any:
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {name} SET t1 = 'changed' WHERE id = 9000"))
            conn.execute(sa.text(f"DELETE FROM {name} WHERE id = 3000"))
        return real(*args)

    monkeypatch.setattr(connectorx_loader, "_open_stream", change_then_open)
    pg_secrets("erp")
    try:
        result = run_job(Job("postgresql", "erp", name, "FULL", chunk_size=1_000), bucket_url=str(lake))
        assert result.status == "success", result.error
        rows = read_parquet(result.files)
        assert rows.num_rows == 10_000 and 3000 in rows["id"].to_pylist()
        assert "changed" not in rows["t1"].to_pylist()
    finally:
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


def test_incremental_through_slices_loads_only_changes(
    pg_engine: sa.Engine, unique_name: Any, pg_secrets: Any, lake: Path, connectorx_reads: list, four_cores: None,
) -> None:
    name = unique_name("inc_sliced")
    create_typed_table(pg_engine, name, 20_000)
    pg_secrets("erp")
    job = Job("postgresql", "erp", name, "INCREMENTAL", watermark_column="ts", primary_key=("id",), chunk_size=1_000,
              last_watermark="2024-03-01T10:00:00+00:00")
    try:
        first = run_job(job, bucket_url=str(lake))
        assert (first.status, first.rows_processed) == ("success", 20_000), first.error
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {name} (id, big, amount, t1, ts) SELECT g, g, 1.50, 'new ' || g, "
                                 "now() + interval '1 day' FROM generate_series(100000, 100009) g"))
            conn.execute(sa.text(f"UPDATE {name} SET t1 = 'updated', ts = now() + interval '1 day' "
                                 "WHERE id IN (11, 12, 13, 14, 15)"))
        second = run_job(job, bucket_url=str(lake))
        assert (second.status, second.rows_processed) == ("success", 15), second.error
        rows = read_parquet(second.files)
        assert sorted(rows["id"].to_pylist()) == [11, 12, 13, 14, 15, *range(100000, 100010)]
        assert rows.schema.field("id").type == pa.int32()
        third = run_job(job, bucket_url=str(lake))
        assert (third.status, third.rows_processed, third.files) == ("success", 0, [])
        assert [len(q) for q in connectorx_reads] == [4, 4, 4]
        assert all(f"{name}.ts >= " in q for q in connectorx_reads[1])  # the cursor filter is in the SQL
    finally:
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


def test_mariadb_slices_with_a_special_character_password(
    mariadb_engine: sa.Engine, tables: Any, unique_name: Any, special_user: str, mariadb_secrets: Any, lake: Path,
    connectorx_reads: list, four_cores: None,
) -> None:
    name = tables(mariadb_engine, unique_name("mw_slices"), MARIA_DDL.replace("{extra}", ""))
    mariadb_secrets("shop", username=special_user, password=SPECIAL_PASSWORD)
    result = run_job(Job("mysql", "shop", name, "FULL", chunk_size=100, partition_column="id"), bucket_url=str(lake))
    assert result.status == "success", result.error
    assert len(connectorx_reads) == 1 and len(connectorx_reads[0]) > 1
    kinds = {"id": "number", "b": "number", "amount": "decimal", "ts": "timestamp", "t": "text"}
    landed = parquet_checksums(read_parquet(result.files).select(list(kinds)), "id")
    assert landed == source_checksums(mariadb_engine, name, "id", kinds)


def test_connectorx_errors_carry_no_url_and_no_password() -> None:
    url = f"postgresql://u:{quote(SPECIAL_PASSWORD, safe='')}@db.example.com:5432/d"
    options = StreamOptions(url=url, secret_forms=(SPECIAL_PASSWORD, quote(SPECIAL_PASSWORD, safe="")))

    class PanicException(BaseException):  # how a Rust panic reaches Python
        pass

    for raised in (RuntimeError(f"cannot parse {url}\nbacktrace ..."), PanicException(f"panic at {url}: {SPECIAL_PASSWORD}")):
        error = connectorx_loader._clean_error(raised, options)
        assert isinstance(error, ConnectorxError) and "\n" not in str(error)
        assert url not in str(error) and "p%40ss" not in str(error) and SPECIAL_PASSWORD not in str(error)
    assert isinstance(connectorx_loader._clean_error(KeyboardInterrupt(), options), KeyboardInterrupt)


@pytest.mark.slow
def test_connectorx_against_a_closed_port_fails_without_secrets(
    pg_engine: sa.Engine, tables: Any, unique_name: Any, pg_secrets: Any, lake: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLAlchemy reaches the database, connectorx is sent to a closed port with a password in its
    URL (connectorx's pool retries for 30 s before it gives up)."""
    clear_secrets()
    name = tables(pg_engine, unique_name("closed"), "CREATE TABLE {name} (id int PRIMARY KEY)")
    pg_secrets("erp")
    monkeypatch.setenv("SOURCES__ERP__PASSWORD", SPECIAL_PASSWORD)  # trust auth ignores it
    port = free_port()
    monkeypatch.setattr(SqlSource, "connectorx_url",
                        lambda self: self.url().set(drivername="postgresql", port=port).render_as_string(hide_password=False))
    result = run_job(Job("postgresql", "erp", name, "FULL"), bucket_url=str(lake))
    assert result.status == "failed" and result.error.startswith("postgresql source 'erp' at 127.0.0.1:5432: ")
    assert "connectorx" in result.error and "\n" not in result.error
    for form in (SPECIAL_PASSWORD, quote(SPECIAL_PASSWORD, safe=""), quote_plus(SPECIAL_PASSWORD), f":{port}/"):
        assert form not in result.error
    assert not any(lake.rglob("*.parquet"))
