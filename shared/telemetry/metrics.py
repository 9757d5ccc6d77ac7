"""Job metrics: rows and duration of every job attempt, with the job span's attributes.

Instruments come from the global meter (the API's proxy until a provider is installed, a no-op
when none ever is), so they can be made at import.
"""

from __future__ import annotations

from typing import Mapping, Union

from opentelemetry import metrics

AttributeValue = Union[str, int, float, bool]

_meter = metrics.get_meter("ingestion")
ROWS = _meter.create_counter(
    "ingestion.job.rows", unit="{row}", description="Rows a job attempt loaded into the lake")
DURATION = _meter.create_histogram(
    "ingestion.job.duration", unit="s", description="Wall-clock time of a job attempt")


def record_job(rows: int, seconds: float, attributes: Mapping[str, AttributeValue]) -> None:
    """Count one job attempt's rows and record its duration."""
    ROWS.add(rows, dict(attributes))
    DURATION.record(seconds, dict(attributes))
