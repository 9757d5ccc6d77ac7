"""A table too large for one activity runs as several slice activities and still lands as one
snapshot (real PostgreSQL, real orchestrator and activities on the local durable runtime)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from orchestrations import ORCHESTRATOR
from shared import steps
from tests.checksums import parquet_checksums, read_parquet, source_checksums
from tests.sources.test_postgresql import COLUMNS, create_typed_table

ROWS = 30_000


@pytest.fixture
def big_table(pg_engine: sa.Engine, unique_name: Any, pg_secrets: Any, service_env: Path,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = unique_name("split")
    create_typed_table(pg_engine, name, ROWS)
    with pg_engine.begin() as conn:  # a row without a key value must land too
        conn.execute(sa.text(f"ALTER TABLE {name} DROP CONSTRAINT {name}_pkey"))
        conn.execute(sa.text(f"ALTER TABLE {name} ALTER COLUMN id DROP NOT NULL"))
        conn.execute(sa.text(f"INSERT INTO {name} (id, t1, ts) VALUES (NULL, 'no key', now())"))
        conn.execute(sa.text(f"ANALYZE {name}"))
    pg_secrets("erp")
    monkeypatch.setenv("INGESTION_SPLIT_ROWS", "10000")  # -> 4 slices of the 30,001-row table
    yield name
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


def run(workbook: Any, runtime: Any, name: str) -> Any:
    path = workbook([{"source_type": "postgresql", "source_name": "erp", "table_name": name,
                      "partition_column": "id"}])
    result = runtime(max_parallel=2).run(ORCHESTRATOR, {"config": str(path), "only": [], "dry_run": False}, timeout=300)
    assert result.succeeded, result.error
    return result


def lake_files(env: Path, name: str) -> list[Path]:
    return sorted((env / "lake" / "erp" / name).rglob("*.parquet"))


def test_split_table_lands_as_one_snapshot(big_table: str, pg_engine: sa.Engine, service_env: Path,
                                           workbook: Any, runtime: Any) -> None:
    first = run(workbook, runtime, big_table)
    scheduled = [e["Name"] for e in first.history if e["EventType"] == 4]
    assert scheduled.count("run_ingestion_slice") == 4 and scheduled.count("finish_split_job") == 1
    job = json.loads(Path(first.output["metrics_path"]).read_text())["jobs"][0]
    assert (job["status"], job["rows_processed"], job["extra"]["slices"]) == ("success", ROWS + 1, 4)
    files = lake_files(service_env, big_table)
    assert [str(f) for f in files] == job["files"] and len(files) == 4
    columns = {**COLUMNS, "id": "number"}
    assert parquet_checksums(read_parquet(files), "id") == source_checksums(pg_engine, big_table, "id", columns)
    assert not list((service_env / "lake" / "_staging" / "erp" / big_table).glob("*"))  # no staged slice left

    again = run(workbook, runtime, big_table)  # same day: the new snapshot replaces the old one
    job = json.loads(Path(again.output["metrics_path"]).read_text())["jobs"][0]
    assert [str(f) for f in lake_files(service_env, big_table)] == job["files"]
    assert read_parquet(job["files"]).num_rows == ROWS + 1


def test_a_failed_slice_publishes_nothing_and_keeps_the_previous_snapshot(
    big_table: str, service_env: Path, workbook: Any, runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = run(workbook, runtime, big_table)
    kept = lake_files(service_env, big_table)
    real = steps.run_planned_slice

    def slice_two_fails(key: str, plan_ref: str, index: int, slice_no: int, *args: Any) -> dict[str, Any]:
        outcome = real(key, plan_ref, index, slice_no, *args)
        if slice_no == 2:
            outcome.update(status="failed", error="simulated slice failure", retryable=False)
        return outcome

    monkeypatch.setattr(steps, "run_planned_slice", slice_two_fails)
    failed = run(workbook, runtime, big_table)
    job = json.loads(Path(failed.output["metrics_path"]).read_text())["jobs"][0]
    assert job["status"] == "failed" and job["error"] == "slice 2 of 4 failed: simulated slice failure"
    assert lake_files(service_env, big_table) == kept  # the old snapshot is untouched
    assert not list((service_env / "lake" / "_staging" / "erp" / big_table).glob("*"))  # no staged slice left
    assert before.succeeded


def test_a_type_change_of_a_split_table_publishes_nothing_and_keeps_the_table_readable(
    big_table: str, pg_engine: sa.Engine, service_env: Path, workbook: Any, runtime: Any
) -> None:
    """As for a single-activity load (tests/sources/test_schema_drift.py): a column whose type
    changed while an earlier day's files keep the old type fails the job, permanently, before
    anything is published (each slice's load checks the schema, so finish_split discards them)."""
    import pyarrow.dataset as ds

    run(workbook, runtime, big_table)
    table_dir = service_env / "lake" / "erp" / big_table
    (day,) = [p for p in table_dir.glob("*/*/*") if p.is_dir()]
    (table_dir / "2001" / "01").mkdir(parents=True)
    day.rename(table_dir / "2001" / "01" / "01")  # as if loaded on an earlier day
    kept = lake_files(service_env, big_table)
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {big_table} ALTER COLUMN n TYPE text USING 'x' || n"))
    result = run(workbook, runtime, big_table)
    job = json.loads(Path(result.output["metrics_path"]).read_text())["jobs"][0]
    assert job["status"] == "failed" and job["extra"]["error_class"] == "permanent", job
    assert "schema change: column type changed in erp/" in job["error"] and "n int32 -> string" in job["error"]
    assert job["retry_count"] == 0
    assert lake_files(service_env, big_table) == kept  # nothing published
    assert ds.dataset(table_dir, format="parquet").to_table().num_rows == ROWS + 1  # still one readable dataset
    assert not list((service_env / "lake" / "_staging" / "erp" / big_table).glob("*"))  # no staged slice left
