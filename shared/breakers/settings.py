"""How sensitive the circuit breakers are, read from the environment."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Mapping

ENV_FAILURE_THRESHOLD = "CIRCUIT_BREAKER_FAILURE_THRESHOLD"
ENV_TIMEOUT_SECONDS = "CIRCUIT_BREAKER_TIMEOUT_SECONDS"
ENV_HALF_OPEN_SUCCESSES = "CIRCUIT_BREAKER_HALF_OPEN_SUCCESSES"


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
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "BreakerSettings":
        """Settings from `CIRCUIT_BREAKER_*` variables; unset or blank ones keep the default.

        Args:
            environ: Where to read the variables (the process environment by default).

        Returns:
            The settings.

        Raises:
            ValueError: A variable is set to something unusable; the message names it.
        """
        defaults = cls()
        return cls(
            failure_threshold=_env_whole(environ, ENV_FAILURE_THRESHOLD, defaults.failure_threshold),
            open_timeout_seconds=_env_seconds(environ, ENV_TIMEOUT_SECONDS, defaults.open_timeout_seconds),
            half_open_successes=_env_whole(environ, ENV_HALF_OPEN_SUCCESSES, defaults.half_open_successes),
        )


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


def _env_whole(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = (environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name}: {raw!r} is not a whole number >= 1")
    return value


def _env_seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = (environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not _is_non_negative_finite(value):
        raise ValueError(f"{name}: {raw!r} is not a number of seconds >= 0")
    return value
