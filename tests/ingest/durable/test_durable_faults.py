"""At-least-once fault modes of the local runtime: what runs, what is recorded, what the history says.

The activities are the test app's (`conftest.py`); the ledger counts what really ran.
"""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from ingest.durable import (COMPLETED, KILL, MODES, REDELIVER, TWICE, ActivityKilled, FaultRule,
                            Faults)
from ingest.durable.faults import DEFAULT_KILL_CALLS, learned_length

TIMEOUT = 30


def scheduled(result, name):
    return [e for e in result.history if e["EventType"] == 4 and e["Name"] == name]


def completions(result):
    return [e for e in result.history if e["EventType"] in (5, 6)]


def one_job(key, **job):
    return {"jobs": [{"key": key, "retry": False, **job}]}


# --- off by default, config validation --------------------------------------------------------

def test_no_faults_unless_configured(make_runtime, ledger):
    rt = make_runtime()
    result = rt.run("run_jobs", one_job("a"), timeout=TIMEOUT)
    assert result.output["a"]["attempt"] == 1 and ledger.attempts["a"] == 1
    assert rt.fault_counts == {} and rt.injected_faults == []


def test_invalid_configs_are_refused():
    with pytest.raises(ValueError, match="sum to <= 1"):
        Faults(redeliver_after_completion=0.6, kill_mid_activity=0.6)
    with pytest.raises(ValueError, match="unknown fault mode"):
        FaultRule("flaky", 1, "explode")
    with pytest.raises(ValueError, match="unknown fault mode"):
        Faults.only("explode", seed=1)
    assert not issubclass(ActivityKilled, Exception)  # `except Exception` must not stop a kill


# --- redeliver_after_completion -------------------------------------------------------------

def test_redelivery_runs_the_activity_again_and_records_the_second_result(make_runtime, ledger, history_ok, caplog):
    rt = make_runtime(faults=Faults.only(REDELIVER, seed=1))
    with caplog.at_level(logging.INFO, logger="ingest.durable.runtime"):
        result = rt.run("run_jobs", one_job("a", value=7), timeout=TIMEOUT)
    assert result.runtime_status == COMPLETED
    assert ledger.attempts["a"] == 2 and ledger.finished["a"] == 2
    assert result.output["a"] == {"status": "ok", "key": "a", "value": 7, "attempt": 2}
    # Durable's history: one TaskScheduled, one TaskCompleted for the task.
    assert len(scheduled(result, "flaky")) == 1 and len(completions(result)) == 1
    history_ok(result.history)
    assert rt.fault_counts == {REDELIVER: 1}
    [fault] = rt.injected_faults
    assert (fault.mode, fault.activity, fault.occurrence, fault.task_id) == (REDELIVER, "flaky", 1, 0)
    assert any("fault redeliver_after_completion: flaky #1" in r.getMessage() for r in caplog.records)


def test_a_failed_first_run_is_redelivered_too_and_only_the_second_outcome_counts(make_runtime, ledger, history_ok):
    rt = make_runtime(faults=Faults.only(REDELIVER, seed=1))
    result = rt.run("run_jobs", one_job("a", fail_first=1), timeout=TIMEOUT)
    assert result.output["a"]["status"] == "ok" and result.output["a"]["attempt"] == 2
    assert [e["EventType"] for e in completions(result)] == [5]  # TaskCompleted, no TaskFailed
    history_ok(result.history)


# --- kill_mid_activity ----------------------------------------------------------------------

def test_kill_interrupts_the_first_run_mid_way_then_redelivers(make_runtime, ledger, history_ok):
    # Occurrence 1 runs clean (the runtime learns its length); occurrence 2 is killed half-way.
    faults = Faults(schedule=(FaultRule("busy", 2, KILL, kill_at=0.5),))
    rt = make_runtime(faults=faults)
    first = rt.run("busy_jobs", [{"key": "warm", "steps": 400}], timeout=TIMEOUT)
    assert first.output[0]["steps"] == 400 and rt.fault_counts == {}
    assert learned_length("busy") and learned_length("busy") > 400

    result = rt.run("busy_jobs", [{"key": "k", "steps": 400}], timeout=TIMEOUT)
    assert result.output == [{"key": "k", "attempt": 2, "steps": 400}]
    killed, rerun = ledger.steps["k"]
    assert 50 < killed < 350 and rerun == 400  # stopped mid-way, then a full redelivery
    assert ledger.attempts["k:caught"] == 0  # `except Exception` in the activity did not see it
    assert ledger.finished["k"] == 2  # limit of the model: `finally` blocks still run
    assert len(scheduled(result, "busy")) == 1 and len(completions(result)) == 1
    history_ok(result.history)
    [fault] = rt.injected_faults
    assert fault.mode == KILL and fault.occurrence == 2 and fault.detail.startswith("killed at call event")


def test_kill_at_an_explicit_call_event(make_runtime, ledger):
    rt = make_runtime(faults=Faults(schedule=(FaultRule("busy", 1, KILL, kill_at=60),)))
    result = rt.run("busy_jobs", [{"key": "k", "steps": 400}], timeout=TIMEOUT)
    assert result.output[0]["attempt"] == 2
    assert ledger.steps["k"][0] < 60 and ledger.steps["k"][1] == 400
    assert rt.injected_faults[0].detail.startswith("killed at call event 60")


def test_a_kill_point_past_the_end_kills_just_before_the_result_is_recorded(make_runtime, ledger):
    rt = make_runtime(faults=Faults(schedule=(FaultRule("busy", 1, KILL, kill_at=10**9),)))
    result = rt.run("busy_jobs", [{"key": "k", "steps": 50}], timeout=TIMEOUT)
    assert ledger.steps["k"] == [50, 50] and result.output[0]["attempt"] == 2
    assert rt.fault_counts == {KILL: 1}
    assert rt.injected_faults[0].detail.startswith("killed at the end")


def test_clean_runs_are_traced_only_while_a_kill_needs_their_length(make_runtime):
    """Tracing slows an activity down severalfold: lengths given in `kill_calls` spare it."""
    kill_second = (FaultRule("busy", 2, KILL),)
    given = make_runtime(faults=Faults(schedule=kill_second, kill_calls={"busy": 5_000}))
    assert given.run("busy_jobs", [{"key": "a", "steps": 10}], timeout=TIMEOUT).succeeded
    assert given.activity_lengths == {}
    learning = make_runtime(faults=Faults(schedule=kill_second, kill_calls={"other": 5_000}))
    assert learning.run("busy_jobs", [{"key": "b", "steps": 10}], timeout=TIMEOUT).succeeded
    assert learning.activity_lengths["busy"] > 10
    measuring = make_runtime(faults=Faults(measure=True, kill_calls=5_000))
    assert measuring.run("busy_jobs", [{"key": "c", "steps": 10}], timeout=TIMEOUT).succeeded
    assert measuring.activity_lengths["busy"] > 10


def test_kill_fractions_apply_to_kill_calls_when_given(make_runtime, ledger):
    faults = Faults(seed=3, kill_mid_activity=1.0, kill_calls=DEFAULT_KILL_CALLS * 10)
    decision = faults.decide("busy", 1)
    assert decision is not None and decision.kill_point(faults.kill_calls) == 1 + int(
        decision.kill_at * DEFAULT_KILL_CALLS * 10)


# --- deliver_twice_concurrently -------------------------------------------------------------

def test_two_executions_overlap_and_the_first_to_finish_is_recorded(make_runtime, ledger, history_ok, caplog):
    # The duplicate starts 0.5 s after the original and both take ~2 s: only a thread starved for
    # half a second (a loaded CI box) could reverse who finishes first (0.05 s / 0.3 s did, twice).
    rt = make_runtime(faults=Faults.only(TWICE, seed=5, duplicate_delay=0.5))
    with caplog.at_level(logging.INFO, logger="ingest.durable.runtime"):
        result = rt.run("busy_jobs", [{"key": "k", "steps": 20, "sleep": 2.0}], timeout=TIMEOUT)
    assert ledger.attempts["k"] == 2 and ledger.finished["k"] == 2  # joined before recording
    (start1, end1), (start2, end2) = sorted(ledger.spans["k"])
    assert start2 < end1, "the two executions did not run at the same time"
    # The original starts first and both take as long: it finishes first and is recorded.
    assert result.output == [{"key": "k", "attempt": 1, "steps": 20}]
    assert len(scheduled(result, "busy")) == 1 and len(completions(result)) == 1
    history_ok(result.history)
    assert rt.fault_counts == {TWICE: 1}
    assert any("ended second" in r.getMessage() and "discarded" in r.getMessage() for r in caplog.records)


# --- seeds, filters, history shapes under load --------------------------------------------------

def decisions(seed: int, probability: float = 0.5, n: int = 40) -> list:
    faults = Faults(seed=seed, redeliver_after_completion=probability / 2, kill_mid_activity=probability / 4,
                    deliver_twice_concurrently=probability / 4)
    return [faults.decide("double", k) for k in range(1, n + 1)]


def test_decisions_are_deterministic_per_seed_and_follow_the_probabilities():
    assert decisions(7) == decisions(7)
    assert decisions(7) != decisions(8)
    many = Counter(d.mode if d else None for d in decisions(11, probability=0.4, n=4000))
    assert abs(many[None] / 4000 - 0.6) < 0.03
    assert abs(many[REDELIVER] / 4000 - 0.2) < 0.03
    assert abs(many[KILL] / 4000 - 0.1) < 0.02 and abs(many[TWICE] / 4000 - 0.1) < 0.02


def test_a_seed_gives_the_same_faults_to_the_same_run(make_runtime, ledger, history_ok):
    def faulted(seed):
        rt = make_runtime(max_parallel=4, faults=Faults(seed=seed, redeliver_after_completion=0.3,
                                                        deliver_twice_concurrently=0.2))
        result = rt.run("fan_out_fan_in", list(range(12)), timeout=TIMEOUT)
        assert result.output == sum(2 * v for v in range(12))  # results unchanged by faults
        assert len(scheduled(result, "double")) == 12 and len(completions(result)) == 12
        history_ok(result.history)
        return sorted((f.occurrence, f.mode) for f in rt.injected_faults), rt.fault_counts

    first, counts = faulted(21)
    assert first == faulted(21)[0] and first != faulted(22)[0]
    assert sum(counts.values()) == len(first) > 0


def test_only_the_named_activities_get_faults(make_runtime, ledger):
    rt = make_runtime(faults=Faults(seed=1, redeliver_after_completion=1.0, activities={"flaky"}))
    rt.run("fan_out_fan_in", [1, 2, 3], timeout=TIMEOUT)
    assert rt.fault_counts == {}
    rt.run("run_jobs", one_job("a"), timeout=TIMEOUT)
    assert rt.fault_counts == {REDELIVER: 1} and ledger.attempts["a"] == 2


@pytest.mark.parametrize("mode", MODES)
def test_retries_and_faults_together_keep_durable_history_shapes(mode, make_runtime, ledger, history_ok):
    rt = make_runtime(max_parallel=3, faults=Faults.only(mode, seed=2, kill_calls=2000))
    jobs = [{"key": f"j{i}", "retry": True, "interval_ms": 10, "max_attempts": 3, "fail_first": i % 2}
            for i in range(4)]
    result = rt.run("run_jobs", {"jobs": jobs}, timeout=TIMEOUT)
    assert result.runtime_status == COMPLETED and all(v["status"] == "ok" for v in result.output.values())
    history_ok(result.history)
    ids = [e["TaskScheduledId"] for e in completions(result)]
    assert len(ids) == len(set(ids)) == len(scheduled(result, "flaky"))
    assert rt.fault_counts[mode] == len(scheduled(result, "flaky"))  # every first delivery faulted
