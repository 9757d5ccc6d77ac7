"""Randomised runs checked against a simple model of Durable Task semantics.

Each seed draws jobs with failures (an attempt k fails while k <= fail_first), retry
options, timeouts racing the work, pool sizes and real activity durations (which vary how
completions get batched), and sometimes splits the jobs over sub-orchestrations. Under
virtual time the outcome is fully determined: activities take no virtual time, a retried
job finishes at `failures * interval` (the timer after the last failed attempt is due at
once) and a timeout wins if it is due first. Timeouts are at half-seconds and intervals at
whole seconds, so there are no ties.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any, Optional

import pytest

from ingest.durable import COMPLETED
from ingest.durable.history import parse_timestamp

SEEDS = range(40)
TIMEOUT = 60


def draw_plan(seed: int) -> tuple[dict[str, Any], int]:
    """Random jobs (and how to run them) for one seed."""
    rng = random.Random(seed)
    jobs = []
    for index in range(rng.randint(1, 12)):
        retry = rng.random() < 0.7
        jobs.append({
            "key": f"s{seed}-j{index}",
            "value": rng.randint(0, 1000),
            "retry": retry,
            "max_attempts": rng.randint(1, 4) if retry else 1,
            "interval_ms": rng.choice([1000, 2000, 3000]),
            "fail_first": rng.choice([0, 0, 1, 1, 2, 3, 6]),
            "timeout_ms": rng.choice([None, None, 500, 1500, 2500, 4500, 9500]),
            "real_sleep": rng.choice([0, 0, 0.001, 0.003]),
        })
    plan: dict[str, Any] = {"jobs": jobs}
    if len(jobs) >= 2 and rng.random() < 0.35:
        cuts = sorted(rng.sample(range(1, len(jobs)), rng.randint(1, min(3, len(jobs) - 1))))
        bounds = [0, *cuts, len(jobs)]
        plan = {"chunks": [jobs[a:b] for a, b in zip(bounds, bounds[1:])]}
    return plan, rng.choice([1, 2, 3, 4, 8])


def model(job: dict[str, Any]) -> tuple[dict[str, Any], Optional[int], int]:
    """Expected (outcome, attempts or None if unknowable, virtual ms until resolved)."""
    failures_allowed = job["max_attempts"]
    if job["fail_first"] < failures_allowed:
        attempts = job["fail_first"] + 1
        finished_ms = job["fail_first"] * job["interval_ms"]
        outcome = {"status": "ok", "key": job["key"], "value": job["value"],
                   "attempt": attempts}
    else:
        attempts = failures_allowed
        finished_ms = (failures_allowed - 1) * job["interval_ms"]
        outcome = {"status": "failed", "error": f"{job['key']} attempt {attempts} failed"}
    timeout = job["timeout_ms"]
    if timeout is not None and timeout < finished_ms:
        return {"status": "timeout"}, None, timeout
    return outcome, attempts, finished_ms


@pytest.mark.parametrize("seed", SEEDS)
def test_random_jobs_match_the_model(seed, make_runtime, ledger, history_ok):
    plan, max_parallel = draw_plan(seed)
    jobs = plan.get("jobs") or [job for chunk in plan["chunks"] for job in chunk]
    statuses: dict[str, list[Any]] = defaultdict(list)
    runtime = make_runtime(virtual_time=True, max_parallel=max_parallel,
                           on_status=lambda iid, status: statuses[iid].append(status))

    result = runtime.run("run_jobs", plan, timeout=TIMEOUT)

    assert result.runtime_status == COMPLETED, result.error
    assert set(result.output) == {job["key"] for job in jobs}
    latest = 0
    for job in jobs:
        expected, attempts, resolved_ms = model(job)
        actual = result.output[job["key"]]
        latest = max(latest, resolved_ms)
        if expected["status"] == "failed":
            assert actual["status"] == "failed", (job, actual)
            assert actual["error"].startswith(expected["error"] + " \n ValueError"), (job, actual)
        else:
            assert actual == expected, job
        if attempts is None:  # timed out: the retries went on in the background for a while
            assert 1 <= ledger.attempts[job["key"]] <= min(job["fail_first"] + 1,
                                                           job["max_attempts"])
        else:
            assert ledger.attempts[job["key"]] == attempts, job

    # Virtual time: the run ends exactly when the slowest job resolves.
    started = [parse_timestamp(e["Timestamp"]) for e in result.history if e["EventType"] == 12]
    assert (started[-1] - started[0]).total_seconds() * 1000 == latest

    # Progress was reported while running by every job runner. One episode may deliver
    # several completions and only its last status is sent, so steps can be skipped.
    runners = [s for s in runtime.list_instances()
               if (s.input or {}).get("jobs") is not None]
    assert len(runners) == len(plan.get("chunks") or [None])
    for runner in runners:
        total = len(runner.input["jobs"])
        reported = statuses[runner.instance_id]
        assert all(s["total"] == total for s in reported)
        done = [s["done"] for s in reported]
        assert done == sorted(set(done)) and done[-1] == total
        assert runner.custom_status == {"done": total, "total": total}

    for instance in runtime.list_instances():
        history_ok(instance.history)
        assert instance.warnings == []  # a task_any loop is safe under the extension too


def test_model_covers_every_branch():
    """The seeds exercise timeouts, failures, successes after retries and sub-orchestrations."""
    seen = set()
    for seed in SEEDS:
        plan, _ = draw_plan(seed)
        jobs = plan.get("jobs") or [job for chunk in plan["chunks"] for job in chunk]
        seen.add("chunks" if "chunks" in plan else "flat")
        for job in jobs:
            outcome, attempts, _ = model(job)
            seen.add(outcome["status"])
            if outcome["status"] == "ok" and outcome["attempt"] > 1:
                seen.add("retried-ok")
    assert seen >= {"flat", "chunks", "ok", "failed", "timeout", "retried-ok"}
