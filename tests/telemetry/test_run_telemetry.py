"""A real run's telemetry in the SDK's in-memory exporters (acceptance of issue 13, item 1).

`run_app.py` runs in a fresh interpreter: in-memory providers installed first (as the Functions
worker installs its own), then `function_app` imported, then the HTTP starter on the local
durable runtime inside a server span. The workbook has a PostgreSQL job that loads and one that
fails on every attempt with its secret in the error (its role name is its password: PostgreSQL
answers `role "<secret>" does not exist`). Asserted: the span tree starter -> run
(orchestration) -> activity -> job attempt, its links and attributes; log records carrying the
job's fields, installed by importing the app; the job metrics; no secret anywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa

from shared.workbook import write_workbook
from tests.conftest import ROOT

HARNESS = Path(__file__).with_name("run_app.py")
ROWS = 2_000
JOB_FIELDS = ("ingestion.run_id", "source_name", "table_name", "job_id", "load_type", "attempt")
DROPPED = ("SOURCES__", "DESTINATION__", "INGESTION_", "AzureWebJobsStorage", "APPLICATIONINSIGHTS_", "OTEL_",
           "PYTHON_APPLICATIONINSIGHTS_", "FUNCTIONS_", "WEBSITE_", "RETRY_", "CIRCUIT_BREAKER_")


@pytest.fixture
def table(pg_engine: sa.Engine) -> Iterator[str]:
    name = f"otel_{uuid.uuid4().hex[:8]}"
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {name} (id int PRIMARY KEY, v text)"))
        conn.execute(sa.text(f"INSERT INTO {name} SELECT g, 'v' || g FROM generate_series(1, {ROWS}) g"))
    yield name
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


@pytest.fixture
def secrets() -> dict[str, str]:
    return {"erp": f"erp-Pa55:w/rd-{uuid.uuid4().hex[:10]}", "broken": f"brokenSecret{uuid.uuid4().hex[:10]}"}


@pytest.fixture
def telemetry(tmp_path: Path, pg_engine: sa.Engine, table: str, secrets: dict[str, str]) -> dict[str, Any]:
    """Run the harness; its JSON dump."""
    url = pg_engine.url
    workbook = tmp_path / "jobs.xlsx"
    write_workbook(workbook, [
        {"source_type": "postgresql", "source_name": "erp", "table_name": table, "load_type": "FULL", "enabled": "Y"},
        {"source_type": "postgresql", "source_name": "broken", "table_name": table, "load_type": "FULL", "enabled": "Y"},
    ])
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED)}
    env.update({
        "PYTHONDONTWRITEBYTECODE": "1", "RUNTIME__DLTHUB_TELEMETRY": "false", "DLT_PROJECT_DIR": str(tmp_path),
        "INGESTION_STATE_DIR": str(tmp_path / "state"), "INGESTION_METRICS_DIR": str(tmp_path / "metrics"),
        "INGESTION_AUDIT_DIR": str(tmp_path / "audit"), "INGESTION_WORK_DIR": str(tmp_path / "work"),
        "DESTINATION__FILESYSTEM__BUCKET_URL": str(tmp_path / "lake"),
        "RETRY_DATABASE_MAX_ATTEMPTS": "2", "RETRY_DATABASE_FIRST_INTERVAL_MS": "50",
        # As in Azure with PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: the worker's providers are
        # installed before the app loads; the app must keep them, not configure the distro again.
        "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
                                                 "IngestionEndpoint=http://127.0.0.1:9/",
    })
    for source, user in (("ERP", url.username), ("BROKEN", secrets["broken"])):
        env.update({f"SOURCES__{source}__HOST": url.host, f"SOURCES__{source}__PORT": str(url.port or 5432),
                    f"SOURCES__{source}__DATABASE": url.database, f"SOURCES__{source}__USERNAME": user,
                    f"SOURCES__{source}__PASSWORD": secrets[source.lower()]})
    out = tmp_path / "telemetry.json"
    proc = subprocess.run([sys.executable, str(HARNESS), str(workbook), str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_a_run_gives_a_span_tree_with_attributes_logs_and_metrics_and_no_secret(
    telemetry: dict[str, Any], table: str, secrets: dict[str, str]
) -> None:
    data = telemetry
    assert data["status_code"] == 202 and data["runtime_status"] == "Completed", data["error"]
    summary = data["output"]["summary"]
    assert (summary["successful"], summary["failed"]) == (1, 1)
    run_id = data["instance_id"]

    # The log hook is installed by importing the app, not by anything before it.
    assert "job_context" not in data["hooks_before"] and "job_context" in data["hooks_after"]
    assert data["configured"] == "host"

    spans = {s["context"]["span_id"]: s for s in data["spans"]}
    assert len({s["context"]["trace_id"] for s in data["spans"]}) == 1, "one trace from the starter to every job"

    def parent(span: dict[str, Any]) -> dict[str, Any]:
        return spans[span["parent_id"]]

    [starter] = [s for s in data["spans"] if s["parent_id"] is None]
    assert starter["name"] == "POST /api/ingestions"
    [run] = [s for s in data["spans"] if s["name"] == "orchestration:ingestion_orchestrator"]
    assert parent(run) is starter and run["attributes"]["durabletask.task.instance_id"] == run_id
    activities = [s for s in data["spans"] if s["parent_id"] == run["context"]["span_id"]]
    assert sorted(s["name"] for s in activities) == sorted(
        ["load_plan", "check_breakers", "run_ingestion_job", "run_ingestion_job", "run_ingestion_job", "export_metrics"])
    assert all(s["attributes"]["ingestion.run_id"] == run_id for s in activities)

    jobs = [s for s in data["spans"] if s["name"] == "ingestion.job"]
    assert len(jobs) == 3
    for job in jobs:
        activity = parent(job)
        assert activity["name"] == "run_ingestion_job" and parent(activity) is run
        assert activity["attributes"]["attempt"] == job["attributes"]["attempt"]
        assert activity["attributes"]["status"] == job["attributes"]["status"]
        attrs = job["attributes"]
        assert attrs["ingestion.run_id"] == run_id and attrs["table_name"] == table and attrs["load_type"] == "FULL"
        assert attrs["job_id"] == f"{attrs['source_name']}.{table}"
        assert job["start_time"] >= activity["start_time"] and job["end_time"] <= activity["end_time"]

    [good] = [j for j in jobs if j["attributes"]["source_name"] == "erp"]
    assert good["attributes"]["status"] == "success" and good["attributes"]["rows"] == ROWS
    assert good["attributes"]["bytes"] > 0 and good["attributes"]["files"] >= 1 and good["attributes"]["attempt"] == 1
    assert good["status"]["status_code"] == "UNSET" and good["events"] == []

    failed = sorted((j for j in jobs if j["attributes"]["source_name"] == "broken"), key=lambda j: j["attributes"]["attempt"])
    assert [j["attributes"]["attempt"] for j in failed] == [1, 2]
    for job in failed:
        assert job["attributes"]["status"] == "failed" and job["attributes"]["rows"] == 0
        assert job["status"]["status_code"] == "ERROR" and parent(job)["status"]["status_code"] == "ERROR"
        [event] = job["events"]
        assert event["name"] == "exception" and event["attributes"]["exception.type"]
        # The secret was in the error (PostgreSQL names the role); the event has it masked.
        assert 'role "***" does not exist' in event["attributes"]["exception.message"]

    # Every record logged inside a job attempt carries its fields as custom dimensions.
    for job in jobs:
        records = [r for r in data["logs"] if r["span_id"] == job["context"]["span_id"]]
        assert records, f"no log record inside {job['attributes']['job_id']} attempt {job['attributes']['attempt']}"
        for record in records:
            assert record["trace_id"] == job["context"]["trace_id"]
            assert {f: record["attributes"].get(f) for f in JOB_FIELDS} == {f: job["attributes"][f] for f in JOB_FIELDS}
    assert any("failed" in r["body"] and r["attributes"].get("source_name") == "broken" for r in data["logs"])

    # Rows and duration of every attempt, with the span's attributes.
    points = {m["name"]: m["data"]["data_points"] for resource in data["metrics"]["resource_metrics"]
              for scope in resource["scope_metrics"] for m in scope["metrics"]}
    rows = {(p["attributes"]["job_id"], p["attributes"]["attempt"]): p for p in points["ingestion.job.rows"]}
    assert rows[(f"erp.{table}", 1)]["value"] == ROWS and rows[(f"broken.{table}", 2)]["value"] == 0
    assert {f: rows[(f"erp.{table}", 1)]["attributes"][f] for f in JOB_FIELDS} == {f: good["attributes"][f] for f in JOB_FIELDS}
    assert rows[(f"erp.{table}", 1)]["attributes"]["status"] == "success"
    assert sum(p["count"] for p in points["ingestion.job.duration"]) == 3

    dump = json.dumps({k: data[k] for k in ("spans", "logs", "metrics")})
    for secret in secrets.values():
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            assert form not in dump
