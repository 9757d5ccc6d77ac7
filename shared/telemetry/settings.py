"""The app settings that choose the OpenTelemetry exporters (plain environment reads).

The names are Microsoft's and OpenTelemetry's own, so the Functions host, the Python worker and
the exporters read the same values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

OTLP_HTTP = "http/protobuf"
TELEMETRY_SETTINGS = (
    "APPLICATIONINSIGHTS_CONNECTION_STRING", "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY", "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_PROTOCOL", "PYTHON_ENABLE_OPENTELEMETRY", "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "OTEL_SDK_DISABLED",
)
"""Microsoft's and OpenTelemetry's own settings (read by the worker, the distro and the exporters;
this module reads some of them): in `local.settings.json.example` and the README's telemetry
section, not in the app settings model (`shared.settings`)."""
_TRUE = ("true", "1", "yes", "on")


@dataclass(frozen=True)
class TelemetrySettings:
    """Which exporters this process sends spans, metrics and logs to."""

    connection_string: str = ""
    """Application Insights (`APPLICATIONINSIGHTS_CONNECTION_STRING`): Microsoft's Azure Monitor distro."""
    otlp_endpoint: str = ""
    """An OTLP collector (`OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. `http://collector:4318`; headers from
    `OTEL_EXPORTER_OTLP_HEADERS`, read by the exporters themselves)."""
    otlp_protocol: str = OTLP_HTTP
    """`OTEL_EXPORTER_OTLP_PROTOCOL`: only `http/protobuf` is installed."""
    disabled: bool = False
    """`OTEL_SDK_DISABLED=true` turns every exporter off."""

    @property
    def enabled(self) -> bool:
        """Whether any exporter is configured."""
        return not self.disabled and bool(self.connection_string or self.otlp_endpoint)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "TelemetrySettings":
        """Read the settings (blank values count as unset)."""
        return cls(
            connection_string=(environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING") or "").strip(),
            otlp_endpoint=(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "").strip(),
            otlp_protocol=(environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or OTLP_HTTP).strip().lower(),
            disabled=(environ.get("OTEL_SDK_DISABLED") or "").strip().lower() in _TRUE,
        )
