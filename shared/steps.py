"""The work behind each activity, as plain functions (no Functions host needed).

Activities stay thin: each one parses its small JSON input and calls one function here. Inputs
and outputs are compact (indexes and references, a few hundred bytes per job): full job
definitions and results travel through the `RunStore`, not through the orchestration history.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Optional, Union

from shared.breakers import OPEN, CircuitBreaker, LocalBreakerStore
from shared.contract import (NO_MATCH, SOURCE_CHECK, BreakerCheck, Exported, JobAnswer, JobOutcome, KeyRange, Plan,
                             PlannedJob, SliceOutcome, StartRequest, split_answer)
from shared.workbook.models import Job, PlanError
from shared.error_routing import (LakeGate, is_storage_error, local_publisher, record_outcome, storage_failures_as_outcomes,
                                  storage_message)
from shared.errors import STORAGE
from shared.metrics import build_metrics
from shared.publish import AzurePublisher, LocalPublisher, Publisher
from shared.redaction import redact
from shared.results import FAILED, SKIPPED_CIRCUIT_OPEN, SUCCESS, JobResult, SplitPlan, record_attempt
from shared.run_store import BlobRunStore, LocalRunStore, RunStore
from shared.storage import StorageAccount, quick_options, storage_account, storage_error
from shared.workbook_ref import (WorkbookRef, WorkbookRefError, canonical_blob, in_functions_host, is_blob_reference,
                                 require_container, short)

if TYPE_CHECKING:  # pydantic is imported when the first step runs, not when the app is indexed
    from shared.settings import AppSettings

log = logging.getLogger(__name__)

MAX_COMPACT_ERROR = 300
MAX_PRECHECK_ERROR = 500
"""Characters kept of the source-check problems of one job."""
"""Characters of an error kept in the orchestration history (the full one is in the run store)."""


@dataclass
class Services:
    """The stores a step uses: local files, or the Azure Storage account when one is configured."""

    settings: AppSettings
    runs: RunStore
    breaker: CircuitBreaker
    publisher: Publisher
    account: Optional[StorageAccount] = None

    @classmethod
    def from_env(cls) -> "Services":
        """Azure stores when `INGESTION_STORAGE` / `AzureWebJobsStorage` is set, local files otherwise."""
        from shared.settings import AppSettings

        settings = AppSettings.from_env()
        account = storage_account()
        return cls.azure(settings, account) if account else cls.local(settings)

    @classmethod
    def local(cls, settings: Optional[AppSettings] = None) -> "Services":
        """File-based stores under the settings' state folder."""
        from shared.settings import AppSettings

        settings = settings or AppSettings.from_env()
        return cls(
            settings=settings,
            runs=LocalRunStore(settings.state_dir / "runs"),
            breaker=CircuitBreaker(LocalBreakerStore(settings.state_dir / "breakers.sqlite"), settings.breaker),
            publisher=LocalPublisher(settings.metrics_dir, settings.audit_dir, settings.state_dir / "failure_events.jsonl"),
        )

    @classmethod
    def azure(cls, settings: AppSettings, account: StorageAccount) -> "Services":
        """Blob run store, Table Storage breakers, blob metrics/audit and a failure queue."""
        container, queue, table, runs = _azure_stores(account, settings.container, settings.failures_queue, settings.breaker_table)
        return cls(
            settings=settings,
            runs=runs,
            breaker=CircuitBreaker(table, settings.breaker),
            publisher=AzurePublisher(container, queue),
            account=account,
        )


@lru_cache(maxsize=4)
def _azure_stores(account: StorageAccount, container_name: str, queue_name: str, table_name: str) -> tuple[Any, Any, Any, BlobRunStore]:
    """Clients, existence checks and the run store's plan cache once per process, not per activity call."""
    from shared.breakers import TableBreakerStore

    container = _ensure_container(account.blob_service(), container_name)
    queue = account.queue_service().get_queue_client(queue_name)
    _ensure_queue(queue)
    if account.connection_string:
        table = TableBreakerStore.from_connection_string(account.connection_string, table_name)
    else:
        table = TableBreakerStore.from_account_url(account.table_url, account.credential(), table_name)
    return container, queue, table, BlobRunStore(container)


def _ensure_container(service: Any, name: str) -> Any:
    from azure.core.exceptions import ResourceExistsError

    client = service.get_container_client(name)
    try:
        client.create_container()
    except ResourceExistsError:
        pass
    return client


def _ensure_queue(queue: Any) -> None:
    from azure.core.exceptions import ResourceExistsError

    try:
        queue.create_queue()
    except ResourceExistsError:
        pass



def plan_run(request: StartRequest, key: str, services: Services) -> Plan:
    """Read and validate the workbook, check the jobs against their sources (unless
    `INGESTION_CHECK_SOURCES` is false), snapshot the jobs to run, describe them compactly.

    Args:
        request: The start request (`config`, `only`, `dry_run`).
        key: The run key.
        services: Stores and settings.

    Returns:
        The plan as the orchestration sees it (`contract.Plan`).

    A job whose table or column is missing, or whose `last_watermark` does not fit its column,
    is recorded as failed (permanent, every cell named) and will not contact its source; the
    other jobs run.

    Raises:
        PlanError: The workbook is invalid (every problem listed), or `only` matches no job.
    """
    from shared.plan import load_plan
    from shared.lake import check_lake
    from shared.secrets import use_run

    use_run(key)  # secrets read from a vault are kept for this run
    config = request["config"]
    source, label = fetch_workbook(config, services.account, services.settings.config_container)
    plan = load_plan(source, source_label=label)
    only = request.get("only") or None
    jobs = plan.enabled_jobs(only)
    if only and not jobs:
        raise PlanError([f"{NO_MATCH}{only}"], config)
    check_lake()  # before any job runs: an unreachable lake fails the run here, in seconds
    warnings = list(plan.warnings)
    problems: dict[int, list[str]] = {}
    if services.settings.check_sources:
        # A source whose circuit is open is left alone, as its jobs are (check_breakers skips them).
        open_now = open_circuits(sorted({j.source_name for j in jobs}), services)
        checked, problems = check_plan_sources(plan, [j for j in jobs if j.source_name not in open_now])
        warnings += checked
    ref = services.runs.save_plan(key, jobs)
    for index, job in enumerate(jobs):
        if job.row in problems:
            # Known before the run: the job fails once, permanently, without contacting its source.
            services.runs.save_result(key, index, _job_result(
                job, FAILED, error=redact("; ".join(problems[job.row]))[:MAX_PRECHECK_ERROR],
                extra={"retryable": False, "error_class": "permanent", "precheck": True}))
    return Plan(
        plan_ref=ref,
        jobs=[PlannedJob(i=i, id=j.job_id, type=j.source_type) for i, j in enumerate(jobs)],
        warnings=warnings[:20],
        retry={kind: p.to_dict() for kind, p in services.settings.retry.items()},
        batch_size=services.settings.batch_size,
    )


def check_plan_sources(plan: Any, jobs: list[Job]) -> tuple[list[str], dict[int, list[str]]]:
    """Check the jobs against their sources (in parallel, bounded in time) before the run starts.

    Returns:
        Warnings (sources that could not be checked: their jobs still run, fail and retry, and
        count on their source's breaker, as without the check), and the definite problems (a
        missing table or column, a watermark that does not fit its column) by workbook row,
        each named by cell.
    """
    from shared.source_check import check_sources

    result = check_sources(plan, jobs)
    log.info("checked %d source(s), %d job(s) in %.1f s", result.sources, result.jobs, result.seconds)
    for line in result.problems:
        log.error("source check: %s", redact(line))
    for line in result.unreachable:
        log.warning("source check: %s", redact(line))
    return [f"{SOURCE_CHECK}{redact(line)}" for line in result.unreachable + result.notes], result.by_row


def is_blob_path(config: str, account: Optional[StorageAccount]) -> bool:
    """Whether `config` names a blob: inside a Functions host always; elsewhere an `az://`-style
    URL, or a path that is not a local file when a storage account is configured. The rule lives
    in `shared.workbook_ref` (its docstring says why)."""
    return is_blob_reference(config, account)


def fetch_workbook(
    config: str, account: Optional[StorageAccount], config_container: str
) -> tuple[Union[str, bytes], str]:
    """The workbook as a local path or as bytes downloaded from blob storage, and its label.

    Inside a Functions host the reference is always a blob of `config_container` (a file of the
    deployed app folder is never read, another container is refused); see `shared.workbook_ref`.

    Args:
        config: A local path, `az://<container>/<name>`, `<container>/<name>` or a bare blob name.
        account: The service's storage account (None: local files only).
        config_container: Container of bare blob names.

    Raises:
        PlanError: The blob does not exist, is too large, is outside the config container (in a
            Functions host), or storage is not configured.
        StorageUnreachableError: The storage endpoint cannot be reached (in seconds, one line).
    """
    if not is_blob_path(config, account):
        return config, config
    try:
        ref = canonical_blob(config, config_container)
        if in_functions_host():
            require_container(ref, config_container)
    except WorkbookRefError as exc:
        raise PlanError([str(exc)], short(config)) from None
    if account is None:
        raise PlanError([f"{ref.path}: a blob workbook needs a storage account (set INGESTION_STORAGE or AzureWebJobsStorage)"], ref.path)
    return download_workbook(ref, account), ref.path


def workbook_blob_size(ref: WorkbookRef, account: StorageAccount) -> Optional[int]:
    """The size of a workbook blob, or None when it does not exist (one quick call).

    Raises:
        StorageUnreachableError: The endpoint cannot be reached or refuses the credentials.
    """
    from azure.core.exceptions import ResourceNotFoundError

    blob = account.blob_service(**quick_options()).get_blob_client(ref.container, ref.name)
    try:
        return blob.get_blob_properties().size
    except ResourceNotFoundError:
        return None
    except Exception as exc:
        raise storage_error(exc, account.blob_host, f"reading {ref.path}") from None


def download_workbook(ref: WorkbookRef, account: StorageAccount) -> bytes:
    """A workbook blob's bytes, with the size checked before the download.

    Raises:
        PlanError: The blob does not exist or is too large.
        StorageUnreachableError: The endpoint cannot be reached or refuses the credentials.
    """
    from shared.workbook.workbook import MAX_BYTES, too_large_message

    size = workbook_blob_size(ref, account)
    if size is None:
        raise PlanError([f"workbook blob not found: {ref.path} on {account.blob_host}"], ref.path)
    if size > MAX_BYTES:
        raise PlanError([f"{ref.path}: {too_large_message(size)}"], ref.path)
    from azure.core.exceptions import ResourceNotFoundError

    blob = account.blob_service(**quick_options()).get_blob_client(ref.container, ref.name)
    try:
        return blob.download_blob().readall()
    except ResourceNotFoundError:  # deleted since the size check
        raise PlanError([f"workbook blob not found: {ref.path} on {account.blob_host}"], ref.path) from None
    except Exception as exc:
        raise storage_error(exc, account.blob_host, f"reading {ref.path}") from None


def _job_result(job: Job, status: str, **fields: Any) -> JobResult:
    return JobResult(
        job_id=job.job_id, source_type=job.source_type, source_name=job.source_name, table_name=job.table_name,
        load_type=job.load_type, status=status, **fields,
    )


def _skipped(job: Job, reason: str) -> JobResult:
    return _job_result(job, SKIPPED_CIRCUIT_OPEN, error=reason)


def check_breakers(key: str, plan_ref: str, services: Services) -> BreakerCheck:
    """Skip the jobs of sources whose circuit is open: record them as skipped, return their indexes."""
    jobs = services.runs.load_jobs(plan_ref)
    decisions = services.breaker.check_many(sorted({j.source_name for j in jobs}))
    closed = {name: d.reason for name, d in decisions.items() if not d.allowed}
    skipped = []
    for index, job in enumerate(jobs):
        if job.source_name in closed:
            services.runs.save_result(key, index, _skipped(job, f"circuit open: {closed[job.source_name]}"))
            skipped.append(index)
    return BreakerCheck(skipped=skipped)


def compact(result: JobResult, index: int, attempt: int) -> JobOutcome:
    """What the orchestration keeps of a result: enough to decide on retries and show progress."""
    return JobOutcome(
        i=index,
        status=result.status,  # a final status: a split is answered by `split_answer`
        rows=result.rows_processed,
        attempt=attempt,
        retryable=result.status == FAILED and result.extra.get("retryable", True),
        error=(result.error or "")[:MAX_COMPACT_ERROR] or None,
    )


@storage_failures_as_outcomes
def run_planned_job(key: str, plan_ref: str, index: int, attempt: int, run_id: str, services: Services) -> JobAnswer:
    """Run job number `index` of the plan (one attempt), update its source's breaker, store the result.

    A source whose breaker opened during this run is not contacted again: the job is recorded as
    `skipped_circuit_open`. Idempotent under redelivery: a job whose stored result is already a
    success returns it, and one whose load committed but whose result was not stored (a crash in
    between, or a concurrent second delivery) gets its committed result from the lake.
    """
    from shared.runner import unsafe_redelivery
    from shared.secrets import use_run

    use_run(key)
    job = services.runs.load_jobs(plan_ref)[index]
    previous = services.runs.load_result(key, index)
    if previous is not None and previous.status == SUCCESS and not unsafe_redelivery():
        return compact(previous, index, attempt)  # delivered again after it finished
    if previous is not None and previous.extra.get("precheck"):
        return compact(previous, index, attempt)  # load_plan found a missing table or column
    decision = services.breaker.check(job.source_name)
    if attempt == 1:
        previous = None  # a first attempt has no earlier failure to keep
    earlier = previous.extra.get("attempts") if previous is not None else None
    if not decision.allowed and previous is not None:
        # The circuit opened between attempts: stop retrying, keep the real failure.
        previous.error = f"{previous.error} (not retried: circuit open)"
        previous.extra["retryable"] = False
        result = previous
    elif not decision.allowed:
        result = _skipped(job, f"circuit open: {decision.reason}")
    else:
        result, lake = _run_past_lake_gate(job, services, run_id=run_id, split_rows=services.settings.split_rows,
                                           token=job_token(key, index))
        if isinstance(result, SplitPlan):
            # Too big for one activity: the orchestration runs one slice activity per range.
            return split_answer(index, attempt, result.ranges)
        result.retry_count = attempt - 1
        record_attempt(result, attempt, earlier, ran=result is not previous)  # the report's timeline
        record_outcome(services.breaker, lake, job.source_name, result)  # source, lake or no breaker
    services.runs.save_result(key, index, result)
    return compact(result, index, attempt)


def _run_past_lake_gate(job: Job, services: Services, **run_args: Any) -> tuple[Any, LakeGate]:
    """`run_job(job, **run_args)` unless the lake's breaker refuses it (after a lake failure: is the
    lake back? no source is contacted); the gate comes back for `record_outcome`.

    The job holds one of the process's CPU slots while it runs (waiting for one when all are
    taken; its duration starts once it has it) and its parallel read slices take extra ones only
    when free (`shared.cpu_slots`); a read that wanted several slices records them in the
    result's `extra.read_slices` (`{"wanted", "used"}`)."""
    from shared.cpu_slots import job_slot
    from shared.runner import run_job

    lake = LakeGate(services.breaker)
    refusal = lake.admit()
    if refusal:
        return _job_result(job, FAILED, error=refusal.error, extra=refusal.extra()), lake
    with job_slot() as slots:
        result = run_job(job, **run_args)
    if isinstance(result, JobResult) and slots.record():
        result.extra["read_slices"] = slots.record()
    return result, lake


def job_token(key: str, index: int) -> str:
    """Idempotency key of one job of one run: what the lake's commit record carries."""
    return f"{key}/{index}"


@storage_failures_as_outcomes
def run_planned_slice(
    key: str, plan_ref: str, index: int, slice_no: int, key_range: KeyRange, attempt: int, run_id: str,
    services: Services,
) -> SliceOutcome:
    """One slice of a split table (one attempt) into its own staging dataset; breaker updated as
    for a job. The outcome names the staged dataset: the one the orchestration accepts is the one
    `finish_split` publishes, so a redelivered slice never adds rows."""
    from shared.runner import split_id
    from shared.secrets import use_run

    use_run(key)
    job = services.runs.load_jobs(plan_ref)[index]
    decision = services.breaker.check(job.source_name)
    if not decision.allowed:
        # A slice that cannot run fails its table; it is not retried.
        result = _job_result(job, FAILED, error=f"circuit open: {decision.reason}", extra={"retryable": False})
    else:
        result, lake = _run_past_lake_gate(job, services, run_id=run_id, key_range=key_range, slice_no=slice_no,
                                           split=split_id(job_token(key, index)))
        record_outcome(services.breaker, lake, job.source_name, result)
    return SliceOutcome(**compact(result, index, attempt), slice=slice_no, seconds=result.duration_seconds,
                        schema_version=result.schema_version, staged=result.extra.get("staged"))


@storage_failures_as_outcomes
def finish_split(key: str, plan_ref: str, index: int, slices: list[SliceOutcome], services: Services) -> JobOutcome:
    """Fan-in of a split table: publish its accepted staged slices as one snapshot, or discard
    them all. Idempotent: delivered again after it published, it returns the stored result."""
    from shared.runner import discard_staged, publish_staged, split_id, unsafe_redelivery

    job = services.runs.load_jobs(plan_ref)[index]
    previous = services.runs.load_result(key, index)
    if previous is not None and previous.status == SUCCESS and not unsafe_redelivery():
        return compact(previous, index, max(s.get("attempt", 1) for s in slices))
    token = job_token(key, index)
    failed = [s for s in slices if s["status"] != SUCCESS]
    result = _job_result(
        job, FAILED if failed else SUCCESS,
        rows_processed=sum(s.get("rows", 0) for s in slices) if not failed else 0,
        duration_seconds=round(sum(s.get("seconds", 0.0) for s in slices), 3),
        retry_count=max(s.get("attempt", 1) - 1 for s in slices),
        schema_version=next((s.get("schema_version") for s in slices if s.get("schema_version")), None),
        extra={"slices": len(slices)},
    )
    if failed:
        discard_staged(job, split=split_id(token))
        result.error = f"slice {failed[0].get('slice')} of {len(slices)} failed: {failed[0].get('error')}"
    else:
        result.files, drift = publish_staged(
            job, [s["staged"] for s in slices if s.get("staged")], split=split_id(token), token=token,
            rows=result.rows_processed,
        )
        if drift:
            result.extra["schema_drift"] = drift
        if result.duration_seconds:
            result.rows_per_second = round(result.rows_processed / result.duration_seconds, 1)
    services.runs.save_result(key, index, result)
    return compact(result, index, max(s.get("attempt", 1) for s in slices))


def export_run_metrics(
    key: str,
    plan_ref: str,
    run_id: str,
    execution_time: str,
    crashed: list[JobOutcome],
    services: Services,
) -> Exported:
    """Fan-in: build the metrics JSON and the audit rows from every stored result.

    Args:
        key: The run key.
        plan_ref: The plan snapshot (for jobs whose activity crashed before storing a result).
        run_id: The orchestration instance id, as the metrics call it.
        execution_time: ISO start time of the run.
        crashed: Compact outcomes of jobs whose activity raised instead of returning.
        services: Stores and settings.

    Returns:
        Where the metrics and audit rows went, the run's summary and its open circuits.
    """
    jobs = services.runs.load_jobs(plan_ref)  # cached in this process since the plan step
    unreadable = None
    try:
        stored = services.runs.load_results(key)
    except Exception as exc:
        if not is_storage_error(exc):
            raise
        # The run store is dead: report what the orchestration knows, and say so.
        unreadable = redact(f"result not readable: {storage_message(exc, services, 'reading the results')}")
        log.error("%s", unreadable)
        stored = {}
    for outcome in crashed:
        index = outcome["i"]
        if index not in stored:
            job = jobs[index]
            stored[index] = _job_result(
                job, FAILED,
                error=redact(outcome.get("error") or "activity failed"), retry_count=outcome.get("attempt", 1) - 1,
                extra={"error_class": outcome["error_class"]} if outcome.get("error_class") else {},
            )
    if unreadable:
        for index, job in enumerate(jobs):
            stored.setdefault(index, _job_result(job, FAILED, error=unreadable, extra={"error_class": STORAGE}))
    results = [stored[i] for i in sorted(stored)]
    started = dt.datetime.fromisoformat(execution_time)
    settings = services.settings
    metrics = build_metrics(
        results, pipeline_name=settings.pipeline_name, run_id=run_id, execution_time=started,
        throughput_floor=settings.throughput_floor,
    )
    # Metrics must survive a dead storage account: then they go to the local metrics folder
    # (at once when reading the results just failed: no second timeout to find out again).
    if unreadable:
        return Exported(**local_publisher(services).publish(metrics, results, started), summary=metrics["summary"],
                        open_circuits={})
    try:
        published = services.publisher.publish(metrics, results, started)
    except Exception as exc:
        if not is_storage_error(exc):
            raise
        log.error("%s", storage_message(exc, services, "writing the metrics; written locally instead"))
        return Exported(**local_publisher(services).publish(metrics, results, started), summary=metrics["summary"],
                        open_circuits={})
    return Exported(**published, summary=metrics["summary"],
                    open_circuits=open_circuits(sorted({r.source_name for r in results}), services))


def open_circuits(source_names: list[str], services: Services) -> dict[str, str]:
    """Sources whose circuit is OPEN now, with the last error (read only: no state change)."""
    try:
        states = [services.breaker.store.get(name) for name in source_names]
    except Exception as exc:
        if not is_storage_error(exc):
            raise
        log.error("%s", storage_message(exc, services, "reading the circuit states"))
        return {}
    return {s.source_name: f"open since {s.opened_at}: {s.last_error}" for s in states if s.state == OPEN}

