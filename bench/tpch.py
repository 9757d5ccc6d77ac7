"""TPC-H from PostgreSQL and MariaDB to Parquet: our CLI checked table by table and query by query,
and timed against the bare reference, plain dlt and ingestr in the same run.

    .venv/bin/python -m bench.tpch [--sf 1] [--engine postgresql|mariadb|both] [--repeat 3]
        [--compare lineitem] [--tools ours,reference,dlt,ingestr] [--correctness-only]
        [--check] [--setup] [--database tpch_bench] [--drop]
    .venv/bin/python -m bench.tpch --concurrency [--sf 1] [--repeat 3] [--solo-slots 1] [--largest-first]
        [--code CHECKOUT ...]

1. DuckDB's tpch extension generates the data (cached per scale factor); it is loaded into
   `--database` on both servers with the specification's types and primary keys.
2. Correctness: our CLI runs a workbook of all 8 tables per engine; every landed table is
   compared with DuckDB's (row count, whole-row checksum, exact Arrow types), then the 22
   TPC-H queries run on views over the landed Parquet and their answers are compared with
   DuckDB's on its own tables.
3. Speed (not with `--correctness-only`): every tool runs on the `--compare` tables, each run a
   whole process (start to exit) measured for wall time and the peak RSS of its process tree,
   interleaved tool by tool, `--repeat` times; every run's Parquet is verified before it counts.
   Medians and ratios against the bare reference are printed, then our fixed cost per run (a
   one-row table: whole process minus the job's own duration), then issue 12's targets.

`--concurrency` measures instead the 12-job workbook against issue 12's concurrency bound
(bench/tpch_concurrency.py): the whole run, and every job alone, through our CLI.

Exit status: 1 when a table or a query answer differs, or a tool fails; with `--check`, also
when a measured target is missed. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench.proctree import Measured, run_measured
from bench.tpch_data import (CACHE_DIR, Database, databases, drop, duckdb_connect, ensure_one_row_table, generate,
                             load, row_counts)
from bench.tpch_schema import TABLES
from bench import tpch_concurrency as concurrency
from bench.runs import Runs, compile_checkout
from bench.tpch_targets import Results, judge
from bench.tpch_tools import LABELS, ROOT, TOOLS, commands, ingestr_binary, write_workbook_for
from bench.tpch_verify import TableCheck, check_table, compare_queries, expected_checksums, landed_files

CHAR_NOTE = ("CHAR(n): DuckDB generates the values unpadded; PostgreSQL pads them on storage and our source "
             "trims them (keep_char_padding blank), so our landed values are compared with DuckDB's as they "
             "are; the peers' values are right-trimmed before comparing.")


class BenchFailure(Exception):
    """A tool failed or its output differs from DuckDB's: no figure is printed for it."""


def run_tool(tool: str, db: Database, tables: list[str], work_root: Path) -> tuple[Measured, Path]:
    """Run one tool once in a fresh folder; return its measurement and its output folder."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=work_root))
    out, workdir = run_dir / "out", run_dir / "work"
    out.mkdir()
    workdir.mkdir()
    if tool == "ours":
        write_workbook_for(db, tables, workdir)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RUNTIME__DLTHUB_TELEMETRY": "false", **db.secrets_env()}
    measured = run_measured(commands(tool, db, tables, out, workdir), cwd=workdir, env=env,
                            log=run_dir / "output.log", server_pid=db.server_pid())
    if measured.returncode != 0:
        tail = "\n".join(measured.output.splitlines()[-15:])
        raise BenchFailure(f"{LABELS[tool]} on {db.engine} exited {measured.returncode}:\n{tail}")
    return measured, out


def verify_run(tool: str, out: Path, tables: list[str], expected: dict[str, tuple[int, int]]) -> list[TableCheck]:
    """Check every table a run landed; raise when one differs."""
    checks = [check_table(expected[t], t, landed_files(out, t), exact_types=tool == "ours") for t in tables]
    wrong = [c for c in checks if not c.ok]
    if wrong:
        raise BenchFailure(f"{LABELS[tool]}: " + "; ".join(f"{c.table}: {c.describe()}" for c in wrong))
    return checks


def correctness(db: Database, native: Any, expected: dict[str, tuple[int, int]], counts: dict[str, int],
                results: Results, work_root: Path) -> bool:
    """Our CLI on all 8 tables: per-table checks and the 22 queries; print them, return True when all agree."""
    tables = list(TABLES)
    measured, out = run_tool("ours", db, tables, work_root)
    rows = sum(counts.values())
    print(f"\n{db.engine}: our CLI, one workbook of all 8 tables: {rows:,} rows in {measured.seconds:.2f} s "
          f"({rows / measured.seconds:,.0f} rows/s), peak RSS {measured.peak_rss_mib:,.0f} MiB")
    files = {t: landed_files(out, t) for t in tables}
    checks = [check_table(expected[t], t, files[t], exact_types=True) for t in tables]
    for c in checks:
        print(f"  {c.table:<9} {'ok  ' if c.ok else 'DIFF'} {c.describe()}")
    results.tables_ok[db.engine] = sum(c.ok for c in checks)
    print(f"  tables verified: {results.tables_ok[db.engine]}/8 (row count, whole-row checksum, exact Arrow types)")
    answers = compare_queries(native, files)
    shutil.rmtree(out.parent, ignore_errors=True)
    equal = [a for a in answers if a.equal]
    results.queries_equal[db.engine] = len(equal)
    print(f"  TPC-H queries: {len(equal)}/22 answers equal")
    for a in answers:
        if not a.equal:
            print(f"    Q{a.query} differs: {a.detail}")
    return len(equal) == 22 and results.tables_ok[db.engine] == 8


def compare(db: Database, tools: list[str], tables: list[str], rows: int, repeat: int,
            expected: dict[str, tuple[int, int]], work_root: Path) -> dict[str, Runs]:
    """Interleaved, verified runs of every tool; print the medians and the ratios."""
    runs = {t: Runs(rows) for t in tools}
    for _ in range(repeat):
        for tool in tools:
            measured, out = run_tool(tool, db, tables, work_root)
            verify_run(tool, out, tables, expected)
            shutil.rmtree(out.parent, ignore_errors=True)
            runs[tool].seconds.append(measured.seconds)
            runs[tool].peak_rss_mib.append(measured.peak_rss_mib)
            runs[tool].cpu_seconds.append(measured.cpu_seconds)
            if measured.server_cpu_seconds is not None:
                runs[tool].server_cpu_seconds.append(measured.server_cpu_seconds)
            print(f"  ({db.engine} run {len(runs[tool].seconds)}/{repeat}: {tool} {measured.seconds:.2f} s, "
                  f"{measured.peak_rss_mib:,.0f} MiB, verified)", file=sys.stderr, flush=True)
    print(f"\n{db.engine}: {', '.join(tables)} ({rows:,} rows), whole process start to exit, median of {repeat}, "
          "interleaved, every run verified")
    print(f"  {'tool':<34} {'rows/s':>10} {'seconds':>8} {'peak RSS MiB':>13} {'speed/ref':>10} {'RSS/ref':>8}")
    ref = runs.get("reference")
    for tool, r in runs.items():
        speed = f"{r.rows_per_second / ref.rows_per_second:.2f}" if ref else "-"
        rss = f"{r.median_rss / ref.median_rss:.2f}" if ref else "-"
        print(f"  {LABELS[tool]:<34} {r.rows_per_second:>10,.0f} {r.median_seconds:>8.2f} "
              f"{r.median_rss:>13,.0f} {speed:>10} {rss:>8}")
    print(f"  CPU seconds (medians): the tool's process tree, the {db.engine} server meanwhile, and both; on a "
          "box where the database shares the cores, the whole run cannot be shorter than both / cores")
    for tool, r in runs.items():
        server = statistics.median(r.server_cpu_seconds) if r.server_cpu_seconds else None
        tree = statistics.median(r.cpu_seconds)
        server_text = f"{server:8.2f}" if server is not None else "       -"
        both = f"{tree + server:8.2f}" if server is not None else "       -"
        print(f"  {LABELS[tool]:<34} tool {tree:8.2f}  server {server_text}  both {both}")
    print("  runs (s): " + "; ".join(f"{t}: " + " ".join(f"{s:.2f}" for s in r.seconds) for t, r in runs.items()))
    return runs


def fixed_cost(db: Database, repeat: int, work_root: Path) -> float:
    """Median seconds our CLI spends outside its one job, on a one-row table; print every run.

    The job's own time is its `duration_seconds` in the run's metrics JSON; the rest of the
    whole-process time is start-up, imports, validation, pre-flight, orchestration and bookkeeping.
    """
    table = ensure_one_row_table(db)
    costs = []
    for _ in range(repeat):
        measured, out = run_tool("ours", db, [table], work_root)
        jobs = json.loads((out.parent / "work" / "metrics.json").read_text())["jobs"]
        shutil.rmtree(out.parent, ignore_errors=True)
        if [j["rows_processed"] for j in jobs] != [1]:
            raise BenchFailure(f"one-row run on {db.engine}: metrics report {[j['rows_processed'] for j in jobs]} rows")
        costs.append(measured.seconds - jobs[0]["duration_seconds"])
    cost = statistics.median(costs)
    print(f"\n{db.engine}: fixed cost per run (one-row table: whole process minus the job's own duration), "
          f"median of {repeat}: {cost:.2f} s; runs (s): " + " ".join(f"{c:.2f}" for c in costs))
    return cost


def _versions() -> str:
    names = ["duckdb", "dlt", "connectorx", "pyarrow"]
    parts = []
    for name in names:
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} ?")
    if ingestr_binary().exists():
        out = subprocess.run([str(ingestr_binary()), "--version"], capture_output=True, text=True).stdout.strip()
        parts.append(out.replace(" version ", " ") or "ingestr ?")
    return ", ".join(parts)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sf", type=float, default=1.0, help="TPC-H scale factor (default 1)")
    parser.add_argument("--engine", choices=["postgresql", "mariadb", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tool; the median is printed")
    parser.add_argument("--compare", default="lineitem", help="comma-separated tables of the speed comparison")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated, of {', '.join(TOOLS)}")
    parser.add_argument("--correctness-only", action="store_true", help="our CLI and the checks; no peers, no repeats")
    parser.add_argument("--check", action="store_true", help="exit 1 when a measured target of issue 12 is missed")
    parser.add_argument("--setup", action="store_true", help="run bench/setup first (.venv-bench with ingestr)")
    parser.add_argument("--database", default="tpch_bench", help="database created on both servers")
    parser.add_argument("--drop", action="store_true", help="drop the database on both servers at the end")
    parser.add_argument("--concurrency", action="store_true",
                        help="only the 12-job workbook against the concurrency bound (both engines)")
    parser.add_argument("--solo-slots", type=int, default=1, help="--max-parallel of the solo runs (--concurrency)")
    parser.add_argument("--largest-first", action="store_true",
                        help="--concurrency: list the jobs largest first in the workbook (default: smallest first)")
    parser.add_argument("--code", action="append", metavar="CHECKOUT",
                        help="--concurrency: run the CLI of this checkout (repeatable, interleaved; default this one)")
    args = parser.parse_args(argv)
    if args.concurrency:
        args.engine = "both"
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    args.compare = [t.strip() for t in args.compare.split(",") if t.strip()]
    unknown = [t for t in args.tools if t not in TOOLS] + [t for t in args.compare if t not in TABLES]
    if unknown:
        parser.error(f"unknown tool or table: {', '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Generate, load, check, measure, judge; return the exit status."""
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows as it happens, also into a file
    if args.setup:
        subprocess.run([str(ROOT / "bench" / "setup")], check=True)
    if not args.correctness_only and not args.concurrency and "ingestr" in args.tools and not ingestr_binary().exists():
        print(f"{ingestr_binary()} is missing: run bench/setup (or --setup), or leave ingestr out with --tools",
              file=sys.stderr)
        return 2
    engines = ["postgresql", "mariadb"] if args.engine == "both" else [args.engine]
    dbs = databases(args.database)
    started = time.perf_counter()
    duckdb_file = generate(args.sf)
    counts = row_counts(duckdb_file)
    print(f"TPC-H SF {args.sf:g}: lineitem {counts['lineitem']:,} rows, {sum(counts.values()):,} in all; "
          f"{os.cpu_count()} cores; {_versions()}")
    print(f"  data: {duckdb_file} (generated or found in {time.perf_counter() - started:.1f} s)")
    print(f"  {CHAR_NOTE}")
    for engine in engines:
        t0 = time.perf_counter()
        loaded = load(dbs[engine], args.sf, duckdb_file)
        print(f"  {engine} database {args.database}: " + (f"loaded in {time.perf_counter() - t0:.1f} s" if loaded
                                                        else "already holds this scale factor"))
    results = Results()
    failed = False
    native = duckdb_connect(str(duckdb_file), read_only=True)
    work_root = Path(tempfile.mkdtemp(prefix="runs-", dir=CACHE_DIR))
    try:
        expected = expected_checksums(native)
        codes = [Path(c).resolve() for c in (args.code or [ROOT])]
        for code in codes:
            compile_checkout(code)
        if args.concurrency:
            runs = concurrency.measure(dbs, codes, args.repeat, args.solo_slots, counts, expected, work_root,
                                       args.largest_first)
            concurrency.report(runs, concurrency.usable_cores(), args.solo_slots, args.repeat)
            results.concurrency = concurrency.judged(runs, concurrency.usable_cores())
        for engine in engines if not args.concurrency else []:
            failed |= not correctness(dbs[engine], native, expected, counts, results, work_root)
        if not args.correctness_only and not args.concurrency:
            results.compared = args.compare
            rows = sum(counts[t] for t in args.compare)
            for engine in engines:
                results.runs[engine] = compare(dbs[engine], args.tools, args.compare, rows, args.repeat,
                                               expected, work_root)
                if "ours" in args.tools:
                    results.fixed_cost[engine] = fixed_cost(dbs[engine], args.repeat, work_root)
    except (BenchFailure, concurrency.ConcurrencyFailure) as exc:
        print(f"\nFAILED: {exc}")
        return 1
    finally:
        native.close()
        shutil.rmtree(work_root, ignore_errors=True)
        if args.drop:
            for engine in engines:
                drop(dbs[engine])
    lines, missed = judge(results, args.sf)
    print("\n" + "\n".join(lines))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    if failed:
        print("FAILED: a table or a query answer differs from DuckDB's")
        return 1
    if args.check and missed:
        print(f"--check: {missed} measured target(s) missed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
