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
import time
from pathlib import Path
from typing import Any, ContextManager, Optional, Union

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt  # noqa: E402
from dlt.common.time import ensure_pendulum_datetime  # noqa: E402

from shared import naming  # noqa: E402
from shared.dlt_environ import use_fast_environ  # noqa: E402
from shared.workbook.models import Job  # noqa: E402
from shared.errors import classify  # noqa: E402
from shared.lake import APPEND, FILE_FORMAT, REPLACE, TABLE_HINTS, TableLake, date_folder, drift  # noqa: E402
from shared.lake.destination import make_destination  # noqa: E402
from shared.logs import job_context  # noqa: E402
from shared.redaction import clip, first_line, redact  # noqa: E402
from shared.results import FAILED, SUCCESS, JobResult, SplitPlan  # noqa: E402
from shared.secrets import SourceSecrets, resolve_source_secrets  # noqa: E402
from shared.settings import settings  # noqa: E402
from shared.sources import Source, SqlSource, make_source  # noqa: E402
from shared.telemetry import note_job_bytes, note_job_failure, traced_job  # noqa: E402
from shared.work_dirs import work_dir  # noqa: E402

log = logging.getLogger(__name__)

UNSAFE_REDELIVERY_ENV = "INGESTION_UNSAFE_REDELIVERY"
"""Test-only switch (undocumented on purpose): ignore idempotency tokens and stored results, to
prove the redelivery tests detect a second load."""


def unsafe_redelivery() -> bool:
    return os.environ.get(UNSAFE_REDELIVERY_ENV) == "1"


class DataQualityError(Exception):
    """The extracted data failed a workbook check; nothing was loaded. Retrying will not help."""


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
) -> Union[JobResult, SplitPlan]:
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
            a `SplitPlan` with its key ranges comes back instead of a result.
        token: Idempotency key of this job in its run (e.g. `<run key>/<job index>`): when the
            table's last commit carries it, the job already landed and its commit is returned.
        split: For a slice: the id of its split load (`split_id`).

    Returns:
        The job's result (or, only with `split_rows`, its `SplitPlan`). Errors are caught and reported in the result (status `failed`) with
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
    plan: Optional[SplitPlan] = None
    with job_context(run_id=run_id, source_name=job.source_name, table_name=job.table_name, job_id=job.job_id):
        try:
            naming.naming_setting()  # a wrong INGESTION_NAMING fails every job, not only first loads
            use_fast_environ()  # dlt's own configuration, resolved ~90 times per pipeline run
            secrets = secrets or resolve_source_secrets(job.source_name, job.source_type)
            source = make_source(job, secrets)
            staged = slice_no is not None
            if staged and isinstance(source, SqlSource):
                source.key_range = key_range
            ranges = _split(job, source, split_rows) if split_rows and not staged else None
            if ranges:
                plan = SplitPlan(job.job_id, ranges)
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
    if plan is not None:
        return plan
    result.duration_seconds = round(time.monotonic() - started, 3)
    result.extra["started_at"] = started_at.isoformat()
    result.extra["finished_at"] = (started_at + dt.timedelta(seconds=result.duration_seconds)).isoformat()
    if result.duration_seconds > 0:
        result.rows_per_second = round(result.rows_processed / result.duration_seconds, 1)
    return result


def _already_committed(table: TableLake, token: Optional[str], result: JobResult) -> bool:
    """A redelivered job whose load already committed: report that commit, load nothing."""
    record = None if unsafe_redelivery() else table.committed(token)
    if not record:
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
    # dlt's runtime trace (for `dlt deploy` and `last_trace`) pickled the whole trace into the work
    # folder after each step, which is removed after the job; the normalize step's own return value
    # carries what is used here. (dlt 1.31 ignores `enable_runtime_trace` given to `dlt.pipeline`.)
    pipeline.config.enable_runtime_trace = False
    committing = False
    try:
        if job.is_incremental and table.seed_state(attempt, name):
            # Restores the committed cursor: the staging dataset holds a copy of its state.
            pipeline.sync_destination()
        resource = source.resource()
        # The lake folder, whatever characters the source's table name has (see shared.naming).
        resource.apply_hints(table_name=table.table, **TABLE_HINTS)
        pipeline.extract(resource, schema=_new_schema(pipeline, job), write_disposition="append",
                         loader_file_format=FILE_FORMAT)
        if isinstance(source, SqlSource) and (nulls := source.null_watermark_rows()) is not None:
            result.extra["null_watermark_rows"] = nulls
        normalize_info = pipeline.normalize()
        note_job_bytes(normalize_info)
        rows = sum(
            count for t, count in (normalize_info.row_counts if normalize_info else {}).items()
            if not t.startswith("_dlt")
        )
        if job.min_rows is not None and rows < job.min_rows:
            # Checked before loading: nothing lands and an incremental cursor does not move.
            raise DataQualityError(f"data quality: {rows} row(s) extracted, fewer than min_rows {job.min_rows}")
        load_ids = list(pipeline.list_normalized_load_packages())
        # Each `pipeline.default_schema` reads and validates the stored schema again once it is
        # committed: take it once (its naming convention does not change in the load step).
        schema = pipeline.default_schema
        result.schema_version = schema.version_hash
        if not load_ids:  # nothing new (not even state): no commit, only the seeded staging to remove
            result.rows_processed = rows
            table.discard_attempt(attempt)
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
        signatures, changes = drift.staged_drift(table, files, _source_columns(source, schema))
        if changes:
            result.extra["schema_drift"] = changes
        # A FULL load replaces its day: only other days' files would stay beside the new ones.
        drift.refuse_type_changes(table, changes, except_day=None if job.is_incremental else day)
        committing = True  # from here a journal may exist: its staging belongs to the roll-forward
        result.files = table.commit_attempt(
            attempt, load_id=load_id, mode=APPEND if job.is_incremental else REPLACE, day=day, files=files,
            pipeline=name, token=token, rows=rows,
        )
        result.rows_processed, result.load_id = rows, load_id
    except BaseException:
        if not committing:
            table.discard_attempt(attempt)
        raise
    for name, current in signatures.items():
        drift.store_signature(table, name, current)
    if result.extra.get("schema_drift"):
        log.warning("job %s: schema changed since the previous run: %s", job.job_id, result.extra["schema_drift"])


def _source_columns(source: Source, schema: dlt.Schema) -> Optional[set[str]]:
    """The lake names of the source table's current columns (None: not known for this source)."""
    if not isinstance(source, SqlSource):
        return None
    return {schema.naming.normalize_identifier(c.name) for c in source.table().columns}


def _new_schema(pipeline: dlt.Pipeline, job: Job) -> Optional[dlt.Schema]:
    """A first load's dlt schema, with the column naming convention of `INGESTION_NAMING`; None
    when the pipeline restored its stored schema (an INCREMENTAL table keeps its convention:
    dlt refuses to rename the columns of a table that has data)."""
    if pipeline.default_schema_name:
        return None
    return dlt.Schema(pipeline.pipeline_name, normalizers={"names": naming.dlt_naming(job.source_type)})


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
    (redelivered duplicates, failed tries) are deleted, never published (`TableLake.publish_split`).

    Args:
        job: The split job.
        staged: Each slice's accepted staging dataset (`extra["staged"]` of its result).
        split: The split's id (default: derived from the job id, as `run_job` does).
        token: Idempotency key: when the table's last commit carries it, nothing is done again.
        rows: Rows of all slices, for the commit record.

    Returns:
        The published files and the schema drift (None when unchanged).
    """
    table = table_lake(job, bucket_url)
    with table.locked(run_id or "a command-line run"):
        table.recover()
        record = None if unsafe_redelivery() else table.committed(token)
        if record:
            return list(record.get("files") or []), None
        published = table.publish_split(staged, split or split_id(job.job_id), token=token, rows=rows)
    change = None
    if published:
        change = drift.record_and_compare(table, table.table, table.store.rel(published[0]))
    return published, change


def discard_staged(job: Job, *, split: Optional[str] = None, bucket_url: Optional[str] = None) -> None:
    """Delete every staged slice of a split table whose run failed: nothing of it becomes visible."""
    table_lake(job, bucket_url).discard_split(split or split_id(job.job_id))


def _work_dir(job: Job) -> ContextManager[Path]:
    return work_dir(settings().work_dir, pipeline_name(job))


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
    detail = first_line(cause)
    text = f"{type(cause).__name__}: {detail}" if detail else type(cause).__name__
    if source is not None:
        text = f"{source.describe()}: {text}"
    return clip(redact(text))

