"""What running one job produced: the value that flows from the runner to metrics and audit."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

SUCCESS = "success"
FAILED = "failed"
SKIPPED_CIRCUIT_OPEN = "skipped_circuit_open"

STATUSES: tuple[str, ...] = (SUCCESS, FAILED, SKIPPED_CIRCUIT_OPEN)
"""Final statuses: what metrics and audit report."""
SPLIT = "split"
"""Not final: the table is too large for one activity and continues as slice activities
(`extra["ranges"]` holds their key ranges)."""


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
