"""Rows per second and peak memory from one SQL table to local Parquet, three ways, in one run.

    .venv/bin/python -m bench.throughput [--rows 1000000] [--engine postgresql|mariadb|both]
                                         [--repeat 3] [--rss-scaling]

(a) the bare reference: connectorx `read_sql(..., return_type="arrow", partition_on="id",
partition_num=2)` + `pyarrow.parquet.write_table`, no dlt; (b) dlt's `sql_table` with the
pyarrow backend through a plain pipeline (the old framework's way); (c) our job path,
`shared.runner.run_job`. Each run is its own process (so peak RSS is per variant), writes to a
fresh folder, and is checked against the source (row count, a checksum of every column, and
the Arrow type of every column) before any figure is printed. Figures are medians of
`--repeat` runs, interleaved a, b, c, a, b, c, ... `--rss-scaling` also runs (c) on a table five
times larger and prints both peaks and their ratio. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.runs import Runs
from bench.tables import ENGINES, Engine, ensure_table
from tests.checksums import parquet_checksums, read_parquet, source_checksums

ROOT = Path(__file__).resolve().parents[1]
WARMUP_ROWS = 1_000
SCALE = 5
LABELS = {
    "reference": "(a) connectorx + pq.write_table",
    "dlt_pyarrow": "(b) dlt sql_table, pyarrow backend",
    "job": "(c) our job path: run_job",
}


class VerificationError(Exception):
    """A variant's Parquet differs from the source: no figure is printed for it."""


@dataclass
class VariantRuns(Runs):
    """Every verified run of one variant on one table, and how its types differ from the source's."""

    variant: str = ""
    type_differences: dict[str, str] = field(default_factory=dict)


def run_once(variant: str, engine: Engine, table: str, rows: int, warmup: str) -> dict[str, Any]:
    """Run one variant in a fresh process and folder; return its JSON report (files still there)."""
    out = Path(tempfile.mkdtemp(prefix=f"bench-{variant}-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.variants", variant, engine.name, table, str(rows), warmup, str(WARMUP_ROWS), str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        shutil.rmtree(out, ignore_errors=True)
        raise SystemExit(f"{variant} on {engine.name} failed:\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    report["out"] = out
    return report


def verify(report: dict[str, Any], engine: Engine, expected: dict[str, tuple[int, Any]], rows: int) -> dict[str, str]:
    """Check a run's Parquet against the source; return the columns whose Arrow type differs.

    Raises:
        VerificationError: Wrong row count or a column checksum that differs from the source's.
    """
    table = read_parquet(report["files"])
    if table.num_rows != rows:
        raise VerificationError(f"{table.num_rows} rows landed, the source has {rows}")
    landed = parquet_checksums(table, "id")
    wrong = [name for name in expected if landed.get(name) != expected[name]]
    if wrong:
        raise VerificationError(f"checksums differ from the source for {', '.join(wrong)}")
    return {
        name: str(table.schema.field(name).type)
        for name, want in engine.arrow_types.items()
        if table.schema.field(name).type != want
    }


def measure(variants: list[str], engine: Engine, table: str, rows: int, repeat: int) -> dict[str, Runs]:
    """Interleaved runs of every variant, each verified before it counts."""
    expected = _source_checksums(engine, table)
    warmup = ensure_table(engine, WARMUP_ROWS)
    runs = {v: VariantRuns(rows, variant=v) for v in variants}
    for _ in range(repeat):
        for variant in variants:
            report = run_once(variant, engine, table, rows, warmup)
            try:
                runs[variant].type_differences = verify(report, engine, expected, rows)
            except VerificationError as exc:
                raise SystemExit(f"{LABELS[variant]} on {engine.name}: {exc}") from None
            finally:
                shutil.rmtree(report["out"], ignore_errors=True)
            runs[variant].seconds.append(report["seconds"])
            runs[variant].peak_rss_mib.append(report["peak_rss_mb"])
    return runs


def _source_checksums(engine: Engine, table: str) -> dict[str, tuple[int, Any]]:
    db = engine.sa_engine()
    try:
        return source_checksums(db, table, "id", engine.checksum_kinds)
    finally:
        db.dispose()


def print_engine(engine: Engine, rows: int, repeat: int, runs: dict[str, Runs]) -> None:
    """The table of one engine, its ratios and the type check."""
    print(f"\n{engine.name}: {rows:,} rows x {len(engine.arrow_types)} columns, median of {repeat} run(s), "
          "each verified (row count + checksum of every column)")
    print(f"  {'variant':<36} {'rows/s':>10} {'seconds':>8} {'peak RSS MiB':>13}  column types")
    for variant, r in runs.items():
        types = "as the source" if not r.type_differences else "differ: " + ", ".join(
            f"{k} {v}" for k, v in r.type_differences.items())
        print(f"  {LABELS[variant]:<36} {r.rows_per_second:>10,.0f} {r.median_seconds:>8.2f} {r.median_rss:>13.0f}  {types}")
    c, a, b = runs["job"], runs["reference"], runs["dlt_pyarrow"]
    print(f"  c/a = {c.rows_per_second / a.rows_per_second:.2f} (target >= 0.85)   "
          f"c/b = {c.rows_per_second / b.rows_per_second:.2f} (target >= 2.5)")
    print("  runs (s): " + "; ".join(f"{v}: " + " ".join(f"{s:.2f}" for s in r.seconds) for v, r in runs.items()))


def rss_scaling(engine: Engine, rows: int, repeat: int, small: Runs) -> None:
    """Our job path's peak RSS on a table `SCALE` times larger than `rows`, against `small`."""
    big_rows = rows * SCALE
    big_table = ensure_table(engine, big_rows)
    big = measure(["job"], engine, big_table, big_rows, repeat)["job"]
    ratio = big.median_rss / small.median_rss
    print(f"\n{engine.name}: our job path's peak RSS, median of {repeat} run(s), each verified")
    print(f"  {rows:>11,} rows: {small.median_rss:6.0f} MiB   ({small.rows_per_second:,.0f} rows/s)")
    print(f"  {big_rows:>11,} rows: {big.median_rss:6.0f} MiB   ({big.rows_per_second:,.0f} rows/s)")
    print(f"  ratio {ratio:.2f} (target <= 1.30)")


def main() -> None:
    """Parse the arguments, measure each engine, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--engine", choices=["postgresql", "mariadb", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rss-scaling", action="store_true", help=f"also run (c) on {SCALE}x the rows")
    args = parser.parse_args()
    engines = list(ENGINES.values()) if args.engine == "both" else [ENGINES[args.engine]]
    print(f"cores {os.cpu_count()}; dlt {version('dlt')}, connectorx {version('connectorx')}, "
          f"pyarrow {version('pyarrow')}; Parquet snappy everywhere (the defaults of both writers)")
    for engine in engines:
        table = ensure_table(engine, args.rows)
        runs = measure(list(LABELS), engine, table, args.rows, args.repeat)
        print_engine(engine, args.rows, args.repeat, runs)
        if args.rss_scaling:
            rss_scaling(engine, args.rows, args.repeat, runs["job"])


if __name__ == "__main__":
    main()
