"""Starters inside a Functions host (FUNCTIONS_WORKER_RUNTIME set) on Azurite: every workbook
reference is a blob of CONFIG_CONTAINER, spelled one canonical way, checked to exist before the
run starts. Real `func.HttpRequest` / `InputStream` / `QueueMessage` / `TimerRequest` objects,
the local durable runtime, and Azurite for storage."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from shared.workbook import write_workbook
from ingest.durable import LocalDurableClient
from starters.functions import instance_id_for
from tests.conftest import named_blob


def call(rt: Any, name: str, *args: Any) -> Any:
    return asyncio.run(rt.functions.clients[name].fn(*args, client=LocalDurableClient(rt)))


def post(body: dict) -> func.HttpRequest:
    return func.HttpRequest(method="POST", url="http://localhost:7071/api/ingestions", body=json.dumps(body).encode(),
                            headers={"Content-Type": "application/json"})


@pytest.fixture
def in_host(azure_env: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("FUNCTIONS_WORKER_RUNTIME", "python")
    return azure_env


@pytest.fixture
def slow_workbook(in_host: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A workbook blob whose run stays Running (its source is missing and retries wait 10 min)."""
    monkeypatch.setenv("SOURCES__GONE__PATH", str(tmp_path / "missing.sqlite"))
    monkeypatch.setenv("RETRY_DATABASE_FIRST_INTERVAL_MS", "600000")
    local = tmp_path / "jobs.xlsx"
    write_workbook(local, [{"source_type": "sqlite", "source_name": "gone", "table_name": "t0", "load_type": "FULL", "enabled": "Y"}])
    in_host.upload(in_host.config_container, "jobs.xlsx", local.read_bytes())
    return f"{in_host.config_container}/jobs.xlsx"


def test_every_spelling_of_a_workbook_is_one_run(slow_workbook: str, in_host: Any, runtime: Any) -> None:
    rt = runtime()
    first = call(rt, "start_ingestion_http", post({"config": slow_workbook.replace("/", "/./")}))
    assert first.status_code == 202
    instance_id = json.loads(first.get_body())["id"]
    assert instance_id == instance_id_for(slow_workbook)
    container = in_host.config_container
    for spelling in (slow_workbook, f"{container}//jobs.xlsx", f"{container}/sub/../jobs.xlsx", "jobs.xlsx",
                     f"az://{container}/jobs.xlsx"):
        again = call(rt, "start_ingestion_http", post({"config": spelling}))
        assert again.status_code == 409, spelling
        assert json.loads(again.get_body())["instance_id"] == instance_id
    (instance,) = rt.list_instances()
    assert instance.input["config"] == slow_workbook
    rt.terminate(instance_id, "test over")


def test_a_missing_workbook_is_404_and_starts_nothing(in_host: Any, runtime: Any) -> None:
    rt = runtime()
    response = call(rt, "start_ingestion_http", post({"config": "nope.xlsx"}))
    assert response.status_code == 404 and len(response.get_body()) < 1024
    assert json.loads(response.get_body())["message"] == (
        f"config: workbook not found: {in_host.config_container}/nope.xlsx on {in_host.account.blob_host}")
    assert rt.list_instances() == []


def test_inside_the_host_the_sample_in_the_app_folder_is_never_run(
    in_host: Any, runtime: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from azure.functions.timer import TimerRequest

    # The deployed app folder (the worker's working directory) ships config/ingestion_config.xlsx.
    app_root = tmp_path / "wwwroot"
    write_workbook(app_root / "config" / "ingestion_config.xlsx",
                   [{"source_type": "sqlite", "source_name": "shop", "table_name": "t0", "load_type": "FULL", "enabled": "Y"}])
    monkeypatch.chdir(app_root)
    monkeypatch.setenv("CONFIG_CONTAINER", "config")
    monkeypatch.delenv("INGESTION_CONFIG", raising=False)
    rt = runtime()
    response = call(rt, "start_ingestion_http", post({}))
    assert response.status_code == 404
    assert json.loads(response.get_body())["message"].startswith("config: workbook not found: config/ingestion_config.xlsx on ")
    with caplog.at_level("ERROR", logger="starters.functions"):
        call(rt, "start_ingestion_timer", TimerRequest(past_due=False))
    assert "scheduled ingestion not started: config: workbook not found: config/ingestion_config.xlsx" in caplog.text
    assert rt.list_instances() == []


def test_timer_and_queue_start_an_existing_blob(slow_workbook: str, in_host: Any, runtime: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.functions.timer import TimerRequest

    monkeypatch.setenv("INGESTION_CONFIG", slow_workbook.replace("/", "//"))
    rt = runtime()
    call(rt, "start_ingestion_timer", TimerRequest(past_due=False))
    call(rt, "start_ingestion_queue", func.QueueMessage(id="m1", body=json.dumps({"config": "jobs.xlsx"}).encode()))
    (instance,) = rt.list_instances()
    assert (instance.instance_id, instance.input["config"]) == (instance_id_for(slow_workbook), slow_workbook)
    rt.terminate(instance.instance_id, "test over")


def test_queue_drops_a_message_naming_a_missing_workbook(in_host: Any, runtime: Any, caplog: pytest.LogCaptureFixture) -> None:
    rt = runtime()
    with caplog.at_level("ERROR", logger="starters.functions"):
        call(rt, "start_ingestion_queue", func.QueueMessage(id="m2", body=b'{"config": "nope.xlsx"}'))
    assert rt.list_instances() == []
    assert f"ignored ingestion message m2: config: workbook not found: {in_host.config_container}/nope.xlsx" in caplog.text


def test_blob_trigger_starts_the_dropped_blob_without_reading_it(in_host: Any, shop_db: Path, tmp_path: Path, runtime: Any) -> None:
    local = tmp_path / "w.xlsx"
    write_workbook(local, [{"source_type": "sqlite", "source_name": "shop", "table_name": "orders", "load_type": "FULL", "enabled": "Y"}])
    in_host.upload(in_host.config_container, "nightly.xlsx", local.read_bytes())
    rt = runtime()
    # What the host hands the function for an Event Grid BlobCreated event of that blob.
    call(rt, "start_ingestion_blob", named_blob(f"{in_host.config_container}/nightly.xlsx"))
    (instance,) = rt.list_instances()
    expected = f"{in_host.config_container}/nightly.xlsx"
    assert instance.input == {"config": expected, "only": [], "dry_run": False}
    assert instance.instance_id == instance_id_for(expected)
    result = rt.wait(instance.instance_id, 120)
    assert result.succeeded, result.error


def test_unreachable_storage_is_503_for_http_and_a_retry_for_the_queue(
    in_host: Any, runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import AZURITE_KEY, free_port

    port = free_port()  # nobody listens there
    monkeypatch.setenv("AzureWebJobsStorage", f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
                                              f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    rt = runtime()
    response = call(rt, "start_ingestion_http", post({"config": "jobs.xlsx"}))
    assert response.status_code == 503 and f"127.0.0.1:{port}" in json.loads(response.get_body())["message"]
    assert len(response.get_body()) < 1024 and AZURITE_KEY not in response.get_body().decode()
    with pytest.raises(RuntimeError, match=f"ingestion message m3 not started: storage 127.0.0.1:{port} is not reachable"):
        call(rt, "start_ingestion_queue", func.QueueMessage(id="m3", body=b'{"config": "jobs.xlsx"}'))
    assert rt.list_instances() == []
