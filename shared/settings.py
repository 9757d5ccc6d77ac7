"""App settings the service reads, in one place (environment variables / Function app settings)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from shared.breakers import BreakerSettings
from shared.metrics import throughput_floor_from_env
from shared.retry import RetryPolicy, policies_from_env

DEFAULT_PIPELINE_NAME = "metadata_driven_ingestion"
DEFAULT_BATCH_SIZE = 50
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _running_in_functions(environ: Mapping[str, str]) -> bool:
    return bool(environ.get("FUNCTIONS_WORKER_RUNTIME") or environ.get("WEBSITE_SITE_NAME"))


@dataclass(frozen=True)
class AppSettings:
    """Everything configurable about a run, resolved once per process or activity call."""

    state_dir: Path
    """Local state: breaker database and per-run plan/result snapshots (`INGESTION_STATE_DIR`)."""
    metrics_dir: Path
    """Where metrics JSON files go (`INGESTION_METRICS_DIR`)."""
    audit_dir: Path
    """Where audit CSVs go, one per UTC day (`INGESTION_AUDIT_DIR`)."""
    logs_dir: Path
    """CLI log files: main, one per source, errors only (`INGESTION_LOGS_DIR`)."""
    pipeline_name: str = DEFAULT_PIPELINE_NAME
    """Name in the metrics (`INGESTION_PIPELINE_NAME`)."""
    batch_size: int = DEFAULT_BATCH_SIZE
    """Jobs per sub-orchestration when a plan is larger than this (`INGESTION_BATCH_SIZE`)."""
    container: str = "ingestion"
    """Azure: blob container for run snapshots, metrics and audit (`INGESTION_CONTAINER`)."""
    config_container: str = "config"
    """Azure: container of the workbooks (`CONFIG_CONTAINER`)."""
    breaker_table: str = "ingestionbreakers"
    """Azure: Table Storage table of the circuit breakers (`INGESTION_BREAKER_TABLE`)."""
    failures_queue: str = "ingestion-failures"
    """Azure: queue that receives one message per failed or skipped job (`INGESTION_FAILURES_QUEUE`)."""
    split_rows: int = 20_000_000
    """A FULL SQL table estimated above this many rows runs as several slice activities (`INGESTION_SPLIT_ROWS`)."""
    check_sources: bool = True
    """`load_plan` checks tables, columns and watermarks against the sources before the run (`INGESTION_CHECK_SOURCES`)."""
    retry: Mapping[str, RetryPolicy] = field(default_factory=dict)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    throughput_floor: float = 1000.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "AppSettings":
        """Read the settings; relative paths are under the working directory, or temp in Azure
        (the Functions file system is read-only outside temp)."""
        base = Path(tempfile.gettempdir()) / "ingestion" if _running_in_functions(environ) else Path.cwd()

        def path(name: str, default: str) -> Path:
            return Path(environ.get(name) or base / default)

        split = environ.get("INGESTION_SPLIT_ROWS") or "20000000"
        if not split.isdigit() or int(split) < 1:
            raise ValueError(f"INGESTION_SPLIT_ROWS: {split!r} is not a whole number >= 1")
        batch = environ.get("INGESTION_BATCH_SIZE") or str(DEFAULT_BATCH_SIZE)
        if not batch.isdigit() or int(batch) < 1:
            raise ValueError(f"INGESTION_BATCH_SIZE: {batch!r} is not a whole number >= 1")
        check = (environ.get("INGESTION_CHECK_SOURCES") or "true").strip().lower()
        if check not in _TRUE + _FALSE:
            raise ValueError(f"INGESTION_CHECK_SOURCES: {check!r} is not true or false")
        return cls(
            state_dir=path("INGESTION_STATE_DIR", ".ingestion"),
            metrics_dir=path("INGESTION_METRICS_DIR", "metrics"),
            audit_dir=path("INGESTION_AUDIT_DIR", "audit"),
            logs_dir=path("INGESTION_LOGS_DIR", "logs"),
            pipeline_name=environ.get("INGESTION_PIPELINE_NAME") or DEFAULT_PIPELINE_NAME,
            batch_size=int(batch),
            split_rows=int(split),
            container=environ.get("INGESTION_CONTAINER") or "ingestion",
            config_container=environ.get("CONFIG_CONTAINER") or "config",
            breaker_table=environ.get("INGESTION_BREAKER_TABLE") or "ingestionbreakers",
            failures_queue=environ.get("INGESTION_FAILURES_QUEUE") or "ingestion-failures",
            check_sources=check in _TRUE,
            retry=policies_from_env(environ),
            breaker=BreakerSettings.from_env(environ),
            throughput_floor=throughput_floor_from_env(environ),
        )
