"""Starter functions called as the host would call them: real `func.HttpRequest`, `TimerRequest`,
`QueueMessage` and `InputStream` objects, and the durable-client double (the SDK's own client
answered by the local runtime) in place of the host's durable client binding."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from ingest.durable import LocalDurableClient
from starters.functions import instance_id_for
from tests.conftest import named_blob

TIMEOUT = 60


def call(rt: Any, name: str, *args: Any) -> Any:
    fn = rt.functions.clients[name].fn
    return asyncio.run(fn(*args, client=LocalDurableClient(rt)))


def post(body: bytes) -> func.HttpRequest:
    return func.HttpRequest(method="POST", url="http://localhost:7071/api/ingestions", body=body,
                            headers={"Content-Type": "application/json"})


@pytest.fixture
def one_job(service_env: Path, sqlite_source: Any, workbook: Any) -> Path:
    sqlite_source("shop", 1)
    return workbook([{"source_type": "sqlite", "source_name": "shop", "table_name": "t0"}])


def test_http_start_returns_202_with_status_urls_then_status_reports_the_result(one_job: Path, runtime: Any) -> None:
    rt = runtime()
    response = call(rt, "start_ingestion_http", post(json.dumps({"config": str(one_job)}).encode()))
    assert response.status_code == 202
    links = json.loads(response.get_body())
    assert {"id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri", "purgeHistoryDeleteUri"} <= set(links)
    assert links["id"] == instance_id_for(str(one_job)) and response.headers["Location"] == links["statusQueryGetUri"]
    assert rt.wait(links["id"], TIMEOUT).succeeded

    get = func.HttpRequest(method="GET", url=f"http://localhost:7071/api/ingestions/{links['id']}", body=b"",
                           route_params={"instance_id": links["id"]})
    status = call(rt, "get_ingestion_status", get)
    body = json.loads(status.get_body())
    assert status.status_code == 200 and body["status"] == "Completed"
    assert body["progress"]["done"] == 1 and body["result"]["summary"]["successful"] == 1

    missing = call(rt, "get_ingestion_status", func.HttpRequest(
        method="GET", url="http://localhost:7071/api/ingestions/nope", body=b"", route_params={"instance_id": "nope"}))
    assert missing.status_code == 404


@pytest.mark.parametrize("body, field", [(b"{oops", "body"), (b'{"only": "erp"}', "only"), (b'{"dry_run": 1}', "dry_run"),
                                         (b'{"config": "x.csv"}', "config"), (b'{"extra": 1}', "extra")])
def test_http_start_rejects_malformed_bodies_naming_the_field(body: bytes, field: str, runtime: Any) -> None:
    rt = runtime()
    response = call(rt, "start_ingestion_http", post(body))
    assert response.status_code == 400
    assert json.loads(response.get_body())["field"] == field
    assert rt.list_instances() == []


def test_a_second_start_while_running_is_refused_with_409(
    service_env: Path, workbook: Any, runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A job whose source is missing waits a long retry timer: the run stays Running.
    monkeypatch.setenv("SOURCES__GONE__PATH", str(service_env / "missing.sqlite"))
    monkeypatch.setenv("RETRY_DATABASE_FIRST_INTERVAL_MS", "600000")
    path = workbook([{"source_type": "sqlite", "source_name": "gone", "table_name": "t0"}])
    rt = runtime()
    body = json.dumps({"config": str(path)}).encode()
    assert call(rt, "start_ingestion_http", post(body)).status_code == 202
    second = call(rt, "start_ingestion_http", post(body))
    assert second.status_code == 409
    assert json.loads(second.get_body())["instance_id"] == instance_id_for(str(path))
    assert len(rt.list_instances()) == 1
    rt.terminate(instance_id_for(str(path)), "test over")


def test_timer_starts_the_default_workbook_and_skips_while_it_still_runs(
    service_env: Path, workbook: Any, runtime: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from azure.functions.timer import TimerRequest

    monkeypatch.setenv("SOURCES__GONE__PATH", str(service_env / "missing.sqlite"))
    monkeypatch.setenv("RETRY_DATABASE_FIRST_INTERVAL_MS", "600000")  # keeps the first run going
    path = workbook([{"source_type": "sqlite", "source_name": "gone", "table_name": "t0"}])
    monkeypatch.setenv("INGESTION_CONFIG", str(path))
    rt = runtime()
    call(rt, "start_ingestion_timer", TimerRequest(past_due=False))
    (instance,) = rt.list_instances()
    assert instance.instance_id == instance_id_for(str(path)) and instance.input["config"] == str(path)
    with caplog.at_level("WARNING", logger="starters.functions"):
        call(rt, "start_ingestion_timer", TimerRequest(past_due=True))
    assert re.search(r"is still (Pending|Running); not starting another run", caplog.text)
    assert len(rt.list_instances()) == 1 and rt.get_status(instance.instance_id).runtime_status in ("Pending", "Running")
    rt.terminate(instance.instance_id, "test over")


def test_queue_message_starts_a_run_and_bad_messages_are_dropped(one_job: Path, runtime: Any) -> None:
    rt = runtime()
    call(rt, "start_ingestion_queue", func.QueueMessage(id="m1", body=b'{"only": ["nope"]}x'))
    assert rt.list_instances() == []
    call(rt, "start_ingestion_queue", func.QueueMessage(id="m2", body=json.dumps({"config": str(one_job)}).encode()))
    (instance,) = rt.list_instances()
    assert rt.wait(instance.instance_id, TIMEOUT).succeeded


def test_blob_trigger_passes_only_the_blob_path(one_job: Path, runtime: Any) -> None:
    rt = runtime()
    call(rt, "start_ingestion_blob", named_blob(str(one_job)))
    (instance,) = rt.list_instances()
    assert instance.input == {"config": str(one_job), "only": [], "dry_run": False}
    assert rt.wait(instance.instance_id, TIMEOUT).succeeded


# --- hostile and malformed input: every answer is short and bounded --------------------------

HOSTILE_BODIES = {
    "deeply nested": b"[" * 60_000,
    "nested object": b'{"config": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
    "long bad config": b'{"config": "' + b"a" * 60_000 + b'.csv"}',
    "huge field name": b'{"' + b"k" * 60_000 + b'": 1}',
    "not utf-8": b'{"config": "\xff\xfe.xlsx", "only": [1]}',
    "huge integer": b'{"dry_run": 1' + b"0" * 5000 + b"}",
}


@pytest.mark.parametrize("name", HOSTILE_BODIES)
def test_http_start_answers_hostile_bodies_with_a_short_400(name: str, runtime: Any) -> None:
    rt = runtime()
    response = call(rt, "start_ingestion_http", post(HOSTILE_BODIES[name]))
    assert response.status_code == 400
    assert len(response.get_body()) < 1024 and json.loads(response.get_body())["error"] == "invalid request"
    assert rt.list_instances() == []


def test_http_start_refuses_bodies_over_64_kib_with_413(runtime: Any) -> None:
    rt = runtime()
    big = b'{"config": "' + b"a" * 50_000_000 + b'.xlsx"}'
    response = call(rt, "start_ingestion_http", post(big))
    assert response.status_code == 413 and len(response.get_body()) < 1024
    assert "65536-byte limit" in json.loads(response.get_body())["message"]
    # A declared Content-Length over the limit is refused before the body is looked at.
    declared = func.HttpRequest(method="POST", url="http://localhost:7071/api/ingestions", body=b"{}",
                                headers={"Content-Type": "application/json", "Content-Length": str(10 * 1024 * 1024)})
    assert call(rt, "start_ingestion_http", declared).status_code == 413
    just_over = post(b" " * (64 * 1024 + 1))
    assert call(rt, "start_ingestion_http", just_over).status_code == 413
    assert rt.list_instances() == []


def test_http_start_refuses_another_container(runtime: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUNCTIONS_WORKER_RUNTIME", "python")  # as in Azure: references are blobs
    monkeypatch.setenv("CONFIG_CONTAINER", "config")
    rt = runtime()
    for config in ("private/secret_jobs.xlsx", "config/../private/secret_jobs.xlsx", "az://private/secret_jobs.xlsx"):
        response = call(rt, "start_ingestion_http", post(json.dumps({"config": config}).encode()))
        body = json.loads(response.get_body())
        assert response.status_code == 400 and body["field"] == "config"
        assert "container 'private' is not allowed; workbooks are read from 'config'" in body["message"]
    assert rt.list_instances() == []


def test_http_start_answers_404_for_a_missing_local_workbook(service_env: Path, runtime: Any) -> None:
    rt = runtime()
    missing = service_env / "nope.xlsx"
    response = call(rt, "start_ingestion_http", post(json.dumps({"config": str(missing)}).encode()))
    assert response.status_code == 404
    assert json.loads(response.get_body())["message"] == f"config: workbook not found: {missing}"
    assert rt.list_instances() == []


@pytest.mark.parametrize("body", [*HOSTILE_BODIES.values(), b'{"config": "' + b"a" * 70_000 + b'.xlsx"}',
                                  b"\x00\x01\x02", b'"just a string"', b'{"config": "nope/missing.xlsx"}'])
def test_queue_drops_malformed_and_hostile_messages_without_raising(
    body: bytes, service_env: Path, runtime: Any, caplog: pytest.LogCaptureFixture
) -> None:
    rt = runtime()
    with caplog.at_level("ERROR", logger="starters.functions"):
        call(rt, "start_ingestion_queue", func.QueueMessage(id="m-bad", body=body))
    assert rt.list_instances() == []
    (record,) = [r for r in caplog.records if r.name == "starters.functions"]
    assert record.getMessage().startswith("ignored ingestion message m-bad: ") and len(record.getMessage()) < 600


def test_timer_logs_a_missing_default_workbook_and_starts_nothing(
    service_env: Path, runtime: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from azure.functions.timer import TimerRequest

    monkeypatch.setenv("INGESTION_CONFIG", str(service_env / "gone.xlsx"))
    rt = runtime()
    with caplog.at_level("ERROR", logger="starters.functions"):
        call(rt, "start_ingestion_timer", TimerRequest(past_due=False))
    assert rt.list_instances() == []
    assert f"scheduled ingestion not started: config: workbook not found: {service_env / 'gone.xlsx'}" in caplog.text


def test_the_status_endpoint_does_not_echo_a_long_id(runtime: Any) -> None:
    rt = runtime()
    long_id = "x" * 100_000
    response = call(rt, "get_ingestion_status", func.HttpRequest(
        method="GET", url="http://localhost:7071/api/ingestions/x", body=b"", route_params={"instance_id": long_id}))
    assert response.status_code == 404 and len(response.get_body()) < 1024


# --- instance ids -------------------------------------------------------------------------

@pytest.mark.parametrize("a, b", [
    ("config/a b.xlsx", "config/a-b.xlsx"),
    ("config/" + "x" * 90 + "1.xlsx", "config/" + "x" * 90 + "2.xlsx"),
    ("config/" + "y" * 200 + ".xlsx", "config/z" + "y" * 199 + ".xlsx"),
    ("config/a.xlsx", "config/A.xlsx"),
    ("config/a#b.xlsx", "config/a?b.xlsx"),
])
def test_instance_ids_differ_for_different_workbooks(a: str, b: str) -> None:
    assert instance_id_for(a) != instance_id_for(b)


@pytest.mark.parametrize("config", ["config/ingestion_config.xlsx", "config/a b#c?d\\e\x01f.xlsx", "config/" + "é" * 500 + ".xlsx",
                                    "/tmp/pytest/test_x/jobs.xlsx", "config/.xlsx"])
def test_instance_ids_are_valid_durable_ids(config: str) -> None:
    instance_id = instance_id_for(config)
    assert instance_id == instance_id_for(config)  # stable
    assert instance_id.startswith("ingestion-") and len(instance_id) <= 90
    assert not re.search(r"[/\\#?\x00-\x1f\x7f]", instance_id)


def test_instance_ids_stay_readable() -> None:
    assert re.fullmatch(r"ingestion-config-ingestion_config-[0-9a-f]{16}", instance_id_for("config/ingestion_config.xlsx"))


def test_the_blob_starter_uses_the_event_grid_source_and_worker_safe_annotations() -> None:
    """Flex Consumption only runs Event Grid blob triggers; the worker rejects builtin generics
    (and evaluates string annotations) on binding parameters."""
    import importlib
    import inspect

    import azure.durable_functions as df

    import function_app

    app = importlib.reload(function_app).app  # get_functions() may run once per app object
    functions = {f.get_function_name(): f for f in app.get_functions()}
    (trigger,) = [b for b in json.loads(functions["start_ingestion_blob"].get_function_json())["bindings"]
                  if b["type"] == "blobTrigger"]
    assert trigger["source"] == "EventGrid" and trigger["path"] == "%CONFIG_CONTAINER%/{name}.xlsx"
    import starters.functions as starters

    allowed = {func.HttpRequest, func.InputStream, func.QueueMessage, func.TimerRequest, df.DurableOrchestrationClient}
    for name in ("start_ingestion_http", "get_ingestion_status", "start_ingestion_timer", "start_ingestion_blob", "start_ingestion_queue"):
        registered = getattr(starters, name)._function.get_user_function()  # what the worker indexes
        hints = inspect.get_annotations(registered, eval_str=True)  # the SDK turns the client's into str
        assert {hints[p] for p in inspect.signature(registered).parameters} <= allowed | {str}, name
