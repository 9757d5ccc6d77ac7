"""MariaDB jobs against the real local server (PyMySQL): FULL, INCREMENTAL, special-character passwords."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pytest
import sqlalchemy as sa

from shared.workbook.models import Job
from shared.redaction import clear_secrets
from shared.runner import run_job
from tests.checksums import parquet_checksums, read_parquet, source_checksums

COLUMNS = {"id": "number", "amount": "decimal", "note": "text", "qty": "number", "updated_at": "timestamp", "day": "date"}
SPECIAL_PASSWORD = "p@ss:w/rd#1"
SPECIAL_USER = "ingest_special"


@pytest.fixture
def maria_table(mariadb_engine: sa.Engine, unique_name: Callable[[str], str]) -> Iterator[str]:
    name = unique_name("m_orders")
    with mariadb_engine.begin() as conn:
        conn.execute(sa.text(
            f"CREATE TABLE {name} (id INT PRIMARY KEY, amount DECIMAL(12,2), note TEXT CHARACTER SET utf8mb4, "
            "qty INT, updated_at DATETIME(6) NOT NULL, day DATE)"))
        conn.execute(sa.text(
            f"INSERT INTO {name} SELECT g, IF(g % 9 = 0, NULL, g * 1.25), IF(g % 4 = 0, NULL, CONCAT('naïve 🚀 ', g, '\nline')), g % 17, "
            "TIMESTAMP('2024-05-01 00:00:00') + INTERVAL g SECOND, DATE('2021-01-01') + INTERVAL (g % 500) DAY FROM (SELECT seq AS g FROM seq_1_to_3000) s"))
    yield name
    with mariadb_engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


@pytest.fixture
def special_user(mariadb_engine: sa.Engine) -> Iterator[str]:
    """A MariaDB user whose password needs URL encoding."""
    with mariadb_engine.begin() as conn:
        conn.execute(sa.text(f"DROP USER IF EXISTS '{SPECIAL_USER}'@'%'"))
        conn.execute(sa.text(f"CREATE USER '{SPECIAL_USER}'@'%' IDENTIFIED BY :pw"), {"pw": SPECIAL_PASSWORD})
        conn.execute(sa.text(f"GRANT SELECT ON test.* TO '{SPECIAL_USER}'@'%'"))
    yield SPECIAL_USER
    with mariadb_engine.begin() as conn:
        conn.execute(sa.text(f"DROP USER IF EXISTS '{SPECIAL_USER}'@'%'"))


def test_full_load_with_special_character_password(
    mariadb_engine: sa.Engine, maria_table: str, special_user: str, mariadb_secrets: Any, lake: Path
) -> None:
    mariadb_secrets("shop_mysql", username=special_user, password=SPECIAL_PASSWORD)
    result = run_job(Job("mysql", "shop_mysql", maria_table, "FULL"), bucket_url=str(lake))
    assert result.status == "success", result.error
    assert result.rows_processed == 3000
    table = read_parquet(result.files)
    assert table.schema.field("amount").type == pa.decimal128(12, 2)
    assert table.schema.field("day").type == pa.date32()
    assert table.schema.field("id").type == table.schema.field("qty").type == pa.int32()
    assert table.schema.field("updated_at").type == pa.timestamp("us")
    assert parquet_checksums(table, "id") == source_checksums(mariadb_engine, maria_table, "id", COLUMNS)


def test_wrong_password_error_names_host_and_hides_password(maria_table: str, special_user: str, mariadb_secrets: Any, lake: Path) -> None:
    clear_secrets()
    wrong = SPECIAL_PASSWORD + "-wrong"
    mariadb_secrets("shop_mysql", username=special_user, password=wrong)
    result = run_job(Job("mysql", "shop_mysql", maria_table, "FULL"), bucket_url=str(lake))
    assert result.status == "failed"
    assert result.error.startswith("mysql source 'shop_mysql' at 127.0.0.1:3306: ") and "Access denied" in result.error
    assert wrong not in result.error and SPECIAL_PASSWORD not in result.error


def test_incremental_appends_only_new_and_updated_rows(mariadb_engine: sa.Engine, maria_table: str, mariadb_secrets: Any, lake: Path) -> None:
    mariadb_secrets("shop_mysql")
    job = Job("mysql", "shop_mysql", maria_table, "INCREMENTAL", watermark_column="updated_at", primary_key=("id",),
              last_watermark="2024-05-01T00:30:00")
    first = run_job(job, bucket_url=str(lake))
    assert (first.status, first.rows_processed) == ("success", 3000 - 1800 + 1), first.error  # cursor is inclusive
    with mariadb_engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {maria_table} (id, amount, note, qty, updated_at) VALUES "
                             "(5001, 1.00, 'new', 1, '2030-01-01'), (5002, 2.00, 'new', 2, '2030-01-01')"))
        conn.execute(sa.text(f"UPDATE {maria_table} SET note = 'changed', updated_at = '2030-01-02' WHERE id IN (1, 2, 3)"))
    second = run_job(job, bucket_url=str(lake))
    assert (second.status, second.rows_processed) == ("success", 5)
    assert sorted(read_parquet(second.files)["id"].to_pylist()) == [1, 2, 3, 5001, 5002]
    assert run_job(job, bucket_url=str(lake)).rows_processed == 0
