"""Trace context through the local runtime, as the Durable extension's distributed tracing V2 passes it.

Runs in a fresh interpreter with the SDK's in-memory span exporter (a global tracer provider
would leak into other tests): a small app whose activity reports the span it runs under, started
once through the SDK client (which sends a `traceparent`) and once by `runtime.run` in the
caller's span, with a sub-orchestration and a failing orchestration.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

PROBE = f"""
import asyncio, json, sys
sys.path.insert(0, {str(ROOT)!r})
import azure.durable_functions as df
import azure.functions as func
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

from ingest.durable import LocalDurableClient, LocalDurableRuntime

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

@app.activity_trigger(input_name="value")
def where(value: int) -> str:
    return format(trace.get_current_span().get_span_context().span_id, "016x")

@app.orchestration_trigger(context_name="context")
def child(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("where", 1))

@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    mine = yield context.call_activity("where", 0)
    theirs = yield context.call_sub_orchestrator("child", None, instance_id=context.instance_id + "-child")
    return [mine, theirs]

@app.orchestration_trigger(context_name="context")
def broken(context: df.DurableOrchestrationContext):
    yield context.call_activity("where", 2)
    raise ValueError("orchestrator exploded")

tracer = trace.get_tracer("probe")
results = {{}}
with LocalDurableRuntime(app) as runtime:
    with tracer.start_as_current_span("starter") as span:
        results["starter"] = format(span.get_span_context().span_id, "016x")
        asyncio.run(LocalDurableClient(runtime).start_new("parent", instance_id="viaclient"))
    results["viaclient"] = runtime.wait("viaclient", 60).output
    with tracer.start_as_current_span("cli") as span:
        results["cli"] = format(span.get_span_context().span_id, "016x")
        results["direct"] = runtime.run("parent", instance_id="direct", timeout=60).output
        results["broken"] = runtime.run("broken", instance_id="broken", timeout=60).runtime_status
print(json.dumps({{"results": results, "spans": [json.loads(s.to_json()) for s in exporter.get_finished_spans()]}}))
"""


def run_probe(tmp_path: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "APPLICATIONINSIGHTS_"))}
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_orchestrations_get_spans_and_activities_run_under_them(tmp_path: Path) -> None:
    data = run_probe(tmp_path)
    results = data["results"]
    spans = {s["context"]["span_id"][2:]: s for s in data["spans"]}
    by_instance = {s["attributes"]["durabletask.task.instance_id"]: s for s in data["spans"]
                   if s["name"].startswith("orchestration:")}

    for instance, caller in (("viaclient", "starter"), ("direct", "cli")):
        run, sub = by_instance[instance], by_instance[f"{instance}-child"]
        assert run["name"] == "orchestration:parent" and sub["name"] == "orchestration:child"
        # The client's traceparent (or the caller's context) is the run's parent; a
        # sub-orchestration's span is a child of its parent's; activities run under their own.
        assert run["parent_id"][2:] == results[caller]
        assert sub["parent_id"] == run["context"]["span_id"]
        mine, theirs = results[instance]
        assert spans[mine] is run and spans[theirs] is sub
        assert run["kind"] == "SpanKind.SERVER" and run["status"]["status_code"] == "UNSET"
        assert run["attributes"]["durabletask.runtime_status"] == "Completed"
        assert run["start_time"] <= sub["start_time"] and sub["end_time"] <= run["end_time"]

    assert results["broken"] == "Failed"
    assert by_instance["broken"]["status"]["status_code"] == "ERROR"
    assert by_instance["broken"]["parent_id"][2:] == results["cli"]
