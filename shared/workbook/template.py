"""Writing workbooks that follow the contract: the empty template, any rows, the sample.

Everything about a column comes from the schema: the header comment (description,
requirement, allowed values, example), the dropdown of an enum or yes/no column, the
whole-number rule of an integer column and the README sheet. Regenerate the committed
sample with `python -m shared.workbook.template`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from shared.workbook.schema import Column, WorkbookSchema, load_schema

PathLike = Union[str, "os.PathLike[str]"]

SAMPLE_PATH = Path(__file__).resolve().parents[2] / "config" / "ingestion_config.xlsx"
"""The committed sample workbook."""

TEMPLATE_ROWS = 1000
"""Dropdowns and number rules cover rows 2..1000 (or further when more rows are written)."""

README_SHEET = "README"

DEMO_SOURCE = "demo_shop"
"""Source name of the embedded SQLite demo."""

DEMO_ROWS: tuple[Mapping[str, Any], ...] = (
    {
        "source_type": "sqlite",
        "source_name": DEMO_SOURCE,
        "table_name": "customers",
        "load_type": "FULL",
        "enabled": "Y",
        "primary_key": "id",
    },
    {
        "source_type": "sqlite",
        "source_name": DEMO_SOURCE,
        "table_name": "products",
        "load_type": "FULL",
        "enabled": "Y",
        "primary_key": "id",
    },
    {
        "source_type": "sqlite",
        "source_name": DEMO_SOURCE,
        "table_name": "orders",
        "load_type": "INCREMENTAL",
        "enabled": "Y",
        "watermark_column": "updated_at",
        "primary_key": "id",
        "last_watermark": "2024-01-01T00:00:00",
    },
)
"""The demo's jobs, as workbook rows (column name -> cell value), all enabled."""

EXAMPLE_ROWS: tuple[Mapping[str, Any], ...] = (
    {
        "source_type": "postgresql",
        "source_name": "erp",
        "schema_name": "public",
        "table_name": "invoices",
        "load_type": "INCREMENTAL",
        "enabled": "N",
        "watermark_column": "updated_at",
    },
    {"source_type": "mysql", "source_name": "shop_mysql", "table_name": "orders", "load_type": "FULL", "enabled": "N"},
    {
        "source_type": "oracle",
        "source_name": "finance",
        "schema_name": "FINANCE",
        "table_name": "GL_ENTRIES",
        "load_type": "FULL",
        "enabled": "N",
    },
    {
        "source_type": "mssql",
        "source_name": "crm_mssql",
        "schema_name": "dbo",
        "table_name": "accounts",
        "load_type": "FULL",
        "enabled": "N",
    },
    {
        "source_type": "azure_sql",
        "source_name": "sales_azure",
        "schema_name": "dbo",
        "table_name": "opportunities",
        "load_type": "INCREMENTAL",
        "enabled": "N",
        "watermark_column": "modified_at",
    },
    {
        "source_type": "api",
        "source_name": "github_like",
        "table_name": "issues",
        "load_type": "INCREMENTAL",
        "enabled": "N",
        "api_endpoint": "issues",
        "watermark_column": "updated_at",
        "api_incremental_param": "since",
        "api_paginator": "header_link",
        "api_params": {"state": "all"},
    },
)
"""Disabled rows in the sample showing every other source type."""

_FILLS = {
    "required": PatternFill("solid", fgColor="BDD7EE"),
    "conditional": PatternFill("solid", fgColor="FFE699"),
    "optional": PatternFill("solid", fgColor="E7E6E6"),
}


def write_template(path: PathLike, schema: Optional[WorkbookSchema] = None) -> Path:
    """Write an empty workbook: the header row with comments, dropdowns and the README sheet.

    Args:
        path: Where to write the .xlsx file; parent folders are created.
        schema: The contract; defaults to `config/config_schema.json`.

    Returns:
        The path written.
    """
    return write_workbook(path, [], schema)


def write_workbook(path: PathLike, rows: Sequence[Mapping[str, Any]], schema: Optional[WorkbookSchema] = None) -> Path:
    """Write a workbook holding `rows` under the header, with the template's aids.

    Args:
        path: Where to write the .xlsx file; parent folders are created.
        rows: One mapping per job, column name -> value as it should appear in the cell.
            Booleans become Y/N, dicts JSON text, lists comma-separated text.
        schema: The contract; defaults to `config/config_schema.json`.

    Returns:
        The path written.

    Raises:
        ValueError: A row names a column the schema does not know.
    """
    schema = schema or load_schema()
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = schema.sheet_name
    _write_header(sheet, schema)
    _write_rows(sheet, schema, rows)
    header = schema.header_row
    last_row = max(TEMPLATE_ROWS, header + len(rows))
    _add_validations(sheet, schema, last_row)
    _set_widths(sheet, schema, rows)
    sheet.freeze_panes = f"A{header + 1}"
    sheet.auto_filter.ref = f"A{header}:{get_column_letter(len(schema.columns))}{header + len(rows)}"
    _write_readme(workbook.create_sheet(README_SHEET), schema)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(target)
    return target


def write_sample_workbook(path: PathLike = SAMPLE_PATH) -> Path:
    """Write the sample workbook: the enabled demo rows, then disabled examples of every source type."""
    return write_workbook(path, [*DEMO_ROWS, *EXAMPLE_ROWS])


def header_comment(column: Column) -> str:
    """Text of a column's header comment, built from the schema."""
    lines = [f"{column.name} ({column.requirement()})", column.description, f"Allowed: {column.allowed()}"]
    if column.example is not None:
        lines.append(f"Example: {column.example}")
    return "\n".join(line for line in lines if line)


def _requirement_group(column: Column) -> str:
    if column.required:
        return "required"
    return "conditional" if column.required_when else "optional"


def _write_header(sheet: Worksheet, schema: WorkbookSchema) -> None:
    for number, column in enumerate(schema.columns, start=1):
        cell = sheet.cell(row=schema.header_row, column=number, value=column.name)
        cell.font = Font(bold=True)
        cell.fill = _FILLS[_requirement_group(column)]
        cell.alignment = Alignment(vertical="center")
        comment = Comment(header_comment(column), "ingestion schema")
        comment.width = 320
        comment.height = 40 + 18 * (len(comment.text) // 45 + comment.text.count("\n"))
        cell.comment = comment


def _write_rows(sheet: Worksheet, schema: WorkbookSchema, rows: Sequence[Mapping[str, Any]]) -> None:
    for offset, row in enumerate(rows, start=1):
        columns = {key: schema.column(key) for key in row}
        unknown = [key for key, column in columns.items() if column is None]
        if unknown:
            raise ValueError(f"row {offset}: unknown column(s) {', '.join(unknown)}; known: {', '.join(schema.names)}")
        for key, value in row.items():
            column = columns[key]
            assert column is not None
            cell = sheet.cell(row=schema.header_row + offset, column=column.position + 1, value=_cell_value(value))
            if cell.data_type == "f":
                cell.data_type = "s"  # text that starts with "=" stays text, never a formula


def _cell_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return value


def _add_validations(sheet: Worksheet, schema: WorkbookSchema, last_row: int) -> None:
    first_row = schema.header_row + 1
    for column in schema.columns:
        letter = get_column_letter(column.position + 1)
        validation = _validation_for(column)
        if validation is None:
            continue
        validation.add(f"{letter}{first_row}:{letter}{last_row}")
        sheet.add_data_validation(validation)


def _validation_for(column: Column) -> Optional[DataValidation]:
    """An Excel rule mirroring the schema: a dropdown for choices, whole numbers for integers."""
    common = {"allow_blank": True, "showErrorMessage": True, "showInputMessage": True, "promptTitle": column.name}
    if column.choices:
        listed = ",".join(column.choices)
        if len(listed) > 253:  # Excel's limit for a literal list in a rule
            return None
        # "warning" lets users keep spellings the validator also accepts (yes, full, ...).
        return DataValidation(
            type="list",
            formula1=f'"{listed}"',
            errorStyle="warning",
            errorTitle=column.name,
            error=f"Allowed: {column.allowed()}",
            prompt=column.allowed()[:255],
            **common,
        )
    if "integer" in column.types:
        low, high = column.spec.get("minimum"), column.spec.get("maximum")
        if low is None and high is None:
            return None
        if low is not None and high is not None:
            bounds = {"operator": "between", "formula1": str(low), "formula2": str(high)}
        elif low is not None:
            bounds = {"operator": "greaterThanOrEqual", "formula1": str(low)}
        else:
            bounds = {"operator": "lessThanOrEqual", "formula1": str(high)}
        return DataValidation(
            type="whole",
            errorStyle="stop",
            errorTitle=column.name,
            error=f"Allowed: {column.allowed()}",
            prompt=column.allowed()[:255],
            **bounds,
            **common,
        )
    return None


def _set_widths(sheet: Worksheet, schema: WorkbookSchema, rows: Sequence[Mapping[str, Any]]) -> None:
    for column in schema.columns:
        texts = [column.name, column.example or ""]
        texts += [str(_cell_value(row.get(column.name, "")) or "") for row in rows]
        width = min(max(len(t) for t in texts) + 3, 50)
        sheet.column_dimensions[get_column_letter(column.position + 1)].width = max(width, 10)


def _write_readme(sheet: Worksheet, schema: WorkbookSchema) -> None:
    sheet.append(["column", "requirement", "description", "allowed", "example"])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for column in schema.columns:
        sheet.append([column.name, column.requirement(), column.description, column.allowed(), column.example or ""])
    sheet.append([])
    sheet.append(
        [
            f"Sheet {schema.sheet_name}: header in row {schema.header_row}, one job per row below it. "
            "Header names ignore case; unknown columns are ignored with a warning. Only required columns "
            "must be present; leave out the others when no row needs them."
        ]
    )
    for letter, width in zip("ABCDE", (24, 36, 80, 70, 24), strict=True):
        sheet.column_dimensions[letter].width = width
    for row in sheet.iter_rows(min_row=2, max_row=len(schema.columns) + 1):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    sheet.freeze_panes = "A2"


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Write the sample workbook (default) or, with `--template`, an empty template."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=str(SAMPLE_PATH), help="output .xlsx (default: the sample)")
    parser.add_argument("--template", action="store_true", help="write the empty template instead of the sample")
    args = parser.parse_args(argv)
    written = write_template(args.path) if args.template else write_sample_workbook(args.path)
    print(f"wrote {written}")


if __name__ == "__main__":
    main()
