"""Where a job's failure is counted, and what the run does when the lake or its own storage fails.

- `record_outcome`: a job's result updates the breaker its error class points at (`shared.errors`):
  success -> the source's breaker records a success; `source` -> the source's breaker records a
  failure; `lake` -> the lake's breaker records a failure (never the source's); `permanent` ->
  no breaker at all (the job is wrong, not a system: neither a failure nor a success, since a
  permanent error may be found before the source was contacted).
- `LakeGate`: the lake has a breaker of its own in the same store, keyed `lake:<root>`. While it is
  clean, jobs run without any extra call. Once a lake failure was recorded, each job first runs
  the quick lake pre-flight (`shared.lake.check_lake`, seconds); when it fails the job
  fails at once as `failed` (class `lake`) without touching its source, and the failure counts
  on the lake's breaker; once that breaker is OPEN, jobs fail without even the pre-flight (and
  are not retried) until its timeout lets a trial through. A job that succeeds clears it.
- `storage_failures_as_outcomes`: the service's own storage (run store, breaker table) failing
  inside a job step makes the step answer a `failed` outcome of class `storage` (not retried:
  the job may well have landed) instead of raising; `export_run_metrics` then writes the
  metrics to the local metrics folder (`local_publisher`).
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, TypeVar

from shared.breakers import CLOSED, CircuitBreaker
from shared.contract import crashed_outcome
from shared.errors import LAKE, SOURCE, STORAGE, lake_label
from shared.redaction import clip, error_line, redact
from shared.results import SUCCESS, JobResult

if TYPE_CHECKING:
    from shared.publish import LocalPublisher
    from shared.steps import Services

log = logging.getLogger(__name__)

LAKE_KEY_PREFIX = "lake:"
_F = TypeVar("_F", bound=Callable[..., dict[str, Any]])


def lake_breaker_key(root: str) -> str:
    """The lake's entry in the breaker store (any text is a valid key there)."""
    return f"{LAKE_KEY_PREFIX}{root}"[:250]


@dataclass
class Refusal:
    """Why a job may not run now because of the lake."""

    error: str
    retryable: bool

    def extra(self) -> dict[str, Any]:
        """What goes into `JobResult.extra`."""
        return {"error_class": LAKE, "retryable": self.retryable}


class LakeGate:
    """The lake's breaker: keeps the jobs of a run off a lake that just failed (see the module doc)."""

    def __init__(self, breaker: CircuitBreaker, root: Optional[str] = None, environ: Mapping[str, str] = os.environ) -> None:
        from shared.lake import bucket_url

        self.breaker = breaker
        self.environ = environ
        self.root = bucket_url(root or environ.get("DESTINATION__FILESYSTEM__BUCKET_URL"))
        self.key = lake_breaker_key(self.root)
        self.clean = True
        self.refused = False

    def admit(self) -> Optional[Refusal]:
        """None when the job may run; otherwise why not (the lake failed and still fails)."""
        from shared.lake import PreflightError, check_lake

        state = self.breaker.store.get(self.key)
        self.clean = state.state == CLOSED and state.consecutive_failures == 0
        if self.clean:
            return None
        decision = self.breaker.check(self.key)
        self.refused = True  # counted here (or not at all while open), not again by `record`
        if not decision.allowed:
            return Refusal(clip(redact(f"{lake_label(self.root, self.environ)}: not attempted, {decision.reason}")), False)
        try:
            check_lake(self.root, self.environ)
        except PreflightError as exc:
            self.breaker.record_failure(self.key, str(exc))
            return Refusal(str(exc), True)
        self.refused = False
        return None

    def record(self, result: JobResult) -> None:
        """Count a lake failure; a success clears a lake breaker that holds failures."""
        if self.refused:
            return
        if result.extra.get("error_class") == LAKE:
            self.breaker.record_failure(self.key, result.error or "lake failure")
        elif result.status == SUCCESS and not self.clean:
            self.breaker.record_success(self.key)


def record_outcome(breaker: CircuitBreaker, gate: LakeGate, source_name: str, result: JobResult) -> None:
    """Update the breaker the result's error class points at (see the module doc)."""
    error_class = result.extra.get("error_class", SOURCE)
    if result.status == SUCCESS:
        breaker.record_success(source_name)
    elif error_class == SOURCE:
        breaker.record_failure(source_name, result.error or "failed")
    gate.record(result)


def is_storage_error(exc: BaseException) -> bool:
    """Whether an exception raised outside a job's own run comes from the service's storage."""
    from shared.storage import StorageUnreachableError

    if isinstance(exc, StorageUnreachableError):
        return True
    module = type(exc).__module__ or ""
    if module.startswith("shared.breakers.table_store"):
        return True
    try:
        from azure.core.exceptions import AzureError
    except ImportError:  # pragma: no cover - azure-core is a dependency
        return False
    return isinstance(exc, AzureError)


def storage_message(exc: BaseException, services: "Services", what: str) -> str:
    """One line naming the storage endpoint that failed (a breaker-table error already names it)."""
    from shared.storage import storage_error

    if (type(exc).__module__ or "").startswith("shared.breakers.table_store"):
        return error_line(exc, "storage: ") + f" ({what})"
    host = services.account.blob_host if services.account else "?"
    return str(storage_error(exc, host, what))


def storage_failures_as_outcomes(step: _F) -> _F:
    """Decorate a job step (`index`, `attempt`?, `slice_no`?, `services` arguments): a failure of
    the service's storage becomes a `failed` outcome of class `storage` instead of an exception
    (which would be retried and print a traceback). It carries `crashed`: no result was stored,
    so the orchestration hands it to `export_run_metrics`."""
    signature = inspect.signature(step)

    @functools.wraps(step)
    def wrapper(*args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return step(*args, **kwargs)
        except Exception as exc:
            if not is_storage_error(exc):
                raise
            bound = signature.bind(*args, **kwargs).arguments
            message = storage_message(exc, bound["services"], f"{step.__name__} #{bound['index']}")
            log.error("%s", message)
            outcome = crashed_outcome(bound["index"], bound.get("attempt", 1), clip(message), retryable=False)
            outcome["error_class"] = STORAGE
            if "slice_no" in bound:
                outcome.update(slice=bound["slice_no"], seconds=0.0, schema_version=None)
            return outcome

    return wrapper  # type: ignore[return-value]


def local_publisher(services: "Services") -> "LocalPublisher":
    """Local metrics, audit and failure-event files: where a run's outputs go when its storage is dead."""
    from shared.publish import LocalPublisher

    settings = services.settings
    return LocalPublisher(settings.metrics_dir.resolve(), settings.audit_dir.resolve(),
                          settings.state_dir.resolve() / "failure_events.jsonl")
