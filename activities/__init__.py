"""Activity functions: each parses its small JSON input and calls one function in `shared.steps`.

Exceptions leave an activity only as a one-line message with secrets removed: the message is
stored in the orchestration history and may be shown by the status endpoint.

Annotations: each activity's parameter and result are annotated with the plain `dict`. The
Functions Python worker validates trigger parameter annotations when it loads the app and rejects
a builtin generic such as `dict[str, Any]` ("invalid non-type annotation"; one rejected function
and the host loads none, see tests/worker/). Each docstring names the keys instead.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable

import azure.durable_functions as df

from shared import steps
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

    payload: `{"request": {"config", "only", "dry_run"}, "run_key"}`; returns
    `{"plan_ref", "jobs", "warnings", "retry", "batch_size"}` (`steps.plan_run`).
    """
    return steps.plan_run(payload["request"], payload["run_key"], steps.Services.from_env())


@bp.activity_trigger(input_name="payload")
@_safe
def check_breakers(payload: dict) -> dict:
    """Mark the jobs of sources whose circuit is open as skipped.

    payload: `{"run_key", "plan_ref"}`; returns `{"skipped": [job index], "open": {source: reason}}`.
    """
    return steps.check_breakers(payload["run_key"], payload["plan_ref"], steps.Services.from_env())


@bp.activity_trigger(input_name="payload")
@_safe
def run_ingestion_job(payload: dict) -> dict:
    """Run one attempt of one job through its dlt pipeline.

    payload: `{"run_key", "plan_ref", "index", "attempt", "run_id"}`; returns the job's compact
    outcome (`steps.run_planned_job`).
    """
    return steps.run_planned_job(
        payload["run_key"], payload["plan_ref"], payload["index"], payload["attempt"], payload["run_id"],
        steps.Services.from_env(),
    )


@bp.activity_trigger(input_name="payload")
@_safe
def run_ingestion_slice(payload: dict) -> dict:
    """Run one attempt of one key-range slice of a table split across activities.

    payload: `{"run_key", "plan_ref", "index", "slice", "range", "attempt", "run_id"}`; returns
    the slice's compact outcome (`steps.run_planned_slice`).
    """
    return steps.run_planned_slice(
        payload["run_key"], payload["plan_ref"], payload["index"], payload["slice"], payload["range"],
        payload["attempt"], payload["run_id"], steps.Services.from_env(),
    )


@bp.activity_trigger(input_name="payload")
@_safe
def finish_split_job(payload: dict) -> dict:
    """Publish a split table's slices as one snapshot, or discard them when any failed.

    payload: `{"run_key", "plan_ref", "index", "slices"}`; returns the job's outcome
    (`steps.finish_split`).
    """
    return steps.finish_split(payload["run_key"], payload["plan_ref"], payload["index"], payload["slices"],
                              steps.Services.from_env())


@bp.activity_trigger(input_name="payload")
@_safe
def export_metrics(payload: dict) -> dict:
    """Fan-in: write the metrics JSON and the audit rows of the run.

    payload: `{"run_key", "plan_ref", "run_id", "execution_time", "crashed"?}`; returns
    `{"metrics_path", "audit_path", "failure_events", "summary", "open_circuits"}`.
    """
    return steps.export_run_metrics(
        payload["run_key"], payload["plan_ref"], payload["run_id"], payload["execution_time"],
        payload.get("crashed") or [], steps.Services.from_env(),
    )
