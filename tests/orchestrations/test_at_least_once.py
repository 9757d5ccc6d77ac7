"""Durable runs activities at least once: the lake and the metrics must not notice.

The real orchestrator and real activities run on the local durable runtime with seeded
at-least-once faults (`ingest.durable.faults`): a completed activity re-delivered because its
result was lost, an activity killed mid-way and re-delivered, and two executions of one delivery
at once. Sources are small real PostgreSQL tables; the lake is a local folder read the way a
reader would: a glob of `<source>/<table>/<YYYY>/<MM>/<DD>/*.parquet`.

Every test asserts, for one (fault mode, seed):
- the lake equals the source row for row (column checksums, no duplicate or missing id);
- FULL and split tables: the day folder holds exactly one snapshot (the files the metrics list);
- INCREMENTAL: every row exactly once across two runs, with rows inserted between them;
- the metrics tell the truth: the rows a job reports are the rows that landed in this run.

Each seed faults the activity that lands the data on its first delivery (an explicit rule) and
every other activity delivery with probability 1/2, so the seeds vary what else is re-run.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pyarrow as pa
import pytest
import sqlalchemy as sa

from orchestrations import ORCHESTRATOR
from orchestrations.ingestion import FINISH_SPLIT, RUN_JOB, RUN_SLICE
from ingest.durable import KILL, REDELIVER, TWICE, FaultRule, Faults, LocalDurableRuntime
from tests.checksums import parquet_checksums, read_parquet, source_checksums
from tests.sources.test_postgresql import COLUMNS, create_typed_table

ROWS = 1_000
NEW_ROWS = 150
SPLIT_ROWS = 400  # INGESTION_SPLIT_ROWS: the 1,000-row table splits into 3 slices
SLICES = 3
PARALLEL = 4
SEEDS = range(20)
OTHER_PROBABILITY = 0.5
TIMEOUT = 300
MODES = (REDELIVER, KILL, TWICE)
TYPES = {**COLUMNS, "id": "number"}


@pytest.fixture
def table(pg_engine: sa.Engine, unique_name: Callable[[str], str], pg_secrets: Any,
          service_env: Path) -> Iterator[str]:
    """A fresh typed PostgreSQL table of `ROWS` rows, reachable as source `erp`."""
    name = unique_name("alo")
    create_typed_table(pg_engine, name, ROWS)
    pg_secrets("erp")
    yield name
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


_LENGTHS: dict[str, dict[str, int]] = {}
"""Activity lengths in call events per load kind, measured once per session (see `faults`)."""


def faults(mode: str, seed: int, *rules: tuple[str, int], lengths: Optional[dict[str, int]] = None) -> Faults:
    """`mode` on the named (activity, occurrence) deliveries, and at 1/2 on every other one.

    Kill points are seeded fractions of `lengths`, so a seed kills at the same point whatever
    ran before it in the session.
    """
    return Faults(seed=seed, **{mode: OTHER_PROBABILITY}, kill_calls=lengths,
                  schedule=tuple(FaultRule(name, n, mode) for name, n in rules))


def lengths(kind: str, mode: str, env: Path, path: Path, runtime: Any,
            monkeypatch: pytest.MonkeyPatch) -> Optional[dict[str, int]]:
    """For kills: each activity's length, from one clean run into a lake of its own (cached)."""
    if mode != KILL:
        return None
    if kind not in _LENGTHS:
        monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", str(env / "calibration-lake"))
        rt = runtime(max_parallel=PARALLEL, faults=Faults(measure=True))
        run(rt, path)
        _LENGTHS[kind] = rt.activity_lengths
        monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", str(env / "lake"))
    return _LENGTHS[kind]


def run(rt: LocalDurableRuntime, workbook_path: Path) -> dict[str, Any]:
    """One orchestration; returns the job's metrics entry."""
    result = rt.run(ORCHESTRATOR, {"config": str(workbook_path), "only": [], "dry_run": False},
                    timeout=TIMEOUT)
    assert result.succeeded, result.error
    jobs = json.loads(Path(result.output["metrics_path"]).read_text())["jobs"]
    assert len(jobs) == 1
    return jobs[0]


def day_files(env: Path, name: str, day: str = "*/*/*") -> list[Path]:
    """What a reader globs: `<source>/<table>/<YYYY>/<MM>/<DD>/*.parquet`."""
    return sorted((env / "lake" / "erp" / name).glob(f"{day}/*.parquet"))


def today() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y/%m/%d")


def read(files: list[Path]) -> pa.Table:
    """The rows of the files, as a reader gets them (an unreadable file fails the test)."""
    return read_parquet(files)


def source_rows(engine: sa.Engine, name: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one()


def observe(env: Path, engine: sa.Engine, name: str, job: dict[str, Any], day: str) -> dict[str, Any]:
    """What a reader of the lake and of the metrics sees, in one dict (one readable failure)."""
    files = day_files(env, name, day)
    unreadable = []
    for f in files:
        try:
            read([f])
        except Exception as exc:  # a truncated or half-written file
            unreadable.append(f"{f.name}: {type(exc).__name__}")
    landed = read([f for f in files if f.name not in {u.split(':')[0] for u in unreadable}])
    ids = landed["id"].to_pylist()
    return {
        "source rows": source_rows(engine, name),
        "landed rows": len(ids),
        "distinct ids": len(set(ids)),
        "unreadable files": unreadable,
        "status": job["status"],
        "metrics rows": job["rows_processed"],
        "metrics files == files in the folder": sorted(job["files"]) == sorted(str(f) for f in files),
    }


def expect(rows: int, files_match: bool = True) -> dict[str, Any]:
    return {"source rows": rows, "landed rows": rows, "distinct ids": rows, "unreadable files": [],
            "status": "success", "metrics rows": rows, "metrics files == files in the folder": files_match}


def assert_checksums(env: Path, engine: sa.Engine, name: str, day: str = "*/*/*") -> None:
    assert parquet_checksums(read(day_files(env, name, day)), "id") == source_checksums(engine, name, "id", TYPES)


def assert_faults_happened(rt: LocalDurableRuntime, mode: str) -> None:
    counts = rt.fault_counts
    assert counts.get(mode, 0) >= 1 and set(counts) == {mode}, counts


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", MODES)
def test_full_load(mode: str, seed: int, table: str, pg_engine: sa.Engine, service_env: Path,
                   workbook: Any, runtime: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = workbook([{"source_type": "postgresql", "source_name": "erp", "table_name": table}])
    sizes = lengths("full", mode, service_env, path, runtime, monkeypatch)
    rt = runtime(max_parallel=PARALLEL, faults=faults(mode, seed, (RUN_JOB, 1), lengths=sizes))
    job = run(rt, path)
    assert_faults_happened(rt, mode)
    seen = observe(service_env, pg_engine, table, job, today())
    seen["loads in the day folder"] = len({f.name.split(".")[0] for f in day_files(service_env, table, today())})
    assert seen == {**expect(ROWS), "loads in the day folder": 1}
    assert_checksums(service_env, pg_engine, table, today())


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", MODES)
def test_incremental_load_twice(mode: str, seed: int, table: str, pg_engine: sa.Engine,
                                service_env: Path, workbook: Any, runtime: Any,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = workbook([{"source_type": "postgresql", "source_name": "erp", "table_name": table,
                      "load_type": "INCREMENTAL", "watermark_column": "ts", "primary_key": "id"}])
    sizes = lengths("incremental", mode, service_env, path, runtime, monkeypatch)
    rt = runtime(max_parallel=PARALLEL, faults=faults(mode, seed, (RUN_JOB, 1), (RUN_JOB, 2), lengths=sizes))
    first = run(rt, path)
    seen = {"run 1": observe(service_env, pg_engine, table, first, "*/*/*")}

    with pg_engine.begin() as conn:
        conn.execute(sa.text(
            f"INSERT INTO {table} (id, t1, ts) SELECT g, 'new ' || g, now() + interval '1 day' "
            f"FROM generate_series({ROWS + 1}, {ROWS + NEW_ROWS}) g"))
    second = run(rt, path)
    assert_faults_happened(rt, mode)
    seen["run 2"] = observe(service_env, pg_engine, table, second, "*/*/*")
    seen["run 2"]["rows in run 2's files"] = read(second["files"]).num_rows if second["files"] else 0
    assert seen == {"run 1": expect(ROWS), "run 2": {
        **expect(ROWS + NEW_ROWS, files_match=False), "metrics rows": NEW_ROWS, "rows in run 2's files": NEW_ROWS}}
    assert_checksums(service_env, pg_engine, table)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", MODES)
def test_split_table(mode: str, seed: int, table: str, pg_engine: sa.Engine, service_env: Path,
                     workbook: Any, runtime: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGESTION_SPLIT_ROWS", str(SPLIT_ROWS))
    slice_hit = 1 + seed % SLICES
    rules = [(RUN_SLICE, slice_hit)] + ([(FINISH_SPLIT, 1)] if seed % 2 else [])
    path = workbook([{"source_type": "postgresql", "source_name": "erp", "table_name": table,
                      "partition_column": "id"}])
    sizes = lengths("split", mode, service_env, path, runtime, monkeypatch)
    rt = runtime(max_parallel=PARALLEL, faults=faults(mode, seed, *rules, lengths=sizes))
    job = run(rt, path)
    assert_faults_happened(rt, mode)
    assert job["extra"]["slices"] == SLICES
    seen = observe(service_env, pg_engine, table, job, today())
    seen["staged files left"] = len(list((service_env / "lake" / "erp_staging" / table).rglob("*.parquet")))
    assert seen == {**expect(ROWS), "staged files left": 0}
    assert_checksums(service_env, pg_engine, table, today())
