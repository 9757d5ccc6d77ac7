"""Function indexing, quick check: every starter, binding, orchestrator and activity is declared.

`app.get_functions()` and each function's JSON are what the SDK produces in this venv; they are
NOT what the host validates. At start the host loads the app through the Python worker, which also
validates every function's parameter annotations against its bindings and loads no function when
one fails: tests/worker/ runs that real worker loader (Python 3.13), with the same binding checks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest


@pytest.fixture(scope="module")
def bindings() -> dict[str, list[dict[str, Any]]]:
    import importlib

    import function_app

    app = importlib.reload(function_app).app  # get_functions() may run once per app object
    return {f.get_function_name(): json.loads(f.get_function_json())["bindings"] for f in app.get_functions()}


def by_type(bindings: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [b for b in bindings if b["type"] == kind]
    assert len(found) == 1, (kind, bindings)
    return found[0]


def test_function_names(bindings: dict[str, Any]) -> None:
    assert set(bindings) == {
        "start_ingestion_http", "get_ingestion_status", "start_ingestion_timer", "start_ingestion_blob",
        "start_ingestion_queue", "ingestion_orchestrator", "ingestion_batch", "load_plan", "check_breakers",
        "run_ingestion_job", "run_ingestion_slice", "finish_split_job", "export_metrics", "reset_breaker_http",
        "get_ingestion_report",
    }


def test_http_starters(bindings: dict[str, Any]) -> None:
    start = by_type(bindings["start_ingestion_http"], "httpTrigger")
    assert (start["route"], start["methods"], start["authLevel"], start["direction"]) == ("ingestions", ["POST"], "FUNCTION", "IN")
    status = by_type(bindings["get_ingestion_status"], "httpTrigger")
    assert (status["route"], status["methods"]) == ("ingestions/{instance_id}", ["GET"])
    for name in ("start_ingestion_http", "get_ingestion_status"):
        assert by_type(bindings[name], "http")["direction"] == "OUT"


def test_breaker_reset_route(bindings: dict[str, Any]) -> None:
    """A plain HTTP function (no durable client), behind a function key like the other routes."""
    trigger = by_type(bindings["reset_breaker_http"], "httpTrigger")
    assert (trigger["route"], trigger["methods"], trigger["authLevel"]) == ("breakers/{source}/reset", ["POST"], "FUNCTION")
    assert by_type(bindings["reset_breaker_http"], "http")["direction"] == "OUT"
    assert sorted(b["type"] for b in bindings["reset_breaker_http"]) == ["http", "httpTrigger"]


def test_report_route(bindings: dict[str, Any]) -> None:
    """A plain HTTP function (it reads the metrics store, not the durable client), behind a function key."""
    trigger = by_type(bindings["get_ingestion_report"], "httpTrigger")
    assert (trigger["route"], trigger["methods"], trigger["authLevel"]) == ("ingestions/{instance_id}/report", ["GET"], "FUNCTION")
    assert sorted(b["type"] for b in bindings["get_ingestion_report"]) == ["http", "httpTrigger"]


def test_timer_blob_and_queue_starters(bindings: dict[str, Any]) -> None:
    timer = by_type(bindings["start_ingestion_timer"], "timerTrigger")
    assert timer["schedule"] == "%INGESTION_SCHEDULE%" and timer.get("runOnStartup") in (False, None)
    blob = by_type(bindings["start_ingestion_blob"], "blobTrigger")
    assert (blob["path"], blob["connection"]) == ("%CONFIG_CONTAINER%/{name}.xlsx", "AzureWebJobsStorage")
    queue = by_type(bindings["start_ingestion_queue"], "queueTrigger")
    assert (queue["queueName"], queue["connection"]) == ("%INGESTION_QUEUE%", "AzureWebJobsStorage")


def test_every_starter_has_a_durable_client(bindings: dict[str, Any]) -> None:
    for name in ("start_ingestion_http", "get_ingestion_status", "start_ingestion_timer", "start_ingestion_blob", "start_ingestion_queue"):
        client = by_type(bindings[name], "durableClient")
        assert (client["name"], client["direction"]) == ("client", "IN")


def test_orchestrators_and_activities(bindings: dict[str, Any]) -> None:
    for name in ("ingestion_orchestrator", "ingestion_batch"):
        trigger = by_type(bindings[name], "orchestrationTrigger")
        assert trigger["name"] == "context" and len(bindings[name]) == 1
    for name in ("load_plan", "check_breakers", "run_ingestion_job", "run_ingestion_slice", "finish_split_job", "export_metrics"):
        trigger = by_type(bindings[name], "activityTrigger")
        assert trigger["name"] == "payload" and len(bindings[name]) == 1
