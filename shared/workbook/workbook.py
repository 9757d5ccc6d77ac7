"""Opening the Excel workbook and reading the jobs sheet as raw cells.

This module knows about files and Excel (what an .xlsx looks like inside, cached formula
values, merged cells) and nothing about the contract: it hands back `SheetCells` and
`shared.workbook.validation` decides what the values mean. Every failure to read is a
`WorkbookError` with one line the user can act on.
"""

from __future__ import annotations

import io
import os
import re
import struct
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import openpyxl
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

WorkbookSource = Union[str, "os.PathLike[str]", bytes]
"""A path to the workbook, or its content (e.g. downloaded from blob storage)."""

MAX_BYTES = 20 * 1024 * 1024
"""A jobs workbook is a few hundred KB; refuse anything that would strain a Function's memory."""

MAX_CELLS = 2_000_000
"""Cap on the sheet's used range; a stray value in a far corner would otherwise cost minutes."""

MAX_UNCOMPRESSED_BYTES = 32 * 1024 * 1024
"""Cap on the sum of the zip members' sizes, checked before anything is decompressed: a small
file can expand a thousandfold (a 410 KB file held a 400 MB shared-strings part), and openpyxl
holds everything it parses in memory, twice (values and formulas). The template is ~50 KB."""

MAX_STORED_CELLS = 250_000
"""Cap on the cells stored in all worksheets together, counted in the XML before openpyxl parses
it (each parsed cell costs hundreds of bytes, twice). 10,000 jobs of 17 columns fit."""

MAX_ZIP_MEMBERS = 10_000
"""Cap on the zip's entries, read from its end record before Python builds its directory."""

_REASON_MAX = 120  # characters of a library's error text quoted in a message
_CELL_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?c[\s/>]")  # <c r="A1" ...> or <x:c ...>, not <col> or <cfRule>
_SCAN_CHUNK = 1 << 20

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# An encrypted .xlsx is an OLE container holding an "EncryptionInfo" stream (UTF-16 name).
_ENCRYPTION_INFO = "EncryptionInfo".encode("utf-16-le")
_SAVE_AS = "open it in Excel and save it as 'Excel Workbook (*.xlsx)'"


class WorkbookError(Exception):
    """The source cannot be read as an .xlsx workbook holding the jobs sheet."""


@dataclass(frozen=True)
class Cell:
    """One non-empty cell of the jobs sheet."""

    row: int
    """1-based row number, as Excel shows it."""
    column: int
    """1-based column number."""
    value: Any
    """The value Excel shows: the cached result for a formula, None if none was saved."""
    formula: Optional[str] = None
    """The formula text (`=A1*2`) when the cell holds a formula."""
    is_error: bool = False
    """The cached value is an Excel error such as `#N/A` or `#DIV/0!`."""

    @property
    def coordinate(self) -> str:
        """Excel address, e.g. `D7`."""
        return f"{get_column_letter(self.column)}{self.row}"

    @property
    def lacks_cached_value(self) -> bool:
        """A formula whose result was never saved (file written by a program, not by Excel)."""
        return self.formula is not None and self.value is None


@dataclass(frozen=True)
class MergedRange:
    """A merged range of the sheet, e.g. `A5:C5`."""

    coordinate: str
    min_row: int
    max_row: int
    min_col: int
    max_col: int


@dataclass
class SheetCells:
    """The raw content of the jobs sheet."""

    title: str
    """The sheet's title as found in the workbook."""
    rows: dict[int, dict[int, Cell]]
    """Non-empty cells by row number, then column number (header row included)."""
    merged: list[MergedRange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """Things worth telling the user that do not stop the plan (e.g. sheet name case)."""


def read_sheet(source: WorkbookSource, sheet_name: str) -> SheetCells:
    """Read every non-empty cell of one sheet of an .xlsx workbook.

    Args:
        source: Path to the workbook, or its bytes.
        sheet_name: The sheet to read; matched exactly, else ignoring case and spaces.

    Returns:
        The sheet's cells, with cached formula values and formula texts side by side.

    Raises:
        WorkbookError: The file is missing, unreadable, not an .xlsx workbook, encrypted,
            or has no such sheet.
    """
    data = read_bytes(source)
    check_xlsx_bytes(data)
    values_book = _load(data, data_only=True)
    formula_book = _load(data, data_only=False)
    title, note = _find_sheet(values_book.sheetnames, sheet_name)
    values_sheet, formula_sheet = values_book[title], formula_book[title]
    if not isinstance(values_sheet, Worksheet):
        raise WorkbookError(f"sheet '{title}' is a chart sheet, not a worksheet")
    sheet = SheetCells(title=title, rows=_read_cells(values_sheet, formula_sheet))
    sheet.merged = [
        MergedRange(r.coord, r.min_row, r.max_row, r.min_col, r.max_col) for r in values_sheet.merged_cells.ranges
    ]
    if note:
        sheet.warnings.append(note)
    return sheet


def read_bytes(source: WorkbookSource) -> bytes:
    """The workbook's bytes, from memory or from a file.

    Raises:
        WorkbookError: The file is missing, a folder, unreadable or too large.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        path = Path(source)
        try:
            if path.stat().st_size > MAX_BYTES:
                raise WorkbookError(too_large_message(path.stat().st_size))
            data = path.read_bytes()
        except FileNotFoundError:
            raise WorkbookError(f"file not found: {path}") from None
        except IsADirectoryError:
            raise WorkbookError(f"{path} is a folder, not an .xlsx file") from None
        except PermissionError:
            raise WorkbookError(f"cannot read {path}: permission denied") from None
        except OSError as exc:
            raise WorkbookError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise WorkbookError(too_large_message(len(data)))
    return data


def check_xlsx_bytes(data: bytes) -> None:
    """Recognise what the bytes are and refuse anything but an .xlsx (or .xlsm) workbook.

    Raises:
        WorkbookError: One line saying what the file is instead and how to fix it.
    """
    if not data:
        raise WorkbookError("the file is empty (0 bytes); expected an Excel .xlsx workbook")
    if data.startswith(_OLE_MAGIC):
        if _ENCRYPTION_INFO in data:
            raise WorkbookError(
                "the workbook is password-protected (encrypted) and cannot be read; "
                "remove the password in Excel (File > Info > Protect Workbook) and save it again"
            )
        raise WorkbookError(f"this is a legacy Excel 97-2003 (.xls) file, not .xlsx; {_SAVE_AS}")
    if data.startswith(b"PK"):
        _check_zip(data)
        return
    raise WorkbookError(_describe_non_zip(data))


def _check_zip(data: bytes) -> None:
    _check_member_count(data)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if "xl/workbook.xml" in names:
                _check_expanded_size(archive)
                _check_cell_count(archive)
                return
            mimetype = _read_small(archive, "mimetype") if "mimetype" in names else ""
    except WorkbookError:
        raise
    except Exception as exc:  # BadZipFile, NotImplementedError (odd versions), zlib.error, EOFError...
        raise WorkbookError(f"the .xlsx file is damaged ({safe_reason(exc)}); save it again from Excel") from None
    if "xl/workbook.bin" in names:
        raise WorkbookError(f"this is a binary Excel workbook (.xlsb), not .xlsx; {_SAVE_AS}")
    if "opendocument.spreadsheet" in mimetype:
        raise WorkbookError(f"this is an OpenDocument spreadsheet (.ods), not .xlsx; {_SAVE_AS}")
    if any(n.startswith("word/") for n in names):
        raise WorkbookError("this is a Word document, not an Excel .xlsx workbook")
    raise WorkbookError("this is a zip archive but not an Excel workbook (it has no xl/workbook.xml)")


def _check_member_count(data: bytes) -> None:
    """Refuse a zip with very many entries before `zipfile` builds an object for each.

    The count is in the end-of-central-directory record (the last 22 bytes plus a comment of
    at most 64 KB); a zip64 archive (count 0xFFFF) is far beyond any workbook too.
    """
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if end < 0 or end + 22 > len(data):
        return  # no end record: zipfile reports the damage
    (entries,) = struct.unpack_from("<H", data, end + 10)
    if entries > MAX_ZIP_MEMBERS:
        raise WorkbookError(
            f"the .xlsx file holds {'more than 65,535' if entries == 0xFFFF else f'{entries:,}'} parts; "
            f"a workbook has a few dozen (at most {MAX_ZIP_MEMBERS:,} are read); save it again from Excel"
        )


def _check_expanded_size(archive: zipfile.ZipFile) -> None:
    """Refuse a workbook whose parts expand beyond `MAX_UNCOMPRESSED_BYTES`, before reading any.

    `zipfile` never yields more than a member's declared size (a member that lies fails its
    CRC check), so the declared sizes bound what openpyxl can be made to parse.
    """
    members = archive.infolist()
    total = sum(m.file_size for m in members)
    if total <= MAX_UNCOMPRESSED_BYTES:
        return
    largest = max(members, key=lambda m: m.file_size)
    raise WorkbookError(
        f"the workbook expands to {total / 1_048_576:,.0f} MB when unzipped (largest part "
        f"{_printable(largest.filename, 60)}: {largest.file_size / 1_048_576:,.0f} MB); a jobs workbook expands "
        f"to well under {MAX_UNCOMPRESSED_BYTES // 1_048_576} MB: remove the extra content (or start from the "
        "template) and save again"
    )


def _check_cell_count(archive: zipfile.ZipFile) -> None:
    """Refuse more than `MAX_STORED_CELLS` cells in all worksheets together."""
    count, member = count_cells(archive, MAX_STORED_CELLS)
    if count > MAX_STORED_CELLS:
        raise WorkbookError(
            f"the workbook stores more than {MAX_STORED_CELLS:,} cells (found so far in "
            f"{_printable(member, 60)}); a jobs list needs far fewer: delete unused sheets and rows and save again"
        )


def count_cells(archive: zipfile.ZipFile, stop_above: int) -> tuple[int, str]:
    """Count the `<c>` elements of every worksheet part, streaming in `_SCAN_CHUNK` pieces.

    Returns:
        The count (stops early once above `stop_above`) and the part being read last.
    """
    count, last = 0, ""
    for member in archive.infolist():
        if not (member.filename.startswith("xl/worksheets/") and member.filename.endswith(".xml")):
            continue
        last, carry = member.filename, b""
        with archive.open(member) as stream:
            while True:
                chunk = stream.read(_SCAN_CHUNK)
                buffer = carry + chunk
                # A tag may straddle two chunks: count the tags that start before the last 64
                # bytes and carry those bytes into the next round.
                limit = len(buffer) if not chunk else max(0, len(buffer) - 64)
                count += sum(1 for m in _CELL_TAG.finditer(buffer) if m.start() < limit)
                if count > stop_above:
                    return count, last
                if not chunk:
                    break
                carry = buffer[limit:]
    return count, last


def _read_small(archive: zipfile.ZipFile, name: str, limit: int = 256) -> str:
    with archive.open(name) as stream:
        return stream.read(limit).decode("ascii", "replace")


def safe_reason(exc: BaseException, limit: int = _REASON_MAX) -> str:
    """A library's error as `Type: text`, fit to quote: first line only, byte strings and
    unprintable characters removed, at most `limit` characters (damaged files put raw bytes
    into messages, e.g. zipfile's 'File name in directory ... and header b'...' differ')."""
    text = str(exc).splitlines()[0] if str(exc).strip() else ""
    text = re.sub(r"""(?<!\w)b(?:'(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?)""", "<bytes>", text)
    text = re.sub(r"(?:\\x[0-9a-fA-F]{2})+", "?", text)
    name = type(exc).__name__
    if name == "error":  # zlib.error, struct.error
        name = f"{type(exc).__module__}.error"
    text = _printable(text, limit - len(name) - 2)
    return f"{name}: {text}" if text else name


def _printable(text: str, limit: int) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def _describe_non_zip(data: bytes) -> str:
    head = data[:4096]
    for encoding in ("utf-8-sig", "utf-16"):
        try:
            text = head.decode(encoding)
        except UnicodeDecodeError:
            continue
        if text.lstrip().lower().startswith(("<?xml", "<html", "<!doctype")):
            return f"this is an XML/HTML file (e.g. 'XML Spreadsheet 2003' or a web page), not .xlsx; {_SAVE_AS}"
        if all(ch.isprintable() or ch in "\r\n\t" for ch in text):
            kind = "a CSV/text file" if any(sep in text for sep in ",;\t") else "a text file"
            return f"this is {kind}, not an Excel .xlsx workbook; {_SAVE_AS}"
    return f"this is not an Excel .xlsx workbook (unrecognised content); {_SAVE_AS}"


def too_large_message(size: int) -> str:
    return f"the file is {size / 1_048_576:.1f} MB; a jobs workbook is expected to be under {MAX_BYTES // 1_048_576} MB"


def _load(data: bytes, *, data_only: bool) -> openpyxl.Workbook:
    try:
        with warnings.catch_warnings():
            # openpyxl warns about Excel features it drops (extensions, slicers); harmless here.
            warnings.simplefilter("ignore")
            return openpyxl.load_workbook(io.BytesIO(data), data_only=data_only)
    except Exception as exc:  # openpyxl raises KeyError, ValueError, TypeError... on odd files
        raise WorkbookError(f"cannot read the workbook ({safe_reason(exc)}); save it again from Excel") from None


def _find_sheet(names: list[str], wanted: str) -> tuple[str, Optional[str]]:
    """The sheet's real title, plus a warning when it matched only ignoring case/spaces."""
    if wanted in names:
        return wanted, None
    loose = [n for n in names if n.strip().lower() == wanted.lower()]
    if len(loose) == 1:
        return loose[0], f"sheet '{loose[0]}' used as '{wanted}'; rename it to '{wanted}'"
    listed = ", ".join(f"'{n}'" for n in names)
    raise WorkbookError(
        f"the workbook has no sheet named '{wanted}' (its sheets: {listed}); "
        f"rename the jobs sheet to '{wanted}' or start from the template"
    )


def _read_cells(values: Worksheet, formulas: Worksheet) -> dict[int, dict[int, Cell]]:
    max_row = max(values.max_row, formulas.max_row)
    max_col = max(values.max_column, formulas.max_column)
    if max_row * max_col > MAX_CELLS:
        raise WorkbookError(
            f"sheet '{values.title}' uses {get_column_letter(max_col)}{max_row} as its last cell, far more than "
            "a jobs list needs; delete the stray cells far below or right of the table and save again"
        )
    rows: dict[int, dict[int, Cell]] = {}
    pairs = zip(
        values.iter_rows(min_row=1, max_row=max_row, max_col=max_col),
        formulas.iter_rows(min_row=1, max_row=max_row, max_col=max_col),
        strict=True,
    )
    for value_row, formula_row in pairs:
        for value_cell, formula_cell in zip(value_row, formula_row, strict=True):
            formula = None
            if formula_cell.data_type == "f":
                # ArrayFormula objects carry their text in `.text`.
                formula = str(getattr(formula_cell.value, "text", formula_cell.value))
            if value_cell.value is None and formula is None:
                continue
            cell = Cell(
                row=value_cell.row,
                column=value_cell.column,
                value=value_cell.value,
                formula=formula,
                is_error=value_cell.data_type == "e",
            )
            rows.setdefault(cell.row, {})[cell.column] = cell
    return rows
