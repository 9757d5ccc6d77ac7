"""Jobs and their parallel read slices share the process's CPU slots (real PostgreSQL, the real
orchestrator and activities on the local durable runtime, and the command line): slots in use
never exceed the budget, a job alone takes the free ones for its slices, and with one slot a big
table is read as one stream; every row lands exactly once however many slices read it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from orchestrations import ORCHESTRATOR
from shared import cpu_slots
from tests.checksums import parquet_checksums, read_parquet, source_checksums
from tests.ingest.test_cli import cli
from tests.sources.conftest import connectorx_reads, four_cores  # noqa: F401  (fixtures)
from tests.sources.test_postgresql import COLUMNS, create_typed_table

ROWS = 20_000
CHUNK = 1_000
"""20 chunks: the table wants min(cores, 8, 10) slices; four with `four_cores`."""


@pytest.fixture
def big_tables(pg_engine: sa.Engine, unique_name: Any, pg_secrets: Any, service_env: Path) -> Iterator[list[str]]:
    """Three tables big enough to slice, a source `erp` pointing at them."""
    names = [unique_name("slots") for _ in range(3)]
    for name in names:
        create_typed_table(pg_engine, name, ROWS)
    pg_secrets("erp")
    yield names
    with pg_engine.begin() as conn:
        for name in names:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


@pytest.fixture
def budget(monkeypatch: pytest.MonkeyPatch) -> Any:
    """`budget(n)`: a fresh process budget of n slots (`INGESTION_CPU_SLOTS`), returned."""
    monkeypatch.setattr(cpu_slots, "_budget", None)
    monkeypatch.setattr(cpu_slots, "_configured", None)

    def make(size: int) -> cpu_slots.CpuSlots:
        monkeypatch.setenv("INGESTION_CPU_SLOTS", str(size))
        return cpu_slots.cpu_slots()

    return make


def run(workbook: Any, runtime: Any, names: list[str], parallel: int) -> dict[str, dict[str, Any]]:
    path = workbook([{"source_type": "postgresql", "source_name": "erp", "table_name": n, "chunk_size": CHUNK}
                     for n in names])
    result = runtime(max_parallel=parallel).run(ORCHESTRATOR, {"config": str(path), "only": [], "dry_run": False},
                                                timeout=300)
    assert result.succeeded, result.error
    jobs = json.loads(Path(result.output["metrics_path"]).read_text())["jobs"]
    assert [j["status"] for j in jobs] == ["success"] * len(names), jobs
    return {j["table_name"]: j for j in jobs}


def assert_landed_once(pg_engine: sa.Engine, env: Path, name: str) -> None:
    files = sorted((env / "lake" / "erp" / name).rglob("*.parquet"))
    assert parquet_checksums(read_parquet(files), "id") == source_checksums(pg_engine, name, "id", COLUMNS)


@pytest.mark.usefixtures("four_cores")
def test_jobs_and_slices_together_never_exceed_the_slots(
    big_tables: list[str], budget: Any, pg_engine: sa.Engine, service_env: Path, workbook: Any, runtime: Any,
    connectorx_reads: list[list[str]],
) -> None:
    slots = budget(3)
    jobs = run(workbook, runtime, big_tables, parallel=3)
    assert slots.in_use == 0 and 1 <= slots.high_water <= 3
    used = {name: job["extra"]["read_slices"] for name, job in jobs.items()}
    assert all(u["wanted"] == 4 and 1 <= u["used"] <= 3 for u in used.values()), used
    # Each read opened as many slices as its job was granted, no more.
    assert sorted(len(queries) for queries in connectorx_reads) == sorted(u["used"] for u in used.values())
    for name in big_tables:
        assert_landed_once(pg_engine, service_env, name)


@pytest.mark.usefixtures("four_cores")
def test_a_job_alone_reads_in_as_many_slices_as_slots_are_free(
    big_tables: list[str], budget: Any, pg_engine: sa.Engine, service_env: Path, workbook: Any, runtime: Any,
    connectorx_reads: list[list[str]],
) -> None:
    slots = budget(3)
    jobs = run(workbook, runtime, big_tables[:1], parallel=3)
    assert [len(queries) for queries in connectorx_reads] == [3] and slots.high_water == 3
    assert jobs[big_tables[0]]["extra"]["read_slices"] == {"wanted": 4, "used": 3}
    assert_landed_once(pg_engine, service_env, big_tables[0])


@pytest.mark.usefixtures("four_cores")
def test_with_one_slot_a_big_table_is_read_as_one_stream(
    big_tables: list[str], budget: Any, pg_engine: sa.Engine, service_env: Path, workbook: Any, runtime: Any,
    connectorx_reads: list[list[str]],
) -> None:
    slots = budget(1)
    jobs = run(workbook, runtime, big_tables[:2], parallel=2)  # the runtime could run two: the slot cannot
    assert [len(queries) for queries in connectorx_reads] == [1, 1] and slots.high_water == 1
    assert [j["extra"]["read_slices"] for j in jobs.values()] == [{"wanted": 4, "used": 1}] * 2
    for name in big_tables[:2]:
        assert_landed_once(pg_engine, service_env, name)


def test_max_parallel_one_on_the_command_line_reads_one_stream(
    big_tables: list[str], pg_engine: sa.Engine, tmp_path: Path, workbook: Any,
) -> None:
    """`--max-parallel 1`: one slot for the job and its slices; the run logs the slots' high-water mark."""
    from tests.conftest import PG_URL

    url = sa.make_url(PG_URL)
    env = {"SOURCES__ERP__HOST": url.host, "SOURCES__ERP__PORT": str(url.port or 5432),
           "SOURCES__ERP__DATABASE": url.database, "SOURCES__ERP__USERNAME": url.username,
           "INGESTION_CPU_SLOTS": "4"}  # the command line's --max-parallel wins over the setting
    path = workbook([{"source_type": "postgresql", "source_name": "erp", "table_name": n, "chunk_size": CHUNK}
                     for n in big_tables[:2]], name="cli.xlsx")
    done = cli("run", str(path), "--max-parallel", "1", "--metrics-out", str(tmp_path / "m.json"), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = json.loads((tmp_path / "m.json").read_text())["jobs"]
    cores = cpu_slots.usable_cores()  # the CLI's own process: one slice wanted per core, at most 8
    expected = {"wanted": min(cores, 8), "used": 1} if cores > 1 else None
    assert [job["extra"].get("read_slices") for job in jobs] == [expected, expected]
    main_log = (tmp_path / "logs" / "main.log").read_text()
    assert "CPU slots: 1, at most 1 in use at once" in main_log
