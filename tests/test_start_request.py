"""The start request contract shared by the HTTP and queue starters."""

from __future__ import annotations

import pytest

from shared.start_request import DEFAULT_CONFIG, StartRequestError, parse_start_request


@pytest.mark.parametrize("body", [None, b"", "  ", {}])
def test_empty_body_means_defaults(body: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INGESTION_CONFIG", raising=False)
    assert parse_start_request(body) == {"config": DEFAULT_CONFIG, "only": [], "dry_run": False}


def test_default_workbook_comes_from_the_app_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGESTION_CONFIG", "config/nightly.xlsx")
    assert parse_start_request(None)["config"] == "config/nightly.xlsx"


def test_full_body() -> None:
    body = b'{"config": "config/jobs.xlsx", "only": ["erp", "crm.accounts"], "dry_run": true}'
    assert parse_start_request(body) == {"config": "config/jobs.xlsx", "only": ["erp", "crm.accounts"], "dry_run": True}


@pytest.mark.parametrize(
    "body, field, fragment",
    [
        (b"{not json", "body", "not valid JSON"),
        (b"[1, 2]", "body", "expected a JSON object"),
        (b'{"config": 5}', "config", "is not of type string"),
        (b'{"config": "jobs.csv"}', "config", "not a workbook path ending in .xlsx"),
        (b'{"only": "erp"}', "only", "is not of type array"),
        (b'{"only": ["erp; drop"]}', "only.0", "is not 'source', 'source.table'"),
        (b'{"dry_run": "yes"}', "dry_run", "is not of type boolean"),
        (b'{"confg": "x.xlsx"}', "confg", "unknown field"),
    ],
)
def test_malformed_bodies_name_the_field(body: bytes, field: str, fragment: str) -> None:
    with pytest.raises(StartRequestError) as info:
        parse_start_request(body)
    assert info.value.field == field and fragment in str(info.value)
    assert info.value.to_dict()["field"] == field
