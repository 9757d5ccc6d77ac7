"""Tables, schemas and columns named as the source names them, on the real PostgreSQL and MariaDB.

`"Sales EU"."Order Details"` with columns `CustomerID`, `Unit Price` and a mixed-case watermark
`UpdatedAt` lands in the folder `order_details` with its column names unchanged, FULL and
INCREMENTAL, on both extraction backends (connectorx and dlt's pyarrow backend).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa

from shared.workbook.models import Job
from shared.naming import NAMING_ENV
from shared.runner import run_job

SCHEMA = "Sales EU"
COLUMNS = ["OrderID", "CustomerID", "Unit Price", "UpdatedAt"]


def lake_columns(lake: Path, source: str, folder: str) -> list[str]:
    table = ds.dataset(lake / source / folder, format="parquet").to_table()
    return [c for c in table.column_names if not c.startswith("_dlt")]


def lake_rows(lake: Path, source: str, folder: str) -> int:
    return ds.dataset(lake / source / folder, format="parquet").count_rows()


class Database:
    """One engine's DDL for the test table (its quoting is the dialect's)."""

    def __init__(self, engine: sa.Engine, json_type: str) -> None:
        self.engine, self.json_type = engine, json_type
        self.q = engine.dialect.identifier_preparer.quote

    def create(self, table: str, with_json: bool) -> None:
        q, extra = self.q, f", {self.q('Notes')} {self.json_type}" if with_json else ""
        with self.engine.begin() as conn:
            conn.execute(sa.text(
                f"CREATE TABLE {q(SCHEMA)}.{q(table)} ({q('OrderID')} int PRIMARY KEY, {q('CustomerID')} varchar(10), "
                f"{q('Unit Price')} numeric(10,2), {q('UpdatedAt')} timestamp NOT NULL{extra})"
            ))

    def insert(self, table: str, first: int, last: int, with_json: bool) -> None:
        q = self.q
        notes = f", {q('Notes')}" if with_json else ""
        with self.engine.begin() as conn:
            for i in range(first, last + 1):
                conn.execute(
                    sa.text(f"INSERT INTO {q(SCHEMA)}.{q(table)} ({q('OrderID')}, {q('CustomerID')}, {q('Unit Price')}, "
                            f"{q('UpdatedAt')}{notes}) VALUES (:i, :c, :p, :u{', :n' if with_json else ''})"),
                    {"i": i, "c": f"C{i}", "p": i + 0.5, "u": f"2024-01-{i:02d} 00:00:00", "n": '{"a": 1}'},
                )


@pytest.fixture
def pg_shop(pg_engine: sa.Engine, pg_secrets: Callable[[str], None]) -> Iterator[Database]:
    """The tests' PostgreSQL schema with the `shop` source's secrets; dropped afterwards."""
    pg_secrets("shop")
    db = Database(pg_engine, "jsonb")
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {db.q(SCHEMA)}"))
    yield db
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {db.q(SCHEMA)} CASCADE"))


@pytest.fixture(params=["postgresql", "mysql"])
def database(request: Any) -> Iterator[tuple[str, Database]]:
    kind = request.param
    if kind == "postgresql":
        yield kind, request.getfixturevalue("pg_shop")
        return
    engine = request.getfixturevalue("mariadb_engine")
    request.getfixturevalue("mariadb_secrets")("shop")
    db = Database(engine, "json")
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE IF NOT EXISTS {db.q(SCHEMA)}"))
    yield kind, db
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE {db.q(SCHEMA)}"))


@pytest.fixture
def table_name() -> str:
    return f"Order Details {uuid.uuid4().hex[:6]}"


def folder_of(table: str) -> str:
    return "order_details_" + table.rsplit(" ", 1)[1]


@pytest.mark.parametrize("with_json", [False, True], ids=["connectorx", "pyarrow"])
def test_full_load_keeps_names(database: Any, table_name: str, with_json: bool, lake: Path) -> None:
    kind, db = database
    db.create(table_name, with_json)
    db.insert(table_name, 1, 3, with_json)
    result = run_job(Job(kind, "shop", table_name, "FULL", schema_name=SCHEMA), bucket_url=str(lake))
    assert result.status == "success", result.error
    assert result.rows_processed == 3
    folder = folder_of(table_name)
    assert not (lake / "shop" / table_name).exists()  # the folder is derived, never the raw name
    expected = COLUMNS + (["Notes"] if with_json else [])
    assert lake_columns(lake, "shop", folder) == expected


@pytest.mark.parametrize("with_json", [False, True], ids=["connectorx", "pyarrow"])
def test_incremental_load_on_a_mixed_case_watermark(database: Any, table_name: str, with_json: bool, lake: Path) -> None:
    kind, db = database
    db.create(table_name, with_json)
    db.insert(table_name, 1, 3, with_json)
    job = Job(kind, "shop", table_name, "INCREMENTAL", schema_name=SCHEMA, watermark_column="UpdatedAt",
              primary_key=("OrderID",), last_watermark="2024-01-02")
    first = run_job(job, bucket_url=str(lake))
    assert first.status == "success", first.error
    assert first.rows_processed == 2  # rows from the initial watermark on
    db.insert(table_name, 4, 5, with_json)
    second = run_job(job, bucket_url=str(lake))
    assert second.status == "success", second.error
    assert second.rows_processed == 2  # only the new rows: the cursor survived between runs
    folder = folder_of(table_name)
    assert lake_rows(lake, "shop", folder) == 4
    assert lake_columns(lake, "shop", folder) == COLUMNS + (["Notes"] if with_json else [])
    assert "schema_drift" not in second.extra


def test_snake_case_option(pg_shop: Database, table_name: str, monkeypatch: pytest.MonkeyPatch, lake: Path) -> None:
    pg_shop.create(table_name, False)
    pg_shop.insert(table_name, 1, 2, False)
    monkeypatch.setenv(NAMING_ENV, "snake_case")
    result = run_job(Job("postgresql", "shop", table_name, "FULL", schema_name=SCHEMA), bucket_url=str(lake))
    assert result.status == "success", result.error
    assert lake_columns(lake, "shop", folder_of(table_name)) == ["order_id", "customer_id", "unit_price", "updated_at"]


def test_a_bad_naming_setting_fails_the_job_clearly(monkeypatch: pytest.MonkeyPatch, lake: Path) -> None:
    monkeypatch.setenv(NAMING_ENV, "camel")
    result = run_job(Job("postgresql", "shop", "t", "FULL"), bucket_url=str(lake))
    assert result.status == "failed"
    assert "INGESTION_NAMING='camel' is not one of source, snake_case" in result.error


def test_an_incremental_table_keeps_the_naming_of_its_stored_schema(
    pg_shop: Database, table_name: str, monkeypatch: pytest.MonkeyPatch, lake: Path,
) -> None:
    """A lake written in snake_case (as before names were kept) continues in snake_case, from its cursor."""
    pg_shop.create(table_name, False)
    pg_shop.insert(table_name, 1, 2, False)
    job = Job("postgresql", "shop", table_name, "INCREMENTAL", schema_name=SCHEMA, watermark_column="UpdatedAt")
    monkeypatch.setenv(NAMING_ENV, "snake_case")
    assert run_job(job, bucket_url=str(lake)).rows_processed == 2
    monkeypatch.delenv(NAMING_ENV)
    pg_shop.insert(table_name, 3, 3, False)
    second = run_job(job, bucket_url=str(lake))
    assert (second.status, second.rows_processed) == ("success", 1), second.error
    assert lake_columns(lake, "shop", folder_of(table_name)) == ["order_id", "customer_id", "unit_price", "updated_at"]
    assert "schema_drift" not in second.extra
