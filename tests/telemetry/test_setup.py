"""What importing `function_app` sets up, per app setting, each in a fresh interpreter.

- No exporter configured: nothing of the SDK or the distro is imported, no provider installed,
  nothing printed.
- `OTEL_EXPORTER_OTLP_ENDPOINT`: spans, logs and metrics reach a real (local) OTLP/HTTP receiver,
  decoded with the OTLP protobuf classes.
- `APPLICATIONINSIGHTS_CONNECTION_STRING`: Microsoft's distro sends to the ingestion endpoint the
  connection string names (a local one), with the URL-recording instrumentations off.

Each probe runs an activity through `traced_activity` that logs a line and then fails with a
registered secret in its message.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import ROOT

SECRET = "pr0be-Secret-Value-42"
DROPPED = ("APPLICATIONINSIGHTS_", "OTEL_", "PYTHON_APPLICATIONINSIGHTS_", "PYTHON_ENABLE_OPENTELEMETRY",
           "FUNCTIONS_", "WEBSITE_", "AzureWebJobsStorage", "INGESTION_STORAGE")
PROBE = f"""
import json, logging, sys
sys.path.insert(0, {str(ROOT)!r})
import function_app
from opentelemetry import _logs, metrics, trace
from shared.redaction import register_secret
from shared.telemetry import setup, traced_activity
from shared.telemetry.metrics import record_job

register_secret({SECRET!r})

def activity(payload):
    logging.getLogger("probe").warning("inside the activity")
    raise RuntimeError("cannot connect with {SECRET}")

try:
    traced_activity("probe_activity", activity, {{"run_id": "run-1", "attempt": 2}})
except RuntimeError:
    pass
record_job(5, 0.5, {{"job_id": "src.table", "status": "success"}})
for provider in (trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider()):
    if hasattr(provider, "force_flush"):
        provider.force_flush()
report = {{"configured": setup._configured,
          "sdk_modules": sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk", "azure.monitor"))),
          "tracer_provider": type(trace.get_tracer_provider()).__name__}}
try:
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    report["requests_instrumented"] = RequestsInstrumentor().is_instrumented_by_opentelemetry
except ImportError:
    pass
print(json.dumps(report))
"""


class Receiver:
    """A local HTTP endpoint that answers 200 to every POST and keeps (path, body)."""

    def __init__(self, answer: bytes = b"") -> None:
        received: list[tuple[str, bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip" or body[:2] == b"\x1f\x8b":
                    body = gzip.decompress(body)
                received.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self, path: str) -> list[bytes]:
        return [body for p, body in self.received if p.startswith(path)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def probe(tmp_path: Path, settings: dict[str, str]) -> tuple[dict[str, Any], str]:
    """Run the probe with only `settings` for telemetry; its report and its stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED)}
    env.update({"PYTHONDONTWRITEBYTECODE": "1", "RUNTIME__DLTHUB_TELEMETRY": "false", "TMPDIR": str(tmp_path),
                "PYTHONWARNINGS": "default", **settings})
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_without_an_exporter_nothing_is_installed_or_printed(tmp_path: Path) -> None:
    report, stderr = probe(tmp_path, {})
    assert report["configured"] == "off"
    assert report["sdk_modules"] == [] and report["tracer_provider"] == "ProxyTracerProvider"
    assert stderr.strip() == "inside the activity"  # the probe's own line (Python's last-resort handler), no more


def test_otlp_endpoint_gets_spans_logs_and_metrics(tmp_path: Path, receiver: Receiver) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    report, stderr = probe(tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    assert report["configured"] == "otlp" and "azure.monitor.opentelemetry" not in report["sdk_modules"]
    assert "Traceback" not in stderr

    def value(attribute: Any) -> Any:
        return getattr(attribute.value, attribute.value.WhichOneof("value"))

    traces = [ExportTraceServiceRequest.FromString(b) for b in receiver.bodies("/v1/traces")]
    resources = [r for t in traces for r in t.resource_spans]
    spans = [s for r in resources for scope in r.scope_spans for s in scope.spans]
    [span] = [s for s in spans if s.name == "probe_activity"]
    attributes = {a.key: value(a) for a in span.attributes}
    assert attributes["ingestion.run_id"] == "run-1" and attributes["attempt"] == 2
    assert span.status.code == span.status.STATUS_CODE_ERROR
    [event] = span.events
    message = {a.key: value(a) for a in event.attributes}["exception.message"]
    assert event.name == "exception" and message == "cannot connect with ***"
    service = {a.key: value(a) for a in resources[0].resource.attributes}["service.name"]
    assert service == "metadata-driven-ingestion"

    logs = [ExportLogsServiceRequest.FromString(b) for b in receiver.bodies("/v1/logs")]
    records = [r for req in logs for rl in req.resource_logs for scope in rl.scope_logs for r in scope.log_records]
    [record] = [r for r in records if r.body.string_value == "inside the activity"]
    dims = {a.key: value(a) for a in record.attributes}
    assert dims["ingestion.run_id"] == "run-1" and dims["attempt"] == 2
    assert record.span_id == span.span_id and record.trace_id == span.trace_id

    metrics = [ExportMetricsServiceRequest.FromString(b) for b in receiver.bodies("/v1/metrics")]
    names = {m.name for req in metrics for rm in req.resource_metrics for scope in rm.scope_metrics for m in scope.metrics}
    assert {"ingestion.job.rows", "ingestion.job.duration"} <= names
    assert all(SECRET.encode() not in body for _, body in receiver.received)


def test_connection_string_configures_the_azure_monitor_distro(tmp_path: Path) -> None:
    endpoint = Receiver(answer=json.dumps({"itemsReceived": 0, "itemsAccepted": 0, "errors": []}).encode())
    try:
        report, stderr = probe(tmp_path, {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
                                                     f"IngestionEndpoint={endpoint.url}/;LiveEndpoint={endpoint.url}/",
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
            # The distro's default sampler (5 traces/s) starts with no budget: it would drop the
            # probe's only span.
            "OTEL_TRACES_SAMPLER": "always_on",
        })
    finally:
        endpoint.server.shutdown()
    assert report["configured"] == "azure_monitor" and "azure.monitor.opentelemetry" in report["sdk_modules"]
    assert report["requests_instrumented"] is False
    tracked = b"\n".join(endpoint.bodies("/v2.1/track"))
    assert b"probe_activity" in tracked and b"inside the activity" in tracked and b"ingestion.job.rows" in tracked
    assert b"cannot connect with ***" in tracked
    assert all(SECRET.encode() not in body for _, body in endpoint.received)
