"""A test-only DFApp and fixtures for the local durable runtime tests.

The orchestrators here are written like production ones (generators on a `df.DFApp`), so
the tests exercise the SDK's real replay handler, never a mock of it.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest

from ingest.durable import LocalDurableRuntime, activity_sleep
from ingest.durable.history import parse_timestamp


class Ledger:
    """Thread-safe record of activity attempts, so tests can count what really ran."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.attempts: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()
        self.steps: dict[str, list[int]] = {}
        """Per key, the steps each execution of `busy` completed (one entry per execution)."""
        self.spans: dict[str, list[tuple[float, float]]] = {}
        """Per key, (start, end) of each execution of `busy` that ended."""

    def begin(self, key: str) -> int:
        with self._lock:
            self.attempts[key] += 1
            return self.attempts[key]

    def end(self, key: str) -> None:
        with self._lock:
            self.finished[key] += 1

    def finished_count(self, keys: list[str]) -> int:
        with self._lock:
            return sum(self.finished[k] for k in keys)

    def reset(self) -> None:
        with self._lock:
            self.attempts.clear()
            self.finished.clear()
            self.steps.clear()
            self.spans.clear()


LEDGER = Ledger()

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


# --- activities -----------------------------------------------------------------------------

@app.activity_trigger(input_name="job")
def flaky(job: dict) -> dict:
    """Fail on attempts 1..fail_first, then return the job's value and the attempt number.

    `real_sleep` sleeps for real (varies batching); `duration` sleeps in the runtime's clock.
    """
    key = job["key"]
    attempt = LEDGER.begin(key)
    try:
        if job.get("real_sleep"):
            time.sleep(job["real_sleep"])
        if job.get("duration"):
            activity_sleep(job["duration"])
        if attempt <= job.get("fail_first", 0):
            raise ValueError(f"{key} attempt {attempt} failed")
        return {"key": key, "value": job.get("value"), "attempt": attempt}
    finally:
        LEDGER.end(key)


@app.activity_trigger(input_name="value")
def double(value: int) -> int:
    """Twice the input."""
    return value * 2


@app.activity_trigger(input_name="value")
def noop(value: Any) -> None:
    """Nothing: for measuring the runtime itself."""
    return None


@app.activity_trigger(input_name="value")
def not_json(value: Any) -> Any:
    """Return a set, which JSON cannot carry."""
    return {1, 2, 3}


@app.activity_trigger(input_name="seconds")
def nap(seconds: float) -> float:
    """Sleep in the runtime's clock (virtual under virtual_time) and return the duration."""
    activity_sleep(seconds)
    return seconds


@app.activity_trigger(input_name="value", activity="renamed_double")
def double_with_binding_name(value: int) -> int:
    """Registered under its binding name too."""
    return value * 2


@app.activity_trigger(input_name="value")
async def async_double(value: int) -> int:
    """Async activities are awaited like the worker does."""
    return value * 2


def _step(value: int) -> int:
    return value + 1


@app.activity_trigger(input_name="job")
def busy(job: dict) -> dict:
    """Do `steps` small Python calls (sleeping `sleep` s in total), recording progress.

    An `except Exception` around the work shows that an injected kill is not caught by it.
    """
    key = job["key"]
    attempt = LEDGER.begin(key)
    start = time.monotonic()
    with LEDGER._lock:
        LEDGER.steps.setdefault(key, []).append(0)
        slot = len(LEDGER.steps[key]) - 1
    try:
        total = 0
        for _ in range(job["steps"]):
            total = _step(total)
            with LEDGER._lock:
                LEDGER.steps[key][slot] = total
            if job.get("sleep"):
                time.sleep(job["sleep"] / job["steps"])
        return {"key": key, "attempt": attempt, "steps": total}
    except Exception:
        LEDGER.begin(f"{key}:caught")
        raise
    finally:
        with LEDGER._lock:
            LEDGER.spans.setdefault(key, []).append((start, time.monotonic()))
        LEDGER.end(key)


@app.orchestration_trigger(context_name="context")
def busy_jobs(context: df.DurableOrchestrationContext):
    """Run `busy` for every job in parallel; return the results."""
    return (yield context.task_all([context.call_activity("busy", job) for job in context.get_input()]))


# --- orchestrators --------------------------------------------------------------------------

@app.activity_trigger(input_name="seconds")
def timed_nap(seconds: float) -> list[float]:
    """Sleep in real time; return (start, end) wall-clock seconds."""
    start = time.time()
    time.sleep(seconds)
    return [start, time.time()]


@app.orchestration_trigger(context_name="context")
def warm_then_fan_out(context: df.DurableOrchestrationContext):
    """One activity first (its thread is then idle), then a fan-out that must run in parallel."""
    first = yield context.call_activity(timed_nap, 0.01)
    spans = yield context.task_all([context.call_activity(timed_nap, s) for s in context.get_input()])
    return [first, *spans]


@app.orchestration_trigger(context_name="context")
def fan_out_fan_in(context: df.DurableOrchestrationContext):
    """Double every value in parallel and add them up."""
    values = context.get_input()
    results = yield context.task_all([context.call_activity(double, v) for v in values])
    context.set_custom_status({"done": len(results)})
    return sum(results)


@app.orchestration_trigger(context_name="context")
def run_jobs(context: df.DurableOrchestrationContext):
    """Run jobs with optional retries and timeouts; collect every outcome (task_any loop).

    Input: {"jobs": [...]} or {"chunks": [[...], ...]} (one sub-orchestration per chunk).
    Output: {key: {"status": "ok"|"failed"|"timeout", ...}}.
    """
    plan = context.get_input()
    if plan.get("chunks"):
        parts = yield context.task_all([
            context.call_sub_orchestrator("run_jobs", {"jobs": chunk}) for chunk in plan["chunks"]
        ])
        merged: dict = {}
        for part in parts:
            merged.update(part)
        return merged

    entries = []
    for job in plan["jobs"]:
        if job["retry"]:
            options = df.RetryOptions(job["interval_ms"], job["max_attempts"])
            task = context.call_activity_with_retry("flaky", options, job)
        else:
            task = context.call_activity("flaky", job)
        timer = None
        waitable = task
        if job.get("timeout_ms") is not None:
            timer = context.create_timer(context.current_utc_datetime
                                         + timedelta(milliseconds=job["timeout_ms"]))
            waitable = context.task_any([task, timer])
        entries.append((job, task, timer, waitable))

    outcomes: dict = {}
    pending = [entry[3] for entry in entries]
    while pending:
        done = yield context.task_any(pending)
        pending = [p for p in pending if p is not done]
        job, task, timer, _ = next(e for e in entries if e[3] is done)
        if timer is not None and done.result is timer:
            outcomes[job["key"]] = {"status": "timeout"}
        else:
            if timer is not None and not timer.is_completed:
                timer.cancel()
            if isinstance(task.result, Exception):
                outcomes[job["key"]] = {"status": "failed", "error": str(task.result)}
            else:
                outcomes[job["key"]] = {"status": "ok", **task.result}
        context.set_custom_status({"done": len(outcomes), "total": len(entries)})
    return outcomes


@app.orchestration_trigger(context_name="context")
def timer_probe(context: df.DurableOrchestrationContext):
    """Wait `input` seconds on a durable timer; return the clock before and after."""
    before = context.current_utc_datetime
    yield context.create_timer(before + timedelta(seconds=context.get_input()))
    return [before.isoformat(), context.current_utc_datetime.isoformat()]


@app.orchestration_trigger(context_name="context")
def race(context: df.DurableOrchestrationContext):
    """Race `nap(activity_seconds)` against a timer; cancel the timer if the activity wins."""
    plan = context.get_input()
    work = context.call_activity("nap", plan["activity_seconds"])
    timeout = context.create_timer(context.current_utc_datetime
                                   + timedelta(seconds=plan["timeout_seconds"]))
    winner = yield context.task_any([work, timeout])
    if winner is timeout:
        return "timer"
    timeout.cancel()
    return "activity"


@app.orchestration_trigger(context_name="context")
def failing_orchestrator(context: df.DurableOrchestrationContext):
    """Report progress, then raise."""
    yield context.call_activity("double", 1)
    context.set_custom_status("about to fail")
    raise ValueError("orchestrator exploded")


@app.orchestration_trigger(context_name="context")
def status_steps(context: df.DurableOrchestrationContext):
    """Set custom status before each of `input` sequential activities."""
    for step in range(context.get_input()):
        context.set_custom_status({"step": step})
        yield context.call_activity("noop", step)
    context.set_custom_status({"step": "done"})
    return "finished"


@app.orchestration_trigger(context_name="context")
def replay_probe(context: df.DurableOrchestrationContext):
    """Record `is_replaying` before and after the first activity."""
    flags = [context.is_replaying]
    yield context.call_activity("noop", None)
    flags.append(context.is_replaying)
    return flags


@app.orchestration_trigger(context_name="context")
def continue_counter(context: df.DurableOrchestrationContext):
    """Continue as new once (the local runtime refuses it: the app never does it)."""
    count = context.get_input()
    yield context.call_activity("noop", count)
    if count < 1:
        context.continue_as_new(count + 1)
        return None
    return count


@app.orchestration_trigger(context_name="context")
def sub_parent(context: df.DurableOrchestrationContext):
    """Call `fan_out_fan_in` per chunk, and `flaky_child` with retries."""
    plan = context.get_input()
    sums = yield context.task_all([context.call_sub_orchestrator("fan_out_fan_in", chunk)
                                   for chunk in plan["chunks"]])
    retried = None
    if plan.get("flaky"):
        retried = yield context.call_sub_orchestrator_with_retry(
            "flaky_child", df.RetryOptions(1000, plan["flaky"]["max_attempts"]), plan["flaky"])
    return {"sums": sums, "retried": retried, "me": context.instance_id}


@app.orchestration_trigger(context_name="context")
def named_child(context: df.DurableOrchestrationContext):
    """Call `fan_out_fan_in` as a sub-orchestration with the instance id given as input."""
    result = yield context.call_sub_orchestrator("fan_out_fan_in", [1, 2], instance_id=context.get_input())
    return result


@app.orchestration_trigger(context_name="context")
def flaky_child(context: df.DurableOrchestrationContext):
    """Fail the whole sub-orchestration when its (unretried) activity fails."""
    job = context.get_input()
    result = yield context.call_activity("flaky", job)
    return {"result": result, "parent": context.parent_instance_id}


@app.orchestration_trigger(context_name="context")
def sub_catcher(context: df.DurableOrchestrationContext):
    """Catch a failed sub-orchestration and return its message."""
    try:
        yield context.call_sub_orchestrator("failing_orchestrator", None)
    except Exception as exc:  # the SDK raises a plain Exception
        return str(exc)
    return "no error"


@app.orchestration_trigger(context_name="context")
def batch_order(context: df.DurableOrchestrationContext):
    """Retry task and quick task race; new work follows while the retry is still failing."""
    plan = context.get_input()
    retried = context.call_activity_with_retry("flaky", df.RetryOptions(plan["interval_ms"], 3),
                                               plan["retry_job"])
    quick = context.call_activity("flaky", plan["quick_job"])
    yield context.task_any([retried, quick])
    doubled = yield context.call_activity("double", 21)
    later = yield retried
    return {"double": doubled, "retried": later}


@app.orchestration_trigger(context_name="context")
def blocker(context: df.DurableOrchestrationContext):
    """Hold the dispatcher until the given activity keys have finished (forces batching)."""
    keys = context.get_input()
    deadline = time.monotonic() + 5
    while LEDGER.finished_count(keys) < len(keys) and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)  # let the finished activities post their outcomes
    return "released"


@app.orchestration_trigger(context_name="context")
def fail_fast_then_more(context: df.DurableOrchestrationContext):
    """Catch a failed task_all while a retried sibling is still running, then do more."""
    plan = context.get_input()
    options = df.RetryOptions(1000, plan["max_attempts"])
    tasks = [context.call_activity_with_retry("flaky", options, job) for job in plan["jobs"]]
    try:
        yield context.task_all(tasks)
        caught = None
    except Exception as exc:
        caught = str(exc).split(" \n ")[0]
    extra = yield (context.call_activity("flaky", plan["extra"]) if plan.get("extra")
                   else context.call_activity("double", 5))
    return {"caught": caught, "extra": extra}


@app.orchestration_trigger(context_name="context")
def any_then_more(context: df.DurableOrchestrationContext):
    """task_any over a retried task and a quick one, await the retried one, then do more."""
    plan = context.get_input()
    retried = context.call_activity_with_retry("flaky", df.RetryOptions(1000, 3), plan["retried"])
    quick = context.call_activity("flaky", plan["quick"])
    yield context.task_any([retried, quick])
    first = yield retried
    extra = yield context.call_activity("double", 5)
    return {"retried": first, "extra": extra}


@app.orchestration_trigger(context_name="context")
def attempts_probe(context: df.DurableOrchestrationContext):
    """Report the SDK retry task's own attempt counter (undocumented `num_attempts`)."""
    tasks = [context.call_activity_with_retry("flaky", df.RetryOptions(1000, 3), job)
             for job in context.get_input()]
    pending = list(tasks)
    while pending:
        done = yield context.task_any(pending)
        pending = [t for t in pending if t is not done]
    return [task.num_attempts for task in tasks]


@app.orchestration_trigger(context_name="context")
def wait_for_go(context: df.DurableOrchestrationContext):
    """Wait for the external event "go" (the local runtime refuses it: the app never waits)."""
    payload = yield context.wait_for_external_event("go")
    return {"got": payload}


@app.orchestration_trigger(context_name="context")
def call_by_name(context: df.DurableOrchestrationContext):
    """Call the activity named in the input with value 4."""
    return (yield context.call_activity(context.get_input(), 4))


@app.orchestration_trigger(context_name="context")
def bad_input(context: df.DurableOrchestrationContext):
    """Pass a set to an activity: the SDK must refuse to serialise it."""
    return (yield context.call_activity("double", {1, 2}))


@app.orchestration_trigger(context_name="context")
def nondeterministic(context: df.DurableOrchestrationContext):
    """Call a different activity on each replay (what Durable Task must refuse)."""
    replay = LEDGER.begin("nondeterministic")
    yield context.call_activity("double" if replay == 1 else "noop", 1)
    yield context.call_activity("noop", 2)
    return "unreachable"


@app.orchestration_trigger(context_name="context")
def unsupported_api(context: df.DurableOrchestrationContext):
    """Use durable HTTP, which the local runtime does not provide."""
    return (yield context.call_http("GET", "https://example.invalid/"))


@app.orchestration_trigger(context_name="context")
def many_noops(context: df.DurableOrchestrationContext):
    """Fan out `input` no-op activities."""
    results = yield context.task_all([context.call_activity("noop", i)
                                      for i in range(context.get_input())])
    return len(results)


@app.orchestration_trigger(context_name="context")
def many_noop_subs(context: df.DurableOrchestrationContext):
    """Fan out `subs` sub-orchestrations of `per_sub` no-op activities each."""
    plan = context.get_input()
    counts = yield context.task_all([context.call_sub_orchestrator("many_noops", plan["per_sub"])
                                     for _ in range(plan["subs"])])
    return sum(counts)


@app.route(route="orchestrators/{name}")
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client) -> func.HttpResponse:
    """HTTP starter written against the real client API."""
    instance_id = await client.start_new(req.route_params["name"], None, req.get_json())
    return client.create_check_status_response(req, instance_id)


# --- fixtures -------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _fresh_ledger() -> Iterator[None]:
    LEDGER.reset()
    yield


@pytest.fixture
def ledger() -> Ledger:
    """Attempts per activity key."""
    return LEDGER


@pytest.fixture
def durable_app() -> df.DFApp:
    """The test DFApp (indexed once, shared by every runtime)."""
    return app


@pytest.fixture
def make_runtime() -> Iterator[Callable[..., LocalDurableRuntime]]:
    """Build runtimes on the test app; all are closed after the test."""
    made: list[LocalDurableRuntime] = []

    def build(**kwargs: Any) -> LocalDurableRuntime:
        runtime = LocalDurableRuntime(app, **kwargs)
        made.append(runtime)
        return runtime

    yield build
    for runtime in made:
        runtime.close()


SCHEDULING = {4: "TaskScheduled", 7: "SubOrchestrationInstanceCreated", 10: "TimerCreated"}
COMPLETIONS = {5: 4, 6: 4, 8: 7, 9: 7}  # completion event type -> scheduling event type


def check_history(events: list[dict[str, Any]]) -> None:
    """Assert that a history is well formed, as Durable Task would have written it.

    - every event has the common fields; committed events are all IsPlayed;
    - episodes: OrchestratorStarted ... OrchestratorCompleted, ExecutionStarted second;
    - sequence ids are 0..n-1, each used by exactly one scheduling event, in order;
    - completions point to an earlier scheduling event of the right kind, at most once;
    - TimerFired points to an earlier TimerCreated with the same FireAt;
    - episode start times never go backwards; a message is stamped when it was sent, so it
      lies between the event that scheduled it and the episode that delivers it.
    """
    assert len(events) >= 2
    for event in events:
        assert {"EventType", "EventId", "IsPlayed", "Timestamp"} <= event.keys()
        assert event["IsPlayed"] is True
    assert events[0]["EventType"] == 12 and events[1]["EventType"] == 0

    in_episode = False
    for event in events:
        if event["EventType"] == 12:
            assert not in_episode, "OrchestratorStarted inside an episode"
            in_episode = True
        elif event["EventType"] == 13:
            assert in_episode, "OrchestratorCompleted outside an episode"
            in_episode = False
        else:
            assert in_episode or event["EventType"] == 3, "event outside an episode"

    scheduled: dict[int, dict[str, Any]] = {}
    completed: set[int] = set()
    fired: set[int] = set()
    episode_start = None
    for event in events:
        kind = event["EventType"]
        stamp = parse_timestamp(event["Timestamp"])
        if kind == 12:
            assert episode_start is None or stamp >= episode_start, "episodes go backwards"
            episode_start = stamp
        elif kind in (5, 6, 8, 9, 11):
            assert stamp <= episode_start, "message stamped after the episode delivering it"
            origin = scheduled[event.get("TaskScheduledId", event.get("TimerId"))]
            assert stamp >= parse_timestamp(origin["Timestamp"]), "message before its cause"
        if kind in SCHEDULING:
            assert event["EventId"] == len(scheduled), "sequence ids must be 0..n-1 in order"
            scheduled[event["EventId"]] = event
        else:
            assert event["EventId"] == -1
        if kind in COMPLETIONS:
            target = scheduled.get(event["TaskScheduledId"])
            assert target is not None, f"completion of unknown id {event['TaskScheduledId']}"
            assert target["EventType"] == COMPLETIONS[kind]
            assert event["TaskScheduledId"] not in completed, "completed twice"
            completed.add(event["TaskScheduledId"])
        if kind == 11:
            timer = scheduled.get(event["TimerId"])
            assert timer is not None and timer["EventType"] == 10
            assert timer["FireAt"] == event["FireAt"]
            assert event["TimerId"] not in fired
            fired.add(event["TimerId"])
        if kind in (4, 8):
            json.loads(event.get("Input") or "null")  # payloads are JSON strings
        if kind in (5, 8) and event.get("Result") is not None:
            json.loads(event["Result"])


@pytest.fixture
def history_ok() -> Callable[[list[dict[str, Any]]], None]:
    """The `check_history` assertion helper."""
    return check_history
