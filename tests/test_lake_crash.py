"""kill -9 of the real CLI mid-load, and two CLIs on one lake at once (real PostgreSQL, local lake).

Each crash test starts `python -m ingest run` in its own process group, SIGKILLs the group the
moment a trigger fires (a new Parquet file anywhere in the lake, i.e. in staging; or a new file in
the table's visible day folder), checks what a reader globbing the day folders sees right then,
reruns, and checks the lake equals the source row for row.

These tests fail with `INGESTION_UNSAFE_PUBLISH=1` (the naive publish: files copied into the day
folder one by one, state written before the old snapshot is deleted, every staged slice
published): run them with `CRASH_TESTS_UNSAFE=1` to see it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from shared.workbook import write_workbook
from tests.checksums import parquet_checksums, read_parquet, source_checksums
from tests.conftest import ROOT
from tests.sources.test_postgresql import COLUMNS, create_typed_table

pytestmark = pytest.mark.slow

ROWS = 400_000
ENV = {"SOURCES__ERP__HOST": "127.0.0.1", "SOURCES__ERP__DATABASE": "test", "SOURCES__ERP__USERNAME": "postgres",
       "RETRY_DATABASE_FIRST_INTERVAL_MS": "100"}
if os.environ.get("CRASH_TESTS_UNSAFE") == "1":
    ENV["INGESTION_UNSAFE_PUBLISH"] = "1"


def start(tmp: Path, workbook: Path, lake: Path, work: str = "work", **extra: str) -> subprocess.Popen[str]:
    """`ingest.cli run` in its own process group (so SIGKILL reaches every process it started)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **ENV, "INGESTION_WORK_DIR": str(tmp / work),
           "INGESTION_STATE_DIR": str(tmp / "state"), "INGESTION_METRICS_DIR": str(tmp / "metrics"),
           "INGESTION_AUDIT_DIR": str(tmp / "audit"), "INGESTION_LOGS_DIR": str(tmp / "logs"), **extra}
    return subprocess.Popen([sys.executable, "-m", "ingest", "run", str(workbook), "--lake", str(lake)],
                            cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def kill_when(proc: subprocess.Popen[str], fired: Callable[[], bool], timeout: float = 240) -> bool:
    """SIGKILL the process group as soon as `fired()`; False if the run ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fired():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("trigger never fired")


def finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return out


def visible(lake: Path, table: str) -> list[Path]:
    """What a reader globbing `<source>/<table>/<YYYY>/<MM>/<DD>/*.parquet` sees."""
    return sorted((lake / "erp" / table).glob("*/*/*/*.parquet"))


def reader_rows(files: list[Path]) -> int:
    """Every visible file must be a complete Parquet file (a partial one raises here)."""
    return sum(pq.read_table(f).num_rows for f in files)


def new_parquet(lake: Path, before: set[Path], under: Optional[Path] = None) -> Callable[[], bool]:
    root = under or lake
    return lambda: any(p not in before for p in root.rglob("*.parquet")) if root.exists() else False


def assert_lake_equals_source(engine: sa.Engine, lake: Path, table: str) -> None:
    files = visible(lake, table)
    assert parquet_checksums(read_parquet(files), "id") == source_checksums(engine, table, "id", COLUMNS)
    assert len({f.parent for f in files}) == 1  # one day folder in these tests


def assert_no_leftovers(tmp: Path, lake: Path, table: str) -> None:
    """The killed run's dlt work folder and its staging are gone after the rerun."""
    assert not [p for p in (tmp / "work").glob("ingest__*")], list((tmp / "work").iterdir())
    assert not list((lake / "_staging" / "erp" / table).glob("a*"))
    assert not list((lake / "erp" / "_ingestion" / "commits" / table).glob("*.json"))


@pytest.fixture
def table(pg_engine: sa.Engine, unique_name: Any) -> Any:
    name = unique_name("crash")
    create_typed_table(pg_engine, name, ROWS)
    yield name
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


def workbook_for(tmp: Path, table: str, **row: str) -> Path:
    path = tmp / "jobs.xlsx"
    write_workbook(path, [{"enabled": "Y", "load_type": "FULL", "source_type": "postgresql", "source_name": "erp",
                           "table_name": table, "primary_key": "id", **row}])
    return path


@pytest.mark.parametrize("trigger", ["staged", "visible"])
def test_kill_during_full_load_leaves_the_old_snapshot_then_rerun_lands_one(
    tmp_path: Path, pg_engine: sa.Engine, table: str, trigger: str
) -> None:
    lake = tmp_path / "lake"
    workbook = workbook_for(tmp_path, table)
    finish(start(tmp_path, workbook, lake))
    old = visible(lake, table)
    assert reader_rows(old) == ROWS
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {table} SET t2 = 'changed' WHERE id % 2 = 0"))

    proc = start(tmp_path, workbook, lake)
    watch = lake / "erp" / table if trigger == "visible" else lake
    assert kill_when(proc, new_parquet(lake, set(lake.rglob("*.parquet")), watch))
    seen = visible(lake, table)
    assert reader_rows(seen) == ROWS  # every file complete, exactly one snapshot
    assert seen == old or not set(seen) & set(old)  # the old snapshot or (committed) the new one

    finish(start(tmp_path, workbook, lake))
    assert_lake_equals_source(pg_engine, lake, table)
    assert_no_leftovers(tmp_path, lake, table)


@pytest.mark.parametrize("trigger", ["staged", "visible"])
def test_kill_during_incremental_load_then_rerun_loads_the_new_rows_exactly_once(
    tmp_path: Path, pg_engine: sa.Engine, table: str, trigger: str
) -> None:
    lake = tmp_path / "lake"
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM {table} WHERE id > 1000"))
    workbook = workbook_for(tmp_path, table, load_type="INCREMENTAL", watermark_column="ts")
    finish(start(tmp_path, workbook, lake))
    assert reader_rows(visible(lake, table)) == 1000
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {table} (id, t1, ts) SELECT g, 'new', now() + g * interval '1 ms' "
                             f"FROM generate_series(1001, {ROWS}) g"))

    proc = start(tmp_path, workbook, lake)
    watch = lake / "erp" / table if trigger == "visible" else lake
    assert kill_when(proc, new_parquet(lake, set(lake.rglob("*.parquet")), watch))
    assert reader_rows(visible(lake, table)) in (1000, ROWS)  # before or after the commit, never between

    finish(start(tmp_path, workbook, lake))
    assert_lake_equals_source(pg_engine, lake, table)
    assert_no_leftovers(tmp_path, lake, table)


def test_kill_during_split_load_never_publishes_the_killed_runs_slices(
    tmp_path: Path, pg_engine: sa.Engine, table: str
) -> None:
    lake = tmp_path / "lake"
    workbook = workbook_for(tmp_path, table, partition_column="id")
    split = {"INGESTION_SPLIT_ROWS": str(ROWS // 4)}
    finish(start(tmp_path, workbook, lake, **split))
    old = visible(lake, table)
    assert reader_rows(old) == ROWS and len(old) >= 4

    proc = start(tmp_path, workbook, lake, **split)
    staging = lake / "_staging" / "erp" / table
    # Kill once two slices are staged (some slices done, the table not yet published).
    assert kill_when(proc, lambda: len(list(staging.rglob("*.parquet"))) >= 2 if staging.exists() else False)
    assert visible(lake, table) == old and reader_rows(old) == ROWS

    finish(start(tmp_path, workbook, lake, **split))
    assert_lake_equals_source(pg_engine, lake, table)
    assert not [p for p in (tmp_path / "work").glob("ingest__*")]


@pytest.mark.parametrize("load_type", ["FULL", "INCREMENTAL"])
def test_two_clis_on_one_lake_at_once(tmp_path: Path, pg_engine: sa.Engine, table: str, load_type: str) -> None:
    lake = tmp_path / "lake"
    row = {"load_type": load_type, **({"watermark_column": "ts"} if load_type == "INCREMENTAL" else {})}
    workbook = workbook_for(tmp_path, table, **row)
    runs = [start(tmp_path, workbook, lake, work=f"work{k}") for k in (1, 2)]
    outputs = [finish(p) for p in runs]
    assert_lake_equals_source(pg_engine, lake, table)  # FULL: one snapshot; INCREMENTAL: every row once
    if load_type == "INCREMENTAL":
        assert sum(" 400,000 rows" in o for o in outputs) == 1, outputs  # the other found nothing new


@pytest.mark.parametrize("split", [False, True], ids=["one_activity", "split"])
def test_kills_at_instants_spread_over_a_run_never_show_a_partial_table(
    tmp_path: Path, pg_engine: sa.Engine, table: str, split: bool
) -> None:
    """Not at a chosen file event but at fixed fractions of a run's measured duration: start-up,
    reading, staging, publishing, deleting work folders. After each kill a reader sees one whole
    snapshot; after the last, a rerun leaves the lake equal to the source and nothing behind."""
    lake = tmp_path / "lake"
    extra = {"INGESTION_SPLIT_ROWS": str(ROWS // 4)} if split else {}
    workbook = workbook_for(tmp_path, table, **({"partition_column": "id"} if split else {}))
    began = time.monotonic()
    finish(start(tmp_path, workbook, lake, **extra))
    duration = time.monotonic() - began
    for k, fraction in enumerate((0.25, 0.6, 0.8, 0.9, 0.97)):
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {table} SET t2 = 'kill {k}' WHERE id % 3 = {k % 3}"))
        old = visible(lake, table)
        proc = start(tmp_path, workbook, lake, **extra)
        time.sleep(duration * fraction)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # it had already ended
            pass
        proc.wait()
        seen = visible(lake, table)
        assert reader_rows(seen) == ROWS, (fraction, seen)
        assert seen == old or not set(seen) & set(old), fraction
    finish(start(tmp_path, workbook, lake, **extra))
    assert_lake_equals_source(pg_engine, lake, table)
    assert not list((tmp_path / "work").glob("ingest__*")), list((tmp_path / "work").iterdir())
    assert not list((lake / "erp" / "_ingestion" / "commits" / table).glob("*.json"))
    assert not list((lake / "_staging" / "erp" / table).glob("a*"))
