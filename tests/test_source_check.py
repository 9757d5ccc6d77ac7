"""Checking a plan against its sources: real PostgreSQL, MariaDB and SQLite; closed and silent ports.

SQL Server and Oracle have no server here: the tests check that an unreachable one gives one
clear line (the ODBC driver is not even installed), not a crash or a hang.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa

from shared.workbook import write_workbook
from shared.workbook.models import Job, Plan
from shared.plan import load_plan
from shared import source_check
from shared.source_check import check_sources
from tests.conftest import ROOT, free_port

LETTERS = {"source_type": "A", "source_name": "B", "table_name": "C", "load_type": "D", "enabled": "E",
           "schema_name": "F", "watermark_column": "G", "last_watermark": "H", "primary_key": "K",
           "partition_column": "P"}
"""Columns of a workbook written by `write_workbook` (the schema's order)."""


def plan_of(*jobs: Job) -> Plan:
    numbered = [Job.from_dict({**j.to_dict(), "row": i}) for i, j in enumerate(jobs, start=2)]
    return Plan(jobs=numbered, columns=dict(LETTERS))


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "ingest", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def pg_tables(pg_engine: sa.Engine, unique_name: Callable[[str], str]) -> Iterator[list[str]]:
    """50 real tables `<prefix>_<i>` (id int, updated_at timestamp, note text)."""
    prefix = unique_name("chk")
    names = [f"{prefix}_{i}" for i in range(50)]
    with pg_engine.begin() as conn:
        for name in names:
            conn.execute(sa.text(f"CREATE TABLE {name} (id int PRIMARY KEY, updated_at timestamp, note text)"))
    yield names
    with pg_engine.begin() as conn:
        for name in names:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


def test_validate_check_sources_names_every_cell_for_50_jobs_in_under_5_s(
    tmp_path: Path, pg_engine: sa.Engine, pg_tables: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [{"source_type": "postgresql", "source_name": "erp", "table_name": t, "load_type": "INCREMENTAL",
             "enabled": "Y", "watermark_column": "updated_at", "last_watermark": "2024-01-01T00:00:00",
             "primary_key": "id", "partition_column": "id"} for t in pg_tables]
    rows[10]["table_name"] = pg_tables[10] + "x"  # row 12: mistyped table
    rows[20]["watermark_column"] = "updated"  # row 22: mistyped watermark column
    rows[30]["watermark_column"] = "id"  # row 32: a date for an integer column
    workbook = write_workbook(tmp_path / "jobs.xlsx", rows)
    url = pg_engine.url
    env = {"SOURCES__ERP__HOST": url.host, "SOURCES__ERP__PORT": str(url.port or 5432),
           "SOURCES__ERP__DATABASE": url.database, "SOURCES__ERP__USERNAME": url.username}

    offline = cli("validate", str(workbook), cwd=tmp_path, env=env)
    assert offline.returncode == 0, offline.stderr  # without the flag nothing is checked against the source

    started = time.perf_counter()
    result = cli("validate", "--check-sources", str(workbook), cwd=tmp_path, env=env)
    wall = time.perf_counter() - started
    assert result.returncode == 2, result.stdout + result.stderr
    problems = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("SourceConfig!")]
    assert problems == [
        f"SourceConfig!C12 (table_name): table '{pg_tables[10]}x' not found in the default schema of postgresql "
        f"source 'erp' (did you mean '{pg_tables[10]}'?)",
        f"SourceConfig!G22 (watermark_column): column 'updated' not found in table '{pg_tables[20]}' "
        "(did you mean 'updated_at'?)",
        f"SourceConfig!H32 (last_watermark): '2024-01-01T00:00:00' does not fit watermark column 'id' (INTEGER); "
        "expected a whole number",
    ]

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    plan = load_plan(workbook)
    timed = check_sources(plan, plan.enabled_jobs())
    print(f"\n50 jobs on PostgreSQL: check {timed.seconds:.2f} s in process; validate --check-sources {wall:.2f} s "
          "end to end (Python start-up and imports included)")
    assert len(timed.problems) == 3 and timed.jobs == 50 and timed.sources == 1
    assert timed.seconds < 5
    assert wall < 30  # process start-up and imports on a loaded 2-core machine; the check itself is above


def test_names_with_spaces_and_mixed_case_are_found_as_they_are(
    pg_engine: sa.Engine, pg_secrets: Callable[[str], None], unique_name: Callable[[str], str]
) -> None:
    """`"Order Details"` in schema `"Sales EU"`: the inspector quotes them; nothing is lower-cased."""
    schema = "Sales EU " + unique_name("S")
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        conn.execute(sa.text(f'CREATE TABLE "{schema}"."Order Details" ("CustomerID" int, "Updated At" date, '
                             '"Line No" int)'))
    try:
        pg_secrets("erp")
        ok = Job("postgresql", "erp", "Order Details", "INCREMENTAL", schema_name=schema, watermark_column="Updated At",
                 last_watermark="2024-01-31", primary_key=("CustomerID", "Line No"), partition_column="CustomerID")
        wrong_case = Job("postgresql", "erp", "order details", "FULL", schema_name=schema)
        lower_cursor = Job("postgresql", "erp", "Order Details", "INCREMENTAL", schema_name=schema,
                           watermark_column="updated at", last_watermark=7)
        no_schema = Job("postgresql", "erp", "Order Details", "FULL", schema_name="Sales Nowhere")
        result = check_sources(plan_of(ok, wrong_case, lower_cursor, no_schema))
    finally:
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    assert result.problems == [
        f"SourceConfig!C3 (table_name): table 'order details' not found in schema '{schema}' of postgresql source "
        "'erp' (did you mean 'Order Details'?)",
        "SourceConfig!G4 (watermark_column): column 'updated at' not found in table 'Order Details': it is spelled "
        "'Updated At' there (names are case-sensitive)",
        "SourceConfig!F5 (schema_name): schema 'Sales Nowhere' not found in postgresql source 'erp'",
    ]
    assert result.unreachable == [] and result.notes == []


@pytest.mark.parametrize(
    ("column_type", "good", "bad", "expected"),
    [
        ("int", "17", "2024-01-01", "a whole number"),
        ("bigint", 17, 12.5, "a whole number"),
        ("numeric(10,2)", "12.5", "2024-01-01", "a number"),
        ("date", "2024-01-31", "17", "a date such as 2024-01-31"),
        ("timestamptz", "2024-01-31T08:00:00+02:00", 1700000000, "a date and time such as 2024-01-31T08:00:00"),
        ("text", "2024-01-31", None, None),  # any value the offline check allows
    ],
)
def test_last_watermark_must_fit_the_column_type(
    pg_engine: sa.Engine, pg_secrets: Callable[[str], None], unique_name: Callable[[str], str],
    column_type: str, good: Any, bad: Any, expected: str | None,
) -> None:
    name = unique_name("wm")
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {name} (c {column_type})"))
    try:
        pg_secrets("erp")
        jobs = [Job("postgresql", "erp", name, "INCREMENTAL", watermark_column="c", last_watermark=good)]
        if bad is not None:
            jobs.append(Job("postgresql", "erp", name, "INCREMENTAL", watermark_column="c", last_watermark=bad))
        result = check_sources(plan_of(*jobs))
    finally:
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {name}"))
    if bad is None:
        assert result.problems == []
    else:
        shown = f"'{bad}'" if isinstance(bad, str) else f"'{bad}'"
        assert [p.split(" does not fit")[0] for p in result.problems] == [f"SourceConfig!H3 (last_watermark): {shown}"]
        assert result.problems[0].endswith(f"; expected {expected}")


def test_mariadb_tables_and_columns(
    mariadb_engine: sa.Engine, mariadb_secrets: Callable[..., None], unique_name: Callable[[str], str]
) -> None:
    name = unique_name("Chk")
    with mariadb_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE `{name}` (id int primary key, `Updated At` datetime, n int)"))
    try:
        mariadb_secrets("shop")
        database = mariadb_engine.url.database
        jobs = plan_of(
            Job("mysql", "shop", name, "INCREMENTAL", watermark_column="Updated At", last_watermark="2024-01-01",
                primary_key=("id",)),
            Job("mysql", "shop", name, "INCREMENTAL", schema_name=database, watermark_column="n",
                last_watermark="2024-01-01 10:00"),
            Job("mysql", "shop", name + "_x", "FULL"),
            Job("mysql", "shop", name, "FULL", schema_name="no_such_db", primary_key=("id",)),
            Job("mysql", "shop", name, "FULL", primary_key=("id", "line")),
        )
        started = time.perf_counter()
        result = check_sources(jobs)
        print(f"\nMariaDB check: {time.perf_counter() - started:.2f} s")
    finally:
        with mariadb_engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE `{name}`"))
    assert result.problems == [
        "SourceConfig!H3 (last_watermark): '2024-01-01 10:00' does not fit watermark column 'n' (INTEGER); "
        "expected a whole number",
        f"SourceConfig!C4 (table_name): table '{name}_x' not found in the default schema of mysql source 'shop' "
        f"(did you mean '{name}'?)",
        "SourceConfig!F5 (schema_name): schema 'no_such_db' not found in mysql source 'shop'",
        f"SourceConfig!K6 (primary_key): column 'line' not found in table '{name}'",
    ]
    assert result.unreachable == []


def test_mariadb_wrong_password_is_one_line_without_the_password(
    mariadb_engine: sa.Engine, mariadb_secrets: Callable[..., None]
) -> None:
    mariadb_secrets("shop", username="nobody_here", password="p@ss:w/rd#1")
    result = check_sources(plan_of(Job("mysql", "shop", "t", "FULL")))
    (line,) = result.unreachable
    assert line.startswith("SourceConfig!B2 (source_name): cannot connect to mysql source 'shop' at ")
    assert "Access denied" in line and "p@ss" not in line and line.endswith("not checked: 1 job (row 2)")


def test_sqlite_missing_file_and_missing_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "shop.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute('CREATE TABLE "Orders" (id integer, ts text)')
    monkeypatch.setenv("SOURCES__SHOP__PATH", str(db))
    monkeypatch.setenv("SOURCES__GONE__PATH", str(tmp_path / "gone.sqlite"))
    result = check_sources(plan_of(
        Job("sqlite", "shop", "orders", "FULL"),  # SQLite names are case-insensitive: the dialect finds it
        Job("sqlite", "shop", "order", "FULL"),
        Job("sqlite", "gone", "orders", "FULL"),
    ))
    assert result.problems == [
        "SourceConfig!C3 (table_name): table 'order' not found in the default schema of sqlite source 'shop' "
        "(did you mean 'Orders'?)"
    ]
    assert result.unreachable == [
        f"SourceConfig!B4 (source_name): cannot connect to sqlite source 'gone' at {tmp_path / 'gone.sqlite'}: "
        f"SQLite database file not found: {tmp_path / 'gone.sqlite'}; not checked: 1 job (row 4)"
    ]
    assert not (tmp_path / "gone.sqlite").exists()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a hung server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_dead_and_silent_sources_are_one_line_each_and_bounded(
    monkeypatch: pytest.MonkeyPatch, silent_port: int
) -> None:
    closed = free_port()
    for name, kind in (("pgdead", "postgresql"), ("mydead", "mysql"), ("msdead", "mssql"), ("oradead", "oracle"),
                       ("pgsilent", "postgresql"), ("orasilent", "oracle")):
        prefix = f"SOURCES__{name.upper()}__"
        monkeypatch.setenv(prefix + "HOST", "127.0.0.1")
        monkeypatch.setenv(prefix + "PORT", str(silent_port if "silent" in name else closed))
        monkeypatch.setenv(prefix + "DATABASE", "db")
        monkeypatch.setenv(prefix + "USERNAME", "u")
        monkeypatch.setenv(prefix + "PASSWORD", "Secret-123")
        if kind == "oracle":
            monkeypatch.setenv(prefix + "SERVICE_NAME", "svc")
    plan = plan_of(
        Job("postgresql", "pgdead", "t", "FULL"), Job("mysql", "mydead", "t", "FULL"),
        Job("mssql", "msdead", "t", "FULL"), Job("oracle", "oradead", "t", "FULL", schema_name="S"),
        Job("postgresql", "pgsilent", "t", "FULL"), Job("oracle", "orasilent", "t", "FULL", schema_name="S"),
        Job("api", "pub", "issues", "FULL", api_endpoint="issues"),
    )
    # Drivers are imported before any source's clock starts (a cold import in CI once took a dead
    # Oracle source past its 4 s); load them here too so `elapsed` measures the sources alone.
    source_check._load_drivers({"postgresql", "mysql", "mssql", "oracle"})
    started = time.perf_counter()
    result = check_sources(plan, connect_timeout=2, source_timeout=4)
    elapsed = time.perf_counter() - started
    print(f"\n6 unreachable sources checked in {elapsed:.2f} s:\n" + "\n".join(result.unreachable))
    assert result.problems == []
    by_row = {int(line.split("!B")[1].split(" ")[0]): line for line in result.unreachable}
    assert sorted(by_row) == [2, 3, 4, 5, 6, 7]
    assert f"cannot connect to postgresql source 'pgdead' at 127.0.0.1:{closed}: " in by_row[2]
    assert f"cannot connect to mysql source 'mydead' at 127.0.0.1:{closed}: " in by_row[3]
    assert f"cannot connect to mssql source 'msdead' at 127.0.0.1:{closed}: " in by_row[4]
    assert f"cannot connect to oracle source 'oradead' at 127.0.0.1:{closed}: " in by_row[5]
    assert f"postgresql source 'pgsilent' at 127.0.0.1:{silent_port}" in by_row[6] or "did not answer" in by_row[6]
    assert "oracle source 'orasilent' did not answer within 4 s; not checked: 1 job (row 7)" in by_row[7]
    assert all("Secret-123" not in line and "\n" not in line and len(line) < 400 for line in result.unreachable)
    assert result.notes == ["api source 'pub' not checked (API endpoints are checked when they run)"]
    assert elapsed < 6  # in parallel: the slowest source's bound, not the sum


def test_validate_stays_offline_without_the_flag(tmp_path: Path) -> None:
    """A workbook pointing at a listening port validates without a connection to it; with the flag
    the closed port is one line naming the source and host, exit 2, in seconds."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    workbook = write_workbook(tmp_path / "jobs.xlsx", [
        {"source_type": "postgresql", "source_name": "erp", "table_name": "orders", "load_type": "FULL", "enabled": "Y"}
    ])
    env = {"SOURCES__ERP__HOST": "127.0.0.1", "SOURCES__ERP__PORT": str(port), "SOURCES__ERP__DATABASE": "db"}
    try:
        offline = cli("validate", str(workbook), cwd=tmp_path, env=env)
        assert offline.returncode == 0, offline.stderr
        with pytest.raises(socket.timeout):
            listener.accept()  # nobody knocked
    finally:
        listener.close()
    started = time.perf_counter()
    online = cli("validate", "--check-sources", str(workbook), cwd=tmp_path, env=env)
    assert online.returncode == 2
    lines = [line.strip() for line in online.stderr.splitlines() if line.strip().startswith("SourceConfig!")]
    assert len(lines) == 1 and lines[0].startswith(
        f"SourceConfig!B2 (source_name): cannot connect to postgresql source 'erp' at 127.0.0.1:{port}: ")
    assert time.perf_counter() - started < 20


def test_plan_run_fails_the_jobs_with_definite_problems_only(
    tmp_path: Path, pg_engine: sa.Engine, pg_secrets: Callable[[str], None], pg_tables: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shared.settings import AppSettings
    from shared.steps import Services, plan_run

    pg_secrets("erp")
    for field, value in (("HOST", "127.0.0.1"), ("PORT", str(free_port())), ("DATABASE", "db")):
        monkeypatch.setenv(f"SOURCES__CRM__{field}", value)
    rows = [
        {"source_type": "postgresql", "source_name": "erp", "table_name": pg_tables[0], "load_type": "FULL", "enabled": "Y"},
        {"source_type": "postgresql", "source_name": "crm", "table_name": "customers", "load_type": "FULL", "enabled": "Y"},
    ]
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", str(tmp_path / "lake"))
    good = write_workbook(tmp_path / "good.xlsx", rows)
    output = plan_run({"config": str(good)}, "k1", Services.local(AppSettings.from_env()))
    assert len(output["jobs"]) == 2  # crm is unreachable: a warning, its job still runs (and retries)
    assert any(w.startswith("source check: SourceConfig!B3 (source_name): cannot connect to postgresql source 'crm'")
               for w in output["warnings"])

    rows[0]["table_name"] = pg_tables[0] + "_typo"
    bad = write_workbook(tmp_path / "bad.xlsx", rows)
    services = Services.local(AppSettings.from_env())
    output = plan_run({"config": str(bad)}, "k2", services)
    assert len(output["jobs"]) == 2  # the other jobs of the run still run
    failed = services.runs.load_result("k2", 0)  # recorded before the run: no attempt, no breaker count
    assert (failed.status, failed.extra["retryable"], failed.extra["error_class"]) == ("failed", False, "permanent")
    assert failed.error == (
        f"SourceConfig!C2 (table_name): table '{pg_tables[0]}_typo' not found in the default schema of postgresql "
        f"source 'erp' (did you mean '{pg_tables[0]}'?)"
    )
    assert services.runs.load_result("k2", 1) is None

    monkeypatch.setenv("INGESTION_CHECK_SOURCES", "false")
    assert len(plan_run({"config": str(bad)}, "k3", Services.local(AppSettings.from_env()))["jobs"]) == 2
