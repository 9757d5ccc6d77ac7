"""Issue 12's concurrency bound on a 12-job TPC-H workbook: the whole run against the sum of its
jobs' solo times divided by the cores (`python -m bench.tpch --concurrency`).

The workbook: the 8 PostgreSQL tables and MariaDB's 4 largest (part, partsupp, orders,
lineitem), one FULL job each, smallest first as `TABLES` lists them (so the two lineitems come
last, the hardest order for a run to pack; `--largest-first` lists them by rows, largest first).
Per repeat and per checkout (`--code`, interleaved):

- the whole workbook through our CLI at its default slots (the usable cores): its **span** is
  first job start to last job end (`extra.started_at` / `extra.finished_at` of the metrics
  JSON), the whole process is printed too;
- every job **solo**: the same workbook with `--only SOURCE.TABLE --max-parallel S` (`--solo-slots`,
  default 1: the job on one slot, so one stream; the sum of those divided by the cores is what a
  perfect packing of single-slot jobs would take). A solo time is the job's own
  `duration_seconds` from the metrics JSON (start-up and bookkeeping excluded, as in the span).

Figure: the median span / (the sum of the jobs' median solo times / the usable cores); the
target is ≤ 1.15. Every run must report each table's row count; the whole runs' tables are also
checked against DuckDB's (row count and whole-row checksum).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.tpch_data import Database
from bench.tpch_schema import TABLES
from bench.tpch_tools import ROOT
from bench.tpch_verify import check_table, landed_files
from shared.cpu_slots import usable_cores

class ConcurrencyFailure(Exception):
    """A run failed or landed a table that differs from DuckDB's: no figure is printed."""


MARIADB_TABLES = ("part", "partsupp", "orders", "lineitem")
"""MariaDB's four largest tables, smallest first."""


def cpu_jiffies() -> tuple[int, int]:
    """The machine's busy and total CPU time so far (`/proc/stat`, all cores, in clock ticks)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def busy_cores(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Average number of the machine's cores busy between two `cpu_jiffies()` readings (every
    process: ours, the database servers, anything else running)."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return busy / total * (os.cpu_count() or 1) if total > 0 else 0.0


@dataclass(frozen=True)
class Job:
    """One job of the workbook."""

    db: Database
    table: str

    @property
    def label(self) -> str:
        """`SOURCE.TABLE`, as `--only` takes it."""
        return f"{self.db.source_name}.{self.table}"


@dataclass
class CodeRuns:
    """Every measured run of one checkout."""

    spans: list[float] = field(default_factory=list)
    processes: list[float] = field(default_factory=list)
    solo: dict[str, list[float]] = field(default_factory=dict)
    solo_slices: dict[str, str] = field(default_factory=dict)
    whole_slices: dict[str, str] = field(default_factory=dict)
    whole_seconds: dict[str, list[float]] = field(default_factory=dict)
    solo_busy: dict[str, list[float]] = field(default_factory=dict)
    """Cores the whole machine kept busy during each solo run (our process and the database's)."""

    @property
    def solo_sum(self) -> float:
        """Sum of the jobs' median solo times, seconds."""
        return sum(statistics.median(s) for s in self.solo.values())

    def ratio(self, cores: int) -> float:
        """Median span / (sum of solo times / cores)."""
        return statistics.median(self.spans) / (self.solo_sum / cores)

    @property
    def solo_core_seconds(self) -> float:
        """Sum over the jobs of median solo time x the cores busy meanwhile: the machine's CPU
        time the jobs need one after the other, whoever spends it (us or the database)."""
        return sum(statistics.median(s) * statistics.median(self.solo_busy[label]) for label, s in self.solo.items())


def jobs_of(dbs: dict[str, Database], counts: dict[str, int], largest_first: bool = False) -> list[Job]:
    """The 12 jobs in workbook order: as `TABLES` lists them (smallest first), or largest first."""
    jobs = [Job(dbs["postgresql"], t) for t in TABLES] + [Job(dbs["mariadb"], t) for t in MARIADB_TABLES]
    return sorted(jobs, key=lambda j: -counts[j.table]) if largest_first else jobs


def write_workbook(jobs: list[Job], path: Path) -> None:
    """One FULL job per table, nothing else set (keys and slicing as the defaults pick)."""
    from shared.workbook import write_workbook as write

    write(path, [{"source_type": j.db.source_type, "source_name": j.db.source_name, "table_name": j.table,
                  "load_type": "FULL", "enabled": "Y"} for j in jobs])


def run_cli(code: Path, workbook: Path, work_root: Path, env: dict[str, str],
            args: list[str]) -> tuple[float, list[dict], Path]:
    """`python -m ingest run workbook ARGS` with `code` on PYTHONPATH, in a fresh folder: the whole
    process's seconds, the metrics' jobs and the folder (its lake is `<folder>/lake`)."""
    run_dir = Path(tempfile.mkdtemp(prefix="conc-", dir=work_root))
    metrics = run_dir / "metrics.json"
    cmd = [sys.executable, "-m", "ingest", "run", str(workbook), "--lake", str(run_dir / "lake"),
           "--metrics-out", str(metrics), *args]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=run_dir, env={**env, "PYTHONPATH": str(code)}, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise ConcurrencyFailure(f"ingest run {' '.join(args)} exited {done.returncode}:\n{done.stdout[-1500:]}\n"
                           f"{done.stderr[-1500:]}")
    return seconds, json.loads(metrics.read_text())["jobs"], run_dir


def span(jobs: list[dict]) -> float:
    """Seconds from the first job's start to the last job's end."""
    starts = [dt.datetime.fromisoformat(j["extra"]["started_at"]) for j in jobs]
    ends = [dt.datetime.fromisoformat(j["extra"]["finished_at"]) for j in jobs]
    return (max(ends) - min(starts)).total_seconds()


def _slices(job: dict) -> str:
    read = (job.get("extra") or {}).get("read_slices")
    return f"{read['used']}/{read['wanted']}" if read else "-"


def _check_rows(jobs: list[dict], counts: dict[str, int], what: str) -> None:
    for j in jobs:
        if j["status"] != "success" or j["rows_processed"] != counts[j["table_name"]]:
            raise ConcurrencyFailure(f"{what}: {j['source_name']}.{j['table_name']} {j['status']}, "
                               f"{j['rows_processed']} of {counts[j['table_name']]} rows: {j.get('error')}")


def measure(dbs: dict[str, Database], codes: list[Path], repeat: int, solo_slots: int, counts: dict[str, int],
            expected: dict[str, tuple[int, int]], work_root: Path, largest_first: bool = False) -> dict[Path, CodeRuns]:
    """Whole and solo runs of every checkout, interleaved; every run's rows checked, the whole
    runs' tables against DuckDB's checksums."""
    jobs = jobs_of(dbs, counts, largest_first)
    workbook = work_root / "workbook_12.xlsx"
    write_workbook(jobs, workbook)
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"}
    for db in dbs.values():
        env.update(db.secrets_env())
    runs = {code: CodeRuns() for code in codes}
    for r in range(repeat):
        for code in codes:
            name = code.name
            seconds, whole, run_dir = run_cli(code, workbook, work_root, env, [])
            _check_rows(whole, counts, f"whole run ({name})")
            for job in jobs:
                files = landed_files(run_dir / "lake" / job.db.source_name, job.table)
                check = check_table(expected[job.table], job.table, files, exact_types=True)
                if not check.ok:
                    raise ConcurrencyFailure(f"whole run ({name}): {job.label}: {check.describe()}")
            shutil.rmtree(run_dir)
            got = runs[code]
            got.spans.append(span(whole))
            got.processes.append(seconds)
            for j in whole:
                label = f"{j['source_name']}.{j['table_name']}"
                got.whole_slices[label] = _slices(j)
                got.whole_seconds.setdefault(label, []).append(j["duration_seconds"])
            print(f"  (repeat {r + 1}/{repeat}, {name}: whole run span {got.spans[-1]:.2f} s, process "
                  f"{seconds:.2f} s, verified)", file=sys.stderr, flush=True)
            for job in jobs:
                before = cpu_jiffies()
                _, solo, run_dir = run_cli(code, workbook, work_root, env,
                                           ["--only", job.label, "--max-parallel", str(solo_slots)])
                got.solo_busy.setdefault(job.label, []).append(busy_cores(before, cpu_jiffies()))
                shutil.rmtree(run_dir)
                _check_rows(solo, counts, f"solo {job.label} ({name})")
                got.solo.setdefault(job.label, []).append(solo[0]["duration_seconds"])
                got.solo_slices[job.label] = _slices(solo[0])
            print(f"  (repeat {r + 1}/{repeat}, {name}: solo sum {sum(s[-1] for s in got.solo.values()):.2f} s)",
                  file=sys.stderr, flush=True)
    return runs


def report(runs: dict[Path, CodeRuns], cores: int, solo_slots: int, repeat: int) -> None:
    """Print every checkout's jobs, span, bound and ratio."""
    print(f"\n12-job workbook (PostgreSQL: all 8 tables; MariaDB: {', '.join(MARIADB_TABLES)}), {cores} usable cores, "
          f"medians of {repeat}; solo = the job alone with --max-parallel {solo_slots} (its duration_seconds); "
          "slices = used/wanted")
    for code, got in runs.items():
        print(f"  code {code}:")
        print(f"    {'job':<22} {'solo s':>8} {'busy cores':>10} {'slices':>7} {'in run s':>9} {'slices':>7}")
        for label, solo in got.solo.items():
            print(f"    {label:<22} {statistics.median(solo):>8.2f} {statistics.median(got.solo_busy[label]):>10.2f} "
                  f"{got.solo_slices[label]:>7} {statistics.median(got.whole_seconds[label]):>9.2f} "
                  f"{got.whole_slices[label]:>7}")
        bound = got.solo_sum / cores
        print(f"    sum of solo times {got.solo_sum:.2f} s / {cores} cores = {bound:.2f} s; whole run: span "
              f"{statistics.median(got.spans):.2f} s (runs {' '.join(f'{s:.2f}' for s in got.spans)}), process "
              f"{statistics.median(got.processes):.2f} s (runs {' '.join(f'{s:.2f}' for s in got.processes)})")
        print(f"    span / (sum of solo / cores) = {got.ratio(cores):.2f} (target ≤ 1.15, i.e. span ≤ {1.15 * bound:.2f} s)")
        machine = got.solo_core_seconds / (os.cpu_count() or 1)
        print(f"    the machine's busy core-seconds of the solo runs / its {os.cpu_count()} cores = {machine:.2f} s: "
              f"no packing of these jobs on this machine can take less (span / that = "
              f"{statistics.median(got.spans) / machine:.2f})")


def judged(runs: dict[Path, CodeRuns], cores: int) -> float:
    """The figure the targets judge: this checkout's when it ran, else the last `--code`'s."""
    code = ROOT if ROOT in runs else list(runs)[-1]
    return runs[code].ratio(cores)
