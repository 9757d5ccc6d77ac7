"""Run history: one summary per run, newest first, read from the metrics the runs published.

Locally the metrics are files `<INGESTION_METRICS_DIR>/metrics_<YYYYMMDD_HHMMSS>_<run>.json`; with
a storage account configured they are blobs `metadata/metrics_*.json` in `INGESTION_CONTAINER`
(shared/publish.py). Names start with the run's UTC start time, so sorting names sorts runs, and
only the newest `last` documents are read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from shared.redaction import error_line

PREFIX = "metrics_"
METADATA_PREFIX = "metadata"
MAX_LAST = 1000


@dataclass(frozen=True)
class RunSummary:
    """One run as `history` shows it."""

    name: str
    """The metrics file or blob name."""
    execution_time: str = ""
    run_id: str = ""
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    total: int = 0
    rows: int = 0
    duration_seconds: float = 0.0
    """Wall-clock time from the first job's start to the last job's end (job time summed when
    the jobs carry no start/end times)."""
    health: Optional[float] = None
    problem: Optional[str] = None
    """Why the document could not be read (then only `name` is set)."""

    def line(self) -> str:
        """One line for the terminal."""
        if self.problem:
            return f"{self.name}: unreadable ({self.problem})"
        when = self.execution_time.replace("T", " ").replace("+00:00", "Z")[:20]
        return (f"{when:<20}  {self.run_id[:60]:<40}  ok {self.ok:>4}  failed {self.failed:>4}  "
                f"skipped {self.skipped:>4}  rows {self.rows:>13,}  {self.duration_seconds:>9.1f} s  "
                f"health {self.health if self.health is not None else '-':>5}")


def summarize(name: str, text: str) -> RunSummary:
    """The summary of one metrics document; a malformed one gives a `problem`, never an error."""
    try:
        metrics = json.loads(text)
        summary = metrics["summary"]
        return RunSummary(
            name=name, execution_time=str(metrics.get("execution_time", "")), run_id=str(metrics.get("run_id", "")),
            ok=int(summary["successful"]), failed=int(summary["failed"]), skipped=int(summary["skipped"]),
            total=int(summary["total_jobs"]), rows=int(summary["total_rows"]),
            duration_seconds=_wall_clock(metrics.get("jobs") or []) or float(summary.get("total_duration_seconds") or 0),
            health=summary.get("health_score"),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return RunSummary(name=name, problem=error_line(exc, with_type=True))


def _wall_clock(jobs: list[Any]) -> Optional[float]:
    starts, ends = [], []
    for job in jobs:
        extra = (job or {}).get("extra") or {}
        if extra.get("started_at") and extra.get("finished_at"):
            try:
                starts.append(datetime.fromisoformat(extra["started_at"]))
                ends.append(datetime.fromisoformat(extra["finished_at"]))
            except (TypeError, ValueError):
                return None
    if not starts:
        return None
    try:
        return round((max(ends) - min(starts)).total_seconds(), 3)
    except TypeError:  # naive and aware times mixed: fall back to the summed job time
        return None


def local_history(metrics_dir: Path, last: int) -> list[RunSummary]:
    """The newest `last` runs in a local metrics folder (empty when it does not exist)."""
    paths = sorted(Path(metrics_dir).glob(f"{PREFIX}*.json"), key=lambda p: p.name, reverse=True)[:last]
    out = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            out.append(RunSummary(name=path.name, problem=error_line(exc, with_type=True)))
            continue
        out.append(summarize(path.name, text))
    return out


def blob_history(container_client: Any, last: int) -> list[RunSummary]:
    """The newest `last` runs in a blob container's `metadata/` folder (empty when it is missing).

    Raises:
        StorageUnreachableError: The account could not be reached or refused access.
    """
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    from shared.storage import storage_error

    host = container_client.url.split("/")[2] if "//" in container_client.url else container_client.url
    prefix = f"{METADATA_PREFIX}/{PREFIX}"
    try:
        names = sorted((b for b in container_client.list_blob_names(name_starts_with=prefix) if b.endswith(".json")),
                       reverse=True)[:last]
    except ResourceNotFoundError:
        return []  # no run has published yet: the container does not exist
    except AzureError as exc:
        raise storage_error(exc, host, "list run metrics") from None
    out = []
    for name in names:
        try:
            text = container_client.download_blob(name).readall().decode("utf-8")
        except ResourceNotFoundError:
            continue  # deleted since the listing
        except AzureError as exc:
            raise storage_error(exc, host, "read run metrics") from None
        except UnicodeDecodeError as exc:
            out.append(RunSummary(name=name.rsplit("/", 1)[-1], problem=error_line(exc, with_type=True)))
            continue
        out.append(summarize(name.rsplit("/", 1)[-1], text))
    return out


def history(last: int = 10) -> tuple[list[RunSummary], str]:
    """The newest `last` runs of the service's metrics store, and a description of where it is.

    Storage (`INGESTION_CONTAINER`) when a storage account is configured, else the local metrics
    folder, like the runs themselves (shared/steps.py `Services.from_env`).
    """
    from shared.settings import AppSettings
    from shared.storage import storage_account

    if not 1 <= last <= MAX_LAST:
        raise ValueError(f"last: {last!r} is not between 1 and {MAX_LAST}")
    settings = AppSettings.from_env()
    account = storage_account()
    if account is None:
        return local_history(settings.metrics_dir, last), str(settings.metrics_dir)
    container = account.blob_service().get_container_client(settings.container)
    return blob_history(container, last), f"{account.blob_url}/{settings.container}/{METADATA_PREFIX}/"
