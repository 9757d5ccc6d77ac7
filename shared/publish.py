"""Where a finished run's metrics, audit rows and failure events go.

Locally: files (`INGESTION_METRICS_DIR`, `INGESTION_AUDIT_DIR`, and failure events as JSON
lines in the state folder). In Azure: the `INGESTION_CONTAINER` container (metrics JSON at
`metadata/metrics_<YYYYMMDD_HHMMSS>_<run>.json`, audit in daily append blobs under
`metadata/audit/`) and one queue message per failed or skipped job on
`INGESTION_FAILURES_QUEUE`, so users can alert on it.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

from shared.audit import AppendBlobAuditWriter, LocalAuditWriter, audit_rows
from shared.metrics import metrics_filename, write_metrics
from shared.results import FAILED, JobResult

METADATA_PREFIX = "metadata"
MAX_EVENT_ERROR = 2000


def failure_events(results: Sequence[JobResult], run_id: str) -> list[dict[str, Any]]:
    """One event per failed or skipped job: source, table, status, error, run id."""
    return [
        {"run_id": run_id, "job_id": r.job_id, "source_name": r.source_name, "table_name": r.table_name,
         "status": r.status, "error": (r.error or "")[:MAX_EVENT_ERROR], "retry_count": r.retry_count}
        for r in results
        if r.status == FAILED or r.status.startswith("skipped_circuit")
    ]


class Publisher(Protocol):
    """Destination of a run's outputs."""

    def publish(self, metrics: Mapping[str, Any], results: Sequence[JobResult], execution_time: datetime) -> dict[str, Any]:
        """Write metrics, audit rows and failure events; return where they went."""


class LocalPublisher:
    """Metrics and audit as local files; failure events appended to a JSON-lines file."""

    _lock = threading.Lock()

    def __init__(self, metrics_dir: Path, audit_dir: Path, failures_file: Path) -> None:
        self.metrics_dir, self.audit_dir, self.failures_file = Path(metrics_dir), Path(audit_dir), Path(failures_file)

    def publish(self, metrics: Mapping[str, Any], results: Sequence[JobResult], execution_time: datetime) -> dict[str, Any]:
        run_id = metrics["run_id"]
        metrics_path = write_metrics(metrics, self.metrics_dir / metrics_filename(execution_time, run_id))
        audit_path = LocalAuditWriter(self.audit_dir).write(
            audit_rows(results, run_id=run_id, execution_time=execution_time), execution_time
        )
        events = failure_events(results, run_id)
        if events:
            self.failures_file.parent.mkdir(parents=True, exist_ok=True)
            with self._lock, open(self.failures_file, "a", encoding="utf-8") as fh:
                fh.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in events)
        return {"metrics_path": str(metrics_path), "audit_path": str(audit_path), "failure_events": len(events)}


class AzurePublisher:
    """Metrics and audit in a blob container, failure events on a storage queue."""

    def __init__(self, container_client: Any, queue_client: Any) -> None:
        self.container = container_client
        self.queue = queue_client

    def publish(self, metrics: Mapping[str, Any], results: Sequence[JobResult], execution_time: datetime) -> dict[str, Any]:
        run_id = metrics["run_id"]
        name = f"{METADATA_PREFIX}/{metrics_filename(execution_time, run_id)}"
        self.container.upload_blob(name, json.dumps(metrics, indent=2, ensure_ascii=False).encode("utf-8"), overwrite=True)
        audit = AppendBlobAuditWriter(self.container, f"{METADATA_PREFIX}/audit").write(
            audit_rows(results, run_id=run_id, execution_time=execution_time), execution_time
        )
        events = failure_events(results, run_id)
        for event in events:
            self.queue.send_message(json.dumps(event, ensure_ascii=False))
        return {"metrics_path": f"{self.container.container_name}/{name}", "audit_path": audit, "failure_events": len(events)}
