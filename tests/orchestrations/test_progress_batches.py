"""Structured batch progress: the orchestrator publishes per-batch counts in its custom status and
the CLI's progress bar reads them (no label parsing). The real orchestrator on the local durable
runtime; the job body is a fast stand-in that stores a result like the real one (this is about
the orchestration's status, not about dlt)."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.progress import Progress as Bar

from orchestrations import BATCH_ORCHESTRATOR, ORCHESTRATOR
from orchestrations.progress import MAX_BATCH_DETAIL, BatchBoard, Progress, combined_counts
from shared import steps
from ingest.cli import _LiveProgress
from shared.results import FAILED, SUCCESS, JobResult

BATCHES, SIZE = 25, 2
FAILING = {3, 17, 40}
"""Plan indexes whose stand-in job fails (permanently: one attempt)."""


def stand_in(key: str, plan_ref: str, index: int, attempt: int, run_id: str, services: steps.Services) -> dict[str, Any]:
    job = services.runs.load_jobs(plan_ref)[index]
    failed = index in FAILING
    result = JobResult(job.job_id, job.source_type, job.source_name, job.table_name, job.load_type,
                       FAILED if failed else SUCCESS, rows_processed=0 if failed else 1, duration_seconds=0.001,
                       error="stand-in failure" if failed else None, extra={"retryable": False} if failed else {})
    services.runs.save_result(key, index, result)
    return steps.compact(result, index, attempt)


def test_more_than_twenty_batches_publish_counts_the_cli_reads(
    service_env: Path, sqlite_source: Any, workbook: Any, runtime: Any, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    jobs = BATCHES * SIZE
    sqlite_source("tiny", jobs)  # load_plan checks that every table exists
    path = workbook([{"source_type": "sqlite", "source_name": "tiny", "table_name": f"t{i}"} for i in range(jobs)])
    monkeypatch.setenv("INGESTION_BATCH_SIZE", str(SIZE))
    monkeypatch.setattr(steps, "run_planned_job", stand_in)
    with Bar(console=Console(file=io.StringIO())) as bar:
        live = _LiveProgress(bar, "many")
        seen: list[dict[str, Any]] = []

        def on_status(instance_id: str, status: Any) -> None:
            live(instance_id, status)
            seen.append(dict(live.counts))

        rt = runtime(max_parallel=3, virtual_time=True, on_status=on_status)
        with caplog.at_level(logging.ERROR, logger="ingest.durable"):
            result = rt.run(ORCHESTRATOR, {"config": str(path), "only": [], "dry_run": False},
                            instance_id="many", timeout=300)
    assert result.succeeded, result.error
    assert "on_status callback failed" not in caplog.text
    batches = [i for i in rt.list_instances() if i.name == BATCH_ORCHESTRATOR]
    assert len(batches) == BATCHES

    final = result.custom_status
    assert len(json.dumps(final)) < 16 * 1024
    board = final["batches"]
    assert {k: board[k] for k in ("total", "size", "done", "running", "failed", "detail")} == {
        "total": BATCHES, "size": SIZE, "done": BATCHES, "running": 0, "failed": 0, "detail": True}
    assert board["state"] == "D" * BATCHES and board["jobs"] == [SIZE] * BATCHES
    failed_per_batch = [sum(1 for i in FAILING if i // SIZE == b) for b in range(BATCHES)]
    assert board["jobs_failed"] == failed_per_batch
    assert board["jobs_done"] == [SIZE] * BATCHES and board["jobs_skipped"] == [0] * BATCHES
    # Every batch published its own number.
    assert sorted(b.custom_status["batch"]["number"] for b in batches) == list(range(1, BATCHES + 1))
    assert all(b.custom_status["batch"]["of"] == BATCHES for b in batches)

    # What the CLI showed: counts only grow, never exceed the plan, and end exact.
    running = [c for c in seen if c["phase"] == "running" and c["total"] == jobs]
    assert len(running) > BATCHES  # it followed the run, not just its end
    for before, after in zip(running, running[1:]):
        assert after["done"] >= before["done"] and after["failed"] >= before["failed"]
    assert all(c["done"] <= jobs for c in seen)
    assert any(0 < c["done"] < jobs for c in running)
    assert live.counts == {"phase": "done", "total": jobs, "done": jobs, "failed": len(FAILING), "skipped": 0, "running": 0}
    assert bar.tasks[0].completed == jobs and bar.tasks[0].total == jobs


def test_counts_combine_finished_and_running_batches_exactly() -> None:
    """A batch that ended but is still `R` in the parent's view adds its own final counts once;
    a batch the parent has counted (`D`) is not added again."""
    parent = Progress(total=6)
    for n in (1, 2, 3):
        parent.start_batch(n, 3, 2, f"batch {n}", 2)
    parent.end_batch(1, "batch 1", {"done": 2, "failed": 1, "skipped": 0, "rows": 1})
    status = parent.as_status()
    batches = {
        "x:b1": {"batch": {"number": 1, "of": 3}, "done": 2, "failed": 1, "running_count": 0},  # already counted
        "x:b2": {"batch": {"number": 2, "of": 3}, "done": 2, "failed": 0, "running_count": 0},  # ended, not yet seen
        "x:b3": {"batch": {"number": 3, "of": 3}, "done": 1, "failed": 1, "running_count": 1},
    }
    counts = combined_counts(status, batches)
    assert counts == {"phase": "running", "total": 6, "done": 5, "failed": 2, "skipped": 0, "running": 1}


def test_batch_status_stays_small_with_many_batches() -> None:
    """10,000 jobs in batches of 25 (400 batches): per-batch detail within 16 KB; beyond
    `MAX_BATCH_DETAIL` batches only the totals are published."""
    for batches, detail in ((MAX_BATCH_DETAIL, True), (MAX_BATCH_DETAIL + 1, False)):
        progress = Progress(total=batches * 25)
        for n in range(1, batches + 1):
            progress.start_batch(n, batches, 25, f"batch {n}/{batches} ({25} jobs)", 25)
        for n in range(1, batches + 1, 2):
            progress.end_batch(n, f"batch {n}/{batches} ({25} jobs)", {"done": 25, "failed": 12, "skipped": 13, "rows": 10**9})
        status = progress.as_status()
        assert len(json.dumps(status)) < 8 * 1024, len(json.dumps(status))
        assert status["batches"]["detail"] is detail and ("state" in status["batches"]) is detail
        assert status["batches"]["done"] == (batches + 1) // 2


def test_batch_board_rejects_out_of_order_starts() -> None:
    board = BatchBoard(total=2, size=1)
    with pytest.raises(AssertionError):
        board.start(2, 1)
