"""Files that are not a readable .xlsx workbook with the jobs sheet: one clear line each.

`encrypted_password_secret.xlsx` (password "secret", made with msoffcrypto-tool) and
`legacy_97_2003.xls` (made with xlwt) sit next to this module, so no extra package is needed
to run these tests.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from shared.workbook import PlanError, build_plan, validate_workbook
from shared.workbook.workbook import MAX_BYTES

HERE = Path(__file__).parent
SAVE_AS = "open it in Excel and save it as 'Excel Workbook (*.xlsx)'"


def only_problem(source: Any) -> str:
    """The single problem a file-level failure produces."""
    with pytest.raises(PlanError) as info:
        build_plan(source)
    assert len(info.value.problems) == 1, info.value.problems
    return info.value.problems[0]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.xlsx"
    assert only_problem(path) == f"file not found: {path}"


def test_folder_instead_of_file(tmp_path: Path) -> None:
    assert only_problem(tmp_path) == f"{tmp_path} is a folder, not an .xlsx file"


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.xlsx"
    path.write_bytes(b"")
    assert only_problem(path) == "the file is empty (0 bytes); expected an Excel .xlsx workbook"


def test_csv_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_text("source_type,source_name,table_name\npostgresql,erp,invoices\n")
    assert only_problem(path) == f"this is a CSV/text file, not an Excel .xlsx workbook; {SAVE_AS}"


def test_text_file_renamed_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "jobs.xlsx"
    path.write_text("just some notes\n")
    assert only_problem(path) == f"this is a text file, not an Excel .xlsx workbook; {SAVE_AS}"


def test_legacy_xls() -> None:
    assert (
        only_problem(HERE / "legacy_97_2003.xls") == f"this is a legacy Excel 97-2003 (.xls) file, not .xlsx; {SAVE_AS}"
    )


def test_password_protected_xlsx() -> None:
    assert only_problem(HERE / "encrypted_password_secret.xlsx") == (
        "the workbook is password-protected (encrypted) and cannot be read; remove the password in Excel "
        "(File > Info > Protect Workbook) and save it again"
    )


def test_truncated_xlsx(write_sheet: Any) -> None:
    data = write_sheet([["sqlite", "demo", "orders", "FULL", "Y"]]).read_bytes()
    problem = only_problem(data[: len(data) // 2])
    assert problem.startswith("the .xlsx file is damaged (")
    assert problem.endswith("); save it again from Excel")


def test_zip_that_is_not_a_workbook() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert (
        only_problem(buffer.getvalue()) == "this is a zip archive but not an Excel workbook (it has no xl/workbook.xml)"
    )


def test_opendocument_spreadsheet() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
    assert only_problem(buffer.getvalue()) == f"this is an OpenDocument spreadsheet (.ods), not .xlsx; {SAVE_AS}"


def test_binary_garbage() -> None:
    assert (
        only_problem(bytes(range(256)) * 4) == f"this is not an Excel .xlsx workbook (unrecognised content); {SAVE_AS}"
    )


def test_too_large_file(tmp_path: Path) -> None:
    path = tmp_path / "huge.xlsx"
    with path.open("wb") as handle:
        handle.truncate(MAX_BYTES + 1)
    assert only_problem(path).startswith("the file is 20.0 MB; a jobs workbook is expected to be under 20 MB")


def test_missing_sheet_names_the_sheets(write_sheet: Any) -> None:
    path = write_sheet([["sqlite", "demo", "orders", "FULL", "Y"]], sheet="Jobs")
    assert only_problem(path) == (
        "the workbook has no sheet named 'SourceConfig' (its sheets: 'Jobs'); rename the jobs sheet to "
        "'SourceConfig' or start from the template"
    )


def test_sheet_name_in_other_case_is_used_with_a_warning(write_sheet: Any) -> None:
    path = write_sheet([["sqlite", "demo", "orders", "FULL", "Y"]], sheet="sourceconfig")
    report = validate_workbook(path)
    assert report.ok
    assert report.warnings == ["sheet 'sourceconfig' used as 'SourceConfig'; rename it to 'SourceConfig'"]


def test_bytes_are_accepted_with_a_label(write_sheet: Any) -> None:
    data = write_sheet([["sqlite", "demo", "orders", "FULL", "Y"]]).read_bytes()
    assert build_plan(data).source == "<workbook bytes>"
    assert build_plan(data, source_label="https://blob/config.xlsx").source == "https://blob/config.xlsx"


def test_stray_far_cell_is_refused_quickly(write_sheet: Any) -> None:
    path = write_sheet([["sqlite", "demo", "orders", "FULL", "Y"]], setup=lambda ws: ws.cell(1_000_000, 200, "x"))
    assert only_problem(path).startswith("sheet 'SourceConfig' uses GR1000000 as its last cell")
