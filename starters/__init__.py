"""Starters: the timer, blob, HTTP and queue triggers that begin (or report on) an ingestion run,
and the breaker reset route (registered on the same blueprint by importing `starters.breakers`)."""

from starters import breakers as _breakers  # noqa: F401  registers reset_breaker_http on bp
from starters.functions import bp

__all__ = ["bp"]
