"""What a circuit remembers about one source, and the timestamps it is made of."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from typing import Any, Optional

from shared.redaction import MAX_ERROR_CHARS, clip

CLOSED = "CLOSED"
OPEN = "OPEN"
HALF_OPEN = "HALF_OPEN"
STATES: tuple[str, ...] = (CLOSED, OPEN, HALF_OPEN)

MAX_ERROR_LENGTH = MAX_ERROR_CHARS
"""Longest `last_error` kept (the project's one error cap); a stack trace would bloat every row and entity."""


@dataclass(frozen=True)
class BreakerState:
    """The circuit of one source. Frozen so that a store's `update` can safely retry a mutation."""

    source_name: str
    state: str = CLOSED
    """One of `STATES`."""
    consecutive_failures: int = 0
    """Failures since the last success; opens a closed circuit at the threshold."""
    half_open_successes: int = 0
    """Successful trials since the circuit went half-open."""
    total_failures: int = 0
    total_successes: int = 0
    opened_at: Optional[str] = None
    """ISO 8601 UTC time the circuit last opened; None unless OPEN or HALF_OPEN."""
    last_error: Optional[str] = None
    """Most recent failure message, at most `MAX_ERROR_LENGTH` characters."""
    updated_at: Optional[str] = None
    """ISO 8601 UTC time of the last change; None for a source never seen."""

    def __post_init__(self) -> None:
        if not self.source_name:
            raise ValueError("BreakerState.source_name must not be empty")
        if self.state not in STATES:
            raise ValueError(f"BreakerState.state: {self.state!r} is not one of {', '.join(STATES)}")
        if self.last_error is not None and len(self.last_error) > MAX_ERROR_LENGTH:
            # Truncate here rather than in each store, so no store can forget to.
            object.__setattr__(self, "last_error", clip(self.last_error))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BreakerState":
        """Rebuild from `to_dict()` output; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC (the breaker's default clock)."""
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def to_iso(moment: datetime) -> str:
    """ISO 8601 text in UTC (`+00:00` offset)."""
    return as_utc(moment).isoformat()


def from_iso(text: str) -> datetime:
    """Inverse of `to_iso`: an aware UTC datetime."""
    return as_utc(datetime.fromisoformat(text))
