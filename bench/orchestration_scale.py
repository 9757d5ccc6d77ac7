"""How orchestration bookkeeping grows with the number of jobs (the real orchestrator and activities
on the local durable runtime; each job's dlt work is replaced by a stand-in that stores a result,
so only the orchestration is measured).

    .venv/bin/python -m bench.orchestration_scale [--jobs 100 500] [--repeat 3]

Prints, per size: wall time, replays (episodes), time in the SDK's replay handler, the runtime's
own bookkeeping, the largest history, and the ratios between the sizes.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any


def measure(jobs: int) -> dict[str, Any]:
    """Run one orchestration of `jobs` stand-in jobs in a fresh state folder."""
    from function_app import app
    from orchestrations import ORCHESTRATOR
    from shared import steps
    from shared.workbook import write_workbook
    from ingest.durable import LocalDurableRuntime
    from shared.results import SUCCESS, JobResult

    tmp = Path(tempfile.mkdtemp(prefix="bench-orch-"))
    for setting, sub in (("INGESTION_STATE_DIR", "state"), ("INGESTION_METRICS_DIR", "metrics"),
                         ("INGESTION_AUDIT_DIR", "audit"), ("INGESTION_LOGS_DIR", "logs")):
        os.environ[setting] = str(tmp / sub)
    db = tmp / "tiny.sqlite"
    sqlite3.connect(db).execute("CREATE TABLE t0 (id INTEGER)")
    os.environ["SOURCES__TINY__PATH"] = str(db)
    workbook = tmp / "jobs.xlsx"
    write_workbook(workbook, [{"source_type": "sqlite", "source_name": "tiny", "table_name": f"t{i}",
                               "load_type": "FULL", "enabled": "Y"} for i in range(jobs)])

    def stand_in(key: str, plan_ref: str, index: int, attempt: int, run_id: str, services: Any) -> dict[str, Any]:
        job = services.runs.load_jobs(plan_ref)[index]
        result = JobResult(job.job_id, job.source_type, job.source_name, job.table_name, job.load_type, SUCCESS,
                           rows_processed=1, duration_seconds=0.001)
        services.runs.save_result(key, index, result)
        return steps.compact(result, index, attempt)

    real, steps.run_planned_job = steps.run_planned_job, stand_in
    try:
        with LocalDurableRuntime(app, max_parallel=4, virtual_time=True) as runtime:
            started = time.perf_counter()
            result = runtime.run(ORCHESTRATOR, {"config": str(workbook), "only": [], "dry_run": False})
            wall = time.perf_counter() - started
            histories = [len(i.history) for i in runtime.list_instances(show_history=True)]
            stats = runtime.stats
    finally:
        steps.run_planned_job = real
    assert result.succeeded and result.output["summary"]["successful"] == jobs, result.error
    return {"jobs": jobs, "wall_s": wall, "episodes": stats.episodes, "handler_s": stats.handler_seconds,
            "bookkeeping_s": stats.bookkeeping_seconds, "largest_history": max(histories), "instances": len(histories)}


def main() -> None:
    """Measure each size and print a table with ratios to the smallest."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the median run is shown")
    args = parser.parse_args()
    rows = []
    for n in args.jobs:
        runs = sorted((measure(n) for _ in range(args.repeat)), key=lambda r: r["wall_s"])
        rows.append(runs[len(runs) // 2])
    base = rows[0]
    print(f"{'jobs':>6} {'wall s':>8} {'episodes':>9} {'handler s':>10} {'bookkeep s':>11} {'max hist':>9} {'instances':>9}")
    for r in rows:
        print(f"{r['jobs']:>6} {r['wall_s']:>8.2f} {r['episodes']:>9} {r['handler_s']:>10.3f} {r['bookkeeping_s']:>11.4f} "
              f"{r['largest_history']:>9} {r['instances']:>9}")
    for r in rows[1:]:
        k = r["jobs"] / base["jobs"]
        print(f"{r['jobs']} vs {base['jobs']} jobs ({k:.0f}x): wall {r['wall_s'] / base['wall_s']:.1f}x, "
              f"handler {r['handler_s'] / base['handler_s']:.1f}x, bookkeeping {r['bookkeeping_s'] / base['bookkeeping_s']:.1f}x "
              f"(linear would be {k:.0f}x)")


if __name__ == "__main__":
    main()
