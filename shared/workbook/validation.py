"""Turning the workbook into a plan, reporting every problem in one run.

The rules live in `config/config_schema.json`. This module converts each row's cells into
the JSON values the schema describes, runs `jsonschema` over every row, and translates each
error into a line the user can act on:

    SourceConfig!D7 (load_type): 'DAILY' is not one of FULL, INCREMENTAL

Only checks that span rows (duplicate jobs, one source_type per source, secrets) and
Excel facts a schema cannot see (merged cells, formulas without a saved result) are coded
here. Nothing is loaded or written: the validator only reads.
"""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from jsonschema import ValidationError
from openpyxl.utils import get_column_letter

from shared.workbook.models import Job, Plan, PlanError
from shared.workbook.schema import (
    CellValueError,
    Column,
    WorkbookSchema,
    cell_text,
    describe_allowed,
    describe_condition,
    load_schema,
    to_json_value,
    type_name,
)
from shared.workbook.workbook import Cell, SheetCells, WorkbookError, WorkbookSource, read_sheet

SecretsCheck = Callable[[str, str], list[str]]
"""`check_secrets(source_name, source_type)` -> problems with that source's secrets (empty = ok)."""

_log = logging.getLogger(__name__)

_SHOW_MAX = 60  # characters of a cell value quoted in a message
BLAMED_COLUMNS = frozenset({"table_name", "schema_name", "watermark_column", "last_watermark", "primary_key",
                            "partition_column", "min_rows", "api_endpoint"})
"""Columns whose cell a permanent job error names (`Job.cells`, `shared.errors`)."""


@dataclass
class ValidationReport:
    """Everything one validation run found; `build_plan` turns it into a `Plan` or a `PlanError`."""

    jobs: list[Job]
    """Jobs in row order; empty whenever there are problems."""
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """One line per problem, in sheet order; empty means the workbook is valid."""
    source: str = ""
    sheet: str = "SourceConfig"
    columns: dict[str, str] = field(default_factory=dict)
    """Column letter of each known column, by name."""

    @property
    def ok(self) -> bool:
        """True when the workbook is a valid plan."""
        return not self.problems

    def to_plan(self) -> Plan:
        """The plan, or `PlanError` carrying every problem."""
        if self.problems:
            raise PlanError(self.problems, self.source)
        return Plan(
            jobs=list(self.jobs), warnings=list(self.warnings), source=self.source, sheet=self.sheet,
            columns=dict(self.columns),
        )


def build_plan(
    source: WorkbookSource,
    *,
    check_secrets: Optional[SecretsCheck] = None,
    source_label: Optional[str] = None,
) -> Plan:
    """Validate the workbook and return its plan of jobs.

    Args:
        source: Path to the .xlsx workbook, or its bytes.
        check_secrets: Called once per distinct source_name of the enabled rows with
            `(source_name, source_type)`; returns problems with that source's secrets.
            None skips the secrets check.
        source_label: How to name the workbook in messages (e.g. a blob URL); defaults to
            the path.

    Returns:
        The plan: every job (enabled or not) plus warnings.

    Raises:
        PlanError: With every problem found, one line each.
    """
    return validate_workbook(source, check_secrets=check_secrets, source_label=source_label).to_plan()


def validate_workbook(
    source: WorkbookSource,
    *,
    check_secrets: Optional[SecretsCheck] = None,
    source_label: Optional[str] = None,
    schema: Optional[WorkbookSchema] = None,
) -> ValidationReport:
    """Validate the workbook without raising; same arguments as `build_plan`.

    Args:
        source: Path to the .xlsx workbook, or its bytes.
        check_secrets: See `build_plan`.
        source_label: See `build_plan`.
        schema: The contract; defaults to `config/config_schema.json`.

    Returns:
        Jobs, warnings and problems; useful to show warnings even when there are problems.
    """
    schema = schema or load_schema()
    label = source_label or _label(source)
    try:
        sheet = read_sheet(source, schema.sheet_name)
    except WorkbookError as exc:
        return ValidationReport(jobs=[], problems=[str(exc)], source=label)
    checker = _SheetCheck(schema, sheet)
    checker.run(check_secrets)
    return ValidationReport(
        jobs=checker.jobs() if not checker.problems else [],
        warnings=checker.warnings,
        problems=[message for _, message in sorted(checker.problems, key=lambda p: p[0])],
        source=label,
        sheet=sheet.title,
        columns={column.name: get_column_letter(number) for number, column in checker.columns.items()},
    )


def _label(source: WorkbookSource) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<workbook bytes>"
    return os.fspath(source)


@dataclass
class _Row:
    """One non-empty data row: its cells and the JSON values converted from them."""

    number: int
    cells: dict[str, Cell]
    """Cells of known columns, by column name."""
    values: dict[str, Any] = field(default_factory=dict)
    """Converted, non-blank values: the object validated against the schema."""
    flagged: set[str] = field(default_factory=set)
    """Columns of this row already reported, so one cell gets one message."""


class _SheetCheck:
    """One validation run over one sheet; collects problems as (sort key, message)."""

    def __init__(self, schema: WorkbookSchema, sheet: SheetCells) -> None:
        self.schema = schema
        self.sheet = sheet
        self.warnings: list[str] = list(sheet.warnings)
        self.problems: list[tuple[tuple[int, int, int], str]] = []
        self.columns: dict[int, Column] = {}
        """Known columns by 1-based column number."""
        self.rows: list[_Row] = []

    # --- reporting -------------------------------------------------------------------

    def where(self, row: int, column: Optional[Column]) -> str:
        """`SourceConfig!D7 (load_type)`; a whole row (`5:5`) when the column is absent."""
        number = self.column_number(column) if column else None
        cell = f"{get_column_letter(number)}{row}" if number else f"{row}:{row}"
        return f"{self.sheet.title}!{cell}" + (f" ({column.name})" if column else "")

    def column_number(self, column: Column) -> Optional[int]:
        return next((n for n, c in self.columns.items() if c is column), None)

    def report(self, row: int, column: Optional[Column], message: str) -> None:
        order = (row, self.column_number(column) or 0 if column else 0, len(self.problems))
        self.problems.append((order, f"{self.where(row, column)}: {message}"))

    # --- the run -----------------------------------------------------------------------

    def run(self, check_secrets: Optional[SecretsCheck]) -> None:
        if not self.read_header():
            return
        self.read_rows()
        self.check_merged()
        for row in self.rows:
            self.check_row(row)
        self.check_one_type_per_source()
        self.check_duplicates()
        if check_secrets is not None:
            self.check_secrets(check_secrets)
        if not self.rows:
            first = self.schema.header_row + 1
            self.problems.append(
                ((first, 0, 0), f"{self.sheet.title}!A{first}: no job rows; add one row per job below the header")
            )

    def read_header(self) -> bool:
        """Map header cells to columns; False when there is no usable header at all."""
        header_row = self.schema.header_row
        seen: dict[str, Cell] = {}
        for number, cell in sorted(self.sheet.rows.get(header_row, {}).items()):
            if cell.lacks_cached_value or cell.is_error:
                self.problems.append(
                    (
                        (header_row, number, 0),
                        f"{self.sheet.title}!{cell.coordinate}: header holds a formula "
                        f"without a usable result; type the column name",
                    )
                )
                continue
            name = cell_text(cell.value).strip().lower() if cell.value is not None else ""
            if not name:
                continue
            column = self.schema.column(name)
            where = f"{self.sheet.title}!{cell.coordinate}"
            if column is None:
                hint = difflib.get_close_matches(name.replace(" ", "_"), self.schema.names, n=1)
                suffix = f" (did you mean '{hint[0]}'?)" if hint else ""
                self.warnings.append(f"{where}: unknown column '{cell_text(cell.value).strip()}' ignored{suffix}")
            elif name in seen:
                self.problems.append(
                    (
                        (header_row, number, 0),
                        f"{where} ({name}): column appears twice (first in {seen[name].coordinate})",
                    )
                )
            else:
                seen[name] = cell
                self.columns[number] = column
        if not self.columns:
            expected = ", ".join(self.schema.names)
            self.report(
                header_row,
                None,
                f"no known column names in header row {header_row}; expected columns such as {expected}",
            )
            return False
        for name in self.schema.required_names:
            if name not in seen:
                self.problems.append(
                    (
                        (header_row, 0, len(self.problems)),
                        f"{self.sheet.title}!{header_row}:{header_row} ({name}): required column is missing "
                        f"from the header row; add a column named '{name}'",
                    )
                )
        self.warn_unnamed_columns()
        return True

    def warn_unnamed_columns(self) -> None:
        """Values under a blank header are ignored; say so rather than drop them silently."""
        header = self.sheet.rows.get(self.schema.header_row, {})
        named = {n for n, c in header.items() if c.value is not None and cell_text(c.value).strip()}
        unnamed: dict[int, list[int]] = {}
        for number, cells in self.sheet.rows.items():
            if number <= self.schema.header_row:
                continue
            for col, cell in cells.items():
                if col not in named and not _blank(cell):
                    unnamed.setdefault(col, []).append(number)
        for col, rows in sorted(unnamed.items()):
            listed = ", ".join(str(r) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
            self.warnings.append(
                f"{self.sheet.title}!{get_column_letter(col)}{self.schema.header_row}: column without a name "
                f"ignored (it has values in rows {listed})"
            )

    def read_rows(self) -> None:
        """Collect non-empty rows and convert their cells; blank rows are skipped silently."""
        covered = self.merged_cells()
        for number in sorted(n for n in self.sheet.rows if n > self.schema.header_row):
            cells = {
                self.columns[col].name: cell
                for col, cell in self.sheet.rows[number].items()
                if col in self.columns and not _blank(cell)
            }
            if not cells:
                continue
            row = _Row(number=number, cells=cells)
            # Cells hidden under a merge are reported once, as the merge.
            row.flagged.update(self.columns[c].name for c in covered.get(number, ()) if c in self.columns)
            for col, cell in self.sheet.rows[number].items():
                if col in self.columns and not _blank(cell):
                    self.convert(row, self.columns[col], cell)
            self.rows.append(row)

    def convert(self, row: _Row, column: Column, cell: Cell) -> None:
        if cell.lacks_cached_value:
            row.flagged.add(column.name)
            self.report(
                row.number,
                column,
                f"formula {cell.formula} has no saved result (the file was not last saved by Excel); "
                "open the workbook in Excel and save it, or type the value instead of the formula",
            )
            return
        if cell.is_error:
            row.flagged.add(column.name)
            shown = f"formula {cell.formula} gives" if cell.formula else "cell holds"
            self.report(row.number, column, f"{shown} the Excel error {cell.value}; fix it or type the value")
            return
        try:
            value = to_json_value(column, cell.value)
        except CellValueError as exc:
            row.flagged.add(column.name)
            self.report(row.number, column, f"{exc}; allowed: {column.allowed()}")
            return
        if value is not None:
            row.values[column.name] = value

    def merged_cells(self) -> dict[int, set[int]]:
        """Row -> columns of the cells hidden under a merge (every cell but each range's top-left)."""
        covered: dict[int, set[int]] = {}
        for merged in self.sheet.merged:
            for r in range(merged.min_row, merged.max_row + 1):
                for c in range(merged.min_col, merged.max_col + 1):
                    if (r, c) != (merged.min_row, merged.min_col):
                        covered.setdefault(r, set()).add(c)
        return covered

    def check_merged(self) -> None:
        for merged in self.sheet.merged:
            names = [self.columns[c].name for c in range(merged.min_col, merged.max_col + 1) if c in self.columns]
            if not names or merged.max_row < self.schema.header_row:
                continue  # a merged banner in an ignored column does no harm
            self.problems.append(
                (
                    (merged.min_row, merged.min_col, len(self.problems)),
                    f"{self.sheet.title}!{merged.coordinate} ({', '.join(names)}): merged cells are not allowed "
                    "in the jobs table; unmerge them and type the value in every cell",
                )
            )

    def check_row(self, row: _Row) -> None:
        """Validate one row against the schema and translate every error."""
        for error in self.schema.validator.iter_errors(row.values):
            for name, message in self.translate(error, row):
                if name in row.flagged:
                    continue
                row.flagged.add(name)
                self.report(row.number, self.schema.column(name), message)

    def translate(self, error: ValidationError, row: _Row) -> Iterable[tuple[str, str]]:
        """(column, message) pairs for one jsonschema error."""
        if error.validator == "required":
            yield from self.translate_required(error, row)
            return
        path = list(error.path)
        if not path:  # a row-level rule other than `required`; not used by the schema today
            yield "", f"{error.message}"
            return
        column = self.schema.column(str(path[0]))
        if column is None:  # cannot happen: row objects only hold schema columns
            yield "", error.message
            return
        raw = row.cells[column.name].value if column.name in row.cells else error.instance
        shown = _show(error.instance if len(path) > 1 else raw)
        yield column.name, _describe_error(error, column, shown)

    def translate_required(self, error: ValidationError, row: _Row) -> Iterable[tuple[str, str]]:
        missing = [p for p in error.validator_value if p not in error.instance]
        # jsonschema yields one error per missing property; its message starts with the name.
        named = [p for p in missing if error.message.startswith(repr(p))] or missing
        condition = self.condition_of(error)
        for name in named:
            column = self.schema.column(name)
            if column is None:
                continue
            present = self.column_number(column) is not None
            if condition is None:
                if present:  # an absent required column is reported once, at the header
                    yield name, "missing value; required for every job"
                continue
            suffix = "" if present else f" (the sheet has no {name} column)"
            yield name, f"missing value; required when {condition}{suffix}"

    def condition_of(self, error: ValidationError) -> Optional[str]:
        """For an error inside `allOf[i].then`, the `if` in words; None for plain `required`."""
        path = list(error.schema_path)
        if "then" not in path:
            return None
        node: Any = self.schema.document
        for part in path[: path.index("then")]:
            node = node[part]
        return describe_condition(node.get("if", {}))

    # --- rules across rows -------------------------------------------------------------

    def check_one_type_per_source(self) -> None:
        """Rows sharing a source_name share one connection, hence one source_type."""
        first: dict[str, _Row] = {}
        for row in self.rows:
            name, kind = row.values.get("source_name"), row.values.get("source_type")
            if not _valid(row, "source_name", "source_type") or not isinstance(name, str):
                continue
            if name not in first:
                first[name] = row
                continue
            seen = first[name].values["source_type"]
            if kind != seen:
                row.flagged.add("source_type")
                self.report(
                    row.number,
                    self.schema.column("source_type"),
                    f"'{kind}' differs from '{seen}' used for source '{name}' in row {first[name].number}; "
                    "allowed: one source_type per source_name (its rows share one connection)",
                )

    def check_duplicates(self) -> None:
        """One row per job, and one job per lake folder `<source_name>/<table_name>`."""
        first: dict[tuple[str, str, str], _Row] = {}
        first_in_folder: dict[tuple[str, str], _Row] = {}
        for row in self.rows:
            parts = [row.values.get(k) for k in ("source_name", "schema_name", "table_name")]
            if not isinstance(parts[0], str) or not isinstance(parts[2], str):
                continue
            key = (parts[0].lower(), str(parts[1] or "").lower(), parts[2].lower())
            folder = (parts[0].lower(), lake_table_name(parts[2]))
            job = ".".join(p for p in parts if p)
            if key in first:
                self.report(
                    row.number,
                    self.schema.column("table_name"),
                    f"duplicate job {job}: row {first[key].number} has the same source_name, schema_name and "
                    "table_name (compared ignoring case); allowed: one row per job",
                )
            elif folder in first_in_folder:
                self.report(
                    row.number,
                    self.schema.column("table_name"),
                    f"job {job} would land in the same lake folder {folder[0]}/{folder[1]} as row "
                    f"{first_in_folder[folder].number}; allowed: one job per source_name and table name "
                    "(use another source_name for the other schema)",
                )
            first.setdefault(key, row)
            first_in_folder.setdefault(folder, row)

    def check_secrets(self, check_secrets: SecretsCheck) -> None:
        """Ask once per source of the enabled rows; report at the source's first enabled row."""
        by_source: dict[str, list[_Row]] = {}
        for row in self.rows:
            if row.values.get("enabled") is True and _valid(row, "source_name", "source_type"):
                by_source.setdefault(row.values["source_name"], []).append(row)
        for name, rows in by_source.items():
            first = rows[0]
            try:
                found = list(check_secrets(name, first.values["source_type"]))
            except Exception as exc:  # a broken secrets backend must not hide the other problems
                # Only the type: the text of a backend error may quote a connection string.
                _log.warning("check_secrets(%r) failed", name, exc_info=True)
                found = [f"checking the secrets failed ({type(exc).__name__}); see the logs"]
            if not found:
                continue
            others = [str(r.number) for r in rows[1:]]
            also = ""
            if others:
                also = f" (rows {', '.join(others)} use" if len(others) > 1 else f" (row {others[0]} uses"
                also += " the same source)"
            self.report(
                first.number,
                self.schema.column("source_name"),
                f"no secrets for '{name}': {'; '.join(found)}{also}",
            )

    # --- the result --------------------------------------------------------------------

    def jobs(self) -> list[Job]:
        known = set(Job.__dataclass_fields__)
        jobs = []
        for row in self.rows:
            values = {k: v for k, v in row.values.items() if k in known}
            if "primary_key" in values:
                values["primary_key"] = tuple(values["primary_key"])
            jobs.append(Job(**values, row=row.number, cells=self.cells_of(row.number)))
        return jobs

    def cells_of(self, number: int) -> dict[str, str]:
        """`{column: "SourceConfig!G5"}` of the columns a run-time error can blame, as this sheet lays them out."""
        letters = {c.name: get_column_letter(n) for n, c in self.columns.items() if c.name in BLAMED_COLUMNS}
        return {name: f"{self.sheet.title}!{letter}{number}" for name, letter in letters.items()}


def _blank(cell: Cell) -> bool:
    if cell.formula is not None:
        return False
    return cell.value is None or (isinstance(cell.value, str) and not cell.value.strip())


def _valid(row: _Row, *names: str) -> bool:
    """The row has values for `names` and none of them was reported."""
    return all(n in row.values and n not in row.flagged for n in names)


def _show(value: Any) -> str:
    """A cell value quoted for a message: `'DAILY'`, `500`, `TRUE`, `'2024-01-01 00:00:00'`."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    text = cell_text(value)
    if len(text) > _SHOW_MAX:
        text = text[: _SHOW_MAX - 3] + "..."
    return f"'{text}'"


def _describe_error(error: ValidationError, column: Column, shown: str) -> str:
    """One jsonschema error on a cell (or a list item of it), in words."""
    keyword, spec = error.validator, error.schema
    allowed = describe_allowed(column.spec)
    if keyword == "enum":
        options = [cell_text(v) for v in error.validator_value]
        hint = difflib.get_close_matches(cell_text(error.instance), options, n=1)
        suffix = f" (did you mean {hint[0]}?)" if hint else ""
        return f"{shown} is not one of {', '.join(options)}{suffix}"
    if keyword == "pattern":
        what = spec.get("title", "value")
        return f"{shown} is not a valid {what}; allowed: {spec.get('x-allowed') or allowed}"
    if keyword == "type":
        expected = error.validator_value
        expected = [expected] if isinstance(expected, str) else list(expected)
        what = " or ".join(type_name(t) for t in expected)
        return f"{shown} is not {what}; allowed: {allowed}"
    if keyword == "minimum":
        return f"{shown} is less than the minimum {error.validator_value:,}; allowed: {allowed}"
    if keyword == "maximum":
        return f"{shown} is more than the maximum {error.validator_value:,}; allowed: {allowed}"
    if keyword == "maxLength":
        return f"{shown} is too long ({len(error.instance)} characters); allowed: at most {error.validator_value}"
    if keyword == "uniqueItems":
        return f"{shown} lists the same name twice; allowed: {allowed}"
    return f"{shown}: {error.message}; allowed: {allowed}"


def lake_table_name(table_name: str) -> str:
    """The lake folder of a table (see `shared.naming.lake_table_name`)."""
    from shared.naming import lake_table_name as folder

    return folder(table_name)
