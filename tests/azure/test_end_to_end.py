"""The service end to end on Azurite: a workbook dropped into blob storage starts the
orchestration (local durable runtime, the blob starter as the host would call it), and the
CLI runs an `az://` workbook; Parquet, metrics, audit, breakers and failure events all land
in storage."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.workbook import write_workbook
from ingest.durable import LocalDurableClient
from tests.conftest import ROOT, named_blob

ROWS = [
    {"source_type": "sqlite", "source_name": "shop", "table_name": "customers", "load_type": "FULL", "enabled": "Y"},
    {"source_type": "sqlite", "source_name": "shop", "table_name": "orders", "load_type": "INCREMENTAL",
     "watermark_column": "updated_at", "primary_key": "id", "enabled": "Y"},
    {"source_type": "sqlite", "source_name": "gone", "table_name": "t0", "load_type": "FULL", "enabled": "Y"},
]


@pytest.fixture
def uploaded_workbook(azure_env: Any, shop_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SOURCES__GONE__PATH", str(tmp_path / "missing.sqlite"))
    local = tmp_path / "jobs.xlsx"
    write_workbook(local, ROWS)
    azure_env.upload(azure_env.config_container, "jobs.xlsx", local.read_bytes())
    return f"{azure_env.config_container}/jobs.xlsx"


def assert_everything_landed(env: Any) -> dict[str, Any]:
    parquet = [n for n in env.blob_names(env.lake) if n.endswith(".parquet")]
    assert {n.split("/")[1] for n in parquet} == {"customers", "orders"}
    metrics_names = env.blob_names(env.container, "metadata/metrics_")
    assert len(metrics_names) == 1
    metrics = json.loads(env.read_blob(env.container, metrics_names[0]))
    assert {j["job_id"]: j["status"] for j in metrics["jobs"]} == {
        "shop.customers": "success", "shop.orders": "success", "gone.t0": "failed"}
    (audit_name,) = env.blob_names(env.container, "metadata/audit/")
    audit = list(csv.DictReader(io.StringIO(env.read_blob(env.container, audit_name).decode())))
    assert sorted(r["job_id"] for r in audit) == ["gone.t0", "shop.customers", "shop.orders"]
    from azure.data.tables import TableClient

    table = TableClient.from_connection_string(env.account.connection_string, env.breaker_table)
    breakers = {e["RowKey"]: e for e in table.list_entities()}
    assert set(breakers) == {"shop", "gone"}
    messages = [json.loads(m) for m in env.queue_messages()]
    assert [(m["job_id"], m["status"]) for m in messages] == [("gone.t0", "failed")]
    assert messages[0]["run_id"] == metrics["run_id"] and "SQLite database file not found" in messages[0]["error"]
    return metrics


def test_dropping_a_workbook_runs_it(azure_env: Any, uploaded_workbook: str, runtime: Any) -> None:
    rt = runtime()
    asyncio.run(rt.functions.clients["start_ingestion_blob"].fn(named_blob(uploaded_workbook), client=LocalDurableClient(rt)))
    (instance,) = [i for i in rt.list_instances() if i.name == "ingestion_orchestrator"]
    assert instance.input["config"] == uploaded_workbook
    result = rt.wait(instance.instance_id, 120)
    assert result.succeeded, result.error
    assert result.output["metrics_path"].startswith(f"{azure_env.container}/metadata/metrics_")
    assert result.output["failure_events"] == 1
    assert_everything_landed(azure_env)


def test_cli_runs_an_az_workbook_with_only_azurite(azure_env: Any, uploaded_workbook: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "ingest", "run", f"az://{uploaded_workbook}", "--metrics-out", str(tmp_path / "m.json")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr  # one job fails on purpose
    metrics = assert_everything_landed(azure_env)
    assert json.loads((tmp_path / "m.json").read_text())["run_id"] == metrics["run_id"]
    assert not (tmp_path / ".ingestion").exists()  # state lived in storage, not on disk
