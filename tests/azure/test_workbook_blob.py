"""Workbooks read from blob storage: the same validation as files, and clear errors for blobs."""

from __future__ import annotations

from typing import Any

import pytest

from shared.workbook.models import PlanError
from shared.steps import Services, plan_run


def plan(config: str) -> dict[str, Any]:
    return plan_run({"config": config, "only": []}, "key-1", Services.from_env())


def test_missing_blob_is_named(azure_env: Any) -> None:
    with pytest.raises(PlanError) as info:
        plan(f"az://{azure_env.config_container}/nope.xlsx")
    assert info.value.problems == [f"workbook blob not found: {azure_env.config_container}/nope.xlsx on {azure_env.account.blob_host}"]


def test_a_csv_uploaded_as_xlsx_gets_the_file_error(azure_env: Any) -> None:
    azure_env.upload(azure_env.config_container, "jobs.xlsx", b"source_type,source_name\npostgresql,erp\n")
    with pytest.raises(PlanError) as info:
        plan(f"{azure_env.config_container}/jobs.xlsx")
    assert "CSV/text file, not an Excel .xlsx workbook" in str(info.value)


def test_an_oversized_blob_is_refused_before_download(azure_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import shared.workbook.workbook as workbook

    monkeypatch.setattr(workbook, "MAX_BYTES", 1000)
    azure_env.upload(azure_env.config_container, "big.xlsx", b"x" * 5000)
    with pytest.raises(PlanError, match="the file is 0.0 MB; a jobs workbook is expected"):
        plan(f"az://{azure_env.config_container}/big.xlsx")


def test_a_bare_name_is_looked_up_in_the_config_container(azure_env: Any, shop_db: Any, tmp_path: Any) -> None:
    from shared.workbook import write_workbook

    local = tmp_path / "w.xlsx"
    write_workbook(local, [{"source_type": "sqlite", "source_name": "shop", "table_name": "orders",
                            "load_type": "FULL", "enabled": "Y"}])
    azure_env.upload(azure_env.config_container, "w.xlsx", local.read_bytes())
    result = plan("w.xlsx")
    assert [j["id"] for j in result["jobs"]] == ["shop.orders"]


def test_inside_a_functions_host_the_app_folder_sample_is_never_read(
    azure_env: Any, shop_db: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.workbook import write_workbook

    # The host starts the worker in the app folder, which ships config/ingestion_config.xlsx.
    write_workbook(tmp_path / "config" / "ingestion_config.xlsx",
                   [{"source_type": "sqlite", "source_name": "shop", "table_name": "orders", "load_type": "FULL", "enabled": "Y"}])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONFIG_CONTAINER", "config")
    assert plan("config/ingestion_config.xlsx")["jobs"]  # the CLI: the local file, as before
    monkeypatch.setenv("FUNCTIONS_WORKER_RUNTIME", "python")
    with pytest.raises(PlanError) as info:
        plan("config/ingestion_config.xlsx")
    assert info.value.problems == [f"workbook blob not found: config/ingestion_config.xlsx on {azure_env.account.blob_host}"]


def test_inside_a_functions_host_only_the_config_container_is_read(azure_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    azure_env.upload(azure_env.container, "secret_jobs.xlsx", b"not for you")
    monkeypatch.setenv("FUNCTIONS_WORKER_RUNTIME", "python")
    with pytest.raises(PlanError) as info:
        plan(f"{azure_env.container}/secret_jobs.xlsx")
    assert info.value.problems == [
        f"container '{azure_env.container}' is not allowed; workbooks are read from '{azure_env.config_container}'"]


def test_a_canonical_spelling_reads_the_same_blob(azure_env: Any, shop_db: Any, tmp_path: Any) -> None:
    from shared.workbook import write_workbook

    local = tmp_path / "w.xlsx"
    write_workbook(local, [{"source_type": "sqlite", "source_name": "shop", "table_name": "orders", "load_type": "FULL", "enabled": "Y"}])
    azure_env.upload(azure_env.config_container, "w.xlsx", local.read_bytes())
    assert [j["id"] for j in plan(f"{azure_env.config_container}/sub/..//./w.xlsx")["jobs"]] == ["shop.orders"]


def test_unreachable_storage_fails_the_fetch_in_seconds_naming_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from shared.steps import fetch_workbook
    from shared.storage import StorageUnreachableError, storage_account
    from tests.conftest import AZURITE_KEY, free_port

    port = free_port()
    monkeypatch.setenv("AzureWebJobsStorage", f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
                                              f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    started = time.monotonic()
    with pytest.raises(StorageUnreachableError) as info:
        fetch_workbook("az://config/x.xlsx", storage_account(), "config")
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert message.startswith(f"storage 127.0.0.1:{port} is not reachable") and "\n" not in message and len(message) < 400
