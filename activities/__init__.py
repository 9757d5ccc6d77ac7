"""Activity functions: each parses its small JSON input and calls one function in `shared.steps`.

Exceptions leave an activity only as a one-line message with secrets removed: the message is
stored in the orchestration history and may be shown by the status endpoint.

Annotations: each activity's parameter and result are annotated with the plain `dict`. The
Functions Python worker validates trigger parameter annotations when it loads the app and rejects
a builtin generic such as `dict[str, Any]` ("invalid non-type annotation"; one rejected function
and the host loads none, see tests/worker/). Each docstring and `cast` names its `shared.contract`
types instead.

May import: the Functions SDKs and `shared` (mostly `shared.steps`); never `ingest`.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable, cast

import azure.durable_functions as df

from shared import steps
from shared.contract import ExportInput, FinishSplitInput, JobAttempt, LoadPlanInput, RunRef, SliceAttempt
from shared.workbook.models import PlanError
from shared.redaction import error_line, install_log_redaction, redact
from shared.telemetry import takes_invocation_context, traced_activity

bp = df.Blueprint()
log = logging.getLogger(__name__)
install_log_redaction()


Payload = dict[str, Any]
"""What an activity receives and returns (JSON objects); never a trigger annotation (see above)."""


def _safe(fn: Callable[[Payload], Payload]) -> Callable[[Payload], Payload]:
    """Re-raise any error as a redacted RuntimeError (a PlanError keeps every problem line)."""

    @functools.wraps(fn)
    def wrapper(payload: dict, context: Any = None) -> dict:  # context: the worker's, for its trace context
        try:
            return traced_activity(fn.__name__, fn, payload, context)
        except PlanError as exc:
            raise RuntimeError(redact(exc)) from None
        except Exception as exc:
            log.exception("activity %s failed", fn.__name__)
            raise RuntimeError(error_line(exc, with_type=True)) from None

    return takes_invocation_context(wrapper)


@bp.activity_trigger(input_name="payload")
@_safe
def load_plan(payload: dict) -> dict:
    """Read and validate the workbook; snapshot the jobs to run.

    payload: `LoadPlanInput`; returns `Plan` (`steps.plan_run`).
    """
    args = cast(LoadPlanInput, payload)
    return steps.plan_run(args["request"], args["run_key"], steps.Services.from_env())


@bp.activity_trigger(input_name="payload")
@_safe
def check_breakers(payload: dict) -> dict:
    """Mark the jobs of sources whose circuit is open as skipped.

    payload: `RunRef`; returns `BreakerCheck`.
    """
    args = cast(RunRef, payload)
    return steps.check_breakers(args["run_key"], args["plan_ref"], steps.Services.from_env())


@bp.activity_trigger(input_name="payload")
@_safe
def run_ingestion_job(payload: dict) -> dict:
    """Run one attempt of one job through its dlt pipeline.

    payload: `JobAttempt`; returns a `JobOutcome`, or a `SplitAnswer` for a table too large for
    one activity (`steps.run_planned_job`).
    """
    args = cast(JobAttempt, payload)
    return steps.run_planned_job(
        args["run_key"], args["plan_ref"], args["index"], args["attempt"], args["run_id"], steps.Services.from_env(),
    )


@bp.activity_trigger(input_name="payload")
@_safe
def run_ingestion_slice(payload: dict) -> dict:
    """Run one attempt of one key-range slice of a table split across activities.

    payload: `SliceAttempt`; returns a `SliceOutcome` (`steps.run_planned_slice`).
    """
    args = cast(SliceAttempt, payload)
    return steps.run_planned_slice(
        args["run_key"], args["plan_ref"], args["index"], args["slice"], args["range"], args["attempt"],
        args["run_id"], steps.Services.from_env(),
    )


@bp.activity_trigger(input_name="payload")
@_safe
def finish_split_job(payload: dict) -> dict:
    """Publish a split table's slices as one snapshot, or discard them when any failed.

    payload: `FinishSplitInput`; returns the job's `JobOutcome` (`steps.finish_split`).
    """
    args = cast(FinishSplitInput, payload)
    return steps.finish_split(args["run_key"], args["plan_ref"], args["index"], args["slices"],
                              steps.Services.from_env())


@bp.activity_trigger(input_name="payload")
@_safe
def export_metrics(payload: dict) -> dict:
    """Fan-in: write the metrics JSON and the audit rows of the run.

    payload: `ExportInput`; returns `Exported`.
    """
    args = cast(ExportInput, payload)
    return steps.export_run_metrics(
        args["run_key"], args["plan_ref"], args["run_id"], args["execution_time"], args.get("crashed") or [],
        steps.Services.from_env(),
    )
