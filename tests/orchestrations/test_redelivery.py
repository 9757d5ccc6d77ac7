"""Durable delivers activities at least once: the job, slice and finish steps run again with the
same input (after they finished, after a crash between commit and result, or at the same time)
must leave the lake and the run store as one delivery would (real SQLite / PostgreSQL, local lake).

These tests fail with `INGESTION_UNSAFE_REDELIVERY=1` and `INGESTION_UNSAFE_PUBLISH=1` (no
idempotency token, no stored-result check, every staged slice published): set
`REDELIVERY_TESTS_UNSAFE=1` to see it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shared import steps
from tests.checksums import read_parquet

if os.environ.get("REDELIVERY_TESTS_UNSAFE") == "1":
    os.environ["INGESTION_UNSAFE_REDELIVERY"] = "1"
    os.environ["INGESTION_UNSAFE_PUBLISH"] = "1"

ROWS = 500


@pytest.fixture
def planned(service_env: Path, tmp_path: Path, workbook: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An INCREMENTAL SQLite job, planned: (key, plan_ref, services)."""
    db = tmp_path / "shop.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, ts TEXT)")
        conn.executemany("INSERT INTO orders VALUES (?, ?)", [(i, f"2024-01-01 00:{i // 60 % 60:02d}:{i % 60:02d}")
                                                              for i in range(1, ROWS + 1)])
    monkeypatch.setenv("SOURCES__SHOP__PATH", str(db))
    path = workbook([{"source_type": "sqlite", "source_name": "shop", "table_name": "orders",
                      "load_type": "INCREMENTAL", "watermark_column": "ts"}])
    services = steps.Services.local()
    plan = steps.plan_run({"config": str(path), "only": [], "dry_run": False}, "run-1", services)
    return "run-1", plan["plan_ref"], services


def lake_ids(env: Path, table: str = "orders", source: str = "shop") -> list[int]:
    files = sorted((env / "lake" / source / table).glob("*/*/*/*.parquet"))
    return sorted(read_parquet(files)["id"].to_pylist()) if files else []


def test_a_job_delivered_again_after_it_finished_reports_what_it_loaded(planned: Any, service_env: Path) -> None:
    key, ref, services = planned
    first = steps.run_planned_job(key, ref, 0, 1, "run", services)
    again = steps.run_planned_job(key, ref, 0, 1, "run", services)
    assert (first["status"], first["rows"]) == (again["status"], again["rows"]) == ("success", ROWS)
    assert services.runs.load_result(key, 0).rows_processed == ROWS
    assert lake_ids(service_env) == list(range(1, ROWS + 1))


def test_a_job_whose_result_was_lost_after_its_commit_is_not_loaded_again(
    planned: Any, service_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, ref, services = planned
    real = services.runs.save_result

    def crash(*args: Any) -> None:
        raise RuntimeError("worker died after the commit, before storing the result")

    monkeypatch.setattr(services.runs, "save_result", crash)
    with pytest.raises(RuntimeError):
        steps.run_planned_job(key, ref, 0, 1, "run", services)
    monkeypatch.setattr(services.runs, "save_result", real)
    redelivered = steps.run_planned_job(key, ref, 0, 1, "run", services)
    assert (redelivered["status"], redelivered["rows"]) == ("success", ROWS)
    stored = services.runs.load_result(key, 0)
    assert stored.rows_processed == ROWS and stored.files and all(Path(f).exists() for f in stored.files)
    assert lake_ids(service_env) == list(range(1, ROWS + 1))


def test_a_job_delivered_twice_at_once_loads_once_and_both_report_it(planned: Any, service_env: Path) -> None:
    key, ref, services = planned
    outcomes: list[dict[str, Any]] = []

    def deliver() -> None:
        outcomes.append(steps.run_planned_job(key, ref, 0, 1, "run", steps.Services.local()))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [(o["status"], o["rows"]) for o in outcomes] == [("success", ROWS)] * 2
    assert services.runs.load_result(key, 0).rows_processed == ROWS
    assert lake_ids(service_env) == list(range(1, ROWS + 1))


def test_redelivered_slices_and_finish_publish_each_row_once(
    service_env: Path, pg_engine: sa.Engine, unique_name: Any, pg_secrets: Any, workbook: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.sources.test_postgresql import create_typed_table

    name = unique_name("redeliver")
    create_typed_table(pg_engine, name, 3_000)
    pg_secrets("erp")
    monkeypatch.setenv("INGESTION_SPLIT_ROWS", "1000")
    try:
        path = workbook([{"source_type": "postgresql", "source_name": "erp", "table_name": name, "partition_column": "id"}])
        services = steps.Services.local()
        plan = steps.plan_run({"config": str(path), "only": [], "dry_run": False}, "run-2", services)
        key, ref = "run-2", plan["plan_ref"]
        split = steps.run_planned_job(key, ref, 0, 1, "run", services)
        assert split["status"] == "split"
        accepted = [steps.run_planned_slice(key, ref, 0, k, r, 1, "run", services) for k, r in enumerate(split["slices"])]
        steps.run_planned_slice(key, ref, 0, 1, split["slices"][1], 1, "run", services)  # slice 1 delivered again
        first = steps.finish_split(key, ref, 0, accepted, services)
        again = steps.finish_split(key, ref, 0, accepted, services)  # finish delivered again
        assert (first["status"], first["rows"]) == (again["status"], again["rows"]) == ("success", 3_000)
        assert lake_ids(service_env, name, "erp") == list(range(1, 3_001))
        assert not list((service_env / "lake" / "_staging" / "erp" / name).glob("*"))
    finally:
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
