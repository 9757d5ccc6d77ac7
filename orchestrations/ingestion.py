"""The ingestion orchestration: plan -> breakers -> fan-out with retries -> fan-in metrics.

Deterministic by construction: no I/O, no clock but `context.current_utc_datetime`, no
randomness (retry jitter is a hash of the instance id and job index). The history stays small:
activities receive a plan reference and a job index, and return a compact outcome; full jobs
and results live in the run store. Plans larger than `batch_size` fan out as one
sub-orchestration per batch, so no single history grows with the workbook.

Retries are done here with durable timers rather than `call_activity_with_retry`, because the
Python `RetryOptions` has no backoff coefficient or jitter and hides the attempt count, which
the metrics report per job. That also keeps the replay safe in Azure: no task takes sequence ids
behind the orchestrator's back, so the extension numbers every call as the SDK does; a "pacer"
timer keeps the extension from starting new work late (docs/durable-replay.md).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Generator

import azure.durable_functions as df
from azure.durable_functions.models.Task import TaskBase, TaskState

from orchestrations.progress import Progress
from shared.redaction import clip, first_line
from shared.retry import RetryPolicy, policy_kind
from shared.run_store import run_key

bp = df.Blueprint()

ORCHESTRATOR = "ingestion_orchestrator"
BATCH_ORCHESTRATOR = "ingestion_batch"
LOAD_PLAN, CHECK_BREAKERS, RUN_JOB, EXPORT_METRICS = "load_plan", "check_breakers", "run_ingestion_job", "export_metrics"
RUN_SLICE, FINISH_SPLIT = "run_ingestion_slice", "finish_split_job"

Orchestration = Generator[Any, Any, Any]


@bp.orchestration_trigger(context_name="context", orchestration=ORCHESTRATOR)
def ingestion_orchestrator(context: df.DurableOrchestrationContext) -> Orchestration:
    """Run every enabled job of a workbook; input: `{"config", "only", "dry_run"}`."""
    request = context.get_input() or {}
    started = context.current_utc_datetime.isoformat()
    key = run_key(context.instance_id, started)
    batch_prefix = run_prefix(context.instance_id, context.current_utc_datetime)
    context.set_custom_status({"phase": "planning"})
    # An invalid workbook fails this task, and so the orchestration, with every problem listed.
    plan = yield context.call_activity(LOAD_PLAN, {"request": request, "run_key": key})
    jobs = plan["jobs"]
    if request.get("dry_run"):
        context.set_custom_status({"phase": "done", "total": len(jobs)})
        return {"run_id": context.instance_id, "dry_run": True, "total_jobs": len(jobs),
                "jobs": [j["id"] for j in jobs][:200], "warnings": plan["warnings"]}

    breakers = yield context.call_activity(CHECK_BREAKERS, {"run_key": key, "plan_ref": plan["plan_ref"]})
    skipped = set(breakers["skipped"])
    progress = Progress(total=len(jobs))
    for job in jobs:
        if job["i"] in skipped:
            progress.finish(job["id"], "skipped_circuit_open")
    runnable = [j for j in jobs if j["i"] not in skipped]
    run = {"run_key": key, "plan_ref": plan["plan_ref"], "run_id": context.instance_id, "retry": plan["retry"]}

    if len(runnable) <= plan["batch_size"]:
        crashed = yield from run_jobs(context, run, runnable, progress)
    else:
        crashed = yield from run_batches(context, run, runnable, plan["batch_size"], progress, batch_prefix)

    context.set_custom_status(progress.as_status("exporting metrics"))
    exported = yield context.call_activity(EXPORT_METRICS, {
        "run_key": key, "plan_ref": plan["plan_ref"], "run_id": context.instance_id,
        "execution_time": started, "crashed": crashed,
    })
    context.set_custom_status(progress.as_status("done"))
    return {
        "run_id": context.instance_id,
        "summary": exported["summary"],
        "metrics_path": exported["metrics_path"],
        "audit_path": exported["audit_path"],
        "failure_events": exported["failure_events"],
        "open_circuits": exported["open_circuits"],
        "warnings": plan["warnings"],
    }


@bp.orchestration_trigger(context_name="context", orchestration=BATCH_ORCHESTRATOR)
def ingestion_batch(context: df.DurableOrchestrationContext) -> Orchestration:
    """Run one batch of jobs; input: `{"run", "jobs", "batch": {"number", "of"}}`; output: counts and
    crashed outcomes. Its custom status carries `batch`, so a reader matches it to the parent's
    `batches` without parsing labels or instance ids."""
    payload = context.get_input()
    progress = Progress(total=len(payload["jobs"]), batch=payload.get("batch"))
    crashed = yield from run_jobs(context, payload["run"], payload["jobs"], progress)
    return {**progress.summary(), "crashed": crashed}


def run_prefix(instance_id: str, started: dt.datetime) -> str:
    """Per-run prefix of sub-orchestration ids: the parent id repeats every run, its start does not.

    Durable (Azure Storage) would start a sub-orchestration over a finished instance with the
    same id, replacing its history, and over a running one too (no de-dupe for
    sub-orchestrations); the MSSQL backend discards it and the parent waits for ever. So each
    run's batches get ids of their own. At most 200 + 22 characters (limit: 256; no `/ \\ # ?`).
    """
    return f"{instance_id[:200]}:{started:%Y%m%dT%H%M%S%f}"


def batch_instance_id(prefix: str, number: int) -> str:
    """Instance id of batch `number` of the run with this `run_prefix`."""
    return f"{prefix}:b{number}"


def run_jobs(
    context: df.DurableOrchestrationContext, run: dict[str, Any], jobs: list[dict[str, Any]], progress: Progress
) -> Orchestration:
    """Fan out one activity per job, retry failed attempts after a durable timer, fan in.

    A job too large for one activity answers `split` with key ranges: its slices then run as
    activities of their own (each retried like a job), and a last activity publishes them as one
    snapshot, or discards them all if any slice failed.

    Returns:
        Outcomes of jobs whose last attempt crashed (the activity raised, so it stored no result).
    """
    # task -> (kind, job, attempt number, slice number or None)
    pending: dict[TaskBase, tuple[str, dict[str, Any], int, Any]] = {}
    fresh: list[TaskBase] = []  # tasks created since the last yield
    slices: dict[int, dict[str, Any]] = {}  # job index -> {"ranges": [...], "done": {slice: outcome}}
    crashed: list[dict[str, Any]] = []

    def attempt(job: dict[str, Any], number: int, part: Any = None) -> None:
        payload = {"run_key": run["run_key"], "plan_ref": run["plan_ref"], "run_id": run["run_id"],
                   "index": job["i"], "attempt": number}
        if part is None:
            add(context.call_activity(RUN_JOB, payload), ("job", job, number, None))
        else:
            payload.update(slice=part, range=slices[job["i"]]["ranges"][part])
            add(context.call_activity(RUN_SLICE, payload), ("slice", job, number, part))
        progress.start(job["id"])

    def add(task: TaskBase, entry: tuple[str, Any, int, Any]) -> None:
        pending[task] = entry
        fresh.append(task)

    def finish(job: dict[str, Any], outcome: dict[str, Any]) -> None:
        progress.finish(job["id"], outcome["status"], outcome.get("rows", 0))
        if outcome.get("crashed"):
            crashed.append(outcome)

    for job in jobs:
        attempt(job, 1)
    fresh.clear()  # the fan-out ends (in .NET terms too) with the first task that ends
    context.set_custom_status(progress.as_status())
    while pending:
        if fresh and len(fresh) < len(pending):
            # The extension's shim awaits each yielded task_any, holding only its new tasks,
            # before it starts anything yielded later; a timer due now ends it at once, so
            # work scheduled later (another job's retry) does not wait for these tasks.
            pending[context.create_timer(context.current_utc_datetime)] = ("pacer", {}, 0, None)
        fresh.clear()
        done = yield context.task_any(list(pending))
        kind, job, number, part = pending.pop(done)
        if kind == "pacer":
            continue
        if kind == "timer":
            attempt(job, number + 1, part)
        elif kind == "finish":
            finish(job, _outcome(done, job, 1))
        else:
            outcome = _outcome(done, job, number)
            policy = RetryPolicy.from_dict(run["retry"][policy_kind(job["type"])])
            if outcome["status"] == "split":
                slices[job["i"]] = {"ranges": outcome["slices"], "done": {}}
                for k in range(len(outcome["slices"])):
                    attempt(job, 1, k)
            elif outcome["status"] == "failed" and outcome["retryable"] and number < policy.max_number_of_attempts:
                delay = policy.delay_seconds(number, f"{run['run_id']}/{job['i']}/{part}")
                timer = context.create_timer(context.current_utc_datetime + dt.timedelta(seconds=delay))
                add(timer, ("timer", job, number, part))
                progress.wait_retry(job["id"])
            elif kind == "slice":
                state = slices[job["i"]]
                state["done"][part] = {**outcome, "slice": part}
                if len(state["done"]) == len(state["ranges"]):
                    task = context.call_activity(FINISH_SPLIT, {
                        "run_key": run["run_key"], "plan_ref": run["plan_ref"], "index": job["i"],
                        "slices": [state["done"][k] for k in sorted(state["done"])],
                    })
                    add(task, ("finish", job, 1, None))
            else:
                finish(job, outcome)
        context.set_custom_status(progress.as_status())
    return crashed


def run_batches(
    context: df.DurableOrchestrationContext,
    run: dict[str, Any],
    jobs: list[dict[str, Any]],
    size: int,
    progress: Progress,
    prefix: str,
) -> Orchestration:
    """Fan out one sub-orchestration per `size` jobs; progress advances as each batch ends.

    One yield schedules every batch and nothing is scheduled after it, so the extension's shim
    never holds work back here (docs/durable-replay.md).
    """
    batches = [jobs[i:i + size] for i in range(0, len(jobs), size)]
    pending: dict[TaskBase, tuple[int, str, list[dict[str, Any]]]] = {}
    for number, batch in enumerate(batches, start=1):
        label = f"batch {number}/{len(batches)} ({len(batch)} jobs)"
        task = context.call_sub_orchestrator(
            BATCH_ORCHESTRATOR, {"run": run, "jobs": batch, "batch": {"number": number, "of": len(batches)}},
            instance_id=batch_instance_id(prefix, number),
        )
        pending[task] = (number, label, batch)
        progress.start_batch(number, len(batches), size, label, len(batch))
    context.set_custom_status(progress.as_status())
    crashed: list[dict[str, Any]] = []
    while pending:
        done = yield context.task_any(list(pending))
        number, label, batch = pending.pop(done)
        if done.state is TaskState.FAILED:
            # A batch orchestrator itself failed (a bug, not a source): report its jobs as failed.
            error = _error_text(done.result)
            crashed.extend({"i": j["i"], "status": "failed", "attempt": 1, "error": error, "crashed": True} for j in batch)
            progress.crash_batch(number, label, len(batch))
        else:
            crashed.extend(done.result["crashed"])
            progress.end_batch(number, label, done.result)
        context.set_custom_status(progress.as_status())
    return crashed


def _outcome(task: TaskBase, job: dict[str, Any], number: int) -> dict[str, Any]:
    if task.state is TaskState.FAILED:
        return {"i": job["i"], "status": "failed", "rows": 0, "attempt": number, "retryable": True,
                "error": _error_text(task.result), "crashed": True}
    return task.result


def _error_text(error: Any) -> str:
    return clip(first_line(error, type(error).__name__))
