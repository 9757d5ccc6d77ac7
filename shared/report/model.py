"""What the run report shows, computed from a metrics document (no HTML here).

Times on the timeline are seconds since the run's first attempt started. A job's attempts come
from `extra.attempts` (written since the report exists, `shared.results.record_attempt`); an older
document has only the last attempt's `extra.started_at`/`finished_at`, and then only that attempt
is drawn. The wait before a retry is the gap between two attempts: the durable timer plus the time
the retry waited for a free worker.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from shared.history import RunSummary, summarize

SKIPPED = ("skipped_circuit_open", "skipped_dry_run")
STATUS_ORDER = {"failed": 0, "skipped_circuit_open": 1, "skipped_dry_run": 2, "success": 3}
"""Default order of the job table: what needs attention first."""


@dataclass(frozen=True)
class Attempt:
    """One attempt of one job on the run's time axis."""

    number: int
    start: float
    """Seconds since the run's first attempt started."""
    end: float
    status: str
    error: Optional[str] = None


@dataclass(frozen=True)
class JobView:
    """One row of the job table and one lane of the timeline."""

    job_id: str
    source_name: str
    source_type: str
    table_name: str
    load_type: str
    status: str
    rows: int
    duration: float
    rows_per_second: float
    attempts: int
    """Attempts made: the recorded ones that ran (not those an open circuit refused), else
    `retry_count + 1` (0 for a skipped job)."""
    error: str
    drift: str
    """Schema changes since the table's previous load, one line; empty when none."""
    drift_count: int
    timeline: tuple[Attempt, ...] = ()
    earlier_unrecorded: bool = False
    """True when the document predates attempt records and the job had retries: only its last
    attempt is on the timeline."""

    @property
    def first_start(self) -> Optional[float]:
        """When its first drawn attempt started, or None when it has no times."""
        return self.timeline[0].start if self.timeline else None


@dataclass(frozen=True)
class SourceView:
    """Every job of one source, summed (the report's grouping for large runs)."""

    source_name: str
    source_type: str
    jobs: int
    ok: int
    failed: int
    skipped: int
    rows: int
    duration: float


@dataclass(frozen=True)
class RunView:
    """Everything the report renders."""

    pipeline_name: str
    run_id: str
    execution_time: str
    summary: Mapping[str, Any]
    jobs: tuple[JobView, ...]
    sources: tuple[SourceView, ...]
    origin: Optional[dt.datetime]
    """Wall-clock time of the timeline's 0 (None when no job carries times)."""
    span: float
    """Seconds from the first attempt's start to the last attempt's end."""
    wall_clock: float
    trend: tuple[RunSummary, ...] = field(default=())
    """Recent runs, oldest first, this one included (empty: no history)."""
    max_parallel: int = 0
    """Most attempts running at the same time."""


def parse_time(value: Any) -> Optional[dt.datetime]:
    """An ISO 8601 time as an aware datetime (naive means UTC); None when missing or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def as_int(value: Any) -> int:
    """A whole number from a document value (0 when missing or not a number)."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def as_float(value: Any) -> float:
    """A number from a document value (0.0 when missing or not a number)."""
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0


def drift_text(drift: Any) -> tuple[str, int]:
    """`extra.schema_drift` as one line (`orders: added a, b; removed c; changed qty int32->string`)
    and the number of changed columns."""
    if not isinstance(drift, Mapping) or not drift:
        return "", 0
    parts, count = [], 0
    for folder, change in drift.items():
        if not isinstance(change, Mapping):
            continue
        pieces = []
        added, removed = list(change.get("added") or []), list(change.get("removed") or [])
        changed = change.get("changed") or {}
        if added:
            pieces.append("added " + ", ".join(map(str, added)))
        if removed:
            pieces.append("removed " + ", ".join(map(str, removed)))
        if isinstance(changed, Mapping) and changed:
            pieces.append("changed " + ", ".join(
                f"{col} {(c or {}).get('from')}->{(c or {}).get('to')}" if isinstance(c, Mapping) else str(col)
                for col, c in changed.items()))
        count += len(added) + len(removed) + (len(changed) if isinstance(changed, Mapping) else 0)
        if pieces:
            parts.append(f"{folder}: " + "; ".join(pieces))
    return " | ".join(parts), count


def _raw_attempts(job: Mapping[str, Any]) -> tuple[list[tuple[int, dt.datetime, dt.datetime, str, Optional[str]]], bool]:
    extra = job.get("extra") if isinstance(job.get("extra"), Mapping) else {}
    out = []
    for entry in extra.get("attempts") or []:
        if not isinstance(entry, Mapping):
            continue
        start, end = parse_time(entry.get("started_at")), parse_time(entry.get("finished_at"))
        if start is None:
            continue
        out.append((as_int(entry.get("attempt")) or len(out) + 1, start, max(end or start, start),
                    str(entry.get("status") or ""), entry.get("error")))
    if out:
        return sorted(out, key=lambda a: (a[0], a[1])), False
    start, end = parse_time(extra.get("started_at")), parse_time(extra.get("finished_at"))
    if start is None:
        return [], False
    retries = as_int(job.get("retry_count"))
    return [(retries + 1, start, max(end or start, start), str(job.get("status") or ""), job.get("error"))], retries > 0


def build_view(metrics: Mapping[str, Any], trend: Sequence[RunSummary] = ()) -> RunView:
    """The report's content for one metrics document (see `config/metrics_schema.json`).

    Args:
        metrics: The run's metrics document.
        trend: Recent runs (any order; this run is added when missing, runs after it are left out).

    Returns:
        The view; jobs in the document's order.
    """
    jobs = [j for j in metrics.get("jobs") or [] if isinstance(j, Mapping)]
    raw = [_raw_attempts(j) for j in jobs]
    starts = [a[1] for attempts, _ in raw for a in attempts]
    ends = [a[2] for attempts, _ in raw for a in attempts]
    origin = min(starts) if starts else None
    span = (max(ends) - origin).total_seconds() if origin else 0.0

    views = []
    for job, (attempts, partial) in zip(jobs, raw):
        status = str(job.get("status") or "")
        extra = job.get("extra") if isinstance(job.get("extra"), Mapping) else {}
        drift, drift_count = drift_text(extra.get("schema_drift"))
        timeline = tuple(
            Attempt(n, (s - origin).total_seconds(), (e - origin).total_seconds(), st, err)  # type: ignore[operator]
            for n, s, e, st, err in attempts
        )
        if extra.get("attempts"):  # an attempt refused by an open circuit loaded nothing: not counted
            made = sum(1 for a in timeline if a.status not in SKIPPED)
        else:
            made = 0 if status in SKIPPED else as_int(job.get("retry_count")) + 1
        views.append(JobView(
            job_id=str(job.get("job_id") or ""), source_name=str(job.get("source_name") or ""),
            source_type=str(job.get("source_type") or ""), table_name=str(job.get("table_name") or ""),
            load_type=str(job.get("load_type") or ""), status=status,
            rows=as_int(job.get("rows_processed")), duration=as_float(job.get("duration_seconds")),
            rows_per_second=as_float(job.get("rows_per_second")), attempts=made,
            error=str(job.get("error") or ""), drift=drift, drift_count=drift_count,
            timeline=timeline, earlier_unrecorded=partial,
        ))

    summary = metrics.get("summary") if isinstance(metrics.get("summary"), Mapping) else {}
    current = summarize("this run", _json(metrics))
    return RunView(
        pipeline_name=str(metrics.get("pipeline_name") or ""), run_id=str(metrics.get("run_id") or ""),
        execution_time=str(metrics.get("execution_time") or ""), summary=summary, jobs=tuple(views),
        sources=tuple(_sources(views)), origin=origin, span=span,
        wall_clock=current.duration_seconds if not current.problem else 0.0,
        trend=tuple(_trend(current, trend)), max_parallel=_max_parallel(views),
    )


def _json(metrics: Mapping[str, Any]) -> str:
    return json.dumps(metrics, default=str)


def _sources(jobs: Sequence[JobView]) -> list[SourceView]:
    grouped: dict[str, list[JobView]] = {}
    for job in jobs:
        grouped.setdefault(job.source_name, []).append(job)
    return [
        SourceView(
            source_name=name, source_type=members[0].source_type, jobs=len(members),
            ok=sum(1 for j in members if j.status == "success"), failed=sum(1 for j in members if j.status == "failed"),
            skipped=sum(1 for j in members if j.status in SKIPPED), rows=sum(j.rows for j in members),
            duration=round(sum(j.duration for j in members), 3),
        )
        for name, members in sorted(grouped.items())
    ]


def _trend(current: RunSummary, runs: Sequence[RunSummary]) -> list[RunSummary]:
    """Readable runs up to and including this one, oldest first; at least two, else none."""
    if current.problem:
        return []
    readable = {(r.execution_time, r.run_id): r for r in runs if not r.problem}
    readable[(current.execution_time, current.run_id)] = current
    ordered = sorted(readable.values(), key=lambda r: (parse_time(r.execution_time) or dt.datetime.min.replace(
        tzinfo=dt.timezone.utc), r.run_id))
    upto = [r for r in ordered if (parse_time(r.execution_time) or dt.datetime.min.replace(tzinfo=dt.timezone.utc))
            <= (parse_time(current.execution_time) or dt.datetime.max.replace(tzinfo=dt.timezone.utc))]
    return upto if len(upto) >= 2 else []


def _max_parallel(jobs: Sequence[JobView]) -> int:
    events = sorted((t, d) for j in jobs for a in j.timeline for t, d in ((a.start, 1), (a.end, -1)))
    running = peak = 0
    for _, delta in events:  # at equal times an end (-1) sorts first: back-to-back is not parallel
        running += delta
        peak = max(peak, running)
    return peak
