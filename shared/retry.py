"""Retry policy for failed jobs: exponential backoff with deterministic jitter.

Durable Python's `RetryOptions` has only a first interval and an attempt count, and the
orchestration cannot see how many attempts a `call_activity_with_retry` took. The orchestrator
therefore retries with durable timers itself; this module computes *when*, deterministically
(the jitter is a hash of a seed, never `random`), so replays always agree.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from typing import Any, Mapping

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


def policies_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, RetryPolicy]:
    """Default policies overridden by app settings.

    `RETRY_DATABASE_MAX_ATTEMPTS`, `RETRY_DATABASE_FIRST_INTERVAL_MS`, `RETRY_API_MAX_ATTEMPTS`,
    `RETRY_API_FIRST_INTERVAL_MS`, and `RETRY_BACKOFF_COEFFICIENT`, `RETRY_MAX_INTERVAL_MS`,
    `RETRY_JITTER` for both.
    """
    policies = {}
    for kind, default in DEFAULT_POLICIES.items():
        values = default.to_dict()
        prefix = f"RETRY_{kind.upper()}_"
        for setting, field, cast in (
            (prefix + "MAX_ATTEMPTS", "max_number_of_attempts", int),
            (prefix + "FIRST_INTERVAL_MS", "first_retry_interval_in_milliseconds", int),
            ("RETRY_BACKOFF_COEFFICIENT", "backoff_coefficient", float),
            ("RETRY_MAX_INTERVAL_MS", "max_retry_interval_in_milliseconds", int),
            ("RETRY_JITTER", "jitter", float),
        ):
            raw = environ.get(setting)
            if raw not in (None, ""):
                try:
                    values[field] = cast(raw)
                except ValueError:
                    raise ValueError(f"{setting}: {raw!r} is not a valid {cast.__name__}") from None
        try:
            policies[kind] = RetryPolicy(**values)
        except ValueError as exc:
            raise ValueError(f"retry settings for {kind}: {exc}") from None
    return policies
