"""The template, `write_workbook` and the committed sample, read back with openpyxl."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl
import pytest

from shared.workbook import (
    DEMO_ROWS,
    DEMO_SOURCE,
    SAMPLE_PATH,
    PlanError,
    WorkbookSchema,
    build_plan,
    write_sample_workbook,
    write_template,
    write_workbook,
)


@pytest.fixture
def template(tmp_path: Path) -> Path:
    return write_template(tmp_path / "out" / "template.xlsx")


@pytest.fixture
def template_sheet(template: Path) -> Any:
    return openpyxl.load_workbook(template)["SourceConfig"]


def _letter_of(sqref: str) -> str:
    """Column letter of a single-column range such as `A2:A1000`."""
    return "".join(ch for ch in sqref.split(":")[0] if ch.isalpha())


def test_template_has_header_only(template: Path, schema: WorkbookSchema) -> None:
    book = openpyxl.load_workbook(template)
    assert book.sheetnames == ["SourceConfig", "README"]
    sheet = book["SourceConfig"]
    assert [c.value for c in sheet[1]] == list(schema.names)
    assert sheet.max_row == 1
    assert sheet.freeze_panes == "A2"
    assert all(c.font.bold for c in sheet[1])
    assert all(sheet.column_dimensions[c.column_letter].width >= 10 for c in sheet[1])


def test_dropdowns_come_from_the_schema(template_sheet: Any) -> None:
    header = {cell.column_letter: cell.value for cell in template_sheet[1]}
    rules = {header[_letter_of(str(v.sqref))]: v for v in template_sheet.data_validations.dataValidation}
    lists = {name: v.formula1 for name, v in rules.items() if v.type == "list"}
    assert lists == {
        "source_type": '"postgresql,mysql,oracle,mssql,azure_sql,sqlite,api"',
        "load_type": '"FULL,INCREMENTAL"',
        "enabled": '"Y,N"',
        "keep_char_padding": '"Y,N"',
        "api_paginator": '"auto,header_link,json_link,offset,page_number,cursor,single_page"',
    }
    assert str(rules["source_type"].sqref) == "A2:A1000"
    chunk = rules["chunk_size"]
    assert (chunk.type, chunk.operator, chunk.formula1, chunk.formula2) == ("whole", "between", "1000", "10000000")
    assert str(chunk.sqref) == "I2:I1000"
    min_rows = rules["min_rows"]
    assert (min_rows.type, min_rows.operator, min_rows.formula1) == ("whole", "greaterThanOrEqual", "0")


def test_header_comments_describe_each_column(template_sheet: Any, schema: WorkbookSchema) -> None:
    for cell in template_sheet[1]:
        column = schema.column(cell.value)
        assert cell.comment is not None, cell.value
        text = cell.comment.text
        assert column.description in text
        assert f"Allowed: {column.allowed()}" in text
    load_type = template_sheet["D1"].comment.text
    assert load_type.startswith("load_type (required)\nFULL: a complete snapshot")
    assert "Allowed: one of FULL, INCREMENTAL" in load_type
    assert template_sheet["G1"].comment.text.startswith("watermark_column (required when load_type is INCREMENTAL)")


def test_readme_lists_every_column(template: Path, schema: WorkbookSchema) -> None:
    readme = openpyxl.load_workbook(template)["README"]
    rows = list(readme.iter_rows(values_only=True))
    assert rows[0] == ("column", "requirement", "description", "allowed", "example")
    assert [r[0] for r in rows[1 : len(schema.names) + 1]] == list(schema.names)
    assert rows[1][1] == "required"
    assert rows[len(schema.names)][1] == "optional"
    assert rows[-1][0].startswith("Sheet SourceConfig: header in row 1, one job per row below it.")


def test_empty_template_is_not_a_plan(template: Path) -> None:
    with pytest.raises(PlanError) as info:
        build_plan(template)
    assert info.value.problems == ["SourceConfig!A2: no job rows; add one row per job below the header"]


def test_template_filled_in_by_hand_validates(template: Path, accept_all_secrets: Any) -> None:
    book = openpyxl.load_workbook(template)
    sheet = book["SourceConfig"]
    sheet.append(["postgresql", "erp", "invoices", "INCREMENTAL", "Y", "public", "updated_at"])
    sheet.append(["api", "gh", "issues", "FULL", "N", None, None, None, None, "issues"])
    book.save(template)
    plan = build_plan(template, check_secrets=accept_all_secrets)
    assert [j.job_id for j in plan.jobs] == ["erp.public.invoices", "gh.issues"]
    assert plan.warnings == []


def test_write_workbook_turns_python_values_into_cells(tmp_path: Path) -> None:
    rows = [
        {
            "source_type": "api",
            "source_name": "gh",
            "table_name": "issues",
            "load_type": "FULL",
            "enabled": True,
            "api_endpoint": "issues",
            "api_params": {"state": "all"},
            "primary_key": ["id", "repo"],
            "min_rows": 0,
        },
        {
            "source_type": "sqlite",
            "source_name": "demo",
            "table_name": "t",
            "load_type": "FULL",
            "enabled": False,
            "api_data_selector": '=HYPERLINK("x")',
        },
    ]
    path = write_workbook(tmp_path / "rows.xlsx", rows)
    cells = openpyxl.load_workbook(path)["SourceConfig"]
    assert cells["E2"].value == "Y" and cells["E3"].value == "N"
    assert cells["N2"].value == '{"state": "all"}'
    assert cells["L3"].data_type == "s"  # text starting with "=" is never written as a formula
    jobs = build_plan(path).jobs
    assert (jobs[0].api_params, jobs[0].primary_key, jobs[0].min_rows) == ({"state": "all"}, ("id", "repo"), 0)


def test_write_workbook_refuses_unknown_columns(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="row 1: unknown column.s. colour"):
        write_workbook(tmp_path / "x.xlsx", [{"source_type": "api", "colour": "red"}])


def test_sample_workbook_validates(accept_all_secrets: Any) -> None:
    plan = build_plan(SAMPLE_PATH, check_secrets=accept_all_secrets)
    enabled = plan.enabled_jobs()
    assert [j.job_id for j in enabled] == [
        f"{DEMO_SOURCE}.customers",
        f"{DEMO_SOURCE}.products",
        f"{DEMO_SOURCE}.orders",
    ]
    orders = enabled[2]
    assert (orders.load_type, orders.watermark_column, orders.last_watermark, orders.primary_key) == (
        "INCREMENTAL",
        "updated_at",
        "2024-01-01T00:00:00",
        ("id",),
    )
    disabled = {j.source_type: j.job_id for j in plan.jobs if not j.enabled}
    assert disabled == {
        "postgresql": "erp.public.invoices",
        "mysql": "shop_mysql.orders",
        "oracle": "finance.FINANCE.GL_ENTRIES",
        "mssql": "crm_mssql.dbo.accounts",
        "azure_sql": "sales_azure.dbo.opportunities",
        "api": "github_like.issues",
    }
    api = next(j for j in plan.jobs if j.is_api)
    assert (api.api_endpoint, api.api_incremental_param, api.api_paginator, api.api_params) == (
        "issues",
        "since",
        "header_link",
        {"state": "all"},
    )


def test_only_enabled_sources_need_secrets() -> None:
    asked: list[str] = []
    build_plan(SAMPLE_PATH, check_secrets=lambda name, kind: asked.append(f"{name}:{kind}") or [])
    assert asked == [f"{DEMO_SOURCE}:sqlite"]


def test_committed_sample_is_up_to_date(tmp_path: Path) -> None:
    """The committed file holds what `write_sample_workbook` writes today (regenerate if not)."""
    fresh = write_sample_workbook(tmp_path / "sample.xlsx")
    values = [list(openpyxl.load_workbook(p)["SourceConfig"].values) for p in (SAMPLE_PATH, fresh)]
    assert values[0] == values[1], "run: python -m shared.workbook.template"


def test_demo_rows_are_a_valid_workbook_on_their_own(tmp_path: Path) -> None:
    plan = build_plan(write_workbook(tmp_path / "demo.xlsx", DEMO_ROWS))
    assert [j.table_name for j in plan.enabled_jobs()] == ["customers", "products", "orders"]
