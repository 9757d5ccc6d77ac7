"""Where a report's metrics come from: a file, or the metrics store the runs publish to.

The store is the one `history` reads (shared/history.py, `store_from_env`): blobs `metadata/metrics_*.json` in
`INGESTION_CONTAINER` when a storage account is configured, else `INGESTION_METRICS_DIR`. Names
start with the run's UTC start time and end with its run id (`metrics_<YYYYMMDD_HHMMSS>_<run>.json`,
shared/metrics.py), so a run is found by its name, and sorting names sorts runs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from shared.history import (  # noqa: F401  (the store classes are re-exported: reports read the history's store)
    BlobMetrics, LocalMetrics, MetricsStore, RunSummary, store_from_env, summarize,
)

TREND_RUNS = 30
"""Runs a report's trend covers by default."""
MAX_INSTANCE_ID = 256
"""Longest Durable instance id; a longer one names no run."""
_NAME = re.compile(r"^metrics_\d{8}_\d{6}_(?P<run>.+)\.json$")


@dataclass(frozen=True)
class ReportInput:
    """One run's metrics and the recent runs up to it."""

    metrics: dict[str, Any]
    trend: list[RunSummary]
    name: str
    """The document's file or blob name."""


def safe_run_id(run_id: str) -> str:
    """The run id as metrics names carry it (shared.metrics.metrics_filename)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


def trend_before(store: MetricsStore, names: list[str], name: str, runs: int) -> list[RunSummary]:
    """Summaries of the `runs` runs up to and including `name` (oldest first)."""
    upto = [n for n in names if n <= name][-runs:]
    out = []
    for other in upto:
        try:
            out.append(summarize(other, store.read(other)))
        except (OSError, UnicodeDecodeError):
            continue  # deleted or unreadable since the listing: left out of the trend
    return out


def latest(store: MetricsStore, runs: int = TREND_RUNS) -> Optional[ReportInput]:
    """The newest run of the store with the `runs` runs up to it; None when there is none."""
    names = store.names()
    for name in reversed(names):  # an unreadable newest document: the one before it
        metrics = _document(store, name)
        if metrics is not None:
            return ReportInput(metrics, trend_before(store, names, name, runs), name)
    return None


def by_run_id(store: MetricsStore, run_id: str, runs: int = TREND_RUNS) -> Optional[ReportInput]:
    """The newest run of the store with this run (instance) id; None when there is none.

    A starter's instance id repeats for every run of its workbook: the newest run is reported.
    """
    if not run_id or len(run_id) > MAX_INSTANCE_ID:
        return None
    safe = safe_run_id(run_id)
    names = store.names()
    for name in reversed(names):
        match = _NAME.match(name)
        if not match or match.group("run") != safe:
            continue
        metrics = _document(store, name)
        if metrics is not None and metrics.get("run_id") == run_id:
            return ReportInput(metrics, trend_before(store, names, name, runs), name)
    return None


def from_file(path: Path, runs: int = TREND_RUNS) -> ReportInput:
    """A metrics file, with the trend of the `metrics_*.json` files beside it (up to this run).

    Raises:
        OSError: The file cannot be read.
        ValueError: It is not a metrics document.
    """
    path = Path(path)
    metrics = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(metrics, dict) or not isinstance(metrics.get("jobs"), list) or not isinstance(metrics.get("summary"), dict):
        raise ValueError(f"{path}: not a metrics document (no summary or jobs)")
    folder = LocalMetrics(path.parent)
    names = folder.names()
    if path.name in names:
        trend = trend_before(folder, names, path.name, runs)
    else:  # a copy (--metrics-out): the runs beside it that started before it
        mine = summarize(path.name, json.dumps(metrics))
        earlier = [s for s in trend_before(folder, names, "\uffff", runs * 4)
                   if not s.problem and s.execution_time <= mine.execution_time and s.run_id != mine.run_id]
        trend = earlier[max(0, len(earlier) - (runs - 1)):] if runs > 1 else []
    return ReportInput(metrics, trend, path.name)


def _document(store: MetricsStore, name: str) -> Optional[dict[str, Any]]:
    try:
        metrics = json.loads(store.read(name))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) and isinstance(metrics.get("jobs"), list) else None
