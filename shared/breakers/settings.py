"""How sensitive the circuit breakers are (the variables are parsed by `shared.settings`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional


@dataclass(frozen=True)
class BreakerSettings:
    """Thresholds shared by every source's circuit."""

    failure_threshold: int = 5
    """Consecutive failures that open a closed circuit."""
    open_timeout_seconds: float = 30.0
    """How long an open circuit refuses work before it lets a trial run through."""
    half_open_successes: int = 2
    """Consecutive successful trials that close a half-open circuit."""

    def __post_init__(self) -> None:
        _require_whole(self.failure_threshold, "failure_threshold")
        _require_whole(self.half_open_successes, "half_open_successes")
        if not _is_non_negative_finite(self.open_timeout_seconds):
            raise ValueError(
                f"open_timeout_seconds: {self.open_timeout_seconds!r} is not a number of seconds >= 0"
            )

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "BreakerSettings":
        """Settings from `CIRCUIT_BREAKER_*` variables (parsed by `shared.settings`); unset or blank
        ones keep the default.

        Args:
            environ: Where to read the variables (the process environment by default).

        Returns:
            The settings.

        Raises:
            ValueError: A variable is set to something unusable; the message names it.
        """
        from shared.settings import settings

        return settings(environ).breaker


def _require_whole(value: object, name: str) -> None:
    # bool is an int subclass; True as a threshold is a bug, not a 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: {value!r} is not a whole number >= 1")


def _is_non_negative_finite(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )
