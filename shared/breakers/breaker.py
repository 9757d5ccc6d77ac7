"""The circuit breaker: decides whether a source's jobs may run, and learns from their outcomes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Optional

from shared.redaction import redact

from .settings import BreakerSettings
from .state import CLOSED, HALF_OPEN, OPEN, BreakerState, as_utc, from_iso, to_iso, utc_now
from .store import BreakerStore


@dataclass(frozen=True)
class BreakerDecision:
    """Whether one source's jobs may run now, and why."""

    allowed: bool
    state: str
    """The circuit's state after the check (`CLOSED`, `OPEN` or `HALF_OPEN`)."""
    reason: str
    """One line for logs and the skipped job's `error`."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (an activity output)."""
        return asdict(self)


class CircuitBreaker:
    """Per-source circuit breaker over a shared `BreakerStore`.

    CLOSED -> OPEN after `failure_threshold` consecutive failures; OPEN -> HALF_OPEN once
    `open_timeout_seconds` have passed (noticed by `check` or by the next recorded outcome);
    HALF_OPEN -> CLOSED after `half_open_successes` consecutive successes; any failure in
    HALF_OPEN re-opens the circuit with a fresh `opened_at`.
    """

    def __init__(
        self,
        store: BreakerStore,
        settings: Optional[BreakerSettings] = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """Create a breaker.

        Args:
            store: Where the states live.
            settings: Thresholds; `BreakerSettings()` defaults when None.
            clock: Returns "now" (aware, or naive UTC); injected so tests control time.
        """
        self.store = store
        self.settings = settings or BreakerSettings()
        self.clock = clock

    def check(self, source_name: str) -> BreakerDecision:
        """Whether `source_name`'s jobs may run now.

        An OPEN circuit whose timeout has passed is moved to HALF_OPEN (stored) and allowed,
        so the next job is the trial. A HALF_OPEN circuit allows every job: each outcome is
        a trial, and the first failure re-opens it.

        Args:
            source_name: The source's key.

        Returns:
            The decision.
        """
        state = self.store.get(source_name)
        if state.state == OPEN:
            now = self.clock()
            if self._timeout_passed(state, now):
                state = self.store.update(source_name, lambda s: _advance(s, now, self.settings))
        return self._decide(state)

    def check_many(self, source_names: Iterable[str]) -> dict[str, BreakerDecision]:
        """`check` for each distinct source name, in first-seen order.

        Args:
            source_names: Source keys; duplicates are checked once.

        Returns:
            The decision per source name.
        """
        return {name: self.check(name) for name in dict.fromkeys(source_names)}

    def record_success(self, source_name: str) -> BreakerState:
        """Record that a job of `source_name` succeeded.

        Args:
            source_name: The source's key.

        Returns:
            The stored state afterwards.
        """
        now = self.clock()  # read once, outside the mutation, which must stay pure
        return self.store.update(source_name, lambda s: _on_success(s, now, self.settings))

    def record_failure(self, source_name: str, error: str) -> BreakerState:
        """Record that a job of `source_name` failed.

        Args:
            source_name: The source's key.
            error: One-line error without secrets; stored truncated as `last_error`.

        Returns:
            The stored state afterwards.
        """
        now = self.clock()
        # Redacted before the state truncates it: a secret cut in half would no longer match.
        error = redact(error)
        return self.store.update(source_name, lambda s: _on_failure(s, now, error, self.settings))

    def _timeout_passed(self, state: BreakerState, now: datetime) -> bool:
        return _timeout_passed(state, now, self.settings)

    def _decide(self, state: BreakerState) -> BreakerDecision:
        if state.state == CLOSED:
            return BreakerDecision(True, CLOSED, "circuit closed")
        if state.state == HALF_OPEN:
            return BreakerDecision(
                True,
                HALF_OPEN,
                f"circuit half-open: trial run ({state.half_open_successes} of "
                f"{self.settings.half_open_successes} successes needed to close)",
            )
        retry_at = _retry_at(state, self.settings)
        return BreakerDecision(
            False,
            OPEN,
            f"circuit open since {state.opened_at} after {state.consecutive_failures} consecutive "
            f"failure(s); next trial after {retry_at}; last error: {state.last_error}",
        )


# The transitions below are pure functions of (state, now, ...): they are the `mutate`
# arguments of `BreakerStore.update`, which an optimistic store may call more than once.


def _timeout_passed(state: BreakerState, now: datetime, settings: BreakerSettings) -> bool:
    if state.opened_at is None:
        return True  # an OPEN state without a time cannot be waited out; let a trial decide
    return as_utc(now) >= from_iso(state.opened_at) + timedelta(
        seconds=settings.open_timeout_seconds
    )


def _retry_at(state: BreakerState, settings: BreakerSettings) -> Optional[str]:
    if state.opened_at is None:
        return None
    return to_iso(from_iso(state.opened_at) + timedelta(seconds=settings.open_timeout_seconds))


def _advance(state: BreakerState, now: datetime, settings: BreakerSettings) -> BreakerState:
    """Apply the passage of time: an OPEN circuit past its timeout becomes HALF_OPEN."""
    if state.state == OPEN and _timeout_passed(state, now, settings):
        return replace(state, state=HALF_OPEN, half_open_successes=0, updated_at=to_iso(now))
    return state


def _on_success(state: BreakerState, now: datetime, settings: BreakerSettings) -> BreakerState:
    state = _advance(state, now, settings)
    counted = replace(state, total_successes=state.total_successes + 1, updated_at=to_iso(now))
    if state.state == CLOSED:
        return replace(counted, consecutive_failures=0)
    if state.state == HALF_OPEN:
        successes = state.half_open_successes + 1
        if successes >= settings.half_open_successes:
            return replace(
                counted, state=CLOSED, consecutive_failures=0, half_open_successes=0, opened_at=None
            )
        return replace(counted, half_open_successes=successes)
    # OPEN: a job that started before the circuit opened is no trial; the timeout decides.
    return counted


def _on_failure(
    state: BreakerState, now: datetime, error: str, settings: BreakerSettings
) -> BreakerState:
    state = _advance(state, now, settings)
    failures = state.consecutive_failures + 1
    counted = replace(
        state,
        consecutive_failures=failures,
        total_failures=state.total_failures + 1,
        last_error=error,
        updated_at=to_iso(now),
    )
    if state.state == HALF_OPEN or (state.state == CLOSED and failures >= settings.failure_threshold):
        return replace(counted, state=OPEN, half_open_successes=0, opened_at=to_iso(now))
    # CLOSED below the threshold, or already OPEN: a late failure must not extend the timeout.
    return counted
