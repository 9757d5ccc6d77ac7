"""Run one job: one dlt pipeline from its source to the lake, returning a `JobResult`.

Lake semantics per job (the protocol is `shared.lake`, described in docs/lake-protocol.md):

- Every attempt loads into its own staging dataset that no reader sees, and is committed under
  the table's lake-level lock: a journal first, then the day's data made visible in one step,
  then dlt's state and completed-load record. A crash at any point leaves either the previous
  lake or a journal the next job of that table rolls forward; a failed job leaves nothing visible.
- FULL: the new snapshot replaces today's folder of the table; earlier days stay. (dlt's
  `replace` would delete every day's files on the filesystem destination.)
- INCREMENTAL: rows past the cursor are added to today's folder; the cursor is the committed dlt
  state in the lake, so a fresh machine continues from it, and the cursor and its rows become
  visible together.
- A job run again with the same idempotency token after it committed (Durable's at-least-once
  delivery) returns what was committed instead of loading again.

Each run works in its own temporary pipelines directory (the Functions file system is
read-only outside temp), removed afterwards; folders of killed runs are removed by the next run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt  # noqa: E402
from dlt.common.time import ensure_pendulum_datetime  # noqa: E402

from shared import naming  # noqa: E402
from shared.workbook.models import Job  # noqa: E402
from shared.destination import date_folder, make_destination  # noqa: E402
from shared.drift import (  # noqa: E402
    compare, file_signature, record_and_compare, store_signature, stored_signature, type_changes,
)
from shared.errors import classify  # noqa: E402
from shared.lake import APPEND, REPLACE, TableLake  # noqa: E402
from shared.logs import job_context  # noqa: E402
from shared.redaction import redact  # noqa: E402
from shared.results import FAILED, SPLIT, SUCCESS, JobResult  # noqa: E402
from shared.secrets import SourceSecrets, resolve_source_secrets  # noqa: E402
from shared.sources import Source, SqlSource, make_source  # noqa: E402
from shared.telemetry import note_job_bytes, note_job_failure, traced_job  # noqa: E402

log = logging.getLogger(__name__)

WORK_DIR_ENV = "INGESTION_WORK_DIR"
"""Parent folder for per-run dlt working directories (default: the system temp folder)."""
MAX_ERROR_CHARS = 500
UNSAFE_REDELIVERY_ENV = "INGESTION_UNSAFE_REDELIVERY"
"""Test-only switch (undocumented on purpose): ignore idempotency tokens and stored results, to
prove the redelivery tests detect a second load."""


def unsafe_redelivery() -> bool:
    return os.environ.get(UNSAFE_REDELIVERY_ENV) == "1"


class DataQualityError(Exception):
    """The extracted data failed a workbook check; nothing was loaded. Retrying will not help."""


class SchemaChangeError(DataQualityError):
    """A column changed type and the table's old files would stay beside the new ones; nothing
    was loaded. Retrying will not help."""


def pipeline_name(job: Job) -> str:
    """Stable dlt pipeline name of a job; renaming it would lose the incremental cursor."""
    return naming.pipeline_name(job.source_name, job.schema_name, job.table_name)


def table_lake(job: Job, bucket_url: Optional[str] = None) -> TableLake:
    """The lake table a job writes (`<source>/<table>`)."""
    return TableLake(job.source_name, naming.lake_table_name(job.table_name), bucket_url)


def split_id(token: str) -> str:
    """Short stable id of one split table load (its slices' staging names start with it)."""
    return hashlib.sha1(token.encode()).hexdigest()[:10]


@traced_job
def run_job(
    job: Job,
    *,
    secrets: Optional[SourceSecrets] = None,
    bucket_url: Optional[str] = None,
    run_id: Optional[str] = None,
    key_range: Optional[dict[str, Any]] = None,
    slice_no: Optional[int] = None,
    split_rows: Optional[int] = None,
    token: Optional[str] = None,
    split: Optional[str] = None,
) -> JobResult:
    """Extract one job's table or endpoint and land it in the lake as Parquet.

    Args:
        job: The validated job.
        secrets: Credentials for the job's source; resolved from the providers when omitted.
        bucket_url: Lake root; dlt's `DESTINATION__FILESYSTEM__BUCKET_URL` or `./lake` when omitted.
        run_id: The run this job belongs to, for log records and the lock holder's name.
        key_range: For one slice of a table split across activities: the keys to read (from
            `SqlSource.split_ranges`). The slice is staged only (`extra["staged"]` names its
            staging dataset); `publish_staged` makes the accepted slices visible.
        slice_no: The slice's number.
        split_rows: When given, a FULL SQL table estimated above this many rows is not loaded:
            the result has status `split` and its key ranges in `extra["ranges"]`.
        token: Idempotency key of this job in its run (e.g. `<run key>/<job index>`): when the
            table's last commit carries it, the job already landed and its commit is returned.
        split: For a slice: the id of its split load (`split_id`).

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
            naming.naming_setting()  # a wrong INGESTION_NAMING fails every job, not only first loads
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
                table = table_lake(job, bucket_url)
                if staged:
                    attempt = table.attempt_name(split or split_id(job.job_id), slice_no)
                    with _work_dir(job) as work_dir:
                        _load(job, source, work_dir, table, attempt, result, name, None, staged_only=True)
                else:
                    with table.locked(run_id or "a command-line run"), _work_dir(job) as work_dir:
                        table.recover()  # a crashed commit is finished before the cursor is read
                        if not _already_committed(table, token, result):
                            _load(job, source, work_dir, table, table.attempt_name(), result, name, token)
                result.status = SUCCESS
                log.info("job %s loaded %d rows in %d file(s)", job.job_id, result.rows_processed, len(result.files))
        except Exception as exc:  # one failing job must never stop the others
            failure = classify(exc, job, source, lake_root=bucket_url)  # source / lake / permanent
            result.error = failure.message
            result.extra.update(failure.extra())
            note_job_failure(exc, result.error)
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


def _already_committed(table: TableLake, token: Optional[str], result: JobResult) -> bool:
    """A redelivered job whose load already committed: report that commit, load nothing."""
    if not token or unsafe_redelivery():
        return False
    record = table.record()
    if not record or record.get("token") != token:
        return False
    result.rows_processed = int(record.get("rows") or 0)
    result.files = list(record.get("files") or [])
    result.load_id = record.get("load_id")
    result.extra["redelivered"] = True
    log.warning("job %s: already committed by an earlier delivery of this activity; not loaded again", result.job_id)
    return True


def _load(
    job: Job, source: Source, work_dir: Path, table: TableLake, attempt: str, result: JobResult, name: str,
    token: Optional[str], staged_only: bool = False,
) -> None:
    """Load into the attempt's staging dataset, then commit it (`staged_only`, a slice: stage only)."""
    pipeline = dlt.pipeline(
        pipeline_name=name,
        destination=make_destination(table.staging_url),
        dataset_name=attempt,
        pipelines_dir=str(work_dir),
    )
    committing = False
    try:
        if job.is_incremental and table.seed_state(attempt, name):
            # Restores the committed cursor: the staging dataset holds a copy of its state.
            pipeline.sync_destination()
        resource = source.resource()
        # The lake folder, whatever characters the source's table name has (see shared.naming).
        resource.apply_hints(table_name=table.table)
        pipeline.extract(resource, schema=_new_schema(pipeline, job), write_disposition="append",
                         loader_file_format="parquet")
        if isinstance(source, SqlSource) and (nulls := source.null_watermark_rows()) is not None:
            result.extra["null_watermark_rows"] = nulls
        pipeline.normalize()
        normalize_info = pipeline.last_trace.last_normalize_info
        note_job_bytes(normalize_info)
        rows = sum(
            count for t, count in (normalize_info.row_counts if normalize_info else {}).items()
            if not t.startswith("_dlt")
        )
        if job.min_rows is not None and rows < job.min_rows:
            # Checked before loading: nothing lands and an incremental cursor does not move.
            raise DataQualityError(f"data quality: {rows} row(s) extracted, fewer than min_rows {job.min_rows}")
        load_ids = list(pipeline.list_normalized_load_packages())
        result.schema_version = pipeline.default_schema.version_hash
        if not load_ids:  # nothing new (not even state): no commit, only the seeded staging to remove
            result.rows_processed = rows
            _discard_attempt(table, attempt)
            return
        load_id = load_ids[-1]
        # The layout's YYYY/MM/DD is rendered from the package's creation time (UTC).
        day = date_folder(ensure_pendulum_datetime(pipeline.get_load_package_state(load_id)["created_at"]))
        pipeline.load()
        if staged_only:
            result.rows_processed, result.load_id = rows, load_id
            result.extra["staged"] = attempt  # `publish_staged` publishes the accepted attempt
            return
        files = table.staged_files(attempt)
        signatures = _check_schema(job, source, pipeline, table, files, day, result)
        committing = True  # from here a journal may exist: its staging belongs to the roll-forward
        result.files = table.commit(
            commit_id=load_id, mode=APPEND if job.is_incremental else REPLACE, day=day, files=files,
            meta=table.dlt_files(attempt, load_id, name), cleanup=[f"{table.staging_dir}/{attempt}"],
            pipeline=name, token=token, rows=rows, load_id=load_id,
        )
        result.rows_processed, result.load_id = rows, load_id
    except BaseException:
        if not committing:
            _discard_attempt(table, attempt)
        raise
    with pipeline.destination_client() as client:
        for name, current in signatures.items():
            store_signature(client.fs_client, table.store.full(table.source), name, current)
    if result.extra.get("schema_drift"):
        log.warning("job %s: schema changed since the previous run: %s", job.job_id, result.extra["schema_drift"])


def _check_schema(
    job: Job, source: Source, pipeline: dlt.Pipeline, table: TableLake, files: list[dict[str, str]], day: str,
    result: JobResult,
) -> dict[str, dict[str, str]]:
    """The signature of each table this load staged, from the source's columns; the drift since
    the previous load goes to `result.extra["schema_drift"]`.

    Raises:
        SchemaChangeError: A column changed type and files of the old type would stay in the
            table's folder (INCREMENTAL, or FULL with earlier days): nothing is committed.
    """
    first: dict[str, str] = {}
    for entry in files:
        first.setdefault(entry["t"], entry["src"])
    keep = _source_columns(source, pipeline)
    dataset = table.store.full(table.source)
    signatures: dict[str, dict[str, str]] = {}
    drift: dict[str, Any] = {}
    with pipeline.destination_client() as client:
        for name, src in first.items():
            signatures[name] = file_signature(client.fs_client, table.store.full(src), keep if name == table.table else None)
            change = compare(stored_signature(client.fs_client, dataset, name), signatures[name])
            if change:
                drift[name] = change
    if drift:
        result.extra["schema_drift"] = drift
    for name, change in drift.items():
        changed = type_changes(change)
        # A FULL load replaces its day: only other days' files would stay beside the new ones.
        if changed and _has_data(table, name, except_day=None if job.is_incremental else day):
            shown = ", ".join(f"{c} {v['from']} -> {v['to']}" for c, v in list(changed.items())[:5])
            raise SchemaChangeError(
                f"schema change: column type changed in {job.source_name}/{name} since the previous load "
                f"({shown}); files of both types could not be read as one dataset, so nothing was loaded: move "
                "the table's earlier files aside (README: Schema changes) and run again"
            )
    return signatures


def _source_columns(source: Source, pipeline: dlt.Pipeline) -> Optional[set[str]]:
    """The lake names of the source table's current columns (None: not known for this source)."""
    if not isinstance(source, SqlSource):
        return None
    naming = pipeline.default_schema.naming
    return {naming.normalize_identifier(c.name) for c in source.table().columns}


def _has_data(table: TableLake, name: str, except_day: Optional[str]) -> bool:
    """Whether the lake table `name` has a data file in a day folder (other than `except_day`)."""
    base = f"{table.source}/{name}"
    for year in table.store.ls(base):
        for month in table.store.ls(f"{base}/{year}"):
            for d in table.store.ls(f"{base}/{year}/{month}"):
                folder = f"{year}/{month}/{d}"
                if folder != except_day and any(not f.startswith(".") for f in table.store.ls(f"{base}/{folder}")):
                    return True
    return False


def _new_schema(pipeline: dlt.Pipeline, job: Job) -> Optional[dlt.Schema]:
    """A first load's dlt schema, with the column naming convention of `INGESTION_NAMING`; None
    when the pipeline restored its stored schema (an INCREMENTAL table keeps its convention:
    dlt refuses to rename the columns of a table that has data)."""
    if pipeline.default_schema_name:
        return None
    return dlt.Schema(pipeline.pipeline_name, normalizers={"names": naming.dlt_naming(job.source_type)})


def _discard_attempt(table: TableLake, attempt: str) -> None:
    """Remove a failed attempt's staging (best effort: the next job of the table removes leftovers)."""
    try:
        table.store.rm_tree(f"{table.staging_dir}/{attempt}")
    except Exception as exc:  # keep the original error
        log.error("could not remove staging of failed attempt %s: %s", attempt, redact(exc))


def _split(job: Job, source: Source, max_rows: int) -> Optional[list[dict[str, Any]]]:
    """Key ranges of a FULL SQL table too large for one activity; None: load it here.

    Uses the same connection, reflection and estimate as the load would, so deciding costs no
    extra round trip to the source.
    """
    if job.is_incremental or not isinstance(source, SqlSource):
        return None
    return source.split_ranges(max_rows)


def publish_staged(
    job: Job, staged: list[str], *, split: Optional[str] = None, token: Optional[str] = None, rows: int = 0,
    bucket_url: Optional[str] = None, run_id: Optional[str] = None,
) -> tuple[list[str], Optional[dict[str, Any]]]:
    """Publish the accepted attempt of every slice of a split table as one snapshot (replacing
    the day's previous one), like a single-activity FULL run; other attempts of the split
    (redelivered duplicates, failed tries) are deleted, never published.

    Args:
        job: The split job.
        staged: Each slice's accepted staging dataset (`extra["staged"]` of its result).
        split: The split's id (default: derived from the job id, as `run_job` does).
        token: Idempotency key: when the table's last commit carries it, nothing is done again.
        rows: Rows of all slices, for the commit record.

    Returns:
        The published files and the schema drift (None when unchanged).
    """
    from shared.lake import CommitError

    table = table_lake(job, bucket_url)
    split = split or split_id(job.job_id)
    with table.locked(run_id or "a command-line run"):
        table.recover()
        if token and not unsafe_redelivery():
            record = table.record()
            if record and record.get("token") == token:
                return list(record.get("files") or []), None
        from shared.lake.protocol import unsafe_publish

        if unsafe_publish():  # test-only: the old publish took every staged slice there was
            staged = [n for n in table.store.ls(table.staging_dir) if n.startswith("s")]
        files = []
        for attempt in staged:
            if not table.store.exists(f"{table.staging_dir}/{attempt}"):
                raise CommitError(f"{job.source_name}.{table.table}: staged slice {attempt} is gone; nothing published")
            files.extend(table.staged_files(attempt))
        day = max((f["day"] for f in files), default=date_folder(dt.datetime.now(dt.timezone.utc)))
        ours = [f"{table.staging_dir}/{n}" for n in table.store.ls(table.staging_dir)
                if n.startswith(f"s{split}_") or n in staged]
        published = table.commit(
            commit_id=f"split_{split}", mode=REPLACE, day=day, files=files, meta=[], cleanup=ours,
            pipeline=None, token=token, rows=rows, load_id=None,
        )
    drift = None
    if published:
        drift = record_and_compare(_lake_fsspec(bucket_url), table.store.full(job.source_name), table.table, published[0])
    return published, drift


def _lake_fsspec(bucket_url: Optional[str]) -> Any:
    """dlt's authenticated fsspec filesystem of the lake (for reading a published file's schema)."""
    from dlt.common.storages.fsspec_filesystem import fsspec_from_config

    destination = make_destination(bucket_url)
    return fsspec_from_config(destination.configuration(destination.spec(), accept_partial=True))[0]


def discard_staged(job: Job, *, split: Optional[str] = None, bucket_url: Optional[str] = None) -> None:
    """Delete every staged slice of a split table whose run failed: nothing of it becomes visible."""
    table = table_lake(job, bucket_url)
    table.discard(f"s{split or split_id(job.job_id)}_")


@contextmanager
def _work_dir(job: Job) -> Iterator[Path]:
    parent = Path(os.environ.get(WORK_DIR_ENV) or tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_work_dirs(parent)
    path = Path(tempfile.mkdtemp(prefix=f"{pipeline_name(job)}-", dir=parent))
    (path / OWNER_FILE).write_text(_owner_text(os.getpid()) or "")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


OWNER_FILE = ".owner"
"""In each work folder: `<host> <pid> <process start time>` of the process that made it."""


def _owner_text(pid: int) -> Optional[str]:
    """`<host> <pid> <start ticks>`; None when the process does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            start = fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        start = "?"
    return f"{socket.gethostname()} {pid} {start}"


def _remove_stale_work_dirs(parent: Path) -> None:
    """Delete work folders whose owner process on this host is gone (a killed run's dlt files)."""
    host = socket.gethostname()
    for folder in parent.glob("ingest__*-*"):
        try:
            owner = (folder / OWNER_FILE).read_text().split()
        except OSError:
            continue
        if len(owner) != 3 or owner[0] != host or not owner[1].isdigit():
            continue
        if _owner_text(int(owner[1])) != " ".join(owner):
            log.info("removing work folder %s of a run that is gone", folder)
            shutil.rmtree(folder, ignore_errors=True)


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

