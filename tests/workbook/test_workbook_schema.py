"""The schema file is the contract: well-formed, complete, and what validation obeys."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from shared.workbook import SCHEMA_PATH, Job, WorkbookSchema, load_schema, validate_workbook
from shared.workbook.models import API_SOURCE_TYPES, SQL_SOURCE_TYPES
from shared.workbook.schema import CellValueError, to_json_value


def test_columns_in_template_order(schema: WorkbookSchema) -> None:
    assert schema.sheet_name == "SourceConfig"
    assert schema.names == (
        "source_type",
        "source_name",
        "table_name",
        "load_type",
        "enabled",
        "schema_name",
        "watermark_column",
        "last_watermark",
        "chunk_size",
        "api_endpoint",
        "primary_key",
        "api_data_selector",
        "api_paginator",
        "api_params",
        "api_incremental_param",
        "partition_column",
        "min_rows",
        "keep_char_padding",
    )
    assert schema.required_names == ("source_type", "source_name", "table_name", "load_type", "enabled")


def test_conditional_requirements(schema: WorkbookSchema) -> None:
    conditions = {c.name: c.required_when for c in schema.columns if c.required_when}
    assert conditions == {
        "schema_name": ("source_type is oracle",),
        "watermark_column": ("load_type is INCREMENTAL",),
        "api_endpoint": ("source_type is api",),
    }


def test_source_types_match_the_models(schema: WorkbookSchema) -> None:
    assert schema.column("source_type").enum == SQL_SOURCE_TYPES + API_SOURCE_TYPES


def test_every_column_becomes_a_job_field(schema: WorkbookSchema) -> None:
    fields = {f.name for f in dataclasses.fields(Job)}
    assert set(schema.names) <= fields


def test_every_column_is_documented_for_users(schema: WorkbookSchema) -> None:
    for column in schema.columns:
        assert column.description, column.name
        assert column.example is not None, column.name
        # A raw regex is no help to a data engineer: every pattern comes with words.
        assert "pattern" not in column.spec or "x-allowed" in column.spec, column.name
        assert "\\" not in column.allowed() and "^" not in column.allowed(), column.name


def test_examples_are_valid_values(schema: WorkbookSchema) -> None:
    """Each column's example, typed into a cell, passes that column's rule."""
    for column in schema.columns:
        value = to_json_value(column, column.example)
        errors = [e for e in schema.validator.iter_errors({column.name: value}) if list(e.path)]
        assert errors == [], (column.name, [e.message for e in errors])


@pytest.mark.parametrize(
    ("name", "cell", "expected"),
    [
        ("source_type", " PostgreSQL ", "postgresql"),
        ("load_type", "incremental", "INCREMENTAL"),
        ("enabled", " yes ", True),
        ("enabled", 0, False),
        ("enabled", 1.0, True),
        ("enabled", False, False),
        ("enabled", "maybe", "maybe"),  # left for the schema to report
        ("chunk_size", 5000.0, 5000),
        ("chunk_size", " 1,000,000 ", 1_000_000),
        ("chunk_size", "1e6", 1_000_000),
        ("chunk_size", "lots", "lots"),
        ("last_watermark", dt.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
        ("last_watermark", dt.date(2024, 1, 2), "2024-01-02"),
        ("last_watermark", 17.0, 17),
        ("last_watermark", " 2024-01-01 ", "2024-01-01"),
        ("primary_key", " id , line_no ", ["id", "line_no"]),
        ("last_watermark", "2024-01-31 08:00+02:00", "2024-01-31 08:00+02:00"),
        ("last_watermark", "-12.5", "-12.5"),
        ("api_params", '{"a": [1]}', {"a": [1]}),
        ("table_name", 2024, "2024"),
        ("table_name", "   ", None),
        ("table_name", None, None),
    ],
)
def test_cells_become_json_values(schema: WorkbookSchema, name: str, cell: Any, expected: Any) -> None:
    assert to_json_value(schema.column(name), cell) == expected


def test_unparseable_json_names_the_problem(schema: WorkbookSchema) -> None:
    with pytest.raises(CellValueError, match=r"invalid JSON: Expecting ':' delimiter at line 1, column 10"):
        to_json_value(schema.column("api_params"), '{"state" "all"}')


def test_validation_follows_the_schema_file(tmp_path: Path, write_sheet: Any) -> None:
    """Changing an enum in the JSON changes what the validator accepts, with no code change."""
    document = json.loads(SCHEMA_PATH.read_text())
    document["properties"]["load_type"]["enum"].append("SNAPSHOT")
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(document))
    workbook = write_sheet([["sqlite", "demo", "orders", "snapshot", "Y"]])
    assert not validate_workbook(workbook).ok
    assert validate_workbook(workbook, schema=load_schema(path)).jobs[0].load_type == "SNAPSHOT"
