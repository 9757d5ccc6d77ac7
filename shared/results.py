"""What running one job produced: the value that flows from the runner to metrics and audit."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

SUCCESS = "success"
FAILED = "failed"
SKIPPED_CIRCUIT_OPEN = "skipped_circuit_open"

STATUSES: tuple[str, ...] = (SUCCESS, FAILED, SKIPPED_CIRCUIT_OPEN)
"""Final statuses: what metrics and audit report."""


@dataclass(frozen=True)
class SplitPlan:
    """Not a result: the table is too large for one activity and continues as one slice
    activity per key range (`SqlSource.split_ranges`: `{"column", "start", "end", "closed", "nulls"}`)."""

    job_id: str
    ranges: list[dict[str, Any]]


@dataclass
class JobResult:
    """Outcome of one job run. Small and JSON-serialisable (it is an activity output)."""

    job_id: str
    source_type: str
    source_name: str
    table_name: str
    load_type: str
    status: str
    """One of `STATUSES`."""
    rows_processed: int = 0
    duration_seconds: float = 0.0
    rows_per_second: float = 0.0
    files: list[str] = field(default_factory=list)
    """Parquet files this run made visible in the lake (relative to the bucket)."""
    schema_version: Optional[str] = None
    """dlt schema version hash after the load."""
    error: Optional[str] = None
    """One-line error with every secret removed; None on success."""
    retry_count: int = 0
    """Attempts beyond the first (filled in by the orchestration)."""
    load_id: Optional[str] = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Room for per-job facts that later stages add (schema drift, data-quality checks)."""

    @property
    def succeeded(self) -> bool:
        """True when the job landed its data."""
        return self.status == SUCCESS

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JobResult":
        """Rebuild from `to_dict()` output; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


MAX_ATTEMPT_ERROR = 200
"""Characters of an attempt's error kept in `extra["attempts"]` (the job's `error` has the last one)."""


def record_attempt(
    result: JobResult, number: int, earlier: Optional[list[dict[str, Any]]] = None, *, ran: bool = True
) -> None:
    """Add attempt `number` to `result.extra["attempts"]`, after the earlier attempts of the job.

    Each entry is `{"attempt", "started_at", "finished_at", "status", "error"}` (ISO UTC times),
    what the run report draws on its timeline; the wait before a retry is the gap between two
    entries. An attempt that ran no load (refused by an open circuit or a failing lake) has no
    times of its own and is stamped now, with zero length.

    Args:
        result: The attempt's result; its `extra["started_at"]`/`["finished_at"]` are used.
        number: The attempt number, 1-based.
        earlier: The attempts recorded by the job's previous attempt (entries of `number` or
            later, from an earlier delivery of this attempt, are dropped).
        ran: False when this attempt loaded nothing and `result` is an earlier attempt's (the
            circuit opened between attempts): it is stamped now.
    """
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    started = (result.extra.get("started_at") if ran else None) or now
    entry = {
        "attempt": number,
        "started_at": started,
        "finished_at": (result.extra.get("finished_at") if ran else None) or started,
        "status": result.status if ran else SKIPPED_CIRCUIT_OPEN,
        "error": (result.error or "")[:MAX_ATTEMPT_ERROR] or None,
    }
    kept = [dict(a) for a in earlier or [] if isinstance(a, dict) and int(a.get("attempt") or 0) < number]
    result.extra["attempts"] = [*kept, entry]
