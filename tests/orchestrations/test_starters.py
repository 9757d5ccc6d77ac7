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

from shared.durable import LocalDurableClient
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
