"""State of one orchestration instance and the messages that reach it.

An instance owns the history of its execution (both as event dicts and as the
serialised JSON sent to the SDK on the next replay), its sequence-id counter, the retry
bookkeeping of `*_with_retry` calls and an inbox of messages not yet replayed.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Optional, Union

from .actions import ActionTracker
from .faults import Decision
from .functions import ActivityFunction, OrchestratorFunction
from .models import PENDING


# --- messages that arrive in an instance's inbox --------------------------------------------

@dataclass
class Outcome:
    """An activity attempt or a sub-orchestration finished."""

    task_id: int
    sub_orchestration: bool
    ok: bool
    at: datetime
    result: Optional[str] = None
    reason: str = ""
    details: str = ""


@dataclass
class TimerFired:
    """A durable timer (user or retry) is due."""

    timer_id: int
    fire_at: datetime
    at: datetime


Message = Union[Outcome, TimerFired]


# --- per-instance state ---------------------------------------------------------------------

@dataclass
class Retry:
    """A `*_with_retry` call: what to re-run and how many attempts it has had."""

    kind: str
    name: str
    input_json: Optional[str]
    instance_id: Optional[str]
    interval: timedelta
    max_attempts: int
    leaf_id: int
    """Sequence id of the first attempt; the SDK's retry task and the action tree use it."""
    attempts: int = 1


@dataclass(frozen=True)
class ParentLink:
    """Where a sub-orchestration reports back: the parent's execution and task id."""

    instance_id: str
    execution_id: str
    task_id: int
    name: str


@dataclass
class ActivityJob:
    """One activity attempt to run on the pool."""

    instance_id: str
    execution_id: str
    task_id: int
    activity: ActivityFunction
    input_json: Optional[str]
    fault: Optional[Decision] = None
    """An at-least-once fault to inject into this delivery (`faults.Faults`), if any."""
    occurrence: int = 0
    """Which scheduling of this activity name in the runtime this is (1 = the first)."""
    trace_context: Any = None
    """The trace context the activity runs under: its orchestration's (`tracing.py`)."""


class Instance:
    """One orchestration instance.

    Execution state is touched only by the dispatcher thread; status, inbox and outputs only
    under the runtime lock.
    """

    def __init__(self, instance_id: str, orchestrator: OrchestratorFunction,
                 input_json: Optional[str], parent: Optional[ParentLink],
                 created: datetime) -> None:
        self.instance_id = instance_id
        self.orchestrator = orchestrator
        self.parent = parent
        self.created_time = created
        self.last_updated_time = created
        self.status = PENDING
        self.custom_status: Any = None
        self.output: Any = None
        self.error: Optional[str] = None
        self.failure_details = ""
        self.episodes = 0
        self.warnings: list[str] = []
        self.warned: set[str] = set()
        """Kinds of fidelity warning already given (one of each per instance)."""
        self.done = threading.Event()
        self.inbox: deque[Message] = deque()
        self.in_ready = False
        self.span: Any = None
        """The instance's `orchestration:<name>` span (`tracing.py`)."""
        self.trace_context: Any = None
        """The context with that span: its activities and sub-orchestrations run under it."""
        self.input_json = input_json
        self.execution_id = uuid.uuid4().hex
        self.events: list[dict[str, Any]] = []
        self.played: list[str] = []
        """JSON of the committed events with IsPlayed true: the history prefix of the next
        episode, kept serialised so each replay only joins strings."""
        self.started = False
        self.next_id = 0
        self.known_top = 0
        self.signatures: list[Any] = []
        """Per top-level action, what it called: replays must ask for the same."""
        self.retry_attempts: dict[int, Retry] = {}
        self.retry_timers: dict[int, Retry] = {}
        self.tracker = ActionTracker()


@dataclass
class Episode:
    """What one replay adds: events in, events out, and the work to start once committed."""

    now: datetime
    incoming: list[dict[str, Any]] = field(default_factory=list)
    outgoing: list[dict[str, Any]] = field(default_factory=list)
    activities: list[ActivityJob] = field(default_factory=list)
    children: list[tuple[int, str, str, Optional[str]]] = field(default_factory=list)
    timers: list[tuple[datetime, int]] = field(default_factory=list)
