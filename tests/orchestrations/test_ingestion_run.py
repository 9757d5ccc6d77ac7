"""The whole service through `python -m ingest run`: orchestration on the local durable
runtime, real PostgreSQL and MariaDB sources, a source that is down, retries and breakers.

The "down" source is a real TCP listener that accepts and drops every connection and counts
them, so a test can prove that an open circuit means no connection attempt at all.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest
import sqlalchemy as sa

from shared.workbook import write_workbook
from tests.conftest import ROOT
from tests.sources.test_postgresql import create_typed_table
from tests.ingest.test_cli import cli
from tests.tcp_proxy import FlakyProxy

ROWS = 150_000


@pytest.fixture
def down_server() -> Iterator[FlakyProxy]:
    server = FlakyProxy()  # no target: every connection is closed
    yield server
    server.close()


@pytest.fixture
def tables(pg_engine: sa.Engine, mariadb_engine: sa.Engine, unique_name: Any) -> Iterator[dict[str, list[str]]]:
    pg = [unique_name("pg_a"), unique_name("pg_b")]
    maria = [unique_name("m_a"), unique_name("m_b")]
    for name in pg:
        create_typed_table(pg_engine, name, ROWS)
    with mariadb_engine.begin() as conn:
        for name in maria:
            conn.execute(sa.text(f"CREATE TABLE {name} (id INT PRIMARY KEY, v VARCHAR(20), ts DATETIME(6))"))
            conn.execute(sa.text(f"INSERT INTO {name} SELECT seq, CONCAT('v', seq), NOW(6) FROM seq_1_to_50000"))
    # The down source's tables exist in PostgreSQL too, for when it comes back.
    legacy = [unique_name("legacy_a"), unique_name("legacy_b")]
    for name in legacy:
        create_typed_table(pg_engine, name, 1_000)
    yield {"erp": pg, "shop": maria, "legacy": legacy}
    with pg_engine.begin() as conn:
        for name in pg + legacy:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
    with mariadb_engine.begin() as conn:
        for name in maria:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


BREAKER_TIMEOUT = 8
"""Seconds a circuit stays open: long enough for a CLI to start on a loaded 2-core machine."""


def _env(legacy_port: int) -> dict[str, str]:
    return {
        "SOURCES__ERP__HOST": "127.0.0.1", "SOURCES__ERP__DATABASE": "test", "SOURCES__ERP__USERNAME": "postgres",
        "SOURCES__SHOP__HOST": "127.0.0.1", "SOURCES__SHOP__DATABASE": "test", "SOURCES__SHOP__USERNAME": "root",
        "SOURCES__LEGACY__HOST": "127.0.0.1", "SOURCES__LEGACY__PORT": str(legacy_port),
        "SOURCES__LEGACY__DATABASE": "test", "SOURCES__LEGACY__USERNAME": "postgres",
        "RETRY_DATABASE_FIRST_INTERVAL_MS": "300",
        "CIRCUIT_BREAKER_TIMEOUT_SECONDS": str(BREAKER_TIMEOUT),
    }


def _metrics(path: Path) -> dict[str, Any]:
    metrics = json.loads(path.read_text())
    schema = json.loads((ROOT / "config" / "metrics_schema.json").read_text())
    jsonschema.validate(metrics, schema)
    return metrics


def _by_source(metrics: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for job in metrics["jobs"]:
        grouped.setdefault(job["source_name"], []).append(job)
    return grouped


def _intervals(jobs: list[dict[str, Any]]) -> list[tuple[dt.datetime, dt.datetime]]:
    return [(dt.datetime.fromisoformat(j["extra"]["started_at"]), dt.datetime.fromisoformat(j["extra"]["finished_at"])) for j in jobs]


@pytest.mark.slow
def test_down_source_retries_opens_its_circuit_then_recovers(
    tmp_path: Path, tables: dict[str, list[str]], down_server: FlakyProxy
) -> None:
    workbook = tmp_path / "jobs.xlsx"
    write_workbook(workbook, [
        {"source_type": t, "source_name": s, "table_name": name, "load_type": "FULL", "enabled": "Y"}
        for s, t in (("erp", "postgresql"), ("shop", "mysql"), ("legacy", "postgresql"))
        for name in tables[s]
    ])
    env = _env(down_server.port)

    # 1. One source is down: healthy jobs run in parallel, the down ones retry, the circuit opens.
    started = time.monotonic()
    first = cli("run", str(workbook), "--max-parallel", "4", "--metrics-out", str(tmp_path / "m1.json"), cwd=tmp_path, env=env)
    wall = time.monotonic() - started
    assert first.returncode == 1, first.stdout + first.stderr
    metrics = _metrics(tmp_path / "m1.json")
    jobs = _by_source(metrics)
    healthy = jobs["erp"] + jobs["shop"]
    assert all(j["status"] == "success" for j in healthy)
    assert [j["rows_processed"] for j in jobs["erp"]] == [ROWS, ROWS]
    # Parallel: some healthy jobs overlap in time, and the run took less than their summed durations
    # plus the down source's retries, which ran concurrently with them.
    spans = sorted(_intervals(healthy))
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:])), spans
    assert wall < sum(j["duration_seconds"] for j in healthy) + 10
    down = jobs["legacy"]
    assert {j["status"] for j in down} == {"failed"}
    # Up to 3 attempts each, as the database policy says; the circuit opens at the 5th failure,
    # which may cut the last attempt of one job short.
    attempts = sorted(j["retry_count"] + 1 for j in down)
    assert attempts in ([2, 3], [3, 3]), attempts
    assert down_server.accepted >= sum(attempts)
    assert metrics["summary"]["health_score"] < 100
    assert "circuit open for legacy" in first.stdout

    # 2. While the circuit is open the source is not contacted at all.
    before = down_server.accepted
    second = cli("run", str(workbook), "--only", "legacy", "--metrics-out", str(tmp_path / "m2.json"), cwd=tmp_path, env=env)
    assert second.returncode == 1
    assert {j["status"] for j in _metrics(tmp_path / "m2.json")["jobs"]} == {"skipped_circuit_open"}
    assert down_server.accepted == before

    # 3. After the timeout a half-open trial runs; the source is still down, so the circuit re-opens.
    time.sleep(BREAKER_TIMEOUT + 0.2)
    third = cli("run", str(workbook), "--only", "legacy", "--metrics-out", str(tmp_path / "m3.json"), cwd=tmp_path, env=env)
    assert third.returncode == 1
    assert down_server.accepted > before
    assert "failed" in {j["status"] for j in _metrics(tmp_path / "m3.json")["jobs"]}

    # 4. The source is back: after the timeout the trial succeeds and the circuit closes.
    time.sleep(BREAKER_TIMEOUT + 0.2)
    back = {**env, "SOURCES__LEGACY__PORT": "5432"}
    fourth = cli("run", str(workbook), "--only", "legacy", "--metrics-out", str(tmp_path / "m4.json"), cwd=tmp_path, env=back)
    assert fourth.returncode == 0, fourth.stdout + fourth.stderr
    assert {j["status"] for j in _metrics(tmp_path / "m4.json")["jobs"]} == {"success"}
    from shared.breakers import LocalBreakerStore

    assert LocalBreakerStore(tmp_path / ".ingestion" / "breakers.sqlite").get("legacy").state == "CLOSED"
