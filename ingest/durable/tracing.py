"""Trace context as the Durable extension passes it (distributed tracing V2), for the local runtime.

In Azure, `client.start_new` sends the caller's W3C trace context (the SDK puts it in a
`traceparent` header); the extension emits one `orchestration:<name>` span per instance, from
its start to its end (a sub-orchestration's is a child of its parent's), and each activity
invocation gets a trace context under it, which the Python worker attaches before calling the
activity. The runtime does the same with the OpenTelemetry API only: without an SDK installed,
every call here is a no-op.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_tracer = trace.get_tracer("ingest.durable")


def incoming_context(trace_parent: Optional[str] = None, trace_state: Optional[str] = None) -> Context:
    """The parent of a new orchestration: the `traceparent` the client sent, else the caller's
    current context (a direct `runtime.start` in the same process)."""
    if trace_parent:
        carrier = {"traceparent": trace_parent, **({"tracestate": trace_state} if trace_state else {})}
        return TraceContextTextMapPropagator().extract(carrier)
    return otel_context.get_current()


def start_orchestration(name: str, instance_id: str, execution_id: str, parent: Context) -> tuple[Span, Context]:
    """The span of one orchestration instance, and the context its activities run under."""
    span = _tracer.start_span(f"orchestration:{name}", context=parent, kind=SpanKind.SERVER, attributes={
        "durabletask.type": "orchestration", "durabletask.task.name": name,
        "durabletask.task.instance_id": instance_id, "durabletask.task.execution_id": execution_id,
    })
    return span, trace.set_span_in_context(span, parent)


def end_orchestration(span: Optional[Span], runtime_status: str, succeeded: bool) -> None:
    """End an instance's span with its runtime status (ERROR unless it completed)."""
    if span is None:
        return
    span.set_attribute("durabletask.runtime_status", runtime_status)
    if not succeeded:
        span.set_status(Status(StatusCode.ERROR))
    span.end()


@contextmanager
def attached(context: Optional[Context]) -> Iterator[None]:
    """Run the block under `context`, as the worker runs an invocation under its trace context."""
    if context is None:
        yield
        return
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)
