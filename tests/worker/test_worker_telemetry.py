"""Telemetry the Azure way, through the real Python worker (3.13): `PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY`.

With that setting the worker configures Microsoft's distro before it imports the app, and runs
each invocation under the trace context the host sends. The app must load, keep the worker's
setup (no second configuration), and its activity and job spans must land in that trace, with
the job's fields on its log records. Application Insights is a local ingestion endpoint named by
the connection string; the worker process exits at the end, flushing what it buffered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.telemetry.test_setup import Receiver
from tests.worker.test_worker_loads_app import ACTIVITIES, ADMIN, ORCHESTRATORS, STARTERS, ROOT, WorkerSession
from tests.worker.test_worker_loads_app import worker_env, worker_python  # noqa: F401 - fixtures

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
HOST_SPAN = "00f067aa0ba902b7"


def items(endpoint: Receiver) -> list[dict[str, Any]]:
    return [item for body in endpoint.bodies("/v2.1/track") for item in json.loads(body)]


def test_the_worker_configures_the_distro_and_the_app_spans_join_the_host_trace(
    worker_python: Path, worker_env: dict[str, str], tmp_path: Path  # noqa: F811 - fixtures
) -> None:
    from shared.workbook import write_workbook

    workbook = write_workbook(tmp_path / "jobs.xlsx", [
        {"source_type": "sqlite", "source_name": "shop", "table_name": "items", "load_type": "FULL", "enabled": "Y"},
        {"source_type": "sqlite", "source_name": "gone", "table_name": "items", "load_type": "FULL", "enabled": "Y"},
    ])
    endpoint = Receiver(answer=json.dumps({"itemsReceived": 0, "itemsAccepted": 0, "errors": []}).encode())
    env = {**worker_env, "SOURCES__GONE__PATH": str(tmp_path / "missing.sqlite"), "TMPDIR": str(tmp_path),
           "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true",
           "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
                                                    f"IngestionEndpoint={endpoint.url}/;LiveEndpoint={endpoint.url}/",
           "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true", "OTEL_TRACES_SAMPLER": "always_on",
           "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "requests,urllib,urllib3,httpx,psycopg2"}
    session = WorkerSession(worker_python, ROOT, env)
    try:
        assert session.init() == sorted({*STARTERS, *ADMIN, *ORCHESTRATORS, *ACTIVITIES})
        key = "ingestion-otel-20260101T000000"
        plan = session.activity("load_plan", {"request": {"config": str(workbook)}, "run_key": key})
        for index in (0, 1):
            payload = {"run_key": key, "plan_ref": plan["plan_ref"], "run_id": "otel-run", "index": index, "attempt": 1}
            answer = session.call("invoke", function="run_ingestion_job", trace_parent=f"00-{TRACE_ID}-{HOST_SPAN}-01",
                                  input_data={"payload": {"json": json.dumps(payload)}})
            assert answer["status"] == "Success", answer["message"]
    finally:
        session.close()
        endpoint.server.shutdown()
    assert session.proc.returncode == 0, "".join(session.stderr)[-3000:]

    tracked = items(endpoint)
    spans = {i["data"]["baseData"]["id"]: i for i in tracked if i["data"]["baseType"] in ("RequestData", "RemoteDependencyData")}
    named = lambda name: [s for s in spans.values() if s["data"]["baseData"]["name"] == name]  # noqa: E731
    activities, jobs = named("run_ingestion_job"), named("ingestion.job")
    assert len(activities) == 2 and len(jobs) == 2, sorted(s["data"]["baseData"]["name"] for s in spans.values())
    for activity in activities:  # children of the host's invocation span, in the host's trace
        assert activity["tags"]["ai.operation.id"] == TRACE_ID and activity["tags"]["ai.operation.parentId"] == HOST_SPAN
    for job in jobs:
        assert job["tags"]["ai.operation.id"] == TRACE_ID and spans[job["tags"]["ai.operation.parentId"]] in activities
        props = job["data"]["baseData"]["properties"]
        assert props["ingestion.run_id"] == "otel-run" and props["table_name"] == "items" and props["attempt"] == "1"
    statuses = sorted(j["data"]["baseData"]["properties"]["status"] for j in jobs)
    assert statuses == ["failed", "success"]

    # The failed job's error line, with the job's fields as custom dimensions, in the same trace.
    [message] = [i for i in tracked if i["data"]["baseType"] == "MessageData"
                 and "job gone.items failed" in i["data"]["baseData"]["message"]]
    dims = message["data"]["baseData"]["properties"]
    assert (dims["source_name"], dims["job_id"], dims["ingestion.run_id"], dims["load_type"]) == (
        "gone", "gone.items", "otel-run", "FULL")
    assert message["tags"]["ai.operation.id"] == TRACE_ID
    # Configured once: the app found the worker's providers (one exporter, so no item twice).
    ids = [i["data"]["baseData"]["id"] for i in tracked if i["data"]["baseType"] == "RemoteDependencyData"]
    assert len(ids) == len(set(ids))
