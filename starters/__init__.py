"""Starters: the timer, blob, HTTP and queue triggers that begin (or report on) an ingestion run."""

from starters.functions import bp

__all__ = ["bp"]
