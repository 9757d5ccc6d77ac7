"""Behaviour of the local durable runtime, driven through the SDK's own replay handler."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import azure.durable_functions as df
import pytest

from ingest.durable import COMPLETED, FAILED, RUNNING, TERMINATED, LocalDurableRuntime, index_app
from ingest.durable.history import parse_timestamp
from ingest.durable.runtime import BATCH_LIMIT

TIMEOUT = 30  # real seconds; generous, only to turn a hang into a failure


def events_of(result, event_type):
    return [e for e in result.history if e["EventType"] == event_type]


# --- indexing -------------------------------------------------------------------------------

def test_index_is_cached_per_app_and_shared(durable_app, make_runtime):
    first = make_runtime()
    second = make_runtime()  # get_functions() may only run once per app object
    assert first.functions is second.functions is index_app(durable_app)
    index = first.functions
    assert {"run_jobs", "race", "fan_out_fan_in"} <= index.orchestrators.keys()
    assert index.activities["flaky"].parameter == "job"
    assert index.activities["renamed_double"] is index.activities["double_with_binding_name"]
    assert index.clients["http_start"].parameter == "client"


def _tiny_registry(registry):
    @registry.activity_trigger(input_name="name")
    def greet(name: str) -> str:
        return f"hello {name}"

    @registry.orchestration_trigger(context_name="context")
    def greeter(context):
        return (yield context.call_activity("greet", context.get_input()))


def test_blueprints_and_apps_indexed_elsewhere_work():
    blueprint = df.Blueprint()
    _tiny_registry(blueprint)
    with LocalDurableRuntime(blueprint) as runtime:
        assert runtime.run("greeter", "bp", timeout=TIMEOUT).output == "hello bp"

    app = df.DFApp()
    _tiny_registry(app)
    app.get_functions()  # e.g. a test of the function app indexed it first
    with LocalDurableRuntime(app) as runtime:
        assert runtime.run("greeter", "app", timeout=TIMEOUT).output == "hello app"


def test_unknown_orchestrator_is_rejected(make_runtime):
    with pytest.raises(KeyError, match="not registered"):
        make_runtime().start("nope")


# --- fan-out, activities, JSON --------------------------------------------------------------

def test_fan_out_fan_in(make_runtime, history_ok):
    result = make_runtime(max_parallel=3).run("fan_out_fan_in", list(range(20)), timeout=TIMEOUT)
    assert result.runtime_status == COMPLETED
    assert result.output == sum(2 * v for v in range(20))
    assert result.custom_status == {"done": 20}
    assert result.input == list(range(20))
    assert len(events_of(result, 4)) == 20 and len(events_of(result, 5)) == 20
    history_ok(result.history)


@pytest.mark.parametrize("activity", ["renamed_double", "double_with_binding_name",
                                      "async_double"])
def test_activity_names_and_async_activities(make_runtime, activity):
    assert make_runtime().run("call_by_name", activity, timeout=TIMEOUT).output == 8


def test_non_json_activity_output_fails_the_task(make_runtime):
    result = make_runtime().run("call_by_name", "not_json", timeout=TIMEOUT)
    assert result.runtime_status == FAILED
    assert "activity trigger output must be json serializable" in result.error
    failed = events_of(result, 6)
    assert len(failed) == 1 and failed[0]["Details"].startswith("ValueError")


def test_non_json_activity_input_fails_the_orchestrator(make_runtime):
    result = make_runtime().run("bad_input", timeout=TIMEOUT)
    assert result.runtime_status == FAILED
    assert "not JSON serializable" in result.error or "to_json" in result.error


def test_non_json_orchestration_input_is_refused(make_runtime):
    with pytest.raises(TypeError):
        make_runtime().start("fan_out_fan_in", {1, 2})


def test_unknown_activity_fails_like_the_extension(make_runtime):
    result = make_runtime().run("call_by_name", "missing_activity", timeout=TIMEOUT)
    assert result.runtime_status == FAILED
    assert "The function 'missing_activity' doesn't exist" in result.error


def test_nondeterministic_orchestrator_fails_like_durable_task(make_runtime):
    result = make_runtime().run("nondeterministic", timeout=TIMEOUT)
    assert result.runtime_status == FAILED
    assert result.error.startswith("Non-deterministic orchestration detected: action #0 was "
                                   "CALL_ACTIVITY(double) in an earlier replay and is "
                                   "CALL_ACTIVITY(noop) now.")


@pytest.mark.parametrize("orchestrator, action", [
    ("unsupported_api", "CALL_HTTP"), ("wait_for_go", "WAIT_FOR_EXTERNAL_EVENT"),
    ("continue_counter", "CONTINUE_AS_NEW")])
def test_apis_the_app_does_not_use_fail_loudly(make_runtime, orchestrator, action):
    """Durable HTTP, external events and continue-as-new are not modelled: they fail the run."""
    result = make_runtime().run(orchestrator, 0, timeout=TIMEOUT)
    assert result.runtime_status == FAILED
    assert action in result.error and "not supported" in result.error


# --- failures -------------------------------------------------------------------------------

def test_failing_orchestrator_reports_its_message_and_status(make_runtime, history_ok):
    result = make_runtime().run("failing_orchestrator", timeout=TIMEOUT)
    assert result.runtime_status == FAILED
    assert result.error == "orchestrator exploded"
    assert result.custom_status == "about to fail"
    assert result.output is None
    completed = events_of(result, 1)
    assert completed[-1]["OrchestrationStatus"] == FAILED
    history_ok(result.history)


def test_activity_failure_surfaces_reason_and_details(make_runtime):
    job = {"key": "once", "fail_first": 1, "retry": False, "max_attempts": 1, "interval_ms": 0}
    result = make_runtime().run("run_jobs", {"jobs": [job]}, timeout=TIMEOUT)
    error = result.output["once"]["error"]
    reason, details = error.split(" \n ")
    assert reason == "once attempt 1 failed"
    assert details.startswith("ValueError at ") and "in flaky" in details


# --- retries --------------------------------------------------------------------------------

def test_retry_history_matches_durable_task(make_runtime, ledger, history_ok):
    """Retries produce the history Durable Task writes.

    Each failure: TaskFailed, TimerCreated(+interval), TimerFired, new TaskScheduled; the last
    failure still gets a timer (due at once) before the failure surfaces.
    """
    job = {"key": "r", "fail_first": 5, "retry": True, "max_attempts": 3, "interval_ms": 2000}
    result = make_runtime(virtual_time=True).run("run_jobs", {"jobs": [job]}, timeout=TIMEOUT)
    assert result.output["r"]["status"] == "failed"
    assert result.output["r"]["error"].startswith("r attempt 3 failed")
    assert ledger.attempts["r"] == 3

    kinds = [(e["EventType"], e["EventId"], e.get("TaskScheduledId"), e.get("TimerId"))
             for e in result.history if e["EventType"] in (4, 5, 6, 10, 11)]
    assert kinds == [
        (4, 0, None, None), (6, -1, 0, None), (10, 1, None, None), (11, -1, None, 1),
        (4, 2, None, None), (6, -1, 2, None), (10, 3, None, None), (11, -1, None, 3),
        (4, 4, None, None), (6, -1, 4, None), (10, 5, None, None), (11, -1, None, 5),
    ]
    timers = events_of(result, 10)
    gaps = [parse_timestamp(t["FireAt"]) - parse_timestamp(t["Timestamp"]) for t in timers]
    assert gaps == [timedelta(seconds=2), timedelta(seconds=2), timedelta(0)]
    history_ok(result.history)


def test_retry_succeeds_after_failures(make_runtime, ledger):
    job = {"key": "ok3", "fail_first": 2, "retry": True, "max_attempts": 4, "interval_ms": 500,
           "value": "v"}
    result = make_runtime(virtual_time=True).run("run_jobs", {"jobs": [job]}, timeout=TIMEOUT)
    assert result.output == {"ok3": {"status": "ok", "key": "ok3", "value": "v", "attempt": 3}}
    assert ledger.attempts["ok3"] == 3


def test_attempt_count_is_readable_from_the_sdk_retry_task(make_runtime, ledger):
    """The SDK's retry task counts attempts in `num_attempts`.

    It is internal to the SDK but rebuilt deterministically on every replay, so it can fill
    JobResult.retry_count (pin the SDK version; this test guards it).
    """
    jobs = [{"key": "first", "fail_first": 0}, {"key": "third", "fail_first": 2},
            {"key": "never", "fail_first": 9}]
    result = make_runtime(virtual_time=True).run("attempts_probe", jobs, timeout=TIMEOUT)
    assert result.output == [1, 3, 3]
    assert [ledger.attempts[j["key"]] for j in jobs] == [1, 3, 3]


def test_completion_and_retry_failure_in_one_batch(make_runtime, ledger, history_ok):
    """A completion that resumes the orchestrator and a retry failure arrive together.

    The SDK gives the retry timer its id when it replays the failure, and the new activity
    its id when the generator yields; delivering the failure first keeps them in step.
    """
    runtime = make_runtime(max_parallel=2)
    plan = {"retry_job": {"key": "slow-fail", "fail_first": 1, "real_sleep": 0.3},
            "quick_job": {"key": "quick", "real_sleep": 0.2}, "interval_ms": 100}
    instance_id = runtime.start("batch_order", plan)
    runtime.start("blocker", ["slow-fail", "quick"])  # holds the dispatcher meanwhile
    result = runtime.wait(instance_id, TIMEOUT)
    assert result.output == {"double": 42,
                             "retried": {"key": "slow-fail", "value": None, "attempt": 2}}
    second_episode = result.history[result.history.index(events_of(result, 12)[1]):]
    second_episode = second_episode[:[e["EventType"] for e in second_episode].index(13)]
    assert {e["EventType"] for e in second_episode} >= {5, 6}, "test did not form a batch"
    history_ok(result.history)


def test_naive_batch_order_misattributes_results(make_runtime, monkeypatch):
    """Sanity check of the test above: without the ordering rule the results go wrong."""
    monkeypatch.setattr(LocalDurableRuntime, "_is_retry_side_effect",
                        staticmethod(lambda instance, message: False))
    runtime = make_runtime(max_parallel=2)
    plan = {"retry_job": {"key": "slow-fail", "fail_first": 1, "real_sleep": 0.3},
            "quick_job": {"key": "quick", "real_sleep": 0.2}, "interval_ms": 100}
    instance_id = runtime.start("batch_order", plan)
    runtime.start("blocker", ["slow-fail", "quick"])
    result = runtime.wait(instance_id, TIMEOUT)
    assert result.output != {"double": 42,
                             "retried": {"key": "slow-fail", "value": None, "attempt": 2}}


def test_fail_fast_task_all_with_retried_sibling_warns_about_misattribution(make_runtime):
    """The real hazard: new work after a failed task_all while a retried sibling still retries.

    The .NET shim invokes the new call only when the sibling ends; the sibling's retry timer and
    second attempt take ids in between, so Azure would number the new call differently.
    """
    plan = {"max_attempts": 3, "jobs": [
        {"key": "dies", "fail_first": 9},
        {"key": "slow", "duration": 5, "fail_first": 1},  # fails at 5 s, retried, ends at 11 s
    ], "extra": {"key": "extra", "duration": 20, "value": "x"}}
    result = make_runtime(virtual_time=True).run("fail_fast_then_more", plan, timeout=TIMEOUT)
    assert result.output == {"caught": "dies attempt 3 failed",
                             "extra": {"key": "extra", "value": "x", "attempt": 1}}
    assert any("misattributed" in w and "#1" in w for w in result.warnings), result.warnings


def test_fail_fast_task_all_without_retries_in_between_only_warns_about_delay(make_runtime):
    """Same shape, but the sibling is not retried: ids agree, only the start is late in Azure."""
    plan = {"max_attempts": 3, "jobs": [
        {"key": "dies", "fail_first": 9},
        {"key": "slow", "duration": 5},  # still running (virtual 5 s) when "dies" gives up
    ]}
    result = make_runtime(virtual_time=True).run("fail_fast_then_more", plan, timeout=TIMEOUT)
    assert result.output == {"caught": "dies attempt 3 failed", "extra": 10}
    assert len(result.warnings) == 1 and "would start top-level action #1" in result.warnings[0]
    assert "misattributed" not in result.warnings[0]


def test_new_work_after_awaiting_a_task_any_of_retried_tasks_warns(make_runtime):
    """The other direction: the shim is free early (the task_any ended), the SDK numbers the
    next call only after the retried task's retries took ids, so the shim numbers it earlier."""
    plan = {"retried": {"key": "r", "duration": 1, "fail_first": 1}, "quick": {"key": "q"}}
    result = make_runtime(virtual_time=True).run("any_then_more", plan, timeout=TIMEOUT)
    assert result.output == {"retried": {"key": "r", "value": None, "attempt": 2}, "extra": 10}
    assert any("misattributed" in w and "#1" in w for w in result.warnings), result.warnings


def test_new_work_after_a_task_any_without_retries_does_not_warn(make_runtime):
    plan = {"retried": {"key": "r", "duration": 1}, "quick": {"key": "q"}}
    result = make_runtime(virtual_time=True).run("any_then_more", plan, timeout=TIMEOUT)
    assert result.output["extra"] == 10 and result.warnings == []


def test_task_all_that_succeeds_does_not_warn(make_runtime):
    plan = {"max_attempts": 3, "jobs": [{"key": "a", "fail_first": 1}, {"key": "b"}]}
    result = make_runtime(virtual_time=True).run("fail_fast_then_more", plan, timeout=TIMEOUT)
    assert result.output == {"caught": None, "extra": 10}
    assert result.warnings == []


# --- timers and races -----------------------------------------------------------------------

def test_virtual_timer_jumps_the_clock(make_runtime, history_ok):
    runtime = make_runtime(virtual_time=True)
    began = time.monotonic()
    result = runtime.run("timer_probe", 3600, timeout=TIMEOUT)
    assert time.monotonic() - began < 10  # an hour of virtual time, not of real time
    before, after = (datetime.fromisoformat(t) for t in result.output)
    assert after - before == timedelta(hours=1)
    started = [parse_timestamp(e["Timestamp"]) for e in events_of(result, 12)]
    assert started[-1] == after  # current_utc_datetime is the episode's OrchestratorStarted
    history_ok(result.history)


@pytest.mark.parametrize("activity_seconds, timeout_seconds, winner", [
    (5, 3, "timer"), (2, 3, "activity"), (0, 1, "activity")])
def test_virtual_race_between_activity_and_timer(make_runtime, activity_seconds,
                                                 timeout_seconds, winner):
    plan = {"activity_seconds": activity_seconds, "timeout_seconds": timeout_seconds}
    result = make_runtime(virtual_time=True).run("race", plan, timeout=TIMEOUT)
    assert result.output == winner


def test_real_time_race_timer_wins(make_runtime):
    began = time.monotonic()
    result = make_runtime().run("race", {"activity_seconds": 1.0, "timeout_seconds": 0.2},
                                timeout=TIMEOUT)
    assert result.output == "timer"
    assert time.monotonic() - began >= 0.2


def test_real_time_race_activity_wins(make_runtime):
    result = make_runtime().run("race", {"activity_seconds": 0.05, "timeout_seconds": 1.5},
                                timeout=TIMEOUT)
    assert result.output == "activity"
    assert not events_of(result, 11), "completed without waiting for the cancelled timer"


def test_real_time_retry_really_waits(make_runtime, ledger):
    job = {"key": "rt", "fail_first": 2, "retry": True, "max_attempts": 3, "interval_ms": 150}
    began = time.monotonic()
    result = make_runtime().run("run_jobs", {"jobs": [job]}, timeout=TIMEOUT)
    assert time.monotonic() - began >= 0.3  # two real retry intervals
    assert result.output["rt"]["attempt"] == 3 and ledger.attempts["rt"] == 3


# --- custom status, replay flags ------------------------------------------------------------

def test_custom_status_is_reported_while_running(make_runtime):
    seen = []
    runtime: LocalDurableRuntime

    def on_status(instance_id, status):
        snapshot = runtime.get_status(instance_id)
        seen.append((status, snapshot.runtime_status, snapshot.custom_status))

    runtime = make_runtime(on_status=on_status)
    result = runtime.run("status_steps", 4, timeout=TIMEOUT)
    assert result.output == "finished"
    assert [s[0] for s in seen] == [{"step": i} for i in range(4)] + [{"step": "done"}]
    assert all(state == RUNNING and custom == status for status, state, custom in seen)
    assert result.custom_status == {"step": "done"}


def test_is_replaying_follows_is_played(make_runtime):
    assert make_runtime().run("replay_probe", timeout=TIMEOUT).output == [True, False]


def test_batches_never_exceed_the_backend_limit(make_runtime):
    runtime = make_runtime(max_parallel=4)
    assert runtime.run("many_noops", 200, timeout=TIMEOUT).output == 200
    assert 1 <= runtime.stats.largest_batch <= BATCH_LIMIT


# --- sub-orchestrations ---------------------------------------------------------------------

def test_sub_orchestrations_run_as_their_own_instances(make_runtime, history_ok):
    runtime = make_runtime(virtual_time=True)
    plan = {"chunks": [[1, 2], [3], [4, 5, 6]],
            "flaky": {"key": "child", "fail_first": 2, "max_attempts": 3}}
    result = runtime.run("sub_parent", plan, timeout=TIMEOUT)
    assert result.runtime_status == COMPLETED
    assert result.output["sums"] == [6, 6, 30]
    retried = result.output["retried"]
    assert retried["result"]["attempt"] == 3 and retried["parent"] == result.instance_id

    created = events_of(result, 7)
    assert len(created) == 3 + 3  # three chunks, three attempts of the flaky child
    assert len(events_of(result, 8)) == 4 and len(events_of(result, 9)) == 2
    children = {s.instance_id: s for s in runtime.list_instances()
                if s.instance_id != result.instance_id}
    assert {e["InstanceId"] for e in created} == set(children)
    execution_id = result.history[1]["OrchestrationInstance"]["ExecutionId"]
    assert all(e["InstanceId"] == f"{execution_id}:{e['EventId']}" for e in created)
    for child in children.values():
        parent = child.history[1]["ParentInstance"]["OrchestrationInstance"]
        assert parent["InstanceId"] == result.instance_id
        history_ok(child.history)
    history_ok(result.history)


def test_failed_sub_orchestration_raises_in_parent(make_runtime):
    result = make_runtime().run("sub_catcher", timeout=TIMEOUT)
    assert result.output.startswith(
        "Orchestrator function 'failing_orchestrator' failed: orchestrator exploded")


# --- termination, waiting -------------------------------------------------------------------

HOUR = 3600  # a real-time timer this long keeps an instance running for the whole test


def test_terminate(make_runtime):
    runtime = make_runtime()
    stuck = runtime.start("timer_probe", HOUR)
    time.sleep(0.05)
    assert runtime.get_status(stuck).runtime_status == RUNNING
    assert runtime.terminate(stuck, "enough") is True
    final = runtime.wait(stuck, TIMEOUT)
    assert final.runtime_status == TERMINATED and final.output == "enough"
    assert runtime.terminate(stuck, "again") is False


def test_wait_times_out_and_unknown_ids(make_runtime):
    runtime = make_runtime()
    stuck = runtime.start("timer_probe", HOUR)
    with pytest.raises(TimeoutError):
        runtime.wait(stuck, 0.05)
    assert runtime.get_status("unknown") is None
    with pytest.raises(KeyError):
        runtime.wait("unknown", 0.01)
    with pytest.raises(ValueError, match="already"):
        runtime.start("timer_probe", HOUR, instance_id=stuck)
    runtime.terminate(stuck)


def test_several_runtimes_share_one_app_concurrently(make_runtime):
    outputs = []

    def run_one(n):
        outputs.append(make_runtime(virtual_time=True).run("fan_out_fan_in", [n] * 5,
                                                           timeout=TIMEOUT).output)

    threads = [threading.Thread(target=run_one, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outputs) == [0, 10, 20, 30]


def test_large_fan_out_and_sub_orchestrations_complete(make_runtime, history_ok):
    runtime = make_runtime(max_parallel=4)
    big = runtime.run("many_noops", 500, timeout=120)
    assert big.output == 500
    history_ok(big.history)
    nested = runtime.run("many_noop_subs", {"subs": 10, "per_sub": 50}, timeout=120)
    assert nested.output == 500


def test_fan_out_after_an_earlier_activity_runs_in_parallel(make_runtime):
    """Regression: jobs submitted together once waited for the single idle worker thread."""
    runtime = make_runtime(max_parallel=4)
    result = runtime.run("warm_then_fan_out", [0.4, 0.4, 0.4])
    assert result.succeeded, result.error
    spans = sorted(result.output[1:])
    # Every fanned-out activity started before any of them finished.
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans


@pytest.mark.parametrize("bad", ["a/b", "a\\b", "a#b", "a?b", "a\tb", "@entity", "x" * 257])
def test_instance_ids_follow_durables_rules(make_runtime, bad):
    """`DurableClient.StartNewAsync` rejects these ids; a sub-orchestration with one fails its parent."""
    runtime = make_runtime(virtual_time=True)
    with pytest.raises(ValueError, match="(?i)instance id"):
        runtime.start("fan_out_fan_in", [1], instance_id=bad)
    result = runtime.run("named_child", bad, timeout=TIMEOUT)
    assert result.runtime_status == "Failed" and "instance id" in result.error.lower()


def test_sub_orchestration_ids_reuse_finished_instances_but_never_running_ones(make_runtime):
    """Durable (Azure Storage) replaces a finished instance that has the id; the local runtime
    fails a call that would replace a running one (Azure: its parent never hears back)."""
    runtime = make_runtime()
    assert runtime.run("fan_out_fan_in", [5], instance_id="child", timeout=TIMEOUT).succeeded
    reused = runtime.run("named_child", "child", instance_id="parent-1", timeout=TIMEOUT)
    assert reused.succeeded and runtime.get_status("child").input == [1, 2]  # replaced
    own = runtime.run("named_child", "parent-2", instance_id="parent-2", timeout=TIMEOUT)
    assert own.runtime_status == "Failed" and "different than the instance ID" in own.error
    stuck = runtime.start("timer_probe", HOUR, instance_id="busy")
    clash = runtime.run("named_child", "busy", timeout=TIMEOUT)
    assert clash.runtime_status == "Failed" and "still running" in clash.error
    runtime.terminate(stuck)
