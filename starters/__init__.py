"""Starters: the timer, blob, HTTP and queue triggers that begin (or report on) an ingestion run,
the breaker reset route and the run report route (registered on the same blueprint by importing
`starters.breakers` and `starters.report`).

May import: the Functions SDKs, `orchestrations` (its names) and `shared`; never `ingest`.
"""

from starters import breakers as _breakers  # noqa: F401  registers reset_breaker_http on bp
from starters import report as _report  # noqa: F401  registers get_ingestion_report on bp
from starters.functions import bp

__all__ = ["bp"]
