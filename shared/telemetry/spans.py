"""Spans: one per activity (`traced_activity`) and one per job attempt (`traced_job`).

Attributes (also the custom dimensions of the job's log records, see `shared.logs`):
`ingestion.run_id`, `source_name`, `table_name`, `job_id`, `load_type`, `attempt`, and when the
attempt ends `rows`, `bytes` (Parquet bytes written), `files`, `status`. A failure sets the
span's status to ERROR and adds an `exception` event; every text in an attribute, a status or
an event goes through `shared.redaction.redact`, like every other output.

Parents: an activity's span is a child of the trace context the activity was invoked under (the
one the Durable extension hands the invocation: the Functions worker attaches it, except on the
thread-pool thread of a sync function, so the invocation's `context` is read as well; the local
runtime attaches it), and a job attempt's span is a child of its activity's.
"""

from __future__ import annotations

import functools
import inspect
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.logs import job_context, job_fields
from shared.redaction import clip, error_line, redact
from shared.run_store import run_id_of
from shared.telemetry.metrics import AttributeValue, record_job

if TYPE_CHECKING:
    from shared.results import JobResult
    from shared.workbook.models import Job

RUN_ID = "ingestion.run_id"
JOB_SPAN = "ingestion.job"

_tracer = trace.get_tracer("ingestion")


def traced_activity(name: str, fn: Callable[[dict], dict], payload: dict, invocation: Any = None) -> dict:
    """Run activity `fn` on `payload` in a span named `name`, its records carrying the run's fields.

    Args:
        name: The activity's name.
        fn: The activity's code.
        payload: Its input.
        invocation: The worker's `azure.functions.Context` of the invocation, if passed: its
            trace context is the parent when none is attached on this thread.

    Returns:
        `fn`'s outcome. Its `status`, `rows` and `error` (already redacted) go on the span; an
        exception is recorded (redacted) and re-raised.
    """
    run_id = payload.get("run_id") or (run_id_of(payload["run_key"]) if payload.get("run_key") else None)
    attributes = {RUN_ID: run_id, "attempt": payload.get("attempt"), "ingestion.job_index": payload.get("index"),
                  "ingestion.slice": payload.get("slice")}
    parent = _invocation_parent(invocation)
    with job_context(run_id=run_id, attempt=payload.get("attempt")), _span(name, attributes, parent) as span:
        outcome = fn(payload)
        if isinstance(outcome, dict):
            span.set_attributes(clean({"status": outcome.get("status") or "ok", "rows": outcome.get("rows")}))
            if outcome.get("status") == "failed":
                span.set_status(Status(StatusCode.ERROR, _text(outcome.get("error") or "failed")))
        return outcome


def takes_invocation_context(wrapper: Callable[..., Any]) -> Callable[..., Any]:
    """Show the worker `wrapper`'s own signature (with its `context` parameter), not the wrapped
    function's that `functools.wraps` exposes, so the worker passes the invocation's context."""
    wrapper.__signature__ = inspect.signature(wrapper, follow_wrapped=False)  # type: ignore[attr-defined]
    return wrapper


def _invocation_parent(invocation: Any) -> Optional[Context]:
    """The invocation's trace context from the host, when no span is current on this thread."""
    if invocation is None or trace.get_current_span().get_span_context().is_valid:
        return None
    context = getattr(invocation, "trace_context", None)
    trace_parent = getattr(context, "trace_parent", None)
    if not trace_parent:
        return None
    carrier = {"traceparent": trace_parent}
    if getattr(context, "trace_state", None):
        carrier["tracestate"] = context.trace_state
    return TraceContextTextMapPropagator().extract(carrier)


def traced_job(run_job: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate `shared.runner.run_job`: one span per job attempt, the job's fields on every
    record logged inside, and the attempt's rows and duration as metrics."""

    @functools.wraps(run_job)
    def wrapper(job: "Job", **kwargs: Any) -> Any:
        outer = job_fields()  # run id and attempt, from the activity
        run_id = kwargs.get("run_id") or outer.get("run_id")
        identity = clean({RUN_ID: run_id, "source_name": job.source_name, "table_name": job.table_name,
                          "job_id": job.job_id, "load_type": job.load_type, "attempt": outer.get("attempt")})
        with job_context(run_id=run_id, source_name=job.source_name, table_name=job.table_name, job_id=job.job_id,
                         load_type=job.load_type), _span(JOB_SPAN, {**identity, "ingestion.slice": kwargs.get("slice_no")}) as span:
            result = run_job(job, **kwargs)
            if not hasattr(result, "rows_processed"):  # a SplitPlan: the slices' own spans carry the load
                span.set_attribute("status", "split")
                return result
            span.set_attributes({"rows": result.rows_processed, "files": len(result.files), "status": result.status})
            if result.error:
                span.set_status(Status(StatusCode.ERROR, _text(result.error)))
            record_job(result.rows_processed, result.duration_seconds, {**identity, "status": result.status})
        return result

    return wrapper


def note_job_failure(exc: BaseException, message: str) -> None:
    """Add the `exception` event of a failed job attempt to its span: the innermost exception's
    type and the job's one-line error (redacted), never the raw exception text or traceback."""
    from shared.errors import exception_chain

    span = trace.get_current_span()
    if span.is_recording():
        cause = list(exception_chain(exc))[-1]
        span.add_event("exception", {"exception.type": type(cause).__name__, "exception.message": _text(message)})


def note_job_bytes(normalize_info: Any) -> None:
    """Put the Parquet bytes dlt wrote for the job's tables (not its `_dlt` bookkeeping) on the
    job attempt's span."""
    span = trace.get_current_span()
    if normalize_info is None or not span.is_recording():
        return
    written = 0
    for step_metrics in (normalize_info.metrics or {}).values():
        for metrics in step_metrics:
            written += sum(m.file_size for table, m in metrics["table_metrics"].items() if not table.startswith("_dlt"))
    span.set_attribute("bytes", written)


@contextmanager
def _span(name: str, attributes: Mapping[str, Any], parent: Optional[Context] = None) -> Iterator[Span]:
    """A current span (under `parent`, else the current context) that records an escaping
    exception redacted (type and first line only)."""
    with _tracer.start_as_current_span(name, context=parent, attributes=clean(attributes), record_exception=False,
                                       set_status_on_exception=False) as span:
        try:
            yield span
        except BaseException as exc:
            span.add_event("exception", {"exception.type": type(exc).__name__, "exception.message": error_line(exc)})
            span.set_status(Status(StatusCode.ERROR, error_line(exc, with_type=True)))
            raise


def clean(attributes: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """Attributes without None values; text redacted and bounded."""
    out: dict[str, AttributeValue] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        out[key] = value if isinstance(value, (bool, int, float)) else _text(value)
    return out


def _text(value: Optional[object]) -> str:
    return clip(redact("" if value is None else value))
