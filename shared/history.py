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
from typing import Any, Optional, Protocol

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


class MetricsStore(Protocol):
    """The published metrics documents of the runs."""

    where: str
    """A description for messages (folder or container URL)."""

    def names(self) -> list[str]:
        """Every metrics document's name (`metrics_*.json`), oldest first."""

    def read(self, name: str) -> str:
        """One document's text."""


class LocalMetrics:
    """Metrics files in a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.where = str(self.folder)

    def names(self) -> list[str]:
        return sorted(p.name for p in self.folder.glob(f"{PREFIX}*.json") if p.is_file())

    def read(self, name: str) -> str:
        return (self.folder / name).read_text(encoding="utf-8")


class BlobMetrics:
    """Metrics blobs under `metadata/` of the service's container.

    Raises (from each method):
        StorageUnreachableError: The account could not be reached or refused access.
    """

    def __init__(self, container_client: Any) -> None:
        self.container = container_client
        self.where = f"{container_client.url}/{METADATA_PREFIX}/"
        url = container_client.url
        self._host = url.split("/")[2] if "//" in url else url

    def names(self) -> list[str]:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        from shared.storage import storage_error

        prefix = f"{METADATA_PREFIX}/{PREFIX}"
        try:
            return sorted(n[len(METADATA_PREFIX) + 1:] for n in self.container.list_blob_names(name_starts_with=prefix)
                          if n.endswith(".json") and "/" not in n[len(METADATA_PREFIX) + 1:])
        except ResourceNotFoundError:
            return []  # no run has published yet: the container does not exist
        except AzureError as exc:
            raise storage_error(exc, self._host, "list run metrics") from None

    def read(self, name: str) -> str:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        from shared.storage import storage_error

        try:
            return self.container.download_blob(f"{METADATA_PREFIX}/{name}").readall().decode("utf-8")
        except ResourceNotFoundError:
            raise FileNotFoundError(name) from None
        except AzureError as exc:
            raise storage_error(exc, self._host, "read run metrics") from None


def store_from_env() -> MetricsStore:
    """The service's metrics store: storage when an account is configured, else the local folder."""
    from shared.settings import AppSettings
    from shared.storage import storage_account

    settings = AppSettings.from_env()
    account = storage_account()
    if account is None:
        return LocalMetrics(settings.metrics_dir)
    return BlobMetrics(account.blob_service().get_container_client(settings.container))


def read_runs(store: MetricsStore, last: int) -> list[RunSummary]:
    """The newest `last` runs of a metrics store; a document that cannot be read is a `problem` row,
    one deleted since the listing is left out.

    Raises:
        StorageUnreachableError: A blob store could not be reached or refused access.
    """
    out = []
    for name in sorted(store.names(), reverse=True)[:last]:
        try:
            text = store.read(name)
        except FileNotFoundError:
            continue  # deleted since the listing
        except (OSError, UnicodeDecodeError) as exc:
            out.append(RunSummary(name=name, problem=error_line(exc, with_type=True)))
            continue
        out.append(summarize(name, text))
    return out


def history(last: int = 10) -> tuple[list[RunSummary], str]:
    """The newest `last` runs of the service's metrics store, and a description of where it is.

    Storage (`INGESTION_CONTAINER`) when a storage account is configured, else the local metrics
    folder, like the runs themselves (shared/steps.py `Services.from_env`).
    """
    if not 1 <= last <= MAX_LAST:
        raise ValueError(f"last: {last!r} is not between 1 and {MAX_LAST}")
    store = store_from_env()
    return read_runs(store, last), store.where
