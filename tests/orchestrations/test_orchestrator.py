"""The real orchestrator and activities on the local durable runtime, with SQLite sources."""

from __future__ import annotations

import json
import threading
import time
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
    # Three retry timers in the history, each after a failed attempt (pacer timers, due at
    # once, come on top while the other job still runs: see docs/durable-replay.md).
    assert sum(1 for e in result.history if e["EventType"] == 10 and e["FireAt"] > e["Timestamp"]) == 3
    assert result.warnings == []


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
    sqlite_source("tiny", 500)  # load_plan checks that every table exists
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


def _distinct_tables(path: Path, rows: list[int]) -> None:
    """SQLite tables t0..tN with the given (distinct) row counts."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        for t, count in enumerate(rows):
            conn.execute(f"CREATE TABLE t{t} (id INTEGER PRIMARY KEY, v TEXT)")
            conn.executemany(f"INSERT INTO t{t} VALUES (?, ?)", [(i, f"v{i}") for i in range(count)])


def test_consecutive_runs_of_a_workbook_keep_their_own_batches_and_results(
    service_env: Path, workbook: Any, runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two daily runs of one workbook under its fixed (singleton) instance id, in batches of 2,
    with a job that fails and is retried while the others of its batch run: every batch of each
    run has an id of its own (run 1's batches stay queryable), each job's result lands on that
    job, and the runtime sees nothing the Durable extension would replay differently."""
    rows = {"shop.t0": 3, "shop.t1": 5, "shop.t2": 7, "shop.t3": 11}
    _distinct_tables(service_env / "shop.sqlite", list(rows.values()))
    monkeypatch.setenv("SOURCES__SHOP__PATH", str(service_env / "shop.sqlite"))
    monkeypatch.setenv("SOURCES__GONE__PATH", str(service_env / "missing.sqlite"))
    monkeypatch.setenv("RETRY_DATABASE_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("INGESTION_BATCH_SIZE", "2")
    monkeypatch.setenv("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "100")  # day 2 retries like day 1
    path = workbook([{"source_type": "sqlite", "source_name": "gone", "table_name": "t0"}]
                    + [{"source_type": "sqlite", "source_name": "shop", "table_name": f"t{i}"} for i in range(4)])
    rt = runtime(max_parallel=4)
    batch_ids: list[set[str]] = []
    for day in range(2):
        if day:
            time.sleep(1.0)  # run keys (metrics file names) have a resolution of one second
        known = {i.instance_id for i in rt.list_instances(show_history=False)}
        result = rt.run(ORCHESTRATOR, request(path), instance_id="ingestion-jobs", timeout=TIMEOUT)
        assert result.succeeded, result.error
        jobs = {j["job_id"]: j for j in json.loads(Path(result.output["metrics_path"]).read_text())["jobs"]}
        assert {k: jobs[k]["rows_processed"] for k in rows} == rows
        # (A job may need a second attempt: jobs of one source can race to create its lake
        # folder on the local filesystem, FileExistsError; retried, it lands its own rows.)
        assert all(jobs[k]["status"] == SUCCESS for k in rows)
        assert (jobs["gone.t0"]["status"], jobs["gone.t0"]["retry_count"]) == ("failed", 2)
        batches = [i for i in rt.list_instances(show_history=True)
                   if i.name == BATCH_ORCHESTRATOR and i.instance_id not in known]
        assert len(batches) == 3 and all(b.succeeded for b in batches)
        assert all(b.instance_id.startswith("ingestion-jobs:") and len(b.instance_id) <= 256 for b in batches)
        assert sum(b.output["rows"] for b in batches) == sum(rows.values())
        for instance in [result, *batches]:
            assert instance.warnings == [], instance.warnings
        batch_ids.append({b.instance_id for b in batches})
    assert not batch_ids[0] & batch_ids[1]
    assert all(rt.get_status(i).succeeded for i in batch_ids[0])  # run 1's batches were not replaced


@pytest.mark.parametrize("scheme", ["per-run ids", "fixed ids (before)"])
def test_a_new_run_never_reuses_the_batch_ids_of_a_terminated_run_still_running(
    scheme: str, service_env: Path, sqlite_source: Any, workbook: Any, runtime: Any,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """Terminating a run leaves its batches running (Durable does not cascade terminations).
    The next run of the workbook must not start batches under their ids: Durable (Azure
    Storage) would replace those running instances, and the local runtime fails such a call.
    The job body is a stand-in that blocks until released, to keep run 1's batches running."""
    from orchestrations import ingestion

    if scheme != "per-run ids":  # what the orchestrator did before: the same ids every run
        monkeypatch.setattr(ingestion, "batch_instance_id",
                            lambda prefix, number: f"{prefix.rsplit(':', 1)[0]}:batch:{number}")
    release = threading.Event()

    def blocked_job(key: str, plan_ref: str, index: int, attempt: int, run_id: str, services: steps.Services) -> dict[str, Any]:
        release.wait(60)
        job = services.runs.load_jobs(plan_ref)[index]
        result = JobResult(job.job_id, job.source_type, job.source_name, job.table_name, job.load_type, SUCCESS,
                           rows_processed=1, duration_seconds=0.001, rows_per_second=1000.0)
        services.runs.save_result(key, index, result)
        return steps.compact(result, index, attempt)

    monkeypatch.setattr(steps, "run_planned_job", blocked_job)
    monkeypatch.setenv("INGESTION_BATCH_SIZE", "2")
    sqlite_source("tiny", 3)  # load_plan checks that every table exists
    path = workbook([{"source_type": "sqlite", "source_name": "tiny", "table_name": f"t{i}"} for i in range(3)])
    rt = runtime(max_parallel=8)
    try:
        rt.start(ORCHESTRATOR, request(path), instance_id="ingestion-jobs")
        deadline = time.monotonic() + 60
        while sum(1 for i in rt.list_instances(show_history=False)
                  if i.name == BATCH_ORCHESTRATOR and i.runtime_status == "Running") < 2:
            assert time.monotonic() < deadline, "run 1 never started its batches"
            time.sleep(0.05)
        assert rt.terminate("ingestion-jobs", "stuck")
        time.sleep(1.0)  # a later second: run 2 gets its own run key
        rt.start(ORCHESTRATOR, request(path), instance_id="ingestion-jobs")
        if scheme == "per-run ids":
            deadline = time.monotonic() + 60
            while sum(1 for i in rt.list_instances(show_history=False) if i.name == BATCH_ORCHESTRATOR) < 4:
                assert time.monotonic() < deadline, "run 2 never started its batches"
                time.sleep(0.05)
            release.set()
            result = rt.wait("ingestion-jobs", TIMEOUT)
            assert result.succeeded, result.error
            assert result.output["summary"]["successful"] == 3
        else:
            result = rt.wait("ingestion-jobs", TIMEOUT)
            assert result.runtime_status == "Failed"
            assert "ingestion-jobs:batch:1' belongs to an instance that is still running" in result.error
    finally:
        release.set()


def test_retries_while_other_jobs_run_start_on_time_in_azure_and_land_on_their_jobs(
    service_env: Path, sqlite_source: Any, workbook: Any, runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two jobs fail and are retried while others run (virtual time): the runtime's model of the
    extension's .NET shim sees no action it would number differently (results misattributed)
    or start late (a retry held behind another job's long attempt), and each job's rows land on
    that job. The job body is a scripted stand-in (durations, failures, distinct row counts):
    this test is about the orchestration's replay in Azure, not about dlt."""
    from ingest.durable import activity_sleep
    from shared.results import FAILED

    # table -> per attempt: (virtual seconds, succeeds?)
    script = {"t0": [(0, False), (30, True)], "t1": [(5, False), (1, True)], "t2": [(40, True)], "t3": [(45, True)]}
    rows = {"t0": 3, "t1": 5, "t2": 7, "t3": 11}

    def scripted_job(key: str, plan_ref: str, index: int, attempt: int, run_id: str, services: steps.Services) -> dict[str, Any]:
        job = services.runs.load_jobs(plan_ref)[index]
        seconds, ok = script[job.table_name][attempt - 1]
        activity_sleep(seconds)
        result = JobResult(job.job_id, job.source_type, job.source_name, job.table_name, job.load_type,
                           SUCCESS if ok else FAILED, rows_processed=rows[job.table_name] if ok else 0,
                           duration_seconds=max(seconds, 0.001), error=None if ok else "scripted failure",
                           retry_count=attempt - 1)
        services.runs.save_result(key, index, result)
        return steps.compact(result, index, attempt)

    monkeypatch.setattr(steps, "run_planned_job", scripted_job)
    sqlite_source("tiny", len(script))  # load_plan checks that every table exists
    path = workbook([{"source_type": "sqlite", "source_name": "tiny", "table_name": t} for t in script])
    result = runtime(max_parallel=8, virtual_time=True).run(ORCHESTRATOR, request(path), timeout=TIMEOUT)
    assert result.succeeded, result.error
    assert result.warnings == []
    jobs = {j["table_name"]: j for j in json.loads(Path(result.output["metrics_path"]).read_text())["jobs"]}
    assert {t: (j["status"], j["rows_processed"], j["retry_count"]) for t, j in jobs.items()} == {
        "t0": (SUCCESS, 3, 1), "t1": (SUCCESS, 5, 1), "t2": (SUCCESS, 7, 0), "t3": (SUCCESS, 11, 0)}
