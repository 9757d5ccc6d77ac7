"""Run metrics: one JSON document per orchestration run, summarising every `JobResult`.

The document's contract is `config/metrics_schema.json`; dashboards and alerts read it.

Health score (0-100, one decimal):

    50 x success rate
  + 30 x share of successful jobs meeting the throughput floor
  + 20 x share of successful jobs that needed no retry

* Success rate = successful / all jobs. A `skipped_circuit_open` job counts as not
  successful, because the data it should have brought did not arrive.
* A successful job meets the floor when it moved fewer than `SMALL_JOB_ROWS` rows (too
  short for a meaningful rate) or ran at >= the floor in rows per second.
* With no successful job the two shares are 0; with no jobs at all the run is
  vacuously healthy: 100.0.
* A run with any failed or circuit-open job is capped at 99.9, so rounding can never turn
  it into a perfect 100.0 (a 1-in-2000 failure would otherwise round up).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Union

from shared.results import (
    FAILED,
    SKIPPED_CIRCUIT_OPEN,
    STATUSES,
    SUCCESS,
    JobResult,
)

DEFAULT_THROUGHPUT_FLOOR = 1000.0
"""Rows per second a large successful job should reach to count as healthy."""

SMALL_JOB_ROWS = 10_000
"""Jobs under this many rows always meet the throughput floor (their rate is mostly overhead)."""

MAX_IMPERFECT_SCORE = 99.9
"""Highest score of a run in which some job failed or was skipped by an open circuit."""

# Weights as exact fractions so hand-computed scores (e.g. 87.5) come out exactly.
_SUCCESS_WEIGHT = Fraction(50)
_THROUGHPUT_WEIGHT = Fraction(30)
_NO_RETRY_WEIGHT = Fraction(20)


def throughput_floor_from_env(environ: Optional[Mapping[str, str]] = None) -> float:
    """The health throughput floor: `HEALTH_THROUGHPUT_FLOOR`, else `DEFAULT_THROUGHPUT_FLOOR`.

    Args:
        environ: Where to read the variable (the process environment by default).

    Returns:
        Rows per second, >= 0.

    Raises:
        ValueError: The variable is set to something other than a number >= 0.
    """
    from shared.settings import settings

    return settings(environ).throughput_floor


def build_metrics(
    results: Iterable[Union[JobResult, Mapping[str, Any]]],
    *,
    pipeline_name: str,
    run_id: str,
    execution_time: datetime,
    throughput_floor: float = DEFAULT_THROUGHPUT_FLOOR,
) -> dict[str, Any]:
    """The metrics document of one run (see `config/metrics_schema.json`).

    Args:
        results: Every job's outcome, as `JobResult` or its `to_dict()` form.
        pipeline_name: Name of the ingestion pipeline (the workbook / deployment).
        run_id: The orchestration instance id.
        execution_time: When the run started (naive means UTC).
        throughput_floor: Rows per second a large successful job should reach.

    Returns:
        The document. `summary.total_rows` and `summary.total_duration_seconds` add up every
        job; `summary.avg_throughput` uses successful jobs only.

    Raises:
        ValueError: A result has a status outside `shared.results.STATUSES`.
    """
    jobs = [as_job_result(r) for r in results]
    succeeded = [j for j in jobs if j.status == SUCCESS]
    success_rows = sum(j.rows_processed for j in succeeded)
    success_seconds = sum(j.duration_seconds for j in succeeded)
    return {
        "pipeline_name": pipeline_name,
        "execution_time": iso_utc(execution_time),
        "run_id": run_id,
        "summary": {
            "total_jobs": len(jobs),
            "successful": len(succeeded),
            "failed": sum(1 for j in jobs if j.status == FAILED),
            "skipped": sum(1 for j in jobs if j.status == SKIPPED_CIRCUIT_OPEN),
            "total_rows": sum(j.rows_processed for j in jobs),
            "total_duration_seconds": round(sum(j.duration_seconds for j in jobs), 3),
            "avg_throughput": round(success_rows / success_seconds, 2) if success_seconds > 0 else 0.0,
            "health_score": health_score(jobs, throughput_floor=throughput_floor),
        },
        "jobs": [job_entry(j) for j in jobs],
    }


def health_score(
    results: Iterable[Union[JobResult, Mapping[str, Any]]],
    *,
    throughput_floor: float = DEFAULT_THROUGHPUT_FLOOR,
) -> float:
    """The run's health, 0-100 with one decimal (formula in the module docstring).

    Args:
        results: Every job's outcome.
        throughput_floor: Rows per second a large successful job should reach.

    Returns:
        The score; below 100 whenever a job failed or was skipped by an open circuit.
    """
    jobs = [as_job_result(r) for r in results]
    if not jobs:
        return 100.0
    succeeded = [j for j in jobs if j.status == SUCCESS]
    score = _SUCCESS_WEIGHT * Fraction(len(succeeded), len(jobs))
    if succeeded:
        fast = sum(1 for j in succeeded if _meets_floor(j, throughput_floor))
        first_try = sum(1 for j in succeeded if j.retry_count == 0)
        score += _THROUGHPUT_WEIGHT * Fraction(fast, len(succeeded))
        score += _NO_RETRY_WEIGHT * Fraction(first_try, len(succeeded))
    rounded = float((Decimal(score.numerator) / Decimal(score.denominator)).quantize(
        Decimal("0.1"), rounding=ROUND_HALF_UP
    ))
    if len(succeeded) < len(jobs):
        return min(rounded, MAX_IMPERFECT_SCORE)
    return rounded


def metrics_filename(execution_time: datetime, run_id: str) -> str:
    """`metrics_<YYYYMMDD_HHMMSS>_<run_id>.json`, the time in UTC.

    Characters of `run_id` outside `A-Z a-z 0-9 . _ -` become `_`, so an instance id can
    never point outside the metrics folder.

    Raises:
        ValueError: `run_id` is empty.
    """
    if not run_id:
        raise ValueError("metrics_filename: run_id must not be empty")
    safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)
    return f"metrics_{_as_utc(execution_time):%Y%m%d_%H%M%S}_{safe_id}.json"


def write_metrics(metrics: Mapping[str, Any], path: Union[str, os.PathLike[str]]) -> Path:
    """Write the document as pretty JSON, atomically: readers see the old file or the new one.

    Args:
        metrics: A `build_metrics` document.
        path: The target file, or an existing folder to write `metrics_filename(...)` into.
            Missing parent folders are created.

    Returns:
        The file written.
    """
    target = Path(path)
    if target.is_dir():
        target = target / metrics_filename(
            datetime.fromisoformat(metrics["execution_time"].replace("Z", "+00:00")), metrics["run_id"]
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    # The temp file sits next to the target so os.replace stays on one file system (atomic).
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(metrics, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def as_job_result(result: Union[JobResult, Mapping[str, Any]]) -> JobResult:
    """A `JobResult` from either form, with its status checked.

    Raises:
        ValueError: The status is not one of `shared.results.STATUSES`.
    """
    job = result if isinstance(result, JobResult) else JobResult.from_dict(dict(result))
    if job.status not in STATUSES:
        raise ValueError(
            f"job {job.job_id}: status {job.status!r} is not one of {', '.join(STATUSES)}"
        )
    return job


def iso_utc(moment: datetime) -> str:
    """ISO 8601 UTC with seconds and a `Z`, e.g. `2025-01-15T08:00:00Z`; naive means UTC."""
    return _as_utc(moment).isoformat(timespec="seconds").replace("+00:00", "Z")


def rows_per_second(job: JobResult) -> float:
    """The job's rate as reported, or rows / duration when the runner left it at 0."""
    if job.rows_per_second > 0:
        return float(job.rows_per_second)
    if job.duration_seconds > 0:
        return job.rows_processed / job.duration_seconds
    return 0.0


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _meets_floor(job: JobResult, floor: float) -> bool:
    return job.rows_processed < SMALL_JOB_ROWS or rows_per_second(job) >= floor


def job_entry(job: JobResult) -> dict[str, Any]:
    """One job as the metrics (and, with its own columns, the audit) report it."""
    entry: dict[str, Any] = {
        "job_id": job.job_id,
        "source_type": job.source_type,
        "source_name": job.source_name,
        "table_name": job.table_name,
        "load_type": job.load_type,
        "status": job.status,
        "rows_processed": job.rows_processed,
        "duration_seconds": round(float(job.duration_seconds), 3),
        "rows_per_second": round(rows_per_second(job), 2),
        "retry_count": job.retry_count,
        "error": job.error,
        "schema_version": job.schema_version,
        "files": list(job.files),
    }
    if job.extra:
        entry["extra"] = dict(job.extra)
    return entry
