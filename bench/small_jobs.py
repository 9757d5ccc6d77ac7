"""Many small one-table jobs through our CLI: total time, cost per job, and the fixed cost per run.

    .venv/bin/python -m bench.small_jobs [--jobs 500] [--rows 100] [--engine sqlite|postgresql|both]
        [--repeat 1] [--schema bench_small_jobs] [--code CHECKOUT ...] [--check]

Per engine, N tables of `--rows` rows each (SQLite: one file in the temp folder; PostgreSQL: the
schema `--schema` of the bench database, both created when missing) become a workbook of N FULL
jobs, and `python -m ingest run` runs it in a fresh folder (whole process, start to exit). Then the
same CLI runs a workbook of one of those tables: its whole-process time minus the job's own
`duration_seconds` from the metrics is the fixed cost per run; `(total - fixed) / N` is the cost
per job. Runs are interleaved (one-job, N-job, one-job, ...) and medians are printed. `--code`
(repeatable) runs the CLI of other checkouts too, interleaved, to compare before and after.

Exit status: 1 when a run fails or lands the wrong row count; with `--check`, also when a target
of issue 12 is missed: fixed cost per run <= 1 s, cost per job <= 0.1 s, and (with 500 PostgreSQL
jobs) the whole run <= 40 s. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from bench.runs import compile_checkout

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
SOURCE_NAME = {"sqlite": "small_sqlite", "postgresql": "small_pg"}
FIXED_COST_TARGET = 1.0
PER_JOB_TARGET = 0.1
PG_500_TARGET = 40.0
"""Seconds for 500 PostgreSQL jobs of 100 rows (issue 12)."""


@dataclass
class EngineRuns:
    """The measured runs of one engine."""

    jobs: int
    totals: list[float] = field(default_factory=list)
    fixed: list[float] = field(default_factory=list)

    @property
    def total(self) -> float:
        """Median whole-process seconds of the N-job run."""
        return statistics.median(self.totals)

    @property
    def fixed_cost(self) -> float:
        """Median seconds of a one-job run outside its job."""
        return statistics.median(self.fixed)

    @property
    def per_job(self) -> float:
        """Seconds each job adds: (total - fixed) / N."""
        return (self.total - self.fixed_cost) / self.jobs


def table_names(jobs: int) -> list[str]:
    """The source tables, `small_0000` ..."""
    return [f"small_{i:04d}" for i in range(jobs)]


def _rows(rows: int) -> list[tuple[int, str, float]]:
    return [(i, f"name {i} ☕", i * 1.25) for i in range(1, rows + 1)]


def ensure_sqlite(path: Path, jobs: int, rows: int) -> None:
    """Create the SQLite file's missing tables (id, name, amount; `rows` rows each)."""
    with sqlite3.connect(path) as conn:
        have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table in table_names(jobs):
            if table in have:
                continue
            conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT, amount REAL)")
            conn.executemany(f"INSERT INTO {table} VALUES (?, ?, ?)", _rows(rows))


def ensure_postgresql(schema: str, jobs: int, rows: int) -> None:
    """Create the schema's missing tables (id int primary key, name text, amount numeric(10,2))."""
    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            have = set(conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = :s"),
                                    {"s": schema}).scalars())
            for table in table_names(jobs):
                if table in have:
                    continue
                conn.execute(sa.text(f'CREATE TABLE "{schema}".{table} (id int PRIMARY KEY, name text, '
                                     "amount numeric(10,2))"))
                conn.execute(sa.text(f'INSERT INTO "{schema}".{table} SELECT g, \'name \' || g || \' ☕\', '
                                     f"g * 1.25 FROM generate_series(1, {rows}) g"))
                conn.execute(sa.text(f'ANALYZE "{schema}".{table}'))
    finally:
        engine.dispose()


def secrets_env(engine: str, sqlite_file: Path) -> dict[str, str]:
    """The source's credentials as dlt-style environment variables."""
    prefix = f"SOURCES__{SOURCE_NAME[engine].upper()}__"
    if engine == "sqlite":
        return {prefix + "PATH": str(sqlite_file)}
    url = sa.make_url(PG_URL)
    values = {"HOST": url.host, "PORT": url.port, "DATABASE": url.database, "USERNAME": url.username,
              "PASSWORD": url.password}
    return {prefix + k: str(v) for k, v in values.items() if v is not None}


def write_workbook(path: Path, engine: str, tables: list[str], schema: str) -> None:
    """One FULL job per table."""
    from shared.workbook import write_workbook as write

    extra = {"schema_name": schema} if engine == "postgresql" else {}
    write(path, [{"source_type": engine, "source_name": SOURCE_NAME[engine], "table_name": t, "load_type": "FULL",
                  "enabled": "Y", **extra} for t in tables])


def run_cli(workbook: Path, env: dict[str, str], rows: int, jobs: int, work_root: Path) -> tuple[float, list[dict]]:
    """One whole `python -m ingest run` in a fresh folder: (seconds, metrics jobs); checks every job landed.

    The code that runs is the checkout on `env["PYTHONPATH"]`.
    """
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work_root))
    command = [sys.executable, "-m", "ingest", "run", str(workbook), "--lake", str(run_dir / "lake"),
               "--metrics-out", str(run_dir / "metrics.json")]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=run_dir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"ingest run failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())["jobs"]
    shutil.rmtree(run_dir, ignore_errors=True)
    landed = [j["rows_processed"] for j in metrics]
    if len(metrics) != jobs or any(n != rows for n in landed):
        raise SystemExit(f"expected {jobs} jobs of {rows} rows, metrics report {landed[:10]}...")
    return seconds, metrics


def measure(engine: str, args: argparse.Namespace, work_root: Path) -> dict[str, EngineRuns]:
    """Interleaved one-job and N-job runs of one engine, per checkout (`--code`): label -> runs."""
    sqlite_file = Path(tempfile.gettempdir()) / f"bench_small_jobs_{args.rows}.sqlite"
    if engine == "sqlite":
        ensure_sqlite(sqlite_file, args.jobs, args.rows)
    else:
        ensure_postgresql(args.schema, args.jobs, args.rows)
    tables = table_names(args.jobs)
    one, many = work_root / f"{engine}_one.xlsx", work_root / f"{engine}_{args.jobs}.xlsx"
    write_workbook(one, engine, tables[:1], args.schema)
    write_workbook(many, engine, tables, args.schema)
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false", **secrets_env(engine, sqlite_file)}
    codes = [Path(c).resolve() for c in (args.code or [ROOT])]
    for code in codes:
        compile_checkout(code)
    results = {_label(engine, code, len(codes)): EngineRuns(args.jobs) for code in codes}
    for i in range(args.repeat):
        for code, runs in zip(codes, results.values()):
            code_env = {**env, "PYTHONPATH": str(code)}
            seconds, jobs = run_cli(one, code_env, args.rows, 1, work_root)
            runs.fixed.append(seconds - jobs[0]["duration_seconds"])
            seconds, jobs = run_cli(many, code_env, args.rows, args.jobs, work_root)
            runs.totals.append(seconds)
            print(f"  ({_label(engine, code, len(codes))} run {i + 1}/{args.repeat}: one job {runs.fixed[-1]:.2f} s "
                  f"outside the job; {args.jobs} jobs {seconds:.2f} s; jobs' own time summed "
                  f"{sum(j['duration_seconds'] for j in jobs):.2f} s)", file=sys.stderr, flush=True)
    return results


def _label(engine: str, code: Path, codes: int) -> str:
    """`engine`, or `engine@<checkout folder>` when several checkouts are compared."""
    return engine if codes == 1 else f"{engine}@{code.name}"


def judge(results: dict[str, EngineRuns]) -> tuple[list[str], int]:
    """The printed target lines and how many targets were missed."""
    lines, missed = ["Targets (issue 12)"], 0

    def line(text: str, value: float, bound: float) -> None:
        nonlocal missed
        ok = value <= bound
        missed += not ok
        lines.append(f"  [{'ok' if ok else 'MISSED':^8}] {text}: {value:.2f} (target <= {bound:g})")

    for label, runs in results.items():
        engine = label.split("@")[0]
        line(f"{label}: fixed cost per run, seconds", runs.fixed_cost, FIXED_COST_TARGET)
        line(f"{label}: cost per job, seconds ({runs.jobs} jobs)", runs.per_job, PER_JOB_TARGET)
        if engine == "postgresql" and runs.jobs == 500:
            line(f"{label}: 500 small PostgreSQL jobs, seconds", runs.total, PG_500_TARGET)
    return lines, missed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500, help="one-table jobs in the workbook (default 500)")
    parser.add_argument("--rows", type=int, default=100, help="rows per table (default 100)")
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each workbook; medians are printed")
    parser.add_argument("--schema", default="bench_small_jobs", help="PostgreSQL schema of the tables")
    parser.add_argument("--code", action="append", metavar="CHECKOUT",
                        help="run the CLI of this checkout (repeatable: runs interleaved; default this one)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the bench; return the exit status."""
    args = parse_args(argv)
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    work_root = Path(tempfile.mkdtemp(prefix="bench-small-jobs-"))
    try:
        results = {label: runs for engine in engines for label, runs in measure(engine, args, work_root).items()}
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    print(f"{args.jobs} one-table jobs of {args.rows} rows, whole process start to exit, "
          f"median of {args.repeat}, {os.cpu_count()} cores")
    width = max(12, *(len(label) for label in results))
    print(f"  {'engine':<{width}} {'total s':>9} {'per job s':>10} {'fixed s':>8}   runs (s)")
    for label, r in results.items():
        print(f"  {label:<{width}} {r.total:>9.2f} {r.per_job:>10.3f} {r.fixed_cost:>8.2f}   "
              f"total {' '.join(f'{s:.2f}' for s in r.totals)}; fixed {' '.join(f'{s:.2f}' for s in r.fixed)}")
    lines, missed = judge(results)
    print("\n".join(lines))
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
