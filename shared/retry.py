"""Retry policy for failed jobs: exponential backoff with deterministic jitter.

Durable Python's `RetryOptions` has only a first interval and an attempt count, and the
orchestration cannot see how many attempts a `call_activity_with_retry` took. The orchestrator
therefore retries with durable timers itself; this module computes *when*, deterministically
(the jitter is a hash of a seed, never `random`), so replays always agree.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional

from shared.workbook.models import API_SOURCE_TYPES


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a job is retried. Field names follow `df.RetryOptions`."""

    max_number_of_attempts: int
    """Attempts in all, the first one included."""
    first_retry_interval_in_milliseconds: int
    """Wait before the second attempt."""
    backoff_coefficient: float = 2.0
    """Each further wait is this many times the previous one."""
    max_retry_interval_in_milliseconds: int = 60_000
    """Upper bound of one wait."""
    jitter: float = 0.2
    """Each wait varies by up to this fraction, up or down, so retries of many jobs spread out."""

    def __post_init__(self) -> None:
        if self.max_number_of_attempts < 1:
            raise ValueError(f"max_number_of_attempts must be >= 1, got {self.max_number_of_attempts}")
        if self.first_retry_interval_in_milliseconds < 0:
            raise ValueError("first_retry_interval_in_milliseconds must be >= 0")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")

    def delay_seconds(self, failed_attempt: int, seed: str) -> float:
        """Seconds to wait after attempt number `failed_attempt` (1-based) failed.

        Args:
            failed_attempt: The attempt that just failed.
            seed: Anything stable for this job in this run (e.g. instance id + job index).
        """
        base = min(
            self.first_retry_interval_in_milliseconds * self.backoff_coefficient ** (failed_attempt - 1),
            self.max_retry_interval_in_milliseconds,
        )
        digest = hashlib.sha256(f"{seed}:{failed_attempt}".encode()).digest()
        unit = int.from_bytes(digest[:8], "big") / 2**64  # [0, 1)
        return round(base * (1 + self.jitter * (2 * unit - 1)) / 1000, 3)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (it travels through the orchestration input)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RetryPolicy":
        """Inverse of `to_dict`."""
        return cls(**dict(data))


DEFAULT_POLICIES: dict[str, RetryPolicy] = {
    "database": RetryPolicy(max_number_of_attempts=3, first_retry_interval_in_milliseconds=2_000),
    "api": RetryPolicy(max_number_of_attempts=5, first_retry_interval_in_milliseconds=1_000),
}


def policy_kind(source_type: str) -> str:
    """`api` for REST sources, `database` for the rest."""
    return "api" if source_type in API_SOURCE_TYPES else "database"


def policies_from_env(environ: Optional[Mapping[str, str]] = None) -> dict[str, RetryPolicy]:
    """Default policies overridden by app settings (parsed by `shared.settings`).

    `RETRY_DATABASE_MAX_ATTEMPTS`, `RETRY_DATABASE_FIRST_INTERVAL_MS`, `RETRY_API_MAX_ATTEMPTS`,
    `RETRY_API_FIRST_INTERVAL_MS`, and `RETRY_BACKOFF_COEFFICIENT`, `RETRY_MAX_INTERVAL_MS`,
    `RETRY_JITTER` for both.
    """
    from shared.settings import settings

    return dict(settings(environ).retry)
