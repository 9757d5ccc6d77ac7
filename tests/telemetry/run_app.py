"""Run one workbook through the real app in a fresh interpreter and dump its telemetry as JSON.

    python tests/telemetry/run_app.py WORKBOOK OUT.json

The OpenTelemetry SDK's in-memory exporters are installed first, as the Functions Python worker
installs its providers before it imports the app (`PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY`).
Then `function_app` is imported (nothing else of the app before it), and the HTTP starter is
called on the local durable runtime inside a server span, like the host's request span the
worker attaches. A fresh process, so global providers and log hooks of other tests cannot make
this run pass.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

from opentelemetry import _logs, metrics, trace
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 240


def main(workbook: str, out: str) -> None:
    sys.path.insert(0, str(ROOT))
    spans, records, reader = InMemorySpanExporter(), InMemoryLogRecordExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(records))
    _logs.set_logger_provider(logger_provider)
    root = logging.getLogger()
    root.addHandler(LoggingHandler(logger_provider=logger_provider))
    root.setLevel(logging.INFO)

    from shared import log_records

    hooks_before = sorted(log_records._hooks)
    import function_app
    from shared.telemetry import setup

    hooks_after = sorted(log_records._hooks)

    import azure.functions as func

    from ingest.durable import LocalDurableClient, LocalDurableRuntime

    runtime = LocalDurableRuntime(function_app.app, max_parallel=2)
    starter = runtime.functions.clients["start_ingestion_http"]
    request = func.HttpRequest(method="POST", url="http://localhost:7071/api/ingestions",
                               body=json.dumps({"config": workbook}).encode(), headers={"Content-Type": "application/json"})
    with trace.get_tracer("tests.telemetry").start_as_current_span("POST /api/ingestions", kind=trace.SpanKind.SERVER):
        response = asyncio.run(starter.fn(request, **{starter.parameter: LocalDurableClient(runtime)}))
    instance_id = json.loads(response.get_body())["id"]
    result = runtime.wait(instance_id, TIMEOUT)
    runtime.close()
    tracer_provider.force_flush()
    logger_provider.force_flush()
    Path(out).write_text(json.dumps({
        "hooks_before": hooks_before, "hooks_after": hooks_after, "configured": setup._configured,
        "status_code": response.status_code, "instance_id": instance_id, "runtime_status": result.runtime_status,
        "output": result.output, "error": result.error,
        "spans": [json.loads(span.to_json()) for span in spans.get_finished_spans()],
        "logs": [json.loads(record.to_json()) for record in records.get_finished_logs()],
        "metrics": json.loads(reader.get_metrics_data().to_json()),
    }, default=str))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
