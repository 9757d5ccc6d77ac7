"""Per-source circuit breakers: stop hammering a source that keeps failing.

Typical use in the orchestration: `check_many` before fanning out (skip jobs whose circuit
is open, with status `skipped_circuit_open`), then `record_success` / `record_failure`
for each job that ran. States live in a shared `BreakerStore` so every worker sees them.

May import: the Azure Tables SDK and, of the library, `shared.settings`, `shared.storage`,
`shared.secrets` and `shared.redaction`.
"""

from typing import TYPE_CHECKING, Any

from .breaker import BreakerDecision, CircuitBreaker
from .local_store import LocalBreakerStore
from .settings import BreakerSettings
from .state import CLOSED, HALF_OPEN, MAX_ERROR_LENGTH, OPEN, STATES, BreakerState
from .store import BreakerStore, Mutation

if TYPE_CHECKING:
    from .table_store import (
        TableBreakerStore,
        TableStoreConflictError,
        TableStoreError,
        TableStoreUnavailableError,
    )

_TABLE_STORE_NAMES = frozenset(
    {"TableBreakerStore", "TableStoreConflictError", "TableStoreError", "TableStoreUnavailableError"}
)

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
    "TableBreakerStore",
    "TableStoreConflictError",
    "TableStoreError",
    "TableStoreUnavailableError",
]


def __getattr__(name: str) -> Any:
    # The Table store is imported on first use: azure-data-tables adds ~0.1 s to every CLI
    # start, and local runs only need the SQLite store.
    if name in _TABLE_STORE_NAMES:
        from . import table_store

        return getattr(table_store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
