"""Measure the local runtime's own cost (not a test): `python -m ingest.durable.bench_runtime`.

Prints, per workload, the wall time, the number of episodes, the time inside the SDK's
replay handler (inherent: each episode re-runs the generator over the whole history) and
the runtime's bookkeeping time (history events, ids, JSON, dispatching), best of a few
repetitions. Workloads: a fan-out of N no-op activities, a chain of N sequential ones, and
fan-outs split over sub-orchestrations.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any, Optional

import azure.durable_functions as df

from .models import COMPLETED, RuntimeStats
from .runtime import LocalDurableRuntime

bench_app = df.DFApp()


@bench_app.activity_trigger(input_name="value")
def bench_noop(value: Any) -> None:
    """Does nothing, so only the runtime and the SDK are measured."""
    return None


@bench_app.orchestration_trigger(context_name="context")
def bench_fan_out(context: df.DurableOrchestrationContext):
    """`input` no-op activities in one task_all."""
    results = yield context.task_all([context.call_activity("bench_noop", i)
                                      for i in range(context.get_input())])
    return len(results)


@bench_app.orchestration_trigger(context_name="context")
def bench_chain(context: df.DurableOrchestrationContext):
    """`input` no-op activities one after the other (one episode each)."""
    for i in range(context.get_input()):
        yield context.call_activity("bench_noop", i)
    return context.get_input()


@bench_app.orchestration_trigger(context_name="context")
def bench_subs(context: df.DurableOrchestrationContext):
    """`subs` sub-orchestrations of `per_sub` no-op activities each."""
    plan = context.get_input()
    counts = yield context.task_all([context.call_sub_orchestrator("bench_fan_out",
                                                                   plan["per_sub"])
                                     for _ in range(plan["subs"])])
    return sum(counts)


def measure(name: str, payload: Any, max_parallel: int, repeat: int) -> dict[str, Any]:
    """Run one workload `repeat` times on fresh runtimes; keep the fastest bookkeeping."""
    best: Optional[tuple[float, RuntimeStats, int]] = None
    for _ in range(repeat):
        runtime = LocalDurableRuntime(bench_app, max_parallel=max_parallel)
        began = time.perf_counter()
        result = runtime.run(name, payload, timeout=600)
        wall = time.perf_counter() - began
        runtime.close()
        assert result.runtime_status == COMPLETED, result.error
        if best is None or runtime.stats.bookkeeping_seconds < best[1].bookkeeping_seconds:
            best = (wall, runtime.stats, len(result.history))
    assert best is not None
    wall, stats, events = best
    return {"wall_s": wall, "episodes": stats.episodes, "handler_s": stats.handler_seconds,
            "bookkeeping_s": stats.bookkeeping_seconds, "activities": stats.activities,
            "events": events}


def main(argv: Optional[list[str]] = None) -> None:
    """Print the bookkeeping figures for 100 vs 500 activities."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-parallel", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)  # the app indexer warns about auth levels

    # A chain of 500 replays 500 times over a growing history (~25 s in the SDK): run once.
    workloads = [
        ("fan-out 100", "bench_fan_out", 100, args.repeat),
        ("fan-out 500", "bench_fan_out", 500, args.repeat),
        ("2 subs x 50", "bench_subs", {"subs": 2, "per_sub": 50}, args.repeat),
        ("10 subs x 50", "bench_subs", {"subs": 10, "per_sub": 50}, args.repeat),
        ("chain 100", "bench_chain", 100, 1),
        ("chain 500", "bench_chain", 500, 1),
    ]
    print(f"{'workload':<14}{'wall s':>8}{'episodes':>9}{'handler s':>11}"
          f"{'bookkeep s':>12}{'bk us/task':>12}{'bk us/episode':>15}")
    for label, name, payload, repeat in workloads:
        row = measure(name, payload, args.max_parallel, repeat)
        per_task = row["bookkeeping_s"] / row["activities"] * 1e6
        per_episode = row["bookkeeping_s"] / row["episodes"] * 1e6
        print(f"{label:<14}{row['wall_s']:>8.3f}{row['episodes']:>9}{row['handler_s']:>11.3f}"
              f"{row['bookkeeping_s']:>12.4f}{per_task:>12.1f}{per_episode:>15.1f}")


if __name__ == "__main__":
    main()
