"""The command line as a user runs it: a subprocess with env-var secrets and real services."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shared.workbook import write_workbook
from tests.checksums import parquet_checksums, read_parquet, source_checksums
from tests.conftest import ROOT, free_port
from tests.sources.test_postgresql import COLUMNS as TYPED_COLUMNS, assert_types, create_typed_table

SECRET = "p@ss:w/rd#1"


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "ingest", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def row(**kw: Any) -> dict[str, Any]:
    base = {"enabled": "Y", "load_type": "FULL"}
    base.update(kw)
    return base


def all_text_under(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file())


def test_validate_reports_every_mistake_and_run_writes_nothing(tmp_path: Path) -> None:
    workbook = tmp_path / "bad.xlsx"
    write_workbook(workbook, [
        row(source_type="postgres", source_name="erp", table_name="a"),
        row(source_type="postgresql", source_name="erp", table_name="../orders"),
        row(source_type="postgresql", source_name="erp", table_name="b", load_type="DAILY"),
        row(source_type="postgresql", source_name="erp", table_name="c", load_type="INCREMENTAL"),
        row(source_type="oracle", source_name="fin", table_name="d"),
        row(source_type="api", source_name="pub", table_name="e"),
        row(source_type="postgresql", source_name="erp", table_name="f", chunk_size=10),
        row(source_type="postgresql", source_name="erp", table_name="g", enabled="maybe"),
        row(source_type="postgresql", source_name="erp", table_name="h", primary_key="a b"),
        row(source_type="postgresql", source_name="erp", table_name="i", schema_name="x/y"),
        row(source_type="postgresql", source_name="erp", table_name="j", api_params="{oops"),
        row(source_type="postgresql", source_name="erp", table_name="j"),
        row(source_type="postgresql", source_name="9bad", table_name="k"),
    ])
    result = cli("validate", str(workbook), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    problems = [l.strip() for l in result.stderr.splitlines() if l.strip().startswith("SourceConfig!")]
    assert len(problems) >= 12, result.stderr
    expected = ["source_type", "table_name", "load_type", "watermark_column", "schema_name", "api_endpoint",
                "chunk_size", "enabled", "primary_key", "schema_name", "api_params", "table_name", "source_name"]
    found = {(int(m.group(1)), m.group(2)) for p in problems if (m := re.match(r"SourceConfig![A-Z]+(\d+) \((\w+)\)", p))}
    for number, column in enumerate(expected, start=2):
        assert (number, column) in found, (number, column, problems)
    assert any("no secrets for 'erp'" in p for p in problems)

    run = cli("run", str(workbook), "--lake", str(tmp_path / "lake"), cwd=tmp_path)
    assert run.returncode == 2
    assert not (tmp_path / "lake").exists() and not (tmp_path / "metrics").exists()


def test_validate_accepts_the_sample_when_its_sources_have_secrets(tmp_path: Path) -> None:
    result = cli("validate", str(ROOT / "config" / "ingestion_config.xlsx"), cwd=tmp_path,
                 env={"SOURCES__DEMO_SHOP__PATH": str(tmp_path / "shop.sqlite")})
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    assert list(tmp_path.iterdir()) == []  # validating writes nothing: no state, no logs


def test_validate_accepts_source_names_shows_their_lake_folder_and_rejects_a_collision(tmp_path: Path) -> None:
    env = {"SOURCES__SHOP__PATH": str(tmp_path / "shop.sqlite")}
    ok = tmp_path / "ok.xlsx"
    write_workbook(ok, [row(source_type="sqlite", source_name="shop", table_name="Order Details", schema_name="Sales EU"),
                        row(source_type="sqlite", source_name="shop", table_name="orders")])
    result = cli("validate", str(ok), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "shop.Sales EU.Order Details -> lake folder shop/order_details" in result.stdout
    assert "shop.orders ->" not in result.stdout  # only folders that differ from the table name are listed
    clash = tmp_path / "clash.xlsx"
    write_workbook(clash, [row(source_type="sqlite", source_name="shop", table_name="Order Details"),
                           row(source_type="sqlite", source_name="shop", table_name="order_details")])
    result = cli("validate", str(clash), cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "SourceConfig!C3 (table_name): job shop.order_details would land in the same lake folder " \
           "shop/order_details as row 2" in result.stderr


def test_template_writes_a_workbook_that_validates_once_filled(tmp_path: Path) -> None:
    path = tmp_path / "t.xlsx"
    assert cli("template", str(path), cwd=tmp_path).returncode == 0
    assert path.exists()


def test_demo_prints_parquet_paths(tmp_path: Path) -> None:
    result = cli("demo", "--dir", str(tmp_path / "demo"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    paths = [Path(l.strip()) for l in result.stdout.splitlines() if l.strip().endswith(".parquet")]
    assert {p.parts[-5] for p in paths} == {"customers", "products", "orders"}
    assert all(p.exists() for p in paths)
    assert read_parquet([p for p in paths if "orders" in p.parts]).num_rows == 2000


def test_closed_port_fails_one_job_others_run_and_no_secret_leaks(
    tmp_path: Path, pg_engine: sa.Engine, unique_name: Any
) -> None:
    name = unique_name("cli_ok")
    create_typed_table(pg_engine, name, 500)
    port = free_port()
    workbook = tmp_path / "jobs.xlsx"
    write_workbook(workbook, [
        row(source_type="postgresql", source_name="down_db", table_name="orders"),
        row(source_type="postgresql", source_name="erp", table_name=name),
    ])
    env = {
        "SOURCES__DOWN_DB__HOST": "127.0.0.1", "SOURCES__DOWN_DB__PORT": str(port),
        "SOURCES__DOWN_DB__DATABASE": "x", "SOURCES__DOWN_DB__USERNAME": "u", "SOURCES__DOWN_DB__PASSWORD": SECRET,
        "SOURCES__ERP__HOST": "127.0.0.1", "SOURCES__ERP__DATABASE": "test", "SOURCES__ERP__USERNAME": "postgres",
        "SOURCES__ERP__PASSWORD": SECRET,  # trust auth ignores it; it must still never be printed
        "RETRY_DATABASE_FIRST_INTERVAL_MS": "100",
    }
    result = cli("run", str(workbook), "--lake", str(tmp_path / "lake"), "--metrics-out", str(tmp_path / "m.json"),
                 "-v", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    failed = [l for l in result.stdout.splitlines() if "down_db.orders" in l]
    assert len(failed) == 1 and f"127.0.0.1:{port}" in failed[0] and "down_db" in failed[0]
    metrics = json.loads((tmp_path / "m.json").read_text())
    statuses = {j["job_id"]: j["status"] for j in metrics["jobs"]}
    assert statuses == {"down_db.orders": "failed", f"erp.{name}": "success"}
    # Log files: main, one per source, errors only; every job line names run, source and table.
    logs = tmp_path / "logs"
    errors = (logs / "errors.log").read_text()
    assert "source=down_db table=orders" in errors and f"source=erp table={name}" not in errors
    assert f"source=erp table={name}" in (logs / "erp.log").read_text()
    assert "down_db" not in (logs / "erp.log").read_text()
    assert "run=ingestion-jobs-" in (logs / "main.log").read_text()
    everything = result.stdout + result.stderr + all_text_under(tmp_path)
    for form in (SECRET, "p%40ss%3Aw%2Frd%231", "p%40ss"):
        assert form not in everything
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {name}"))


@pytest.mark.slow
def test_million_row_full_and_incremental_tables_land_identically(
    tmp_path: Path, pg_engine: sa.Engine, unique_name: Any
) -> None:
    big, inc = unique_name("big"), unique_name("inc")
    create_typed_table(pg_engine, big, 1_000_000)
    create_typed_table(pg_engine, inc, 50_000)
    workbook = tmp_path / "jobs.xlsx"
    write_workbook(workbook, [
        row(source_type="postgresql", source_name="erp", table_name=big, primary_key="id"),
        row(source_type="postgresql", source_name="erp", table_name=inc, load_type="INCREMENTAL",
            watermark_column="ts", primary_key="id"),
    ])
    env = {"SOURCES__ERP__HOST": "127.0.0.1", "SOURCES__ERP__DATABASE": "test", "SOURCES__ERP__USERNAME": "postgres"}
    lake = tmp_path / "lake"
    try:
        result = cli("run", str(workbook), "--lake", str(lake), "--metrics-out", str(tmp_path / "m.json"), cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        for name in (big, inc):
            table = read_parquet(sorted((lake / "erp" / name).rglob("*.parquet")))
            assert_types(table)
            assert parquet_checksums(table, "id") == source_checksums(pg_engine, name, "id", TYPED_COLUMNS)
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {inc} (id, t1, ts) SELECT g, 'new', now() + interval '1 day' "
                                 "FROM generate_series(900001, 900010) g"))
            conn.execute(sa.text(f"UPDATE {inc} SET t1 = 'upd', ts = now() + interval '1 day' WHERE id <= 5"))
        again = cli("run", str(workbook), "--only", f"erp.{inc}", "--lake", str(lake),
                    "--metrics-out", str(tmp_path / "m2.json"), cwd=tmp_path, env=env)
        assert again.returncode == 0, again.stderr
        jobs = json.loads((tmp_path / "m2.json").read_text())["jobs"]
        assert [(j["job_id"], j["rows_processed"]) for j in jobs] == [(f"erp.{inc}", 15)]
        third = cli("run", str(workbook), "--only", f"erp.{inc}", "--lake", str(lake),
                    "--metrics-out", str(tmp_path / "m3.json"), cwd=tmp_path, env=env)
        assert json.loads((tmp_path / "m3.json").read_text())["jobs"][0]["rows_processed"] == 0, third.stderr
    finally:
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {big}"))
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {inc}"))
