"""Fixtures for the workbook contract: real .xlsx files written into tmp_path with openpyxl."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import openpyxl
import pytest
from openpyxl.worksheet.worksheet import Worksheet

from shared.workbook.schema import WorkbookSchema, load_schema

CORE_HEADER = [
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
    "api_params",
]
"""Columns A..L of the test workbooks."""

WriteSheet = Callable[..., Path]


@pytest.fixture(scope="session")
def schema() -> WorkbookSchema:
    """The committed contract."""
    return load_schema()


@pytest.fixture
def core_header() -> list[str]:
    """Columns A..L of the test workbooks (`write_sheet`'s default header)."""
    return list(CORE_HEADER)


@pytest.fixture
def accept_all_secrets() -> Callable[[str, str], list[str]]:
    """A secrets check that finds everything."""
    return lambda source_name, source_type: []


@pytest.fixture
def write_sheet(tmp_path: Path) -> WriteSheet:
    """Write a workbook with `header` in row 1 and `rows` below; returns its path.

    Keyword args: `header` (default CORE_HEADER), `name` (file name), `sheet` (title),
    `setup` (a callable given the worksheet to merge cells, add formulas, ...).
    """

    def write(
        rows: Sequence[Sequence[Any]],
        *,
        header: Sequence[Any] = CORE_HEADER,
        name: str = "jobs.xlsx",
        sheet: str = "SourceConfig",
        setup: Optional[Callable[[Worksheet], None]] = None,
    ) -> Path:
        workbook = openpyxl.Workbook()
        worksheet = workbook.active
        worksheet.title = sheet
        worksheet.append(list(header))
        for row in rows:
            worksheet.append(list(row))
        if setup:
            setup(worksheet)
        path = tmp_path / name
        workbook.save(path)
        return path

    return write


@pytest.fixture
def set_cached_value() -> Callable[[Path, str, str], None]:
    """`set_cached_value(path, "C2", "orders")` stores a formula result as Excel would."""
    return _set_cached_value


def _set_cached_value(path: Path, coordinate: str, value: str) -> None:
    """Store `value` as the saved result of the formula in `coordinate`, as Excel would.

    openpyxl writes formulas with an empty `<v/>`; Excel fills it in on save. Patching the
    sheet XML gives a file that reads like one last saved by Excel.
    """
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    sheet_xml = parts["xl/worksheets/sheet1.xml"].decode("utf-8")
    pattern = re.compile(rf'<c r="{coordinate}"([^>]*)><f>(.*?)</f><v\s*/>')
    sheet_xml, count = pattern.subn(rf'<c r="{coordinate}"\1 t="str"><f>\2</f><v>{value}</v>', sheet_xml)
    assert count == 1, f"no formula cell {coordinate} to patch"
    parts["xl/worksheets/sheet1.xml"] = sheet_xml.encode("utf-8")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
