"""The orchestration's contract: what the orchestrator, its activities and its clients exchange.

Every payload crosses the Durable history as a JSON object, so each is a `TypedDict` (a plain
dict at run time, typed for readers and checkers). Activities keep the plain `dict` annotation
the Functions worker requires (activities/__init__.py says why) and name these types instead.

Compatibility: an orchestration started before a change replays its history after it, so a
field is added as `NotRequired` and read with `.get`, and a field is never renamed. This module
imports nothing but the standard library: the orchestrator (deterministic) imports it too.
"""

import re
from typing import Any, Literal, NamedTuple, NotRequired, Optional, TypedDict, Union

FinalStatus = Literal["success", "failed", "skipped_circuit_open"]
"""How a job ended in a run (the statuses metrics and audit report)."""
SPLIT: Literal["split"] = "split"
"""The status a split answer carries in the history (see `SplitAnswer`)."""

RetrySettings = dict[str, dict[str, Any]]
"""`RetryPolicy.to_dict()` per policy kind (`database`, `api`): see `shared.retry`."""


# --- The orchestration: input, output, custom status -----------------------------------------


class StartRequest(TypedDict):
    """The orchestrator's input: a validated start request (`shared.start_request`)."""

    config: str
    """The workbook: a local path or a blob reference."""
    only: list[str]
    """`source` or `source.table` filters; empty: every enabled job."""
    dry_run: bool
    """Plan and list the jobs, load nothing."""


class RunOutput(TypedDict):
    """The orchestrator's output of a real run."""

    run_id: str
    summary: dict[str, Any]
    """The `summary` of the run's metrics JSON (config/metrics_schema.json)."""
    metrics_path: str
    """The metrics JSON: a local file, or `<container>/<blob>`."""
    audit_path: str
    failure_events: int
    open_circuits: dict[str, str]
    """Sources whose circuit is open at the end of the run: `open since ...: last error`."""
    warnings: list[str]
    """The plan's warnings and the source check's (the first 20)."""


class DryRunOutput(TypedDict):
    """The orchestrator's output of a dry run."""

    run_id: str
    dry_run: Literal[True]
    total_jobs: int
    jobs: list[str]
    """Job ids, the first 200."""
    warnings: list[str]


OrchestrationOutput = Union[RunOutput, DryRunOutput]


class BatchNumber(TypedDict):
    """Which batch a sub-orchestration runs: `number` (1-based) of `of`."""

    number: int
    of: int


class BatchesStatus(TypedDict):
    """Per-batch progress of a run fanned out in sub-orchestrations (`progress.BatchBoard`).

    `done` counts ended batches (failed ones included), `failed` those that failed as
    orchestrations. With `detail`, one character (`R`, `D`, `F`) per batch in `state` and one
    number per batch in each `jobs*` list, at index `number - 1`.
    """

    total: int
    size: int
    done: int
    running: int
    failed: int
    detail: bool
    state: NotRequired[str]
    jobs: NotRequired[list[int]]
    jobs_done: NotRequired[list[int]]
    jobs_failed: NotRequired[list[int]]
    jobs_skipped: NotRequired[list[int]]


class PlanningStatus(TypedDict):
    """Custom status before the plan is known."""

    phase: Literal["planning"]


class PlannedStatus(TypedDict):
    """Custom status at the end of a dry run."""

    phase: Literal["done"]
    total: int


class ProgressStatus(TypedDict):
    """Custom status while jobs run (`progress.Progress.as_status`); job counts."""

    phase: str
    """`running`, `exporting metrics` or `done`."""
    total: int
    done: int
    failed: int
    skipped: int
    rows: int
    running: list[str]
    """Jobs (or batch labels) under way, the first 20."""
    running_count: int
    retrying: list[str]
    """Jobs waiting for their next attempt, the first 20."""
    batches: NotRequired[BatchesStatus]
    """In a run fanned out in batches."""
    batch: NotRequired[BatchNumber]
    """In a batch sub-orchestration."""


CustomStatus = Union[PlanningStatus, PlannedStatus, ProgressStatus]


# --- Activities ------------------------------------------------------------------------------


class PlannedJob(TypedDict):
    """One job of the plan as the orchestration sees it (the full job is in the run store)."""

    i: int
    """Index in the plan snapshot: how every activity names the job."""
    id: str
    """The job id (`source.table`), for progress."""
    type: str
    """The source type: picks the retry policy."""


class LoadPlanInput(TypedDict):
    """`load_plan` input."""

    request: StartRequest
    run_key: str


SOURCE_CHECK = "source check: "
"""How a `Plan` warning of the source check starts (the others are the workbook's)."""


class Plan(TypedDict):
    """`load_plan` output (`steps.plan_run`)."""

    plan_ref: str
    jobs: list[PlannedJob]
    warnings: list[str]
    """The workbook's, then the source check's (`SOURCE_CHECK` ...); the first 20."""
    retry: RetrySettings
    batch_size: int
    """More runnable jobs than this fan out as batch sub-orchestrations."""


class RunRef(TypedDict):
    """A plan snapshot: `check_breakers` input."""

    run_key: str
    plan_ref: str


class BreakerCheck(TypedDict):
    """`check_breakers` output: plan indexes of jobs skipped because their circuit is open."""

    skipped: list[int]


class Run(RunRef):
    """What every job of a run shares (also a batch sub-orchestration's `run`)."""

    run_id: str
    retry: RetrySettings


class JobAttempt(TypedDict):
    """`run_ingestion_job` input: one attempt of one job."""

    run_key: str
    plan_ref: str
    run_id: str
    index: int
    attempt: int
    """1-based."""


class KeyRange(TypedDict):
    """One slice of a split table (`SqlSource.split_ranges`)."""

    column: str
    start: Any
    end: Any
    closed: bool
    nulls: bool


class SliceAttempt(JobAttempt):
    """`run_ingestion_slice` input: one attempt of one slice of a split table."""

    slice: int
    range: KeyRange


class JobOutcome(TypedDict):
    """What the orchestration keeps of an attempt: enough to retry and show progress."""

    i: int
    status: FinalStatus
    rows: int
    attempt: int
    retryable: bool
    """Worth another attempt (failed, and not a permanent error)."""
    error: Optional[str]
    """The first 300 characters; the full error is in the run store."""
    crashed: NotRequired[bool]
    """No result was stored (the activity raised, or the run store failed): `export_metrics`
    records the job from this outcome."""
    error_class: NotRequired[str]
    """Set on a crashed outcome whose class is known (`storage`)."""


class SplitAnswer(TypedDict):
    """`run_ingestion_job` answer for a table too large for one activity: run these slices."""

    i: int
    status: Literal["split"]
    slices: list[KeyRange]
    attempt: int
    rows: Literal[0]
    retryable: Literal[False]
    error: None


JobAnswer = Union[JobOutcome, SplitAnswer]
"""`run_ingestion_job` output."""


class SliceOutcome(JobOutcome):
    """`run_ingestion_slice` output (and an element of `finish_split_job`'s `slices`)."""

    slice: int
    seconds: NotRequired[float]
    schema_version: NotRequired[Optional[str]]
    staged: NotRequired[Optional[str]]
    """The staging dataset of the accepted attempt: what `finish_split_job` publishes."""


class FinishSplitInput(TypedDict):
    """`finish_split_job` input: every slice's last outcome, in slice order."""

    run_key: str
    plan_ref: str
    index: int
    slices: list[SliceOutcome]


class ExportInput(TypedDict):
    """`export_metrics` input."""

    run_key: str
    plan_ref: str
    run_id: str
    execution_time: str
    """ISO start time of the run."""
    crashed: list[JobOutcome]
    """Outcomes of jobs whose last attempt stored no result."""


class Exported(TypedDict):
    """`export_metrics` output."""

    metrics_path: str
    audit_path: str
    failure_events: int
    summary: dict[str, Any]
    open_circuits: dict[str, str]


class BatchInput(TypedDict):
    """A batch sub-orchestration's input."""

    run: Run
    jobs: list[PlannedJob]
    batch: BatchNumber


class BatchSummary(TypedDict):
    """Job counts of a batch."""

    done: int
    failed: int
    skipped: int
    rows: int


class BatchOutput(BatchSummary):
    """A batch sub-orchestration's output."""

    crashed: list[JobOutcome]


# --- Constructors ----------------------------------------------------------------------------


def crashed_outcome(index: int, attempt: int, error: str, *, retryable: bool) -> JobOutcome:
    """The outcome of a job whose activity (or batch) failed instead of answering."""
    return JobOutcome(i=index, status="failed", rows=0, attempt=attempt, retryable=retryable, error=error,
                      crashed=True)


def split_answer(index: int, attempt: int, slices: list[KeyRange]) -> SplitAnswer:
    """A job's answer when it must run as `slices`."""
    return SplitAnswer(i=index, status=SPLIT, slices=slices, attempt=attempt, rows=0, retryable=False, error=None)


def is_split(answer: JobAnswer) -> bool:
    """Whether a job's answer is a split rather than an outcome."""
    return answer["status"] == SPLIT


# --- A refused run, read back from the orchestration's error -----------------------------------

NO_MATCH = "no enabled job matches only="
"""How `load_plan`'s problem starts when `only` matches no enabled job."""
REFUSALS = {"StorageUnreachableError": "storage", "PreflightError": "lake"}
"""One-line errors of `load_plan` (by exception type) that refuse a run before any job starts."""
_PROBLEMS = re.compile(r"(\d+) problem\(s\)[^\n]*:\n")


class Refusal(NamedTuple):
    """Why `load_plan` refused a run: the workbook's problems, no job matching `only`, the
    service's storage (`storage`) or the lake pre-flight (`lake`)."""

    kind: Literal["workbook", "no_match", "storage", "lake"]
    lines: list[str]
    """Every problem of the workbook, one per line; else one line."""


def read_refusal(error: Optional[str]) -> Optional[Refusal]:
    """The refusal an orchestration's error reports, or None for any other failure.

    `load_plan` fails with a `PlanError`'s text (`N problem(s) in <workbook>:` then one
    `  - <problem>` line each) or `<ExceptionType>: <one line>` (activities/__init__.py); the
    Durable SDK appends a line of details (type and place) to an activity's message.
    """
    text = error or ""
    if _PROBLEMS.match(text):
        problems = [line[4:].rstrip() for line in text.splitlines()[1:] if line.startswith("  - ")]
        if len(problems) == 1 and problems[0].startswith(NO_MATCH):
            return Refusal("no_match", problems)
        return Refusal("workbook", problems)
    kind, _, message = text.partition(": ")
    if kind in REFUSALS:
        return Refusal(REFUSALS[kind], [message.splitlines()[0].rstrip() if message else ""])
    return None
