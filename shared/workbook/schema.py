"""The workbook contract, read from `config/config_schema.json`.

The JSON Schema is the single declaration of the `SourceConfig` sheet: its columns, enums,
patterns, ranges and conditional requirements. Validation, the template's dropdowns and
comments, and the messages all read them from here, so a rule changes in one place.

Cells are not JSON, so before validation each cell is converted into the JSON value the
schema describes (`to_json_value`), guided by the custom keys of a property:

- `x-case`: `lower` / `upper`, applied to text after trimming.
- `x-kind`: `boolean_yn` (Y/N and friends, listed in `x-true-values` / `x-false-values`),
  `json_object` (JSON text), `csv_identifiers` (comma-separated names; empty parts and
  names given twice are errors), `watermark` (Excel dates become ISO 8601 text, integral floats
  become ints; text must be an ISO 8601 date or date-time, or a number).
- `x-allowed`: what a pattern allows, in words, for messages and header comments.

Only the columns in the schema's `required` must be in the header; any other column may be
left out, and a row that needs its value then gets an error naming the missing column.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from jsonschema import Draft202012Validator

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "config_schema.json"
"""Default location of the schema: `config/config_schema.json` at the repository root."""

_TYPE_NAMES = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "a yes/no value",
    "object": "a JSON object",
    "array": "a comma-separated list",
}


class CellValueError(ValueError):
    """A cell's text cannot be parsed into the JSON value its column needs (e.g. bad JSON)."""


@dataclass(frozen=True)
class Column:
    """One column of the sheet, i.e. one property of the row schema."""

    name: str
    """Lower-case header name, as in the schema's `properties`."""
    spec: Mapping[str, Any]
    """The property's schema with a local `$ref` merged in."""
    position: int
    """0-based order of the column in the template (the order of `properties`)."""
    required: bool
    """Every row needs a value (the schema's top-level `required`)."""
    required_when: tuple[str, ...] = ()
    """Conditions, in words, under which a value is required (`load_type is INCREMENTAL`)."""

    @property
    def types(self) -> tuple[str, ...]:
        """JSON types the value may have after conversion."""
        value = self.spec.get("type", ())
        return (value,) if isinstance(value, str) else tuple(value)

    @property
    def kind(self) -> Optional[str]:
        """The `x-kind` conversion, if any."""
        return self.spec.get("x-kind")

    @property
    def enum(self) -> Optional[tuple[Any, ...]]:
        """Allowed values, for enum columns."""
        values = self.spec.get("enum")
        return tuple(values) if values is not None else None

    @property
    def choices(self) -> Optional[tuple[str, ...]]:
        """Values offered in the template's dropdown: the enum, or Y/N for yes/no columns."""
        if self.enum is not None:
            return tuple(str(v) for v in self.enum)
        if self.kind == "boolean_yn":
            return (self.spec["x-true-values"][0], self.spec["x-false-values"][0])
        return None

    @property
    def description(self) -> str:
        """What the column means, one or two sentences."""
        return self.spec.get("description", "")

    @property
    def example(self) -> Optional[str]:
        """First example, as a user would type it in a cell."""
        examples = self.spec.get("examples") or []
        return cell_text(examples[0]) if examples else None

    def allowed(self) -> str:
        """What the column accepts, in words (`one of FULL, INCREMENTAL`)."""
        return describe_allowed(self.spec)

    def requirement(self) -> str:
        """`required`, `required when ...` or `optional`, for comments and the README."""
        if self.required:
            return "required"
        if self.required_when:
            return "required when " + " or when ".join(self.required_when)
        return "optional"


@dataclass(frozen=True)
class WorkbookSchema:
    """The loaded contract: the raw schema document plus convenient views of it."""

    document: Mapping[str, Any]
    """The schema as read from JSON."""
    columns: tuple[Column, ...]
    """Columns in template order."""
    validator: Draft202012Validator = field(repr=False)
    """Validator for one converted row object."""

    @property
    def sheet_name(self) -> str:
        """Name of the jobs sheet (`x-sheet`)."""
        return self.document.get("x-sheet", "SourceConfig")

    @property
    def header_row(self) -> int:
        """1-based row holding the column names (`x-header-row`)."""
        return int(self.document.get("x-header-row", 1))

    def column(self, name: str) -> Optional[Column]:
        """The column called `name` (case-insensitive, trimmed), or None."""
        wanted = name.strip().lower()
        return next((c for c in self.columns if c.name == wanted), None)

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in template order."""
        return tuple(c.name for c in self.columns)

    @property
    def required_names(self) -> tuple[str, ...]:
        """Columns that must be present in the header (every row needs a value)."""
        return tuple(c.name for c in self.columns if c.required)


def load_schema(path: Optional[Path] = None) -> WorkbookSchema:
    """Load and check the workbook schema.

    Args:
        path: Schema file; defaults to `SCHEMA_PATH`.

    Returns:
        The contract, with a ready validator.

    Raises:
        jsonschema.SchemaError: The file is not a valid draft 2020-12 schema.
    """
    return _load_schema(Path(path) if path else SCHEMA_PATH)


@lru_cache(maxsize=4)
def _load_schema(path: Path) -> WorkbookSchema:
    document = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(document)
    conditions: dict[str, list[str]] = {}
    for rule in document.get("allOf", []):
        if "if" in rule and "then" in rule:
            for name in rule["then"].get("required", []):
                conditions.setdefault(name, []).append(describe_condition(rule["if"]))
    required = set(document.get("required", []))
    columns = tuple(
        Column(
            name=name,
            spec=resolve_ref(spec, document),
            position=i,
            required=name in required,
            required_when=tuple(conditions.get(name, ())),
        )
        for i, (name, spec) in enumerate(document["properties"].items())
    )
    return WorkbookSchema(document=document, columns=columns, validator=Draft202012Validator(document))


def resolve_ref(spec: Mapping[str, Any], document: Mapping[str, Any]) -> dict[str, Any]:
    """Merge a local `$ref` (`#/$defs/x`) into `spec`; the property's own keys win."""
    ref = spec.get("$ref")
    if not ref:
        return dict(spec)
    target: Any = document
    for part in ref.lstrip("#/").split("/"):
        target = target[part]
    merged = {**resolve_ref(target, document), **spec}
    merged.pop("$ref", None)
    return merged


def describe_condition(if_schema: Mapping[str, Any]) -> str:
    """Words for an `if` schema: `{"properties": {"load_type": {"const": "X"}}}` -> `load_type is X`."""
    parts = []
    for name, spec in if_schema.get("properties", {}).items():
        if "const" in spec:
            parts.append(f"{name} is {cell_text(spec['const'])}")
        elif "enum" in spec:
            parts.append(f"{name} is one of {', '.join(cell_text(v) for v in spec['enum'])}")
    return " and ".join(parts) or "the row matches another rule"


def describe_allowed(spec: Mapping[str, Any]) -> str:
    """What a (resolved) property schema accepts, in words, e.g. `a whole number from 1,000 to 10,000,000`."""
    if "enum" in spec:
        return "one of " + ", ".join(cell_text(v) for v in spec["enum"])
    if spec.get("x-kind") == "boolean_yn":
        trues, falses = spec["x-true-values"], spec["x-false-values"]
        also = ", ".join(f"{t}/{f}" for t, f in zip(trues[1:], falses[1:], strict=False))
        return f"{trues[0]} or {falses[0]}" + (f" (also {also})" if also else "")
    if "x-allowed" in spec:
        return spec["x-allowed"]
    types = spec.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    what = " or ".join(_TYPE_NAMES.get(t, t) for t in types) or "any value"
    low, high = spec.get("minimum"), spec.get("maximum")
    if low is not None and high is not None:
        return f"{what} from {low:,} to {high:,}"
    if low is not None:
        return f"{what} of at least {low:,}"
    if high is not None:
        return f"{what} of at most {high:,}"
    return what


def type_name(json_type: str) -> str:
    """Everyday name of a JSON type (`integer` -> `a whole number`)."""
    return _TYPE_NAMES.get(json_type, json_type)


def cell_text(value: Any) -> str:
    """A value as a user would type it in a cell (JSON for objects, comma lists for arrays)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(cell_text(v) for v in value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return str(value)


def to_json_value(column: Column, value: Any) -> Any:
    """Convert a cell value into the JSON value the schema validates.

    Conversion is lenient: a value that cannot be converted is returned unchanged so that
    the schema, not this function, reports it (e.g. text in a whole-number column).

    Args:
        column: The column the cell belongs to.
        value: The cell value as openpyxl reads it (str, int, float, bool, datetime, None).

    Returns:
        The converted value; None for a blank cell.

    Raises:
        CellValueError: Text that must be parsed (JSON) and cannot be.
    """
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
    if value is None:
        return None
    kind = column.kind
    if kind == "boolean_yn":
        return _to_bool(column.spec, value)
    if kind == "json_object":
        return _to_json_object(value)
    if kind == "csv_identifiers":
        text = _to_text(column.spec, value)
        if not isinstance(text, str):
            return text
        return _to_identifier_list(text)
    if kind == "watermark":
        return _to_watermark(value)
    if "integer" in column.types:
        return _to_int(value)
    if "string" in column.types:
        return _to_text(column.spec, value)
    return value


def _to_text(spec: Mapping[str, Any], value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return value  # dates and booleans: the schema's type check reports them
    case = spec.get("x-case")
    if case == "lower":
        return value.lower()
    if case == "upper":
        return value.upper()
    return value


def _to_int(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, str):
        # A number typed into a text-formatted cell; accept 1000, 1,000,000 and 1e6.
        if re.fullmatch(r"[+-]?\d+", value):
            return int(value)
        if re.fullmatch(r"\d{1,3}(,\d{3})+", value):
            return int(value.replace(",", ""))
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else value
    return value


def _to_bool(spec: Mapping[str, Any], value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        value = str(int(value)) if float(value).is_integer() else str(value)
    if not isinstance(value, str):
        return value
    token = value.strip().upper()
    if token in spec["x-true-values"]:
        return True
    if token in spec["x-false-values"]:
        return False
    return value


def _to_json_object(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        hint = ""
        if any(q in value for q in "\u201c\u201d\u2018\u2019"):
            hint = ' (Excel turned the quotes into curly quotes; retype them as straight " quotes)'
        raise CellValueError(f"invalid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}{hint}") from None


def _to_identifier_list(text: str) -> list[str]:
    """`'id, line_no'` -> `['id', 'line_no']`; an empty part or a name given twice is an error,
    since either usually means a name went missing or was typed twice by mistake."""
    items = [part.strip() for part in text.split(",")]
    empty = [i for i, item in enumerate(items, start=1) if not item]
    if empty:
        raise CellValueError(
            f"{quote_value(text)} has an empty name (part {empty[0]} of {len(items)}): "
            "two commas in a row, or a comma at the start or end"
        )
    seen: dict[str, str] = {}
    for item in items:
        if item.lower() in seen:
            raise CellValueError(f"{quote_value(text)} names {seen[item.lower()]} twice (compared ignoring case)")
        seen[item.lower()] = item
    return items


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}"  # the date
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?"  # optionally a time
    r"(?:Z|[+-]\d{2}:?\d{2})?)?"  # with an optional offset
)


def parse_watermark(value: Any) -> Union[dt.date, dt.datetime, int, Decimal]:
    """Parse a `last_watermark` value (after `to_json_value`) into a date, date-time or number.

    Accepted text is an ISO 8601 date (`2024-01-31`), date and time (`2024-01-31T08:00:00`, a
    space instead of `T`, seconds and fractions optional) with an optional offset (`Z`,
    `+02:00`), or a decimal number. `shared.sources.base.coerce_watermark` parses the same
    shapes at run time, so whatever passes here can seed the cursor.

    Raises:
        ValueError: Anything else (`2024-13-45`, `yesterday`, `0; drop table big`, NaN).
    """
    if isinstance(value, bool):
        raise ValueError(f"{quote_value(value)} is not a date, timestamp or number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return Decimal(str(value))
    text = value.strip() if isinstance(value, str) else None
    if text and _NUMBER.fullmatch(text):
        return int(text) if re.fullmatch(r"[+-]?\d+", text) else Decimal(text)
    if text and _DATE_TIME.fullmatch(text):
        try:
            if len(text) == 10:
                return dt.date.fromisoformat(text)
            return dt.datetime.fromisoformat(text)
        except ValueError:
            pass  # e.g. month 13: the shape is right but the date does not exist
    raise ValueError(f"{quote_value(value)} is not a date, timestamp or number")


def quote_value(value: Any, limit: int = 60) -> str:
    """A cell value quoted for a message, bounded to `limit` characters."""
    text = cell_text(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"'{text}'"


def _to_watermark(value: Any) -> Any:
    if isinstance(value, bool):
        return value  # the schema's type check reports it
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dt.time):
        raise CellValueError(f"{quote_value(value.isoformat())} is a time of day without a date")
    if isinstance(value, (str, int, float)):
        try:
            parse_watermark(value)
        except ValueError as exc:
            raise CellValueError(str(exc)) from None
    return value
