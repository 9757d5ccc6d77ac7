"""The real orchestrator and activities on the local durable runtime, with SQLite sources."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from orchestrations import BATCH_ORCHESTRATOR, ORCHESTRATOR
from shared import steps
from shared.results import SUCCESS, JobResult

TIMEOUT = 120


def request(path: Path, **kw: Any) -> dict[str, Any]:
    return {"config": str(path), "only": [], "dry_run": False, **kw}


def test_run_lands_every_job_reports_progress_and_writes_metrics_and_audit(
    service_env: Path, sqlite_source: Any, workbook: Any, runtime: Any
) -> None:
    sqlite_source("shop", 4)
    path = workbook([{"source_type": "sqlite", "source_name": "shop", "table_name": f"t{i}"} for i in range(4)])
    statuses: list[dict[str, Any]] = []
    rt = runtime(max_parallel=2, on_status=lambda iid, status: statuses.append(status))
    result = rt.run(ORCHESTRATOR, request(path), instance_id="run-1", timeout=TIMEOUT)
    assert result.succeeded, result.error
    out = result.output
    assert out["summary"]["successful"] == 4 and out["summary"]["health_score"] == 100.0
    metrics = json.loads(Path(out["metrics_path"]).read_text())
    assert metrics["run_id"] == "run-1" and [j["status"] for j in metrics["jobs"]] == [SUCCESS] * 4
    assert len((service_env / "audit").glob("audit_*.csv").__next__().read_text().splitlines()) == 5
    assert len(list((service_env / "lake" / "shop").rglob("*.parquet"))) == 4
    # Progress was visible while running, and ended complete.
    running = [s for s in statuses if s.get("phase") == "running"]
    assert running and any(s["running_count"] > 0 for s in running)
    assert result.custom_status == {**result.custom_status, "phase": "done", "total": 4, "done": 4, "failed": 0}


def test_invalid_workbook_fails_the_orchestration_with_every_problem(
    service_env: Path, workbook: Any, runtime: Any
) -> None:
    path = workbook([
        {"source_type": "postgres", "source_name": "erp", "table_name": "a"},
        {"source_type": "postgresql", "source_name": "erp", "table_name": "b", "load_type": "DAILY"},
    ])
    result = runtime().run(ORCHESTRATOR, request(path), timeout=TIMEOUT)
    assert result.runtime_status == "Failed"
    assert "SourceConfig!A2 (source_type)" in result.error and "SourceConfig!D3 (load_type)" in result.error
    assert not (service_env / "lake").exists() and not (service_env / "metrics").exists()


def test_dry_run_lists_jobs_and_loads_nothing(service_env: Path, sqlite_source: Any, workbook: Any, runtime: Any) -> None:
    sqlite_source("shop", 2)
    path = workbook([{"source_type": "sqlite", "source_name": "shop", "table_name": f"t{i}"} for i in range(2)])
    result = runtime().run(ORCHESTRATOR, request(path, dry_run=True), timeout=TIMEOUT)
    assert result.succeeded and result.output["jobs"] == ["shop.t0", "shop.t1"]
    assert not list((service_env / "lake").rglob("*.parquet"))  # the pre-flight probe leaves nothing


def test_failing_job_is_retried_per_policy_without_failing_the_run(
    service_env: Path, sqlite_source: Any, workbook: Any, runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqlite_source("shop", 1)
    monkeypatch.setenv("SOURCES__GONE__PATH", str(service_env / "missing.sqlite"))
    monkeypatch.setenv("RETRY_DATABASE_MAX_ATTEMPTS", "4")
    path = workbook([
        {"source_type": "sqlite", "source_name": "gone", "table_name": "t0"},
        {"source_type": "sqlite", "source_name": "shop", "table_name": "t0"},
    ])
    result = runtime().run(ORCHESTRATOR, request(path), timeout=TIMEOUT)
    assert result.succeeded, result.error
    jobs = {j["job_id"]: j for j in json.loads(Path(result.output["metrics_path"]).read_text())["jobs"]}
    assert jobs["gone.t0"]["status"] == "failed" and jobs["gone.t0"]["retry_count"] == 3
    assert "SQLite database file not found" in jobs["gone.t0"]["error"]
    assert jobs["shop.t0"]["status"] == "success" and jobs["shop.t0"]["retry_count"] == 0
    # Three retry timers in the history, each after a failed attempt.
    assert sum(1 for e in result.history if e["EventType"] == 10) == 3


def test_a_job_that_recovers_reports_its_retries(
    service_env: Path, sqlite_source: Any, workbook: Any, runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = sqlite_source("late", 1)
    moved = db.with_suffix(".away")
    db.rename(moved)
    real = steps.run_planned_job

    def source_appears_on_third_attempt(key: str, plan_ref: str, index: int, attempt: int, *args: Any) -> dict[str, Any]:
        if attempt == 3:
            moved.rename(db)
        return real(key, plan_ref, index, attempt, *args)

    monkeypatch.setattr(steps, "run_planned_job", source_appears_on_third_attempt)
    path = workbook([{"source_type": "sqlite", "source_name": "late", "table_name": "t0"}])
    result = runtime().run(ORCHESTRATOR, request(path), timeout=TIMEOUT)
    job = json.loads(Path(result.output["metrics_path"]).read_text())["jobs"][0]
    assert (job["status"], job["retry_count"]) == ("success", 2)
    assert result.output["summary"]["health_score"] < 100  # a retried job costs the no-retry share


@pytest.mark.slow
def test_five_hundred_jobs_fan_out_in_batches_with_bounded_histories(
    service_env: Path, sqlite_source: Any, workbook: Any, runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job body is replaced by a fast stand-in that stores a result like the real one: this test
    is about the orchestration (batches, history sizes, memory), not about dlt."""
    sqlite_source("tiny", 1)
    path = workbook([{"source_type": "sqlite", "source_name": "tiny", "table_name": f"t{i}"} for i in range(500)])

    def fast_job(key: str, plan_ref: str, index: int, attempt: int, run_id: str, services: steps.Services) -> dict[str, Any]:
        job = services.runs.load_jobs(plan_ref)[index]
        result = JobResult(job.job_id, job.source_type, job.source_name, job.table_name, job.load_type, SUCCESS,
                           rows_processed=1, duration_seconds=0.001, rows_per_second=1000.0)
        services.runs.save_result(key, index, result)
        return steps.compact(result, index, attempt)

    monkeypatch.setattr(steps, "run_planned_job", fast_job)
    rt = runtime(max_parallel=4, virtual_time=True)
    tracemalloc.start()
    result = rt.run(ORCHESTRATOR, request(path), instance_id="big", timeout=600)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.succeeded, result.error
    assert result.output["summary"]["successful"] == 500
    instances = rt.list_instances(show_history=True)
    batches = [i for i in instances if i.name == BATCH_ORCHESTRATOR]
    assert len(batches) == 10 and all(b.succeeded for b in batches)
    # No history grows with the workbook: the parent holds 10 batches, each batch 50 jobs.
    assert len(result.history) < 80
    assert max(len(b.history) for b in batches) < 50 * 3 + 40
    assert peak < 200 * 1024 * 1024, f"peak traced memory {peak / 1e6:.0f} MB"
