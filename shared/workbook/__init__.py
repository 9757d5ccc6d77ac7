"""Workbook contract: reading, validating and turning the Excel workbook into a plan.

The contract itself is `config/config_schema.json`; `build_plan` reads a workbook into a
`Plan` (or raises `PlanError` listing every problem) and `write_template` /
`write_workbook` write workbooks that follow it.

May import: openpyxl, jsonschema and, of the library, only `shared.naming`.
"""

from typing import Any

from shared.workbook.models import API_SOURCE_TYPES, SQL_SOURCE_TYPES, Job, Plan, PlanError
from shared.workbook.schema import SCHEMA_PATH, Column, WorkbookSchema, load_schema
from shared.workbook.validation import SecretsCheck, ValidationReport, build_plan, validate_workbook
from shared.workbook.workbook import WorkbookError

_TEMPLATE_NAMES = (
    "DEMO_ROWS",
    "DEMO_SOURCE",
    "EXAMPLE_ROWS",
    "SAMPLE_PATH",
    "write_sample_workbook",
    "write_template",
    "write_workbook",
)


def __getattr__(name: str) -> Any:
    # Imported on first use so `python -m shared.workbook.template` runs the module only once.
    if name in _TEMPLATE_NAMES:
        from shared.workbook import template

        return getattr(template, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "API_SOURCE_TYPES",
    "DEMO_ROWS",
    "DEMO_SOURCE",
    "EXAMPLE_ROWS",
    "SAMPLE_PATH",
    "SCHEMA_PATH",
    "SQL_SOURCE_TYPES",
    "Column",
    "Job",
    "Plan",
    "PlanError",
    "SecretsCheck",
    "ValidationReport",
    "WorkbookError",
    "WorkbookSchema",
    "build_plan",
    "load_schema",
    "validate_workbook",
    "write_sample_workbook",
    "write_template",
    "write_workbook",
]
