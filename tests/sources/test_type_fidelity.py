"""Every common PostgreSQL and MariaDB type round-trips through a real job (README type table),
CHAR(n) lands trimmed on both engines (or padded with keep_char_padding), and NULL watermarks
are loaded on a first run and counted afterwards. Real servers, real Parquet; expected values
are the source's own, read with psycopg2 / PyMySQL."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from shared.workbook.models import Job
from shared.runner import run_job
from shared.sources import slicing
from shared.sources.base import SqlSource
from tests.checksums import read_parquet

PG_TYPES = """
CREATE TYPE {name}_mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE {name} (id int PRIMARY KEY, c_char char(5), c_iv interval, c_num numeric, c_wide numeric(40,10),
  c_timetz timetz, c_ts timestamp, c_tstz timestamptz, c_date date, c_uuid uuid, c_json json, c_jsonb jsonb,
  c_iarr int[], c_tarr text[], c_narr numeric[], c_enum {name}_mood, c_bytea bytea, c_bit bit(4), c_varbit varbit(8),
  c_money money, c_inet inet, c_cidr cidr, c_xml xml, c_time time, c_mac macaddr);
INSERT INTO {name} VALUES
 (1, 'ab', '1 year 2 mons 3 days 04:05:06.5', 1.1234567890123, 123456789012345678901234567890.0123456789,
  '12:34:56+05:30', 'infinity', '-infinity', 'infinity', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{{"a": [1, 2]}}',
  '{{"b": null}}', '{{1,2,NULL}}', '{{"x","y z"}}', '{{1.5,NULL}}', 'happy', '\\x00ff', '1010', '101', '1234.56',
  '192.168.0.1', '10.0.0.0/8', '<a>x</a>', '23:59:59.999999', '08:00:2b:01:02:03'),
 (2, 'abcde', '-3 days -00:00:01', 'NaN', -1.5, '00:00:00-08', '2024-01-01 10:00', '2024-01-01 10:00+02',
  '2024-02-29', NULL, '[]', '{{}}', '{{}}', '{{}}', '{{}}', 'sad', '', '0000', '', '-5', '::1', '2001:db8::/32', '', '00:00', NULL),
 (3, NULL, NULL, 1e-30, NULL, NULL, '-infinity', 'infinity', '-infinity', NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, '  x', '0', 123456789012345678901234567890123456789012345.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
"""

MARIA_TYPES = """
CREATE TABLE {name} (id int PRIMARY KEY, c_char char(5), c_enum enum('a','b c'), c_set set('x','y'), c_json json,
  c_bit bit(4), c_year year, c_time time(6), c_dec decimal(65,30), c_dec2 decimal(12,2), c_blob blob,
  c_geom geometry, c_ubig bigint unsigned, c_uint int unsigned, c_dt datetime(6), c_date date);
INSERT INTO {name} VALUES
 (1, 'ab', 'b c', 'x,y', '{{"a": [1, 2]}}', b'1010', 2024, '838:59:59', 12345678901234567890123456789012345.123456789012345678901234567890,
  -1.5, x'00ff', ST_GeomFromText('POINT(1 2)'), 18446744073709551615, 4294967295, '2024-01-01 10:00:00.5', '2024-02-29'),
 (2, 'abcde', 'a', '', '[]', b'0000', 1901, '-01:00:00', 1e-30, 0, '', NULL, 0, 0, '1000-01-01', '9999-12-31'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, '12:34:56.5', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
"""


def source_rows(engine: sa.Engine, name: str) -> dict[int, dict[str, Any]]:
    with engine.connect() as conn:
        return {r["id"]: dict(r) for r in conn.execute(sa.text(f"SELECT * FROM {name}")).mappings()}


def landed_rows(files: list[str]) -> tuple[pa.Schema, dict[int, dict[str, Any]]]:
    table = read_parquet(files)
    return table.schema, {r["id"]: r for r in table.to_pylist()}


_ISO = re.compile(r"P(-?\d+)Y(-?\d+)M(-?\d+)DT(-?\d+)H(-?\d+)M(-?[\d.]+)S")


def iso_interval_as_psycopg2(text: str) -> dt.timedelta:
    """The ISO 8601 text as psycopg2 folds an interval into a timedelta (year 365 d, month 30 d)."""
    y, m, d, h, mi, s = _ISO.fullmatch(text).groups()  # type: ignore[union-attr]
    return dt.timedelta(days=int(y) * 365 + int(m) * 30 + int(d), hours=int(h), minutes=int(mi), seconds=float(s))


def test_every_postgresql_type_round_trips(
    pg_engine: sa.Engine, tables: Any, unique_name: Any, pg_secrets: Any, lake: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    name = tables(pg_engine, unique_name("pg_types"), PG_TYPES)
    pg_secrets("erp")
    result = run_job(Job("postgresql", "erp", name, "FULL"), bucket_url=str(lake))
    assert result.status == "success", result.error
    schema, rows = landed_rows(result.files)
    source = source_rows(pg_engine, name)
    assert sorted(rows) == sorted(source) == [1, 2, 3, 4]
    types = {f.name: f.type for f in schema}
    assert types["c_wide"] == pa.decimal256(40, 10) and types["c_money"] == pa.decimal128(19, 2)
    assert types["c_ts"] == pa.timestamp("us") and types["c_tstz"] == pa.timestamp("us", tz="UTC")
    assert types["c_date"] == pa.date32() and types["c_time"] == pa.time64("us") and types["c_bytea"] == pa.binary()
    assert pa.types.is_list(types["c_iarr"]) or pa.types.is_large_list(types["c_iarr"])
    assert types["c_iarr"].value_type == pa.int32() and types["c_tarr"].value_type == pa.string()
    text_columns = ["c_char", "c_iv", "c_num", "c_timetz", "c_uuid", "c_json", "c_jsonb", "c_narr", "c_enum", "c_bit",
                    "c_varbit", "c_inet", "c_cidr", "c_xml", "c_mac"]
    assert {c: types[c] for c in text_columns} == {c: pa.string() for c in text_columns}
    assert f"column c_num: numeric without precision lands as text" in caplog.text
    assert "c_ts: 2 ±infinity value(s)" in caplog.text
    for key, src in source.items():
        got = rows[key]
        assert got["c_char"] == (src["c_char"].rstrip(" ") if src["c_char"] is not None else None)  # trimmed
        assert (got["c_iv"] and iso_interval_as_psycopg2(got["c_iv"])) == src["c_iv"]
        assert (got["c_num"] is None) == (src["c_num"] is None)
        if src["c_num"] is not None:
            assert Decimal(got["c_num"]).compare_total(src["c_num"]) == 0 or (src["c_num"].is_nan() and got["c_num"] == "NaN")
        assert got["c_wide"] == src["c_wide"]
        assert (got["c_timetz"] and dt.time.fromisoformat(got["c_timetz"])) == src["c_timetz"]  # offset kept
        # psycopg2 turns ±infinity into datetime.max/min (date.max/min): the same documented bounds.
        assert got["c_ts"] == src["c_ts"] and got["c_date"] == src["c_date"]
        if src["c_tstz"] is not None:
            assert got["c_tstz"].replace(tzinfo=None) == src["c_tstz"].astimezone(dt.timezone.utc).replace(tzinfo=None)
        assert got["c_uuid"] == (str(src["c_uuid"]) if src["c_uuid"] else None)
        for column in ("c_json", "c_jsonb"):
            assert (got[column] and __import__("json").loads(got[column])) == src[column]
        assert got["c_iarr"] == src["c_iarr"] and got["c_tarr"] == src["c_tarr"]
        assert (got["c_narr"] and [None if v is None else Decimal(str(v)) for v in __import__("json").loads(got["c_narr"])]) == src["c_narr"]
        assert got["c_enum"] == src["c_enum"] and got["c_bit"] == src["c_bit"] and got["c_varbit"] == src["c_varbit"]
        assert got["c_bytea"] == (bytes(src["c_bytea"]) if src["c_bytea"] is not None else None)
        assert got["c_money"] == (src["c_money"] and Decimal(src["c_money"].replace("$", "").replace(",", "")))
        assert got["c_inet"] == src["c_inet"] and got["c_cidr"] == src["c_cidr"] and got["c_xml"] == src["c_xml"]
        assert got["c_time"] == src["c_time"] and got["c_mac"] == src["c_mac"]


def test_every_mariadb_type_round_trips(
    mariadb_engine: sa.Engine, tables: Any, unique_name: Any, mariadb_secrets: Any, lake: Path,
) -> None:
    name = tables(mariadb_engine, unique_name("m_types"), MARIA_TYPES)
    mariadb_secrets("shop")
    result = run_job(Job("mysql", "shop", name, "FULL"), bucket_url=str(lake))
    assert result.status == "success", result.error
    schema, rows = landed_rows(result.files)
    source = source_rows(mariadb_engine, name)
    types = {f.name: f.type for f in schema}
    assert types["c_dec"] == pa.decimal256(65, 30) and types["c_dec2"] == pa.decimal128(12, 2)
    assert types["c_ubig"] == pa.decimal128(20, 0) and types["c_uint"] == pa.int64() and types["c_year"] == pa.int16()
    assert types["c_blob"] == types["c_geom"] == pa.binary()
    assert types["c_dt"] == pa.timestamp("us") and types["c_date"] == pa.date32()
    text_columns = ["c_char", "c_enum", "c_set", "c_json", "c_bit", "c_time"]
    assert {c: types[c] for c in text_columns} == {c: pa.string() for c in text_columns}
    for key, src in source.items():
        got = rows[key]
        for column in ("c_char", "c_enum", "c_set", "c_json", "c_year", "c_dec", "c_dec2", "c_blob", "c_ubig", "c_uint",
                       "c_dt", "c_date"):
            assert got[column] == src[column], column
        assert got["c_bit"] == (src["c_bit"] and format(int.from_bytes(src["c_bit"], "big"), "04b"))
        assert got["c_geom"] == (src["c_geom"] and src["c_geom"][4:])  # MySQL's value is SRID + WKB
        if src["c_time"] is not None:  # MySQL TIME holds elapsed times: text such as '838:59:59.000000'
            sign = -1 if got["c_time"].startswith("-") else 1
            h, m, s = got["c_time"].lstrip("-").split(":")
            assert sign * dt.timedelta(hours=int(h), minutes=int(m), seconds=float(s)) == src["c_time"]


CHAR_DDL = "CREATE TABLE {name} (id int PRIMARY KEY, code char(6), ts timestamp NULL)"


def _fill_char_table(engine: sa.Engine, name: str, ids: range) -> None:
    with engine.begin() as conn:
        for i in ids:
            conn.execute(sa.text(f"INSERT INTO {name} VALUES (:i, :code, :ts)"),
                         {"i": i, "code": None if i % 5 == 0 else f"c{i % 7}", "ts": None if i % 9 == 0 else
                          dt.datetime(2024, 1, 1) + dt.timedelta(minutes=i)})


@pytest.mark.parametrize("engine_name", ["pg", "maria"])
def test_char_columns_land_trimmed_or_padded_alike_on_both_engines(
    engine_name: str, pg_engine: sa.Engine, mariadb_engine: sa.Engine, tables: Any, unique_name: Any,
    pg_secrets: Any, mariadb_secrets: Any, lake: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine, kind = (pg_engine, "postgresql") if engine_name == "pg" else (mariadb_engine, "mysql")
    (pg_secrets if engine_name == "pg" else mariadb_secrets)("src")
    name = tables(engine, unique_name("chars"), CHAR_DDL)
    _fill_char_table(engine, name, range(1, 201))
    expected = {i: (None if i % 5 == 0 else f"c{i % 7}") for i in range(1, 201)}

    def codes(result: Any) -> dict[int, Any]:
        assert result.status == "success", result.error
        return {r["id"]: r["code"] for r in read_parquet(result.files).to_pylist()}

    assert codes(run_job(Job(kind, "src", name, "FULL"), bucket_url=str(lake / "full"))) == expected
    padded = codes(run_job(Job(kind, "src", name, "FULL", keep_char_padding=True), bucket_url=str(lake / "pad")))
    assert padded == {i: v and v.ljust(6) for i, v in expected.items()}
    # Parallel slices (PostgreSQL: shared snapshot; MariaDB: explicit partition column).
    monkeypatch.setattr(slicing, "usable_cores", lambda: 4)
    sliced = run_job(Job(kind, "src", name, "FULL", chunk_size=1_000, partition_column="id"), bucket_url=str(lake / "sl"))
    assert codes(sliced) == expected
    incremental = Job(kind, "src", name, "INCREMENTAL", watermark_column="ts", last_watermark="2024-01-01T00:00:00")
    first = codes(run_job(incremental, bucket_url=str(lake / "inc")))
    assert first == {i: v for i, v in expected.items() if i % 9}
    # dlt's pyarrow backend (a database or a column connectorx does not read) trims alike.
    monkeypatch.setattr(SqlSource, "stream_options", lambda self: None)
    assert codes(run_job(Job(kind, "src", name, "FULL"), bucket_url=str(lake / "slow"))) == expected


@pytest.mark.parametrize("engine_name", ["pg", "maria"])
def test_null_watermarks_load_on_the_first_run_and_are_counted_afterwards(
    engine_name: str, pg_engine: sa.Engine, mariadb_engine: sa.Engine, tables: Any, unique_name: Any,
    pg_secrets: Any, mariadb_secrets: Any, lake: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    engine, kind = (pg_engine, "postgresql") if engine_name == "pg" else (mariadb_engine, "mysql")
    (pg_secrets if engine_name == "pg" else mariadb_secrets)("src")
    name = tables(engine, unique_name("nullwm"), CHAR_DDL)
    _fill_char_table(engine, name, range(1, 101))  # ids divisible by 9 have a NULL ts: 11 rows
    job = Job(kind, "src", name, "INCREMENTAL", watermark_column="ts", primary_key=("id",))

    first = run_job(job, bucket_url=str(lake))  # no last_watermark: dlt used to fail three times here
    assert first.status == "success", first.error
    assert first.rows_processed == 100 and first.extra["null_watermark_rows"] == 11
    assert "11 row(s) with a NULL ts loaded (first run" in caplog.text

    _fill_char_table(engine, name, range(1000, 1010))  # 1008 has a NULL ts
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {name} SET ts = '2030-01-01' WHERE id >= 1000 AND ts IS NOT NULL"))
    second = run_job(job, bucket_url=str(lake))
    assert second.status == "success", second.error
    assert sorted(read_parquet(second.files)["id"].to_pylist()) == [i for i in range(1000, 1010) if i % 9]
    assert second.extra["null_watermark_rows"] == 12  # counted, never loaded again
    assert "12 row(s) with a NULL ts not loaded" in caplog.text
