"""OpenTelemetry for the service: exporters chosen by the app settings, spans of activities and
job attempts, job metrics, and the job's fields on its log records.

`configure_telemetry()` runs once per process when `function_app` is imported (the Functions
worker, the CLI and the tests all import it); see `setup` for what each setting installs.

May import: OpenTelemetry and the Azure Monitor distro (only when an exporter is configured) and,
of the library, `shared.logs`, `shared.errors`, `shared.redaction`, `shared.results`,
`shared.run_store` and `shared.workbook`.
"""

from shared.telemetry.setup import configure_telemetry
from shared.telemetry.spans import (
    note_job_bytes, note_job_failure, takes_invocation_context, traced_activity, traced_job,
)

__all__ = ["configure_telemetry", "note_job_bytes", "note_job_failure", "takes_invocation_context",
           "traced_activity", "traced_job"]
