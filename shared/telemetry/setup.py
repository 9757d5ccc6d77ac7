"""Set up OpenTelemetry once per process, the way Microsoft documents it for Python Functions.

- `APPLICATIONINSIGHTS_CONNECTION_STRING`: `configure_azure_monitor()` (Microsoft's distro).
- `OTEL_EXPORTER_OTLP_ENDPOINT`: OTLP/HTTP exporters for traces, metrics and logs (with the
  distro's providers when both are set, so both endpoints get everything).
- Neither: nothing is imported or installed (the spans of `shared.telemetry.spans` stay the
  OpenTelemetry API's no-ops).
- Providers already installed before the app was imported (the Python worker does that when
  `PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true`, a test harness too): they are kept, never
  replaced; an OTLP endpoint is added to them.

The distro's HTTP and PostgreSQL auto-instrumentations (requests, urllib, urllib3, httpx,
psycopg2) are off unless `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS` says otherwise: they would
record every request URL, and an API source may carry its key in the query string.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Mapping, Optional

from shared.logs import install_job_context
from shared.telemetry.settings import OTLP_HTTP, TelemetrySettings

log = logging.getLogger(__name__)

OFF, HOST, AZURE_MONITOR, OTLP = "off", "host", "azure_monitor", "otlp"
URL_INSTRUMENTATIONS = ("requests", "urllib", "urllib3", "httpx", "psycopg2")
"""Distro instrumentations turned off by default (see the module docstring)."""
DEFAULT_SERVICE_NAME = "metadata-driven-ingestion"

_lock = threading.Lock()
_configured: Optional[str] = None


def configure_telemetry(environ: Mapping[str, str] = os.environ) -> str:
    """Install the exporters the settings name, once per process; later calls change nothing.

    Also installs the log-record hook that puts a job's fields on its log records, whatever
    the exporters (the CLI's log files use it too).

    Returns:
        What is set up: `off`, `host` (providers found installed), `azure_monitor`, `otlp`, or
        `azure_monitor+otlp`.
    """
    global _configured
    install_job_context()
    with _lock:
        if _configured is None:
            _configured = _configure(TelemetrySettings.from_env(environ), environ)
            if _configured != OFF:
                log.info("OpenTelemetry: %s", _configured)
        return _configured


def _configure(settings: TelemetrySettings, environ: Mapping[str, str]) -> str:
    if not settings.enabled:
        return OFF
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    if settings.otlp_endpoint and settings.otlp_protocol != OTLP_HTTP:
        log.warning("OTEL_EXPORTER_OTLP_PROTOCOL=%s is not installed; exporting with %s",
                    settings.otlp_protocol[:40], OTLP_HTTP)
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        if settings.otlp_endpoint:
            _add_otlp_to_installed()
        return HOST
    spans, records, readers = _otlp_pipeline() if settings.otlp_endpoint else ([], [], [])
    if settings.connection_string:
        from azure.monitor.opentelemetry import configure_azure_monitor

        configure_azure_monitor(
            connection_string=settings.connection_string, span_processors=spans, log_record_processors=records,
            metric_readers=readers, **_instrumentation_options(environ),
        )
        return AZURE_MONITOR + ("+" + OTLP if settings.otlp_endpoint else "")
    _install_providers(spans, records, readers, environ)
    return OTLP


def _otlp_pipeline() -> tuple[list[Any], list[Any], list[Any]]:
    """Batching OTLP/HTTP span and log processors and a periodic metric reader (the exporters
    read `OTEL_EXPORTER_OTLP_*` themselves)."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return ([BatchSpanProcessor(OTLPSpanExporter())], [BatchLogRecordProcessor(OTLPLogExporter())],
            [PeriodicExportingMetricReader(OTLPMetricExporter())])


def _install_providers(spans: list[Any], records: list[Any], readers: list[Any], environ: Mapping[str, str]) -> None:
    """Global tracer, meter and logger providers, and a log handler on the root logger."""
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    resource = Resource.create(_service_name(environ))
    tracer_provider = TracerProvider(resource=resource)
    for processor in spans:
        tracer_provider.add_span_processor(processor)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    logger_provider = LoggerProvider(resource=resource)
    for record_processor in records:
        logger_provider.add_log_record_processor(record_processor)
    _logs.set_logger_provider(logger_provider)
    logging.getLogger().addHandler(LoggingHandler(logger_provider=logger_provider))


def _add_otlp_to_installed() -> None:
    """Send the installed providers' spans and logs to the OTLP endpoint too (an installed meter
    provider takes no new reader: metrics stay with its exporters)."""
    from opentelemetry import _logs, trace

    spans, records, _ = _otlp_pipeline()
    tracer_provider: Any = trace.get_tracer_provider()
    for processor in spans:
        tracer_provider.add_span_processor(processor)
    logger_provider: Any = _logs.get_logger_provider()
    if hasattr(logger_provider, "add_log_record_processor"):
        for record_processor in records:
            logger_provider.add_log_record_processor(record_processor)


def _instrumentation_options(environ: Mapping[str, str]) -> dict[str, Any]:
    if (environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS") or "").strip():
        return {}  # the distro reads the operator's list itself
    return {"instrumentation_options": {name: {"enabled": False} for name in URL_INSTRUMENTATIONS}}


def _service_name(environ: Mapping[str, str]) -> dict[str, str]:
    """`service.name` for OTLP: the app's name in Azure, unless the OpenTelemetry settings name one."""
    if environ.get("OTEL_SERVICE_NAME") or "service.name=" in (environ.get("OTEL_RESOURCE_ATTRIBUTES") or ""):
        return {}
    return {"service.name": environ.get("WEBSITE_SITE_NAME") or DEFAULT_SERVICE_NAME}
