"""The jobs of a source share one engine: counted in database connections, on the real PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa

from shared.runner import run_job
from shared.sources import engines
from shared.workbook.models import Job


@pytest.fixture
def small_tables(pg_engine: sa.Engine, unique_name: Callable[[str], str]) -> Iterator[list[str]]:
    names = [unique_name("shared_engine") for _ in range(3)]
    with pg_engine.begin() as conn:
        for name in names:
            conn.execute(sa.text(f"CREATE TABLE {name} (id int PRIMARY KEY, name text)"))
            conn.execute(sa.text(f"INSERT INTO {name} SELECT g, 'n' || g FROM generate_series(1, 50) g"))
    yield names
    with pg_engine.begin() as conn:
        for name in names:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The database of every new DBAPI connection a job's engine opens."""
    engines.dispose_all()
    opened: list[str] = []

    def count(dbapi_connection: Any, record: Any) -> None:
        opened.append("connect")

    sa.event.listen(sa.Engine, "connect", count)
    yield opened
    sa.event.remove(sa.Engine, "connect", count)
    engines.dispose_all()


def test_jobs_of_one_source_share_one_engine_and_connection(
    small_tables: list[str], pg_secrets: Any, lake: Path, connects: list[str]
) -> None:
    pg_secrets("erp")
    for name in small_tables:
        result = run_job(Job("postgresql", "erp", name, "FULL", primary_key=("id",)), bucket_url=str(lake))
        assert result.status == "success", result.error
        assert result.rows_processed == 50
    # One engine per job opened one connection each (dialect set-up, reflection compiled again).
    assert len(connects) == 1
    assert engines.shared_engines() == 1


def test_a_pooled_connection_the_server_dropped_is_replaced(
    small_tables: list[str], pg_secrets: Any, pg_engine: sa.Engine, lake: Path, connects: list[str]
) -> None:
    pg_secrets("erp")
    first = run_job(Job("postgresql", "erp", small_tables[0], "FULL"), bucket_url=str(lake))
    assert first.status == "success", first.error
    with pg_engine.begin() as conn:  # e.g. a server restart or an idle-session timeout
        dropped = conn.execute(sa.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'dlt-ingestion' AND pid <> pg_backend_pid()"
        )).scalar_one()
    assert dropped >= 1
    second = run_job(Job("postgresql", "erp", small_tables[1], "FULL"), bucket_url=str(lake))
    assert second.status == "success", second.error
    assert len(connects) == 2  # the dead one was pinged and replaced, not handed to the job


def test_an_engine_no_job_uses_is_disposed(
    small_tables: list[str], pg_secrets: Any, lake: Path, connects: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engines, "IDLE_SECONDS", 0.2)
    pg_secrets("erp")
    result = run_job(Job("postgresql", "erp", small_tables[0], "FULL"), bucket_url=str(lake))
    assert result.status == "success", result.error
    deadline = time.monotonic() + 10
    while engines.shared_engines() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engines.shared_engines() == 0


def test_an_engine_in_use_is_not_disposed(pg_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "IDLE_SECONDS", 0.05)
    engines.dispose_all()
    url, args = pg_engine.url, {"application_name": "dlt-ingestion"}
    first = engines.borrow(url, args)
    second = engines.borrow(url, args)
    assert first is second
    engines.give_back(first)
    time.sleep(0.3)
    assert engines.shared_engines() == 1  # the second borrower still holds it
    with second.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    engines.give_back(second)
    deadline = time.monotonic() + 10
    while engines.shared_engines() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engines.shared_engines() == 0
    assert engines.borrow(url, args) is not first  # a new engine after disposal
    engines.dispose_all()
