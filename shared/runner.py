"""Run one job: one dlt pipeline from its source to the lake, returning a `JobResult`.

Lake semantics per job:

- FULL: rows are appended under today's date folder as a new load, then the older files in
  that same day folder are deleted, so each day keeps exactly one complete snapshot and earlier
  days stay. (dlt's `replace` would delete every day's files on the filesystem destination.)
- INCREMENTAL: rows past the cursor are appended; the cursor lives in dlt state stored in the
  destination, so a fresh working directory restores it from there.
- A failed job leaves no data files of its attempt in the lake: files of a half-finished load
  are deleted before the error is reported.

Each run works in its own temporary pipelines directory (the Functions file system is
read-only outside temp), removed afterwards.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt  # noqa: E402
from dlt.common.time import ensure_pendulum_datetime  # noqa: E402

from shared.config.models import Job  # noqa: E402
from shared.destination import date_folder, make_destination  # noqa: E402
from shared.drift import record_and_compare  # noqa: E402
from shared.errors import classify  # noqa: E402
from shared.logs import job_context  # noqa: E402
from shared.redaction import redact  # noqa: E402
from shared.results import FAILED, SPLIT, SUCCESS, JobResult  # noqa: E402
from shared.secrets import SourceSecrets, resolve_source_secrets  # noqa: E402
from shared.sources import Source, SqlSource, make_source  # noqa: E402

log = logging.getLogger(__name__)

WORK_DIR_ENV = "INGESTION_WORK_DIR"
"""Parent folder for per-run dlt working directories (default: the system temp folder)."""
MAX_ERROR_CHARS = 500


class DataQualityError(Exception):
    """The extracted data failed a workbook check; nothing was loaded. Retrying will not help."""


def pipeline_name(job: Job) -> str:
    """Stable dlt pipeline name of a job; renaming it would lose the incremental cursor."""
    raw = "__".join(p for p in ("ingest", job.source_name, job.schema_name, job.table_name) if p)
    return re.sub(r"[^a-z0-9_]", "_", raw.lower())


def run_job(
    job: Job,
    *,
    secrets: Optional[SourceSecrets] = None,
    bucket_url: Optional[str] = None,
    run_id: Optional[str] = None,
    key_range: Optional[dict[str, Any]] = None,
    slice_no: Optional[int] = None,
    split_rows: Optional[int] = None,
) -> JobResult:
    """Extract one job's table or endpoint and land it in the lake as Parquet.

    Args:
        job: The validated job.
        secrets: Credentials for the job's source; resolved from the providers when omitted.
        bucket_url: Lake root; dlt's `DESTINATION__FILESYSTEM__BUCKET_URL` or `./lake` when omitted.
        run_id: The run this job belongs to, for log records.
        key_range: For one slice of a table split across activities: the keys to read (from
            `SqlSource.split_ranges`). The slice lands in the staging dataset, made visible by `publish_staged`.
        slice_no: The slice's number (its own pipeline name in the staging dataset).
        split_rows: When given, a FULL SQL table estimated above this many rows is not loaded:
            the result has status `split` and its key ranges in `extra["ranges"]`.

    Returns:
        The job's result. Errors are caught and reported in the result (status `failed`) with
        every secret removed; this function raises only on programming errors in the caller.
    """
    started = time.monotonic()
    started_at = dt.datetime.now(dt.timezone.utc)
    result = JobResult(
        job_id=job.job_id,
        source_type=job.source_type,
        source_name=job.source_name,
        table_name=job.table_name,
        load_type=job.load_type,
        status=FAILED,
    )
    source: Optional[Source] = None
    with job_context(run_id=run_id, source_name=job.source_name, table_name=job.table_name, job_id=job.job_id):
        try:
            secrets = secrets or resolve_source_secrets(job.source_name, job.source_type)
            source = make_source(job, secrets)
            staged = slice_no is not None
            if staged and isinstance(source, SqlSource):
                source.key_range = key_range
            ranges = _split(job, source, split_rows) if split_rows and not staged else None
            if ranges:
                result.status = SPLIT
                result.extra["ranges"] = ranges
                log.info("job %s: too large for one activity, split into %d slices", job.job_id, len(ranges))
            else:
                name = f"{pipeline_name(job)}__slice{slice_no}" if staged else pipeline_name(job)
                log.info("job %s started (%s)%s", job.job_id, job.load_type, f", slice {slice_no}" if staged else "")
                with _job_lock(name), _work_dir(job) as work_dir:
                    _load(job, source, work_dir, bucket_url, result, name, staging_dataset(job) if staged else None)
                result.status = SUCCESS
                log.info("job %s loaded %d rows in %d file(s)", job.job_id, result.rows_processed, len(result.files))
        except Exception as exc:  # one failing job must never stop the others
            failure = classify(exc, job, source, lake_root=bucket_url)  # source / lake / permanent
            result.error = failure.message
            result.extra.update(failure.extra())
            log.error("job %s failed (%s): %s", job.job_id, failure.error_class, result.error)
        finally:
            if isinstance(source, SqlSource):
                source.dispose()
    result.duration_seconds = round(time.monotonic() - started, 3)
    result.extra["started_at"] = started_at.isoformat()
    result.extra["finished_at"] = (started_at + dt.timedelta(seconds=result.duration_seconds)).isoformat()
    if result.duration_seconds > 0:
        result.rows_per_second = round(result.rows_processed / result.duration_seconds, 1)
    return result


def _load(
    job: Job, source: Source, work_dir: Path, bucket_url: Optional[str], result: JobResult, name: str,
    staging: Optional[str],
) -> None:
    pipeline = dlt.pipeline(
        pipeline_name=name,
        destination=make_destination(bucket_url),
        dataset_name=staging or job.source_name,
        pipelines_dir=str(work_dir),
    )
    if job.is_incremental:
        # Restores the cursor from the lake when this working directory is new.
        pipeline.sync_destination()
    pipeline.extract(source.resource(), write_disposition="append", loader_file_format="parquet")
    pipeline.normalize()
    normalize_info = pipeline.last_trace.last_normalize_info
    rows = sum(
        count for table, count in (normalize_info.row_counts if normalize_info else {}).items()
        if not table.startswith("_dlt")
    )
    if job.min_rows is not None and rows < job.min_rows:
        # Checked before loading: nothing lands and an incremental cursor does not move.
        raise DataQualityError(f"data quality: {rows} row(s) extracted, fewer than min_rows {job.min_rows}")
    load_ids = list(pipeline.list_normalized_load_packages())
    result.schema_version = pipeline.default_schema.version_hash
    if not load_ids:
        result.rows_processed = rows
        return
    load_id = load_ids[-1]
    # The layout's YYYY/MM/DD is rendered from the package's creation time (UTC).
    created_at = ensure_pendulum_datetime(pipeline.get_load_package_state(load_id)["created_at"])
    data_tables = [t["name"] for t in pipeline.default_schema.data_tables()]
    day = date_folder(created_at)
    try:
        pipeline.load()
    except Exception:
        _delete_load_files(pipeline, data_tables, day, load_id)
        raise
    # A load writes only into its day folder: list that, never the table's whole history.
    day_files = _day_files(pipeline, data_tables, day)
    result.rows_processed = rows
    result.load_id = load_id
    result.files = [f for f in day_files if _of_load(f, load_id)]
    if staging:
        return  # a slice: `publish_staged` replaces the snapshot once every slice has landed
    if not job.is_incremental:
        _delete(pipeline, [f for f in day_files if not _of_load(f, load_id)])  # the day's older snapshot
    drift = _schema_drift(pipeline, result.files)
    if drift:
        result.extra["schema_drift"] = drift
        log.warning("job %s: schema changed since the previous run: %s", job.job_id, drift)


def staging_dataset(job: Job) -> str:
    """Dataset where the slices of a split table land before `publish_staged` moves them."""
    return f"{job.source_name}_staging"


def _split(job: Job, source: Source, max_rows: int) -> Optional[list[dict[str, Any]]]:
    """Key ranges of a FULL SQL table too large for one activity; None: load it here.

    Uses the same connection, reflection and estimate as the load would, so deciding costs no
    extra round trip to the source.
    """
    if job.is_incremental or not isinstance(source, SqlSource):
        return None
    return source.split_ranges(max_rows)


@contextmanager
def _lake_fs(job: Job, bucket_url: Optional[str]) -> Iterator[tuple[Any, str, str, str]]:
    """(fsspec filesystem, table dir, staged table dir, table name) of a job in the lake."""
    from shared.config.validation import lake_table_name

    with _work_dir(job) as work_dir:
        pipeline = dlt.pipeline(pipeline_name=pipeline_name(job), destination=make_destination(bucket_url),
                                dataset_name=job.source_name, pipelines_dir=str(work_dir))
        with pipeline.destination_client() as client:
            root = client.dataset_path.rstrip("/")
            table = lake_table_name(job.table_name)
            stage = f"{root.rsplit('/', 1)[0]}/{staging_dataset(job)}/{table}"
            yield client.fs_client, f"{root}/{table}", stage, table


def publish_staged(job: Job, *, bucket_url: Optional[str] = None) -> tuple[list[str], Optional[dict[str, Any]]]:
    """Move every slice's staged files into the table's day folder, then drop that day's older
    snapshot: the split table becomes visible as one snapshot, like a single-activity FULL run.

    Returns:
        The published files and the schema drift (None when unchanged).
    """
    with _lake_fs(job, bucket_url) as (fs, table_dir, stage_dir, table):
        staged = sorted(fs.glob(f"{stage_dir}/**/*.parquet")) if fs.exists(stage_dir) else []
        published = []
        for path in staged:
            target = f"{table_dir}/{path[len(stage_dir) + 1:]}"
            fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            fs.mv(path, target)
            published.append(target)
        names = {p.rsplit("/", 1)[1] for p in published}
        for day in {p.rsplit("/", 1)[0] for p in published}:
            for path in fs.ls(day, detail=False):
                if path.rstrip("/").rsplit("/", 1)[1] not in names:
                    fs.rm(path)  # the day's previous snapshot
        if fs.exists(stage_dir):
            fs.rm(stage_dir, recursive=True)
        drift = None
        if published:
            drift = record_and_compare(fs, table_dir.rsplit("/", 1)[0], table, published[0])
        return published, drift


def discard_staged(job: Job, *, bucket_url: Optional[str] = None) -> None:
    """Delete the staged slices of a split table whose run failed: nothing of it becomes visible."""
    with _lake_fs(job, bucket_url) as (fs, _, stage_dir, _table):
        if fs.exists(stage_dir):
            fs.rm(stage_dir, recursive=True)


def _schema_drift(pipeline: dlt.Pipeline, files: list[str]) -> dict[str, Any]:
    """Drift per table that received a file in this load (the main table and any nested ones)."""
    drift: dict[str, Any] = {}
    with pipeline.destination_client() as client:
        first_file: dict[str, str] = {}
        for path in files:
            table = Path(path).parts[-5]  # <table>/<YYYY>/<MM>/<DD>/<file>
            first_file.setdefault(table, path)
        for table, path in first_file.items():
            change = record_and_compare(client.fs_client, client.dataset_path, table, path)
            if change:
                drift[table] = change
    return drift


def _day_files(pipeline: dlt.Pipeline, tables: list[str], day: str) -> list[str]:
    """Every file in the `YYYY/MM/DD` folder of each table."""
    with pipeline.destination_client() as client:
        fs = client.fs_client
        files: list[str] = []
        for table in tables:
            folder = f"{client.get_table_dir(table).rstrip('/')}/{day}"
            if fs.isdir(folder):
                files.extend(fs.ls(folder, detail=False))
        return sorted(files)


def _of_load(path: str, load_id: str) -> bool:
    """Whether a data file belongs to load `load_id` (files are named `<load_id>.<file_id>.<ext>`)."""
    return os.path.basename(path).startswith(f"{load_id}.")


def _delete(pipeline: dlt.Pipeline, paths: list[str]) -> None:
    if not paths:
        return
    with pipeline.destination_client() as client:
        for path in paths:
            client.fs_client.rm(path)


def _delete_load_files(pipeline: dlt.Pipeline, tables: list[str], day: str, load_id: str) -> None:
    try:
        _delete(pipeline, [f for f in _day_files(pipeline, tables, day) if _of_load(f, load_id)])
    except Exception as exc:  # keep the original error; say that cleanup failed too
        log.error("could not remove files of failed load %s: %s", load_id, redact(exc))


@contextmanager
def _work_dir(job: Job) -> Iterator[Path]:
    parent = os.environ.get(WORK_DIR_ENV) or tempfile.gettempdir()
    Path(parent).mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{pipeline_name(job)}-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _job_lock(name: str) -> Iterator[None]:
    """Serialise runs of one job on this machine: two overlapping incremental runs would both
    load the same new rows."""
    lock_dir = Path(os.environ.get(WORK_DIR_ENV) or tempfile.gettempdir()) / "ingestion-locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception behind dlt's and SQLAlchemy's wrappers."""
    seen = set()
    current: BaseException = exc
    while id(current) not in seen:
        seen.add(id(current))
        inner = getattr(current, "exception", None) or getattr(current, "orig", None) or current.__cause__
        if not isinstance(inner, BaseException):
            break
        current = inner
    return current


def describe_error(exc: BaseException, source: Optional[Source] = None) -> str:
    """One line naming the source and host and the root cause, with secrets removed."""
    cause = root_cause(exc)
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    detail = lines[0] if lines else ""
    text = f"{type(cause).__name__}: {detail}" if detail else type(cause).__name__
    if source is not None:
        text = f"{source.describe()}: {text}"
    text = redact(text)
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."

