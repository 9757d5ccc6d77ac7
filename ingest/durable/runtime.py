"""A local Durable Task backend that drives orchestrators through the SDK's own replay handler.

Each orchestration instance has a history and an inbox, as in the real backend. A single
dispatcher thread takes up to 32 inbox messages of one instance, appends them to the
history as one episode, calls the registered orchestrator handle (context JSON in, state
JSON out, exactly what the Durable extension does) and turns the new actions into history
events, activity attempts, timers and sub-orchestrations. Activities run on a bounded thread
pool; their outcomes return to the inbox.

Sequence ids: the SDK numbers tasks itself, in the order it meets them while replaying, and
matches completions by id. Two kinds of events make it take ids without resuming the
orchestrator: the failure of a retried attempt (it creates the retry timer) and the firing
of a retry timer with attempts left (it re-schedules the attempt). Everything else can
resume the generator, which then yields new actions that take the following ids. Each batch
is therefore delivered with those retry side-effects first, so the runtime knows exactly
which ids the SDK gives: side-effects in delivery order, then the new actions depth-first.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Optional

from azure.durable_functions.models.actions.ActionType import ActionType
from azure.durable_functions.models.utils.df_serialization import df_dumps

from shared.cpu_slots import usable_cores
from shared.redaction import clip

from . import history, tracing
from .actions import (COMPOUND_TYPES, ActionNode, compound_kind, describe,
                      find_nondeterminism, signature)
from .clock import Clock, RealClock, VirtualClock, bind_activity_clock
from .faults import (KILL, REDELIVER, TWICE, DuplicateRace, Faults, InjectedFault, describe_kill,
                     run_traced)
from .functions import (FunctionIndex, OrchestratorFunction, describe_failure, index_app,
                        orchestrator_failure)
from .ids import instance_id_problem
from .instance import (ActivityJob, Episode, Instance, Message, Outcome, ParentLink, Retry,
                       TimerFired)
from .models import (ACTIVE_STATUSES, COMPLETED, FAILED, RUNNING, TERMINATED,
                     OrchestrationResult, RuntimeStats)
from .pool import ActivityPool

log = logging.getLogger(__name__)

BATCH_LIMIT = 32
"""Messages per episode; the Azure Storage backend batches up to 32 per replay."""

DELAY_WARNING_SECONDS = 1.0
"""Warn when the extension would start work at least this much later than this runtime."""

UPPER_SCHEMA_VERSION = 1
UPPER_SCHEMA_VERSION_NEW = 2
"""What the extension sends; the SDK then emits V2+ actions (one list of compound actions)."""

_ACTIVITY = "activity"
_SUB_ORCHESTRATION = "sub-orchestration"
_CALLS = {
    int(ActionType.CALL_ACTIVITY): (_ACTIVITY, False),
    int(ActionType.CALL_ACTIVITY_WITH_RETRY): (_ACTIVITY, True),
    int(ActionType.CALL_SUB_ORCHESTRATOR): (_SUB_ORCHESTRATION, False),
    int(ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY): (_SUB_ORCHESTRATION, True),
}

StatusCallback = Callable[[str, Any], None]


class _ScheduleError(Exception):
    """An action the extension would reject (unknown function, unsupported API)."""


# --- the runtime ----------------------------------------------------------------------------

class LocalDurableRuntime:
    """Runs the orchestrators of a `df.DFApp` locally, replaying them through the SDK.

    Args:
        app: The `df.DFApp` (or `df.Blueprint`) with the orchestrators and activities.
        max_parallel: Activities running at once (default: CPU count), shared by all
            instances, like `maxConcurrentActivityFunctions`.
        virtual_time: Simulate time: timers fire as soon as nothing else can progress, with
            `current_utc_datetime` jumping to their FireAt. For tests.
        on_status: Called as `on_status(instance_id, custom_status)` from the dispatcher thread
            whenever an instance's custom status changes. Keep it quick.
        faults: Model Durable's at-least-once delivery: seeded redeliveries, kills and
            concurrent duplicates of activities (`faults.Faults`; off by default). Meant for
            real-time runs: a concurrent duplicate is not counted by the virtual clock.

    Example:
        >>> runtime = LocalDurableRuntime(app)
        >>> result = runtime.run("ingest_orchestrator", {"jobs": [...]})
        >>> result.runtime_status, result.output
    """

    def __init__(self, app: Any, *, max_parallel: Optional[int] = None,
                 virtual_time: bool = False, on_status: Optional[StatusCallback] = None,
                 faults: Optional[Faults] = None) -> None:
        self._index: FunctionIndex = index_app(app)
        self._lock = threading.RLock()
        self._wakeup = threading.Condition(self._lock)
        self._clock: Clock
        if virtual_time:
            self._clock = VirtualClock(self._lock, on_park=self._wakeup.notify_all)
        else:
            self._clock = RealClock()
        self._pool: ActivityPool[ActivityJob] = ActivityPool(
            max_parallel or usable_cores(), self._lock, self._run_activity,
            on_thread_start=lambda: bind_activity_clock(self._clock))
        self._on_status = on_status
        self._instances: dict[str, Instance] = {}
        self._ready: deque[Instance] = deque()
        self._timers: list[tuple[datetime, int, str, str, int]] = []
        self._timer_seq = itertools.count()
        self._active = 0
        self._dispatcher: Optional[threading.Thread] = None
        self._closed = False
        self._callback_seconds = 0.0
        self._faults = faults
        self._occurrences: Counter[str] = Counter()
        self._fault_counts: Counter[str] = Counter()
        self._injected: list[InjectedFault] = []
        self._lengths: dict[str, int] = {}
        self.stats = RuntimeStats()
        """Counters for the bookkeeping measurement (`bench/orchestration_scale.py`)."""

    # --- public API -----------------------------------------------------------------------

    @property
    def functions(self) -> FunctionIndex:
        """The app's orchestrators and activities."""
        return self._index

    def now(self) -> datetime:
        """The runtime's current time (virtual or real UTC)."""
        return self._clock.now()

    @property
    def fault_counts(self) -> dict[str, int]:
        """Faults injected so far, by mode (`faults.MODES`); modes never injected are absent."""
        with self._lock:
            return dict(self._fault_counts)

    @property
    def injected_faults(self) -> list[InjectedFault]:
        """Every fault injected so far, in the order they happened."""
        with self._lock:
            return list(self._injected)

    @property
    def activity_lengths(self) -> dict[str, int]:
        """Call events of the last complete traced run of each activity in this runtime
        (only for activities traced to learn their length: `Faults.learns_length`)."""
        with self._lock:
            return dict(self._lengths)

    def start(self, orchestrator_name: str, input: Any = None,
              instance_id: Optional[str] = None, *, trace_parent: Optional[str] = None,
              trace_state: Optional[str] = None) -> str:
        """Start an orchestration in the background.

        Args:
            orchestrator_name: Registered orchestrator name.
            input: JSON-serialisable input (serialised like `client.start_new` does).
            instance_id: Id to use; a new 32-hex-digit id by default.
            trace_parent: W3C `traceparent` the client sent (the caller's current trace
                context by default): the parent of the orchestration's span (`tracing.py`).
            trace_state: W3C `tracestate` sent with it.

        Returns:
            The instance id.

        Raises:
            KeyError: No such orchestrator.
            TypeError: The input is not JSON-serialisable.
            ValueError: The id is invalid, or an instance with this id is still running. A
                finished (Completed, Failed, Terminated) one is replaced, as with Durable's
                default `OverridableExistingInstanceStates` (see `ids.py`).
        """
        orchestrator = self._index.orchestrator(orchestrator_name)
        input_json = None if input is None else df_dumps(input)
        problem = instance_id_problem(instance_id) if instance_id is not None else None
        if problem:
            raise ValueError(problem)
        with self._lock:
            if self._closed:
                raise RuntimeError("the runtime is closed")
            instance_id = instance_id or uuid.uuid4().hex
            existing = self._instances.get(instance_id)
            if existing is not None and existing.status in ACTIVE_STATUSES:
                raise ValueError(f"an orchestration instance with id '{instance_id}' "
                                 f"is already {existing.status.lower()}")
            self._create_locked(orchestrator, input_json, instance_id, parent=None,
                                trace_context=tracing.incoming_context(trace_parent, trace_state))
        return instance_id

    def run(self, orchestrator_name: str, input: Any = None, instance_id: Optional[str] = None,
            *, timeout: Optional[float] = None) -> OrchestrationResult:
        """Start an orchestration and block until it completes or fails.

        Args:
            orchestrator_name: Registered orchestrator name.
            input: JSON-serialisable input.
            instance_id: Id to use; generated by default.
            timeout: Seconds to wait (real time); None waits for ever.

        Returns:
            The final `OrchestrationResult`.

        Raises:
            TimeoutError: The instance did not finish in time (it keeps running).
        """
        return self.wait(self.start(orchestrator_name, input, instance_id), timeout)

    def wait(self, instance_id: str, timeout: Optional[float] = None) -> OrchestrationResult:
        """Block until an instance is Completed, Failed or Terminated and return it.

        Raises:
            KeyError: Unknown instance id.
            TimeoutError: Still running after `timeout` seconds.
        """
        with self._lock:
            instance = self._instances.get(instance_id)
        if instance is None:
            raise KeyError(f"no orchestration instance with id '{instance_id}'")
        if not instance.done.wait(timeout):
            raise TimeoutError(f"orchestration '{instance_id}' still {instance.status.lower()} "
                               f"after {timeout} s")
        with self._lock:
            return self._snapshot_locked(instance)

    def get_status(self, instance_id: str,
                   show_history: bool = True) -> Optional[OrchestrationResult]:
        """Snapshot of an instance, or None if the id is unknown.

        Args:
            instance_id: The instance.
            show_history: Copy the history into the snapshot (skip it for frequent polls).
        """
        with self._lock:
            instance = self._instances.get(instance_id)
            if instance is None:
                return None
            return self._snapshot_locked(instance, show_history)

    def list_instances(self, show_history: bool = True) -> list[OrchestrationResult]:
        """Snapshots of every instance this runtime knows (sub-orchestrations included)."""
        with self._lock:
            return [self._snapshot_locked(i, show_history) for i in self._instances.values()]

    def terminate(self, instance_id: str, reason: str = "") -> bool:
        """Stop a running instance; its in-flight work is discarded when it reports back.

        Returns:
            True if the instance was running, False if it had already finished.

        Raises:
            KeyError: Unknown instance id.
        """
        with self._lock:
            instance = self._instances.get(instance_id)
            if instance is None:
                raise KeyError(f"no orchestration instance with id '{instance_id}'")
            if instance.status not in ACTIVE_STATUSES:
                return False
            self._commit_events_locked(instance, [history.execution_terminated(self.now(),
                                                                               reason)])
            self._finish_locked(instance, TERMINATED, output=reason)
            return True

    def close(self) -> None:
        """Stop the dispatcher and the idle activity threads.

        Running instances stay as they are; waiting on them after close only times out.
        """
        with self._lock:
            self._closed = True
            self._pool.close()
            self._wakeup.notify_all()

    def __enter__(self) -> LocalDurableRuntime:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # --- instances --------------------------------------------------------------------------

    def _create_locked(self, orchestrator: OrchestratorFunction, input_json: Optional[str],
                       instance_id: str, parent: Optional[ParentLink], trace_context: Any) -> Instance:
        instance = Instance(instance_id, orchestrator, input_json, parent, self.now())
        instance.span, instance.trace_context = tracing.start_orchestration(
            orchestrator.name, instance_id, instance.execution_id, trace_context)
        self._instances[instance_id] = instance
        self._active += 1
        instance.in_ready = True
        self._ready.append(instance)
        if self._dispatcher is None:
            self._dispatcher = threading.Thread(target=self._dispatch_loop,
                                                name="durable-dispatcher", daemon=True)
            self._dispatcher.start()
        self._wakeup.notify_all()
        return instance

    def _snapshot_locked(self, instance: Instance,
                         show_history: bool = True) -> OrchestrationResult:
        input_json = instance.input_json
        return OrchestrationResult(
            instance_id=instance.instance_id, name=instance.orchestrator.name,
            runtime_status=instance.status, output=instance.output,
            custom_status=instance.custom_status, error=instance.error,
            history=[dict(event) for event in instance.events] if show_history else [],
            created_time=instance.created_time, last_updated_time=instance.last_updated_time,
            episodes=instance.episodes,
            input=None if input_json is None else json.loads(input_json),
            warnings=list(instance.warnings))

    def _post_locked(self, instance_id: str, execution_id: str, message: Message) -> None:
        instance = self._instances.get(instance_id)
        # Messages for a finished (or replaced) instance are dropped, as the backend drops
        # messages for an execution id that no longer exists.
        if (instance is None or instance.execution_id != execution_id
                or instance.status not in ACTIVE_STATUSES):
            return
        instance.inbox.append(message)
        if not instance.in_ready:
            instance.in_ready = True
            self._ready.append(instance)
        self._wakeup.notify_all()

    def _finish_locked(self, instance: Instance, status: str, output: Any = None,
                       error: Optional[str] = None, details: str = "") -> None:
        if instance.status not in ACTIVE_STATUSES:
            return
        instance.status = status
        instance.output = output
        instance.error = error
        instance.failure_details = details
        instance.last_updated_time = self.now()
        instance.inbox.clear()
        instance.played = []  # no more replays: keep the event dicts only
        self._active -= 1
        tracing.end_orchestration(instance.span, status, status == COMPLETED)
        instance.done.set()
        parent = instance.parent
        if parent is not None:
            if status == COMPLETED:
                result = None if output is None else json.dumps(output)
                message = Outcome(parent.task_id, True, True, self.now(), result=result)
            else:
                why = error if status == FAILED else f"terminated: {output}"
                message = Outcome(parent.task_id, True, False, self.now(),
                                   reason=f"Orchestrator function '{instance.orchestrator.name}' "
                                          f"failed: {why}",
                                   details=details or status)
            self._post_locked(parent.instance_id, parent.execution_id, message)
        self._wakeup.notify_all()

    def _set_custom_status(self, instance: Instance, value: Any) -> None:
        """Record a new custom status and tell `on_status`.

        Done before the episode commits, so a caller woken by the instance finishing has
        seen every status.
        """
        # The SDK only sends customStatus when it is truthy; the extension keeps the last one.
        with self._lock:
            if (value is None or value == instance.custom_status
                    or instance.status not in ACTIVE_STATUSES):
                return
            instance.custom_status = value
        if self._on_status is None:
            return
        began = time.perf_counter()
        try:
            self._on_status(instance.instance_id, value)
        except Exception:  # a broken progress bar must not break the orchestration
            log.exception("on_status callback failed for %s", instance.instance_id)
        self._callback_seconds += time.perf_counter() - began

    def _commit_events_locked(self, instance: Instance, events: list[dict[str, Any]]) -> None:
        for event in events:
            event["IsPlayed"] = True
            instance.events.append(event)
            instance.played.append(json.dumps(event))

    # --- dispatcher -------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while True:
            with self._lock:
                work = self._next_work_locked()
                if work is None:
                    self._dispatcher = None
                    return
            instance, batch = work
            try:
                self._run_episode(instance, batch)
            except Exception as exc:  # a bug here must fail the instance, not hang callers
                log.exception("local durable runtime failed on %s", instance.instance_id)
                with self._lock:
                    self._finish_locked(instance, FAILED,
                                        error=f"local durable runtime error: {exc!r}")

    def _next_work_locked(self) -> Optional[tuple[Instance, list[Message]]]:
        while not self._closed:
            self._fire_due_timers_locked()
            while self._ready:
                instance = self._ready.popleft()
                instance.in_ready = False
                if instance.status not in ACTIVE_STATUSES:
                    continue
                take = min(BATCH_LIMIT, len(instance.inbox))
                batch = [instance.inbox.popleft() for _ in range(take)]
                if instance.inbox:
                    instance.in_ready = True
                    self._ready.append(instance)
                if batch or not instance.started:
                    return instance, batch
            if self._active == 0:
                return None
            if isinstance(self._clock, VirtualClock):
                if not self._pool.progressable(self._clock.parked):
                    due = self._next_due_locked()
                    if due is not None:
                        self._clock.advance_to(due)
                        continue
                self._wakeup.wait()
            else:
                timeout = None
                if self._timers:
                    timeout = max(0.0, (self._timers[0][0] - self.now()).total_seconds())
                self._wakeup.wait(timeout)
        return None

    def _next_due_locked(self) -> Optional[datetime]:
        candidates = []
        if self._timers:
            candidates.append(self._timers[0][0])
        if isinstance(self._clock, VirtualClock):
            wake = self._clock.next_wake()
            if wake is not None:
                candidates.append(wake)
        return min(candidates) if candidates else None

    def _fire_due_timers_locked(self) -> None:
        now = self.now()
        while self._timers and self._timers[0][0] <= now:
            fire_at, _, instance_id, execution_id, timer_id = heapq.heappop(self._timers)
            self._post_locked(instance_id, execution_id, TimerFired(timer_id, fire_at, now))

    # --- activities ---------------------------------------------------------------------------

    def _run_activity(self, job: ActivityJob) -> None:
        fault = job.fault
        if fault is None:
            self._deliver(job, self._execute(job), free_slot=True)
        elif fault.mode == REDELIVER:
            first = self._execute(job)
            self._record_fault(job, REDELIVER, f"the run ended ({_ending(first)}) but its result "
                                               f"was not recorded; running it again")
            self._deliver(job, self._execute(job), free_slot=True)
        elif fault.mode == KILL:
            assert self._faults is not None
            point = fault.kill_point(self._faults.kill_calls)
            _, _, switch = run_traced(lambda: self._invoke(job),
                                      job.activity.name, point)
            self._record_fault(job, KILL, describe_kill(switch, point) + "; running it again")
            self._deliver(job, self._execute(job), free_slot=True)
        elif fault.mode == TWICE:
            self._run_twice(job, fault.duplicate_delay)

    def _run_twice(self, job: ActivityJob, delay: float) -> None:
        """Run the delivery on this pool thread and a duplicate on a thread of its own; record
        the first to finish once both have ended."""
        race = DuplicateRace()
        outcomes: dict[str, Outcome] = {}

        def finished(copy: str, outcome: Outcome) -> None:
            outcomes[copy] = outcome
            if not race.finish(copy):
                log.info("fault %s: %s #%d (task %d of %s): the %s copy ended second (%s); "
                         "its result is discarded", TWICE, job.activity.name, job.occurrence,
                         job.task_id, job.instance_id, copy, _ending(outcome))

        def duplicate() -> None:
            bind_activity_clock(self._clock)
            time.sleep(delay)
            finished("duplicate", self._execute(job))

        thread = threading.Thread(target=duplicate, name="durable-activity-duplicate", daemon=True)
        self._record_fault(job, TWICE, f"a duplicate starts {delay * 1000:.0f} ms after the "
                                       f"original; the first to finish is recorded")
        thread.start()
        finished("original", self._execute(job))
        race.both_ended.wait()
        assert race.winner is not None
        self._deliver(job, outcomes[race.winner], free_slot=True)

    def _execute(self, job: ActivityJob) -> Outcome:
        """Run the activity once; traced when it must learn its length (`Faults.learns_length`)."""
        faults = self._faults
        error: Optional[BaseException] = None
        result = ""
        if faults is not None and faults.learns_length(job.activity.name):
            result, error, switch = run_traced(lambda: self._invoke(job),
                                               job.activity.name, None)
            if error is None:
                with self._lock:
                    self._lengths[job.activity.name] = switch.calls
        else:
            try:
                result = self._invoke(job)
            except BaseException as exc:  # noqa: BLE001 - any failure is the activity's outcome
                error = exc
        if error is None:
            return Outcome(job.task_id, False, True, self.now(), result=result)
        reason, details = describe_failure(error)
        return Outcome(job.task_id, False, False, self.now(), reason=reason, details=details)

    @staticmethod
    def _invoke(job: ActivityJob) -> str:
        """Call the activity as the worker does: under the trace context the extension hands it."""
        with tracing.attached(job.trace_context):
            return job.activity.invoke(job.input_json)

    def _deliver(self, job: ActivityJob, outcome: Outcome, free_slot: bool) -> None:
        """Post an outcome to the instance's inbox; `free_slot` when its pool thread is done."""
        with self._lock:
            if free_slot:
                self._pool.job_finished()
            outcome.at = self.now()
            self._post_locked(job.instance_id, job.execution_id, outcome)
            self._wakeup.notify_all()

    def _record_fault(self, job: ActivityJob, mode: str, detail: str) -> None:
        log.info("fault %s: %s #%d (task %d of %s): %s", mode, job.activity.name, job.occurrence,
                 job.task_id, job.instance_id, detail)
        with self._lock:
            self._fault_counts[mode] += 1
            self._injected.append(InjectedFault(mode, job.activity.name, job.occurrence,
                                                job.instance_id, job.task_id, detail))

    # --- episodes -----------------------------------------------------------------------------

    def _run_episode(self, instance: Instance, batch: list[Message]) -> None:
        began = time.perf_counter()
        with self._lock:
            if instance.status not in ACTIVE_STATUSES:
                return
            instance.status = RUNNING
        episode = Episode(self.now())
        episode.incoming.append(history.orchestrator_started(episode.now))
        if not instance.started:
            instance.started = True
            episode.incoming.append(self._execution_started(instance, episode.now))
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        for message in self._delivery_order(instance, batch):
            self._apply(instance, message, episode)
            instance.tracker.settle(episode.now)

        context_json = self._context_json(instance, episode.incoming)
        handler_began = time.perf_counter()
        failure: Optional[Exception] = None
        state_text = ""
        try:
            state_text = instance.orchestrator.handle(context_json)
        except Exception as exc:  # the SDK raises for orchestrator errors
            failure = exc
        handler_ended = time.perf_counter()
        instance.episodes += 1

        self._callback_seconds = 0.0
        if failure is not None:
            self._fail(instance, episode, failure)
        else:
            self._advance(instance, episode, json.loads(state_text))
        self.stats.episodes += 1
        self.stats.handler_seconds += handler_ended - handler_began
        self.stats.bookkeeping_seconds += ((handler_began - began) - self._callback_seconds
                                           + (time.perf_counter() - handler_ended))

    def _execution_started(self, instance: Instance, now: datetime) -> dict[str, Any]:
        parent = instance.parent
        parent_info = None
        if parent is not None:
            parent_info = {"Name": parent.name, "TaskScheduleId": parent.task_id,
                           "OrchestrationInstance": {"InstanceId": parent.instance_id,
                                                     "ExecutionId": parent.execution_id}}
        return history.execution_started(now, instance.orchestrator.name, instance.input_json,
                                         instance.instance_id, instance.execution_id,
                                         parent_info)

    def _context_json(self, instance: Instance, new_events: list[dict[str, Any]]) -> str:
        head = json.dumps({
            "instanceId": instance.instance_id,
            "isReplaying": bool(instance.played),
            "parentInstanceId": instance.parent.instance_id if instance.parent else None,
            "input": instance.input_json,
            "upperSchemaVersion": UPPER_SCHEMA_VERSION,
            "upperSchemaVersionNew": UPPER_SCHEMA_VERSION_NEW,
        })
        events = itertools.chain(instance.played, (json.dumps(e) for e in new_events))
        return head[:-1] + ', "history": [' + ", ".join(events) + "]}"

    def _delivery_order(self, instance: Instance, batch: list[Message]) -> list[Message]:
        """Order a batch: retry side-effects first, then everything else.

        Side-effects take sequence ids without resuming the generator; each group keeps its
        arrival order.
        """
        side_effects: list[Message] = []
        others: list[Message] = []
        for message in batch:
            target = side_effects if self._is_retry_side_effect(instance, message) else others
            target.append(message)
        return side_effects + others

    @staticmethod
    def _is_retry_side_effect(instance: Instance, message: Message) -> bool:
        if isinstance(message, Outcome):
            return not message.ok and message.task_id in instance.retry_attempts
        if isinstance(message, TimerFired):
            retry = instance.retry_timers.get(message.timer_id)
            return retry is not None and retry.attempts < retry.max_attempts
        return False

    def _apply(self, instance: Instance, message: Message, episode: Episode) -> None:
        """Turn one inbox message into history, doing what Durable Task's retry logic does."""
        if isinstance(message, TimerFired):
            episode.incoming.append(history.timer_fired(message.at, message.timer_id,
                                                        message.fire_at))
            retry = instance.retry_timers.pop(message.timer_id, None)
            if retry is None:
                instance.tracker.leaf_done(message.timer_id)
            elif retry.attempts >= retry.max_attempts:
                instance.tracker.leaf_done(retry.leaf_id)  # the failure surfaces now
            else:
                retry.attempts += 1
                task_id = self._take_id(instance)
                instance.tracker.retry_allocation()
                instance.retry_attempts[task_id] = retry
                self._schedule_call(instance, episode, retry.kind, task_id, retry.name,
                                    retry.input_json, retry.instance_id)
            return

        retry = instance.retry_attempts.pop(message.task_id, None)
        if message.ok:
            build = (history.sub_orchestration_completed if message.sub_orchestration
                     else history.task_completed)
            episode.incoming.append(build(message.at, message.task_id, message.result))
            instance.tracker.leaf_done(retry.leaf_id if retry else message.task_id)
            return
        build_failed = (history.sub_orchestration_failed if message.sub_orchestration
                        else history.task_failed)
        episode.incoming.append(build_failed(message.at, message.task_id, message.reason,
                                             message.details))
        if retry is None:
            instance.tracker.leaf_done(message.task_id)
            return
        # Durable Task waits `interval` before each new attempt; after the last attempt it
        # still creates one timer (due at once: "dummy timer for back-compat") before the
        # failure surfaces, and the SDK expects that timer.
        last_attempt = retry.attempts >= retry.max_attempts
        fire_at = episode.now if last_attempt else episode.now + retry.interval
        timer_id = self._take_id(instance)
        instance.tracker.retry_allocation()
        instance.retry_timers[timer_id] = retry
        episode.outgoing.append(history.timer_created(episode.now, timer_id, fire_at))
        episode.timers.append((fire_at, timer_id))

    @staticmethod
    def _take_id(instance: Instance) -> int:
        task_id = instance.next_id
        instance.next_id += 1
        return task_id

    def _schedule_call(self, instance: Instance, episode: Episode, kind: str, task_id: int,
                       name: str, input_json: Optional[str],
                       sub_instance_id: Optional[str]) -> None:
        if kind == _ACTIVITY:
            activity = self._index.activities.get(name)
            if activity is None:
                raise _ScheduleError(
                    f"The function '{name}' doesn't exist, is disabled, or is not an activity "
                    f"function (known activities: "
                    f"{', '.join(sorted(self._index.activities)) or 'none'})")
            episode.outgoing.append(history.task_scheduled(episode.now, task_id, name,
                                                           input_json))
            job = ActivityJob(instance.instance_id, instance.execution_id, task_id, activity,
                              input_json, trace_context=instance.trace_context)
            if self._faults is not None:
                # Counted here, on the dispatcher thread, in scheduling order.
                self._occurrences[name] += 1
                job.occurrence = self._occurrences[name]
                job.fault = self._faults.decide(name, job.occurrence)
            episode.activities.append(job)
            return
        if name not in self._index.orchestrators:
            raise _ScheduleError(
                f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator "
                f"function (known orchestrators: {', '.join(sorted(self._index.orchestrators))})")
        # Durable Task names an unnamed sub-orchestration "<parent execution id>:<task id>".
        child_id = sub_instance_id or f"{instance.execution_id}:{task_id}"
        self._check_child_id(instance, episode, child_id)
        episode.outgoing.append(history.sub_orchestration_created(episode.now, task_id, name,
                                                                  child_id, input_json))
        episode.children.append((task_id, name, child_id, input_json))

    def _check_child_id(self, instance: Instance, episode: Episode, child_id: str) -> None:
        """Apply Durable's sub-orchestration id rules (see `ids.py`).

        Reusing the id of a finished instance replaces it, as the Azure Storage backend does.
        Reusing the id of a running one (or of another child started in the same episode) fails
        the orchestration here: Azure Storage would silently replace that running instance (its
        parent never hears back) and MSSQL would discard the new one (this parent waits for
        ever), neither of which a local run should hide.
        """
        parent = instance.parent.instance_id if instance.parent else None
        if child_id.lower() in (instance.instance_id.lower(), (parent or "").lower()):
            raise _ScheduleError("The instance ID of a sub-orchestration must be different than "
                                 "the instance ID of a parent orchestration.")
        problem = instance_id_problem(child_id)
        if problem:
            raise _ScheduleError(f"sub-orchestration: {problem}")
        with self._lock:
            existing = self._instances.get(child_id)
            running = existing is not None and existing.status in ACTIVE_STATUSES
        if running or any(child[2] == child_id for child in episode.children):
            raise _ScheduleError(
                f"sub-orchestration id '{child_id}' belongs to an instance that is still running: "
                f"Durable (Azure Storage) would replace that instance, whose parent then never "
                f"hears back (MSSQL would drop this one instead); give each call its own id")

    def _schedule_action(self, instance: Instance, action: dict[str, Any],
                         episode: Episode) -> ActionNode:
        """Give a new action (and its children, depth-first) sequence ids and schedule it."""
        action_type = action.get("actionType")
        if action_type in COMPOUND_TYPES:
            children = [self._schedule_action(instance, child, episode)
                        for child in action.get("compoundActions") or []]
            return ActionNode(compound_kind(action), children)
        if action_type == int(ActionType.CREATE_TIMER):
            task_id = self._take_id(instance)
            fire_at = history.parse_timestamp(action["fireAt"])
            # A cancelled timer still exists in Durable Task; it fires and is ignored.
            episode.outgoing.append(history.timer_created(episode.now, task_id, fire_at))
            episode.timers.append((fire_at, task_id))
            return instance.tracker.leaf(task_id)
        if action_type not in _CALLS:
            raise _ScheduleError(f"action {describe(signature(action))} is not supported by "
                                 f"the local durable runtime")
        kind, with_retry = _CALLS[action_type]
        task_id = self._take_id(instance)
        name = action["functionName"]
        input_json = action.get("input")
        sub_instance_id = action.get("instanceId")
        self._schedule_call(instance, episode, kind, task_id, name, input_json, sub_instance_id)
        if with_retry:
            options = action["retryOptions"]
            instance.retry_attempts[task_id] = Retry(
                kind, name, input_json, sub_instance_id,
                timedelta(milliseconds=options["firstRetryIntervalInMilliseconds"]),
                options["maxNumberOfAttempts"], leaf_id=task_id)
        return instance.tracker.leaf(task_id)

    def _advance(self, instance: Instance, episode: Episode, state: dict[str, Any]) -> None:
        """Apply the state the SDK returned: finish or schedule new work."""
        if "schemaVersion" not in state:
            raise RuntimeError("the SDK answered with legacy V1 actions; "
                               "upperSchemaVersion was not honoured")
        actions = state.get("actions") or [[]]
        top_level = actions[0] if actions else []
        drift = find_nondeterminism(instance.signatures, top_level)
        if drift:
            self._fail(instance, episode, _ScheduleError(drift))
            return
        new_actions = top_level[instance.known_top:]
        instance.known_top = len(top_level)
        instance.signatures.extend(signature(a) for a in new_actions)
        self._set_custom_status(instance, state.get("customStatus"))

        if state.get("isDone"):
            instance.tracker.settle(episode.now)
            self._warn_extension_differences(instance, finishing=True)
            if any(a.get("actionType") == int(ActionType.CONTINUE_AS_NEW) for a in new_actions):
                self._fail(instance, episode, _ScheduleError(
                    "action CONTINUE_AS_NEW is not supported by the local durable runtime"))
                return
            with self._lock:
                if instance.status not in ACTIVE_STATUSES:  # terminated during the replay
                    return
                output = state.get("output")
                self._commit_events_locked(instance, episode.incoming + [
                    history.execution_completed(episode.now, COMPLETED,
                                                None if output is None else json.dumps(output)),
                    history.orchestrator_completed(episode.now)])
                self._finish_locked(instance, COMPLETED, output=output)
            return

        try:
            for action in new_actions:
                instance.tracker.add_top(self._schedule_action(instance, action, episode),
                                         episode.now)
        except _ScheduleError as exc:
            self._fail(instance, episode, exc)
            return
        instance.tracker.settle(episode.now)
        self._warn_extension_differences(instance)

        with self._lock:
            if instance.status not in ACTIVE_STATUSES:  # terminated during the replay
                return
            self._commit_events_locked(instance, episode.incoming + episode.outgoing
                                       + [history.orchestrator_completed(episode.now)])
            instance.last_updated_time = episode.now
            for job in episode.activities:
                self._pool.submit(job)
            for fire_at, timer_id in episode.timers:
                heapq.heappush(self._timers, (fire_at, next(self._timer_seq),
                                              instance.instance_id, instance.execution_id,
                                              timer_id))
            for task_id, name, child_id, input_json in episode.children:
                self._start_child_locked(instance, task_id, name, child_id, input_json)
            if episode.timers:
                self._wakeup.notify_all()

    def _start_child_locked(self, parent: Instance, task_id: int, name: str, child_id: str,
                            input_json: Optional[str]) -> None:
        existing = self._instances.get(child_id)
        if existing is not None and existing.status in ACTIVE_STATUSES:
            self._post_locked(parent.instance_id, parent.execution_id, Outcome(
                task_id, True, False, self.now(),
                reason=f"An orchestration instance with ID '{child_id}' is already running",
                details="InvalidOperationException"))
            return
        link = ParentLink(parent.instance_id, parent.execution_id, task_id,
                           parent.orchestrator.name)
        self._create_locked(self._index.orchestrators[name], input_json, child_id, link,
                            parent.trace_context)

    def _fail(self, instance: Instance, episode: Episode, failure: Exception) -> None:
        message, state = orchestrator_failure(failure)
        cause = failure.__cause__ or failure
        details = describe_failure(cause)[1]
        if state:
            self._set_custom_status(instance, state.get("customStatus"))
        with self._lock:
            if instance.status not in ACTIVE_STATUSES:  # terminated during the replay
                return
            self._commit_events_locked(instance, episode.incoming + [
                history.execution_completed(episode.now, FAILED, message),
                history.orchestrator_completed(episode.now)])
            self._finish_locked(instance, FAILED, error=message, details=details)

    def _warn_extension_differences(self, instance: Instance, finishing: bool = False) -> None:
        """Warn (once per kind) where the extension's shim would run this orchestration differently.

        See `actions.ActionTracker` and docs/durable-replay.md for the model.
        """
        tracker = instance.tracker
        name = f"orchestration '{instance.orchestrator.name}' ({instance.instance_id})"
        if tracker.misattributed is not None and "misattributed" not in instance.warned:
            instance.warned.add("misattributed")
            self._warn(instance, (
                f"{name}: the Durable extension would number top-level action "
                f"#{tracker.misattributed} differently from the SDK, so results get "
                "misattributed in Azure. Its .NET shim awaits top-level actions one by one (a "
                "task_all until every child ends), and a *_with_retry task took sequence ids "
                "between the point where the SDK scheduled that action and the point where the "
                "shim would. Do not schedule new work while a failed task_all still has running "
                "retried children, or after a task_any over retried tasks without first "
                "awaiting them all; or retry with durable timers instead of *_with_retry."))
        slow = [(index, f"{lag:.1f} s later than this runtime did")
                for index, lag in tracker.delayed if lag >= DELAY_WARNING_SECONDS]
        if finishing and tracker.not_invoked:
            slow.append((tracker.invoked, "only after tasks that are still running now, when this "
                                    "runtime has already finished the orchestration"))
        if slow and "delayed" not in instance.warned:
            instance.warned.add("delayed")
            index, when = slow[0]
            self._warn(instance, (
                f"{name}: the Durable extension would start top-level action #{index} {when}: "
                "its .NET shim invokes a top-level action only once the earlier ones have "
                "finished (.NET semantics: a task_all waits for every child), and an earlier "
                "one was still running. Add a task that finishes at once (a timer due now) to "
                "each task_any that schedules work while older tasks are pending."))

    @staticmethod
    def _warn(instance: Instance, text: str) -> None:
        instance.warnings.append(text)
        log.warning(text)


def _ending(outcome: Outcome) -> str:
    return "ok" if outcome.ok else f"failed: {clip(outcome.reason)}"
