"""Activity functions: each parses its small JSON input and calls one function in `shared.steps`.

Exceptions leave an activity only as a one-line message with secrets removed: the message is
stored in the orchestration history and may be shown by the status endpoint.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable

import azure.durable_functions as df

from shared import steps
from shared.config.models import PlanError
from shared.redaction import install_log_redaction, redact

bp = df.Blueprint()
log = logging.getLogger(__name__)
install_log_redaction()


def _safe(fn: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    """Re-raise any error as a redacted RuntimeError (a PlanError keeps every problem line)."""

    @functools.wraps(fn)
    def wrapper(payload: dict[str, Any]) -> Any:
        try:
            return fn(payload)
        except PlanError as exc:
            raise RuntimeError(redact(exc)) from None
        except Exception as exc:
            log.exception("activity %s failed", fn.__name__)
            first = next((line for line in str(exc).splitlines() if line.strip()), "")
            raise RuntimeError(redact(f"{type(exc).__name__}: {first}"[:500])) from None

    return wrapper


@bp.activity_trigger(input_name="payload")
@_safe
def load_plan(payload: dict[str, Any]) -> dict[str, Any]:
    """Read and validate the workbook; snapshot the jobs to run."""
    return steps.plan_run(payload["request"], payload["run_key"], steps.Services.from_env())


@bp.activity_trigger(input_name="payload")
@_safe
def check_breakers(payload: dict[str, Any]) -> dict[str, Any]:
    """Mark the jobs of sources whose circuit is open as skipped."""
    return steps.check_breakers(payload["run_key"], payload["plan_ref"], steps.Services.from_env())


@bp.activity_trigger(input_name="payload")
@_safe
def run_ingestion_job(payload: dict[str, Any]) -> dict[str, Any]:
    """Run one attempt of one job through its dlt pipeline."""
    return steps.run_planned_job(
        payload["run_key"], payload["plan_ref"], payload["index"], payload["attempt"], payload["run_id"],
        steps.Services.from_env(),
    )


@bp.activity_trigger(input_name="payload")
@_safe
def run_ingestion_slice(payload: dict[str, Any]) -> dict[str, Any]:
    """Run one attempt of one key-range slice of a table split across activities."""
    return steps.run_planned_slice(
        payload["run_key"], payload["plan_ref"], payload["index"], payload["slice"], payload["range"],
        payload["attempt"], payload["run_id"], steps.Services.from_env(),
    )


@bp.activity_trigger(input_name="payload")
@_safe
def finish_split_job(payload: dict[str, Any]) -> dict[str, Any]:
    """Publish a split table's slices as one snapshot, or discard them when any failed."""
    return steps.finish_split(payload["run_key"], payload["plan_ref"], payload["index"], payload["slices"],
                              steps.Services.from_env())


@bp.activity_trigger(input_name="payload")
@_safe
def export_metrics(payload: dict[str, Any]) -> dict[str, Any]:
    """Fan-in: write the metrics JSON and the audit rows of the run."""
    return steps.export_run_metrics(
        payload["run_key"], payload["plan_ref"], payload["run_id"], payload["execution_time"],
        payload.get("crashed") or [], steps.Services.from_env(),
    )
