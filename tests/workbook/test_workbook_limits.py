"""Workbook limits checked before openpyxl parses anything, and error texts fit to show.

A zip bomb (a 410 KB file holding a 400 MB shared-strings part) must be refused in well under a
second without memory growth; a damaged zip must never put raw bytes into the message.
"""

from __future__ import annotations

import io
import random
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import pytest

from shared.workbook import PlanError, build_plan
from shared.workbook import workbook as workbook_module
from shared.workbook.workbook import MAX_STORED_CELLS, MAX_ZIP_MEMBERS, WorkbookError, read_sheet, safe_reason

VALID = [["sqlite", "demo", "orders", "FULL", "Y"]]


def only_problem(source: Any) -> str:
    with pytest.raises(PlanError) as info:
        build_plan(source)
    assert len(info.value.problems) == 1, info.value.problems
    return info.value.problems[0]


def with_part(base: bytes, name: str, parts: Any) -> bytes:
    """`base` (an .xlsx) with part `name` replaced by (or added as) the concatenation of `parts`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(base)) as source, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            if member.filename != name:
                target.writestr(member, source.read(member.filename))
        with target.open(name, "w") as stream:
            for part in parts:
                stream.write(part)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A valid workbook plus a 400 MB shared-strings part, zipped to ~410 KB."""
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "SourceConfig"
    path = tmp_path_factory.mktemp("bomb") / "base.xlsx"
    book.save(path)
    head = b'<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>'
    chunk = b"A" * (1 << 20)
    return with_part(path.read_bytes(), "xl/sharedStrings.xml", [head, *[chunk] * 400, b"</t></si></sst>"])


def test_zip_bomb_is_refused_fast_without_memory_growth(bomb: bytes) -> None:
    assert len(bomb) < 1_000_000
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(WorkbookError) as info:
            read_sheet(bomb, "SourceConfig")
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"bomb refused in {elapsed * 1000:.1f} ms, peak traced memory {peak / 1024:.0f} KiB")
    assert str(info.value).startswith(
        "the workbook expands to 400 MB when unzipped (largest part xl/sharedStrings.xml: 400 MB); "
        "a jobs workbook expands to well under 32 MB"
    )
    assert elapsed < 0.5
    assert peak < 5 * 1024 * 1024  # the 410 KB input is already in memory; nothing is expanded


def test_too_many_cells_are_refused_before_parsing(write_sheet: Any) -> None:
    base = write_sheet(VALID).read_bytes()
    row = b"".join(b'<c t="inlineStr"><is><t>x</t></is></c>' for _ in range(50))
    body = [b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>']
    body += [b"<row>" + row + b"</row>"] * (MAX_STORED_CELLS // 50 + 1)
    data = with_part(base, "xl/worksheets/sheet1.xml", [*body, b"</sheetData></worksheet>"])
    started = time.perf_counter()
    assert only_problem(data).startswith(
        f"the workbook stores more than {MAX_STORED_CELLS:,} cells (found so far in xl/worksheets/sheet1.xml)"
    )
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize("chunk", [5, 7, 64, 1 << 20])
def test_cell_count_is_exact_across_chunk_boundaries(monkeypatch: pytest.MonkeyPatch, write_sheet: Any, chunk: int) -> None:
    """Tags split across read chunks are counted once; <col> and <cfRule> are not cells."""
    base = write_sheet(VALID).read_bytes()
    with zipfile.ZipFile(io.BytesIO(base)) as archive:
        baseline, _ = workbook_module.count_cells(archive, 10**9)
    assert baseline == 12 + 5  # the header row and one job
    cells = b"".join(b'<c r="A%d"><v>1</v></c><x:c r="B%d"/><col min="1"/><cfRule/>' % (i, i) for i in range(15))
    data = with_part(base, "xl/worksheets/sheet9.xml", [b"<worksheet><sheetData>", cells, b"</sheetData></worksheet>"])
    monkeypatch.setattr(workbook_module, "_SCAN_CHUNK", chunk)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert workbook_module.count_cells(archive, 10**9)[0] == baseline + 30


def test_a_thousand_jobs_are_fine(write_sheet: Any) -> None:
    rows = [["sqlite", "demo", f"t{i}", "FULL", "Y"] for i in range(1000)]
    assert len(build_plan(write_sheet(rows)).jobs) == 1000


def test_zip_with_too_many_parts_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        for i in range(MAX_ZIP_MEMBERS):
            archive.writestr(f"x/{i}", b"")
    assert only_problem(buffer.getvalue()).startswith(
        f"the .xlsx file holds {MAX_ZIP_MEMBERS + 1:,} parts; a workbook has a few dozen"
    )


def test_damaged_zips_never_quote_raw_bytes(write_sheet: Any) -> None:
    """Random byte flips in a real workbook: every message is one printable line of bounded length."""
    data = (Path(__file__).parents[2] / "config" / "ingestion_config.xlsx").read_bytes()
    rng = random.Random(20240101)
    seen = set()
    for _ in range(200):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 20)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        try:
            read_sheet(bytes(damaged), "SourceConfig")
        except WorkbookError as exc:
            message = str(exc)
            assert message.isprintable() and "\\x" not in message and len(message) < 260, message
            seen.add(message.split("(")[0])
    assert "the .xlsx file is damaged " in seen


def test_file_name_mismatch_reason_drops_the_bytes() -> None:
    """The case seen in the field: zipfile quotes ~600 raw bytes of a damaged local header."""
    exc = zipfile.BadZipFile(
        "File name in directory 'xl/theme/theme1.xml' and header b'xl/theme/theme1.xml\\xedZ[s\\xda8\\x14~"
        + "\\xef" * 200 + "' differ."
    )
    assert safe_reason(exc) == "BadZipFile: File name in directory 'xl/theme/theme1.xml' and header <bytes> differ."
    assert safe_reason(ValueError("x" * 500)).endswith("...") and len(safe_reason(ValueError("x" * 500))) == 120
