"""Where a workbook reference points (file or blob) and its canonical blob spelling."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.storage import storage_account
from shared.workbook_ref import (WorkbookRefError, canonical_blob, in_functions_host, is_blob_reference,
                                 require_container, resolve_workbook)

AZURITE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


@pytest.mark.parametrize("environ, expected", [
    ({}, False), ({"FUNCTIONS_WORKER_RUNTIME": "python"}, True),
    ({"FUNCTIONS_WORKER_DIRECTORY": "/azure-functions-host/workers/python/3.11/LINUX/X64"}, True),
    ({"FUNCTIONS_WORKER_RUNTIME": ""}, False),
])
def test_the_functions_host_is_recognised_by_the_variables_it_sets(environ: dict, expected: bool) -> None:
    assert in_functions_host(environ) is expected


def test_inside_a_host_an_existing_local_file_is_still_a_blob(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The deployed app folder ships config/ingestion_config.xlsx: it must never shadow the blob.
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "ingestion_config.xlsx").write_bytes(b"sample")
    monkeypatch.chdir(tmp_path)
    account = storage_account(AZURITE)
    assert is_blob_reference("config/ingestion_config.xlsx", account, {}) is False  # the CLI: the local file
    host = {"FUNCTIONS_WORKER_RUNTIME": "python", **AZURITE}
    assert is_blob_reference("config/ingestion_config.xlsx", account, host) is True
    assert is_blob_reference("config/ingestion_config.xlsx", None, host) is True
    ref = resolve_workbook("config/ingestion_config.xlsx", account, "config", host)
    assert (ref.is_blob, ref.path) == (True, "config/ingestion_config.xlsx")


def test_outside_a_host_the_cli_rules_stay(tmp_path: Path) -> None:
    local = tmp_path / "w.xlsx"
    local.write_bytes(b"x")
    account = storage_account(AZURITE)
    assert is_blob_reference(str(local), account, {}) is False
    assert is_blob_reference(str(tmp_path / "missing.xlsx"), None, {}) is False
    assert is_blob_reference("config/missing.xlsx", account, {}) is True
    assert is_blob_reference("az://config/w.xlsx", None, {}) is True
    assert resolve_workbook(str(tmp_path / "." / "w.xlsx"), account, "config", {}).path == str(local)


@pytest.mark.parametrize("spelling", [
    "config/x.xlsx", "config/./x.xlsx", "config//x.xlsx", "config/sub/../x.xlsx", "/config/x.xlsx",
    "x.xlsx", "az://config/x.xlsx", "az://config//./x.xlsx", "abfss://config@acct.dfs.core.windows.net/x.xlsx",
])
def test_every_spelling_of_one_blob_has_one_canonical_path(spelling: str) -> None:
    assert canonical_blob(spelling, "config").path == "config/x.xlsx"


@pytest.mark.parametrize("spelling, container", [
    ("config/../private/secret.xlsx", "private"), ("../private/secret.xlsx", "private"),
    ("config/a/../../private/secret.xlsx", "private"), ("az://config/../private/secret.xlsx", "private"),
])
def test_dot_dot_cannot_hide_another_container(spelling: str, container: str) -> None:
    ref = canonical_blob(spelling, "config")
    assert ref.container == container
    with pytest.raises(WorkbookRefError, match="container 'private' is not allowed; workbooks are read from 'config'"):
        require_container(ref, "config")


@pytest.mark.parametrize("bad", ["config\\x.xlsx", "config/\x7fx.xlsx", "config/..", "az://config", "az:///x.xlsx", "..", "config/", "./x.xlsx"])
def test_unusable_blob_references_are_refused_briefly(bad: str) -> None:
    with pytest.raises(WorkbookRefError) as info:
        canonical_blob(bad, "config")
    assert len(str(info.value)) < 200


def test_a_long_reference_is_quoted_short() -> None:
    with pytest.raises(WorkbookRefError) as info:
        canonical_blob("\\" + "a" * 100_000, "config")
    assert len(str(info.value)) < 200
