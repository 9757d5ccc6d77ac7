"""Per-source circuit breakers: stop hammering a source that keeps failing.

Typical use in the orchestration: `check_many` before fanning out (skip jobs whose circuit
is open, with status `skipped_circuit_open`), then `record_success` / `record_failure`
for each job that ran. States live in a shared `BreakerStore` so every worker sees them.
"""

from .breaker import BreakerDecision, CircuitBreaker
from .local_store import LocalBreakerStore
from .settings import BreakerSettings
from .state import CLOSED, HALF_OPEN, MAX_ERROR_LENGTH, OPEN, STATES, BreakerState
from .store import BreakerStore, Mutation

__all__ = [
    "BreakerDecision",
    "BreakerSettings",
    "BreakerState",
    "BreakerStore",
    "CLOSED",
    "CircuitBreaker",
    "HALF_OPEN",
    "LocalBreakerStore",
    "MAX_ERROR_LENGTH",
    "Mutation",
    "OPEN",
    "STATES",
]
