"""The start request contract shared by the HTTP and queue starters."""

from __future__ import annotations

import json

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


def test_deeply_nested_json_is_a_400_not_a_recursion_error() -> None:
    with pytest.raises(StartRequestError) as info:
        parse_start_request(b"[" * 60_000)
    assert info.value.status == 400 and "nested too deeply" in str(info.value)
    with pytest.raises(StartRequestError):
        parse_start_request(b'{"config": ' + b"[" * 30_000 + b"]" * 30_000 + b"}")


def test_a_body_over_the_limit_is_413_and_the_limit_is_64_kib() -> None:
    from shared.start_request import MAX_BODY_BYTES, RequestTooLarge

    assert MAX_BODY_BYTES == 64 * 1024
    parse_start_request(b" " * MAX_BODY_BYTES)  # at the limit: fine (empty body)
    with pytest.raises(RequestTooLarge) as info:
        parse_start_request(b'{"config": "' + b"a" * 50_000_000 + b'.xlsx"}')
    assert info.value.status == 413 and len(str(info.value)) < 200


@pytest.mark.parametrize("body", [
    b'{"config": "' + b"a" * 60_000 + b'.csv"}',                     # pattern
    b'{"config": "' + b"a" * 60_000 + b'.xlsx"}',                    # maxLength
    b'{"only": [' + b'"erp",' * 600 + b'"erp"]}',                   # maxItems
    b'{"' + b"k" * 60_000 + b'": 1}',                                # unknown field with a huge name
    b'{"dry_run": [' + b'"' + b"x" * 30_000 + b'",' * 1 + b'1]}',    # type
    b'{"config": 1' + b"0" * 5000 + b"}",                            # an integer over the digit limit
    b'{"only": [[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]}',              # nested value
])
def test_error_messages_quote_only_a_short_prefix(body: bytes) -> None:
    with pytest.raises(StartRequestError) as info:
        parse_start_request(body)
    assert len(str(info.value)) < 300 and len(info.value.field) <= 64
    assert len(json.dumps(info.value.to_dict())) < 1024
