"""Audit trail: one row per job per run, appended to a CSV per UTC day.

`audit_rows` turns results into rows; an `AuditWriter` stores them: `LocalAuditWriter`
appends to `audit_<YYYYMMDD>.csv` files on local disk, `AppendBlobAuditWriter` to append
blobs of the same name in storage.
"""

from __future__ import annotations

import csv
import io
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, Sequence, Union

from shared.metrics import as_job_result, iso_utc, job_entry
from shared.results import JobResult

try:  # POSIX only; Azure Functions runs Python on Linux
    import fcntl
except ImportError:  # pragma: no cover - exercised only on Windows
    fcntl = None  # type: ignore[assignment]

AUDIT_COLUMNS: tuple[str, ...] = (
    "run_id",
    "execution_time",
    "job_id",
    "source_type",
    "source_name",
    "table_name",
    "load_type",
    "status",
    "rows_processed",
    "duration_seconds",
    "rows_per_second",
    "retry_count",
    "error",
    "schema_version",
    "files_count",
    "load_id",
)
"""Columns of an audit row, in file order."""


class AuditWriter(Protocol):
    """Stores audit rows somewhere durable."""

    def write(
        self, rows: Sequence[Mapping[str, Any]], execution_time: datetime
    ) -> Union[str, "os.PathLike[str]"]:
        """Append `rows` (keys from `AUDIT_COLUMNS`) for the run started at `execution_time`.

        Returns:
            Where the rows went (a file path or a blob URL).
        """
        ...


def audit_rows(
    results: Iterable[Union[JobResult, Mapping[str, Any]]],
    *,
    run_id: str,
    execution_time: datetime,
) -> list[dict[str, Any]]:
    """One audit row per job, with exactly the keys of `AUDIT_COLUMNS`, in that order.

    Args:
        results: Every job's outcome, as `JobResult` or its `to_dict()` form.
        run_id: The orchestration instance id.
        execution_time: When the run started (naive means UTC).

    Returns:
        The rows; `None` values (no error, no load id) are written as empty CSV fields.

    Raises:
        ValueError: A result has a status outside `shared.results.STATUSES`.
    """
    when = iso_utc(execution_time)
    rows = []
    for result in results:
        job = as_job_result(result)
        entry = job_entry(job)
        row = {"run_id": run_id, "execution_time": when}
        row.update((column, entry[column]) for column in AUDIT_COLUMNS if column in entry)
        row.update(files_count=len(job.files), load_id=job.load_id)
        rows.append({column: row.get(column) for column in AUDIT_COLUMNS})
    return rows


def audit_filename(execution_time: datetime) -> str:
    """`audit_<YYYYMMDD>.csv` for the UTC day of `execution_time` (naive means UTC)."""
    if execution_time.tzinfo is None:
        execution_time = execution_time.replace(tzinfo=timezone.utc)
    return f"audit_{execution_time.astimezone(timezone.utc):%Y%m%d}.csv"


class LocalAuditWriter:
    """Appends audit rows to `<directory>/audit_<YYYYMMDD>.csv`, safely from many writers.

    Each `write` holds an exclusive `flock` on the file while it checks for the header and
    appends, so concurrent threads and processes neither duplicate the header nor interleave
    rows. `flock` (not `lockf`) because its locks belong to the open file, so two threads
    of one process exclude each other too.
    """

    def __init__(self, directory: Union[str, "os.PathLike[str]"]) -> None:
        """Create a writer.

        Args:
            directory: Folder of the daily CSV files; created on first write.

        Raises:
            RuntimeError: The platform has no `fcntl` (Windows).
        """
        if fcntl is None:  # pragma: no cover
            raise RuntimeError("LocalAuditWriter needs fcntl file locks (Linux or macOS)")
        self.directory = Path(directory)

    def write(self, rows: Sequence[Mapping[str, Any]], execution_time: datetime) -> Path:
        """Append `rows` to the file of `execution_time`'s UTC day, header first if new.

        Args:
            rows: Audit rows, e.g. from `audit_rows`; keys must come from `AUDIT_COLUMNS`
                (missing keys are written empty).
            execution_time: When the run started; picks the day file, so one run's rows
                stay together even if it crosses midnight.

        Returns:
            The CSV file.

        Raises:
            ValueError: A row has a key outside `AUDIT_COLUMNS`.
        """
        path = self.directory / audit_filename(execution_time)
        body = _to_csv(rows)  # formatted before locking, to hold the lock briefly
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8", newline="") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                # Checked under the lock: the size tells whether another writer already
                # put the header there.
                if os.fstat(handle.fileno()).st_size == 0:
                    body = _to_csv([], header=True) + body
                # One write call for the whole batch; append mode puts it at the current end.
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return path


def _to_csv(rows: Sequence[Mapping[str, Any]], header: bool = False) -> str:
    buffer = io.StringIO()
    # The default dialect (RFC 4180: CRLF records, QUOTE_MINIMAL) quotes fields holding
    # commas, quotes or newlines, so a multi-line error stays one field.
    writer = csv.DictWriter(buffer, fieldnames=AUDIT_COLUMNS)
    if header:
        writer.writeheader()
    for row in rows:
        unknown = set(row) - set(AUDIT_COLUMNS)
        if unknown:
            raise ValueError(f"audit row has unknown column(s): {', '.join(sorted(unknown))}")
        writer.writerow(row)
    return buffer.getvalue()


class AppendBlobAuditWriter:
    """Appends audit rows to an append blob `<prefix>/audit_<YYYYMMDD>.csv` in Azure Storage.

    Each `append_block` is atomic and ordered by the service, so concurrent writers (activities
    on several instances) never lose or interleave rows. Every writer tries to put the header
    at append position 0 before its own rows: exactly one succeeds, and no row can come first.
    """

    def __init__(self, container_client: Any, prefix: str = "metadata/audit") -> None:
        """Create a writer.

        Args:
            container_client: An `azure.storage.blob.ContainerClient` (the container must exist).
            prefix: Folder of the daily files inside the container.
        """
        self.container = container_client
        self.prefix = prefix.strip("/")

    def write(self, rows: Sequence[Mapping[str, Any]], execution_time: datetime) -> str:
        """Append `rows` to the day's blob, creating it with a header first if needed.

        Returns:
            `<container>/<blob name>`.
        """
        from azure.core import MatchConditions
        from azure.core.exceptions import HttpResponseError, ResourceExistsError

        name = f"{self.prefix}/{audit_filename(execution_time)}"
        blob = self.container.get_blob_client(name)
        try:
            blob.create_append_blob(match_condition=MatchConditions.IfMissing)
        except (ResourceExistsError, HttpResponseError) as exc:
            if getattr(exc, "status_code", 409) not in (409, 412):
                raise
        try:
            blob.append_block(_to_csv([], header=True).encode("utf-8"), appendpos_condition=0)
        except HttpResponseError as exc:
            if exc.status_code != 412:  # 412: the header (or anything) is already there
                raise
        if rows:
            blob.append_block(_to_csv(rows).encode("utf-8"))
        return f"{self.container.container_name}/{name}"
