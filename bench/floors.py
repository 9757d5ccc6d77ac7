"""What the libraries we build on cost on this machine, without any code of ours.

    .venv/bin/python -m bench.floors [--repeat 5] [--pipelines 30]

A floor and a reference point for issue 12's targets:

- **imports**: a fresh interpreter importing what a one-table SQL run cannot do without (dlt with
  its `sql_database` source and `filesystem` destination, SQLAlchemy, psycopg2, pyarrow with
  Parquet, connectorx), as CPU seconds of the child process; the fixed cost per run (target
  <= 1 s) cannot be lower than this while a run is one process that starts cold;
- **one dlt pipeline** (a reference point, not a floor): plain `dlt.pipeline(...).run()` of a
  100-row Arrow table to the `filesystem` destination as Parquet, no database and nothing of
  ours, warm (after three runs), as CPU seconds per pipeline. The issue keeps one dlt pipeline
  per job; our job resolves some of dlt's configuration once instead of on every call
  (`shared.lake.destination`, `shared.dlt_environ`), so it can cost less than this, but the
  jobs of one process share one interpreter lock: 500 jobs take about 500 times their CPU.

The figures are medians; they depend on the machine, so compare them with our own figures from
`bench.small_jobs` measured on the same box at the same time.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

IMPORTS = ("import dlt, sqlalchemy, psycopg2, pyarrow, pyarrow.parquet, connectorx, "
           "dlt.sources.sql_database, dlt.destinations")


def import_floor(repeat: int) -> list[float]:
    """CPU seconds (user + system) of fresh interpreters that only import the libraries."""
    seconds = []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-c", IMPORTS], check=True,
                       env={**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"})
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return seconds


def pipeline_floor(pipelines: int) -> tuple[float, float]:
    """(CPU, wall) seconds per plain dlt pipeline run of a 100-row Arrow table, in this process."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    import pyarrow as pa
    from dlt.destinations import filesystem

    table = pa.table({"id": list(range(100)), "name": [f"n{i}" for i in range(100)],
                      "value": [i * 1.5 for i in range(100)]})
    with tempfile.TemporaryDirectory() as root:
        def run(i: int) -> None:
            pipeline = dlt.pipeline(pipeline_name=f"floor_{i}", destination=filesystem(bucket_url=f"{root}/lake"),
                                    dataset_name=f"floor_{i}", pipelines_dir=f"{root}/pipelines")
            pipeline.run(dlt.resource(table, name=f"t_{i}"), loader_file_format="parquet")

        for i in range(3):
            run(i)  # warm: dlt imports and builds much on its first run
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(3, 3 + pipelines):
            run(i)
        return (time.process_time() - cpu) / pipelines, (time.perf_counter() - wall) / pipelines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh interpreters for the import floor")
    parser.add_argument("--pipelines", type=int, default=30, help="timed dlt pipelines for the pipeline floor")
    args = parser.parse_args(argv)
    imports = import_floor(args.repeat)
    cpu, wall = pipeline_floor(args.pipelines)
    print(f"{os.cpu_count()} cores; Python {sys.version.split()[0]}")
    print(f"  imports a SQL run needs, fresh interpreter: {statistics.median(imports):.2f} s CPU "
          f"(runs {' '.join(f'{s:.2f}' for s in imports)}); fixed-cost target 1.00 s")
    print(f"  one plain dlt pipeline (100-row Arrow table to Parquet): {cpu * 1000:.0f} ms CPU, {wall * 1000:.0f} ms wall; "
          f"x 500 = {500 * cpu:.0f} s CPU; 500-job target 40 s, per-job target 100 ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
