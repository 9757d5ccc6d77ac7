"""Seeded at-least-once faults for the local runtime: Durable runs an activity *at least* once.

In Azure an activity runs again after a worker crash, a lost lease or a function timeout that
restarts the host (azure-functions-host #5228, #6714), and a duplicate can run at the same time
as the original. The local runtime delivers exactly once unless it is given a `Faults` config:

- `redeliver_after_completion`: the activity ran to the end but its result was never recorded
  (the host died); it runs again with the same input and the second result is recorded.
- `kill_mid_activity`: the activity is interrupted at a seeded point, then runs again and that
  result is recorded (see "The kill model" below).
- `deliver_twice_concurrently`: two executions of the same input run at once on two threads;
  the first result to finish is recorded, the other is discarded, as Durable discards a
  completion for a task that has already completed. The result reaches the orchestration once
  both have ended, so the loser's side effects are done before the orchestration moves on.

The history is Durable's either way: one TaskScheduled and one TaskCompleted (or TaskFailed) per
task id. Faults hit a task's first delivery only; redeliveries run clean.

Decisions are seeded per delivery: the random draw for occurrence `n` (1-based, counted per
activity name in one runtime, in scheduling order) of activity `name` comes from
`Random(f"{seed}/{name}/{n}")`, so a decision does not depend on which other tasks ran first,
and one orchestration at a time gets the same faults for the same seed every time.

The kill model: a `sys.settrace` hook in the activity's own thread counts Python `call` events
and, at the seeded one, raises `ActivityKilled`, a `BaseException` that `except Exception`
(the activities' error wrapper, the runner's per-job handler) does not catch. Limits against a
real SIGKILL: `finally` blocks and `with` exits still run (temp folders are removed, locks
released, dlt's load waits for its worker threads before the exception leaves); threads the
activity started are not traced and run on; C code (a file copy, a Parquet write inside
pyarrow) is never cut in half, so a truncated file cannot appear this way; code that catches
`BaseException` without re-raising survives the kill (the result is discarded anyway). The
seeded point is a fraction of the activity's length in call events: `Faults.kill_calls` when
given (a calibration run with `Faults(measure=True)` measures it), else the last complete traced
run of the same activity name in this process (`DEFAULT_KILL_CALLS` before any). A point past
the end kills the activity just before its result would be recorded.
"""

from __future__ import annotations

import logging
import random
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Callable, Optional, Union

log = logging.getLogger(__name__)

REDELIVER = "redeliver_after_completion"
KILL = "kill_mid_activity"
TWICE = "deliver_twice_concurrently"
MODES = (REDELIVER, KILL, TWICE)

DEFAULT_KILL_CALLS = 200_000
"""Assumed length (Python call events) of an activity never seen complete in this process."""

_calibration: dict[str, int] = {}
_calibration_lock = threading.Lock()


class ActivityKilled(BaseException):
    """Raised inside an activity to model its process being killed; not an `Exception`."""


@dataclass(frozen=True)
class FaultRule:
    """An explicit fault for one delivery.

    Attributes:
        activity: Activity name.
        occurrence: Which scheduling of that activity in the runtime (1 = the first).
        mode: One of `MODES`.
        kill_at: For `kill_mid_activity`: the call event to kill at (int), or a fraction of the
            activity's learned length (float in [0, 1)). None: the seeded fraction.
    """

    activity: str
    occurrence: int
    mode: str
    kill_at: Optional[Union[int, float]] = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown fault mode '{self.mode}' (known: {', '.join(MODES)})")


@dataclass(frozen=True)
class Faults:
    """Which deliveries get an at-least-once fault. Off unless a probability or a rule is given.

    Attributes:
        seed: Seeds every decision.
        redeliver_after_completion: Probability per first delivery.
        kill_mid_activity: Probability per first delivery.
        deliver_twice_concurrently: Probability per first delivery (the three sum to <= 1).
        activities: Only these activity names get faults (None: every activity).
        schedule: Explicit faults; a delivery a rule names ignores the probabilities.
        kill_calls: Length in call events that kill fractions apply to, instead of the learned
            one, for every activity (int) or per activity name (mapping; names it lacks use the
            learned length). Makes kill points independent of what ran before in the process.
        measure: Trace every delivery to learn activity lengths even when no kill is configured
            (`LocalDurableRuntime.activity_lengths`), e.g. for a calibration run. Otherwise clean
            runs are traced only while a kill may need a length that `kill_calls` lacks.
        duplicate_delay: Seconds (at most) the second copy starts after the first; the seed
            picks the delay in [0, duplicate_delay].
    """

    seed: int = 0
    redeliver_after_completion: float = 0.0
    kill_mid_activity: float = 0.0
    deliver_twice_concurrently: float = 0.0
    activities: Optional[frozenset[str]] = None
    schedule: tuple[FaultRule, ...] = ()
    kill_calls: Optional[Union[int, Mapping[str, int]]] = None
    measure: bool = False
    duplicate_delay: float = 0.05

    def __post_init__(self) -> None:
        probabilities = self.probabilities()
        if any(p < 0 for p in probabilities.values()) or sum(probabilities.values()) > 1 + 1e-9:
            raise ValueError(f"fault probabilities must be >= 0 and sum to <= 1: {probabilities}")
        if self.activities is not None:
            object.__setattr__(self, "activities", frozenset(self.activities))
        object.__setattr__(self, "schedule", tuple(self.schedule))

    @classmethod
    def only(cls, mode: str, seed: int, probability: float = 1.0, **kwargs: Any) -> Faults:
        """One mode at `probability` (e.g. `Faults.only(KILL, seed=3, activities={...})`)."""
        if mode not in MODES:
            raise ValueError(f"unknown fault mode '{mode}' (known: {', '.join(MODES)})")
        return cls(seed=seed, **{mode: probability}, **kwargs)

    def probabilities(self) -> dict[str, float]:
        """Probability per mode."""
        return {mode: getattr(self, mode) for mode in MODES}

    def learns_length(self, activity: str) -> bool:
        """Whether a clean run of `activity` is traced to learn its length in call events.

        Only for a calibration (`measure`), or when a kill may hit the activity and `kill_calls`
        does not give its length (tracing makes an activity two to three times slower).
        """
        if not self.applies_to(activity):
            return False
        if self.measure:
            return True
        kills = self.kill_mid_activity > 0 or any(r.mode == KILL for r in self.schedule)
        given = isinstance(self.kill_calls, int) or (isinstance(self.kill_calls, Mapping)
                                                     and activity in self.kill_calls)
        return kills and not given

    def applies_to(self, activity: str) -> bool:
        """Whether `activity` is subject to faults at all."""
        return self.activities is None or activity in self.activities

    def decide(self, activity: str, occurrence: int) -> Optional[Decision]:
        """The fault (if any) for delivery `occurrence` of `activity`; deterministic per seed."""
        if not self.applies_to(activity):
            return None
        rng = random.Random(f"{self.seed}/{activity}/{occurrence}")
        draw, fraction, delay = rng.random(), rng.random(), rng.random()
        rule = next((r for r in self.schedule if r.activity == activity and r.occurrence == occurrence), None)
        if rule is not None:
            kill_at = rule.kill_at if rule.kill_at is not None else fraction
            return Decision(rule.mode, activity, occurrence, kill_at, delay * self.duplicate_delay)
        threshold = 0.0
        for mode, probability in self.probabilities().items():
            threshold += probability
            if draw < threshold:
                return Decision(mode, activity, occurrence, fraction, delay * self.duplicate_delay)
        return None


@dataclass(frozen=True)
class Decision:
    """The fault chosen for one delivery."""

    mode: str
    activity: str
    occurrence: int
    kill_at: Union[int, float]
    """Call event (int) or fraction of the learned length (float) to kill at."""
    duplicate_delay: float

    def kill_point(self, kill_calls: Optional[Union[int, Mapping[str, int]]]) -> int:
        """The call event at which to kill (1-based)."""
        if isinstance(self.kill_at, int):
            return max(1, self.kill_at)
        given = kill_calls.get(self.activity) if isinstance(kill_calls, Mapping) else kill_calls
        length = given or learned_length(self.activity) or DEFAULT_KILL_CALLS
        return 1 + int(self.kill_at * length)


@dataclass
class InjectedFault:
    """A fault that really happened (what `LocalDurableRuntime.injected_faults` lists)."""

    mode: str
    activity: str
    occurrence: int
    instance_id: str
    task_id: int
    detail: str


def learned_length(activity: str) -> Optional[int]:
    """Call events of the last complete traced run of `activity` in this process, if any."""
    with _calibration_lock:
        return _calibration.get(activity)


def learn_length(activity: str, calls: int) -> None:
    """Remember how long a complete run of `activity` was, in call events."""
    with _calibration_lock:
        _calibration[activity] = calls


class KillSwitch:
    """A trace function for the current thread: counts call events, raises at the kill point.

    Chains to the tracer already installed (coverage, a debugger) so they keep working.
    """

    def __init__(self, kill_at: Optional[int]) -> None:
        self.kill_at = kill_at
        self.calls = 0
        self.fired = False
        self._previous: Optional[Callable[..., Any]] = None

    def __enter__(self) -> KillSwitch:
        self._previous = sys.gettrace()
        sys.settrace(self._trace)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        sys.settrace(self._previous)

    def _trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        # Only a global trace function sees 'call'; returning the chained local tracer (or
        # None) keeps line events off unless another tracer wants them.
        local = self._previous(frame, event, arg) if self._previous is not None else None
        if event == "call":
            self.calls += 1
            if self.kill_at is not None and not self.fired and self.calls >= self.kill_at:
                self.fired = True
                # Raising here unsets this thread's tracer (CPython) and enters the called frame.
                raise ActivityKilled(f"activity killed at call event {self.calls}")
        return local


def run_traced(invoke: Callable[[], str], activity: str, kill_at: Optional[int]) -> tuple[str, Optional[BaseException], KillSwitch]:
    """Run `invoke` under a `KillSwitch`; learn the activity's length when it ran to the end.

    Returns:
        (result JSON or "", the exception it ended with or None, the switch).
    """
    switch = KillSwitch(kill_at)
    result, error = "", None
    try:
        with switch:
            result = invoke()
    except BaseException as exc:  # noqa: BLE001 - the kill, or the activity's own failure
        error = exc
    if not switch.fired and error is None:
        learn_length(activity, switch.calls)
    return result, error, switch


def describe_kill(switch: KillSwitch, point: int) -> str:
    """How a kill went, for the log and `InjectedFault.detail`."""
    if switch.fired:
        return f"killed at call event {point}"
    return f"killed at the end (the run had {switch.calls} call events, the point was {point})"


@dataclass
class DuplicateRace:
    """Two executions of one delivery; the first to finish wins."""

    winner: Optional[str] = None
    ended: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    both_ended: threading.Event = field(default_factory=threading.Event)

    def finish(self, copy: str) -> bool:
        """Record that `copy` ended; True if it is the first."""
        with self.lock:
            first = self.winner is None
            if first:
                self.winner = copy
            self.ended += 1
            if self.ended == 2:
                self.both_ended.set()
            return first
