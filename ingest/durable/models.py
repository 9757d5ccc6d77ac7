"""Values the local runtime hands back: an instance's outcome and the runtime's own counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional

PENDING = "Pending"
RUNNING = "Running"
COMPLETED = "Completed"
FAILED = "Failed"
TERMINATED = "Terminated"

ACTIVE_STATUSES = (PENDING, RUNNING)


@dataclass
class OrchestrationResult:
    """Snapshot of one orchestration instance (final once `runtime_status` is terminal)."""

    instance_id: str
    name: str
    runtime_status: str
    """Pending, Running, Completed, Failed or Terminated (the SDK's OrchestrationRuntimeStatus)."""
    output: Any
    """The orchestrator's return value, JSON-decoded (what a status query shows)."""
    custom_status: Any
    """Last non-null value passed to `context.set_custom_status`."""
    error: Optional[str]
    """The orchestrator's exception message when Failed; None otherwise."""
    history: list[dict[str, Any]]
    """History events of the current execution, in the extension's JSON shape."""
    created_time: datetime
    last_updated_time: datetime
    episodes: int
    """How many times the orchestrator function was replayed (all executions)."""
    input: Any = None
    """The orchestration input, JSON-decoded."""
    warnings: list[str] = field(default_factory=list)
    """Patterns that run here but behave differently under the Durable extension."""

    @property
    def succeeded(self) -> bool:
        """True when the instance completed without error."""
        return self.runtime_status == COMPLETED


@dataclass
class RuntimeStats:
    """Where the runtime spent its time (`bench/orchestration_scale.py` prints it)."""

    episodes: int = 0
    """Orchestrator replays run."""
    handler_seconds: float = 0.0
    """Time inside the SDK's replay handler (inherent: it re-runs the generator)."""
    bookkeeping_seconds: float = 0.0
    """Time in this runtime's own episode code: history, ids, dispatching."""
    largest_batch: int = 0
    """Most new messages delivered to one episode."""
