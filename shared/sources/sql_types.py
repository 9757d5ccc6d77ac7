"""How each source column is read, so every common type lands or is mapped on purpose.

A column whose type connectorx (the fast path) cannot read, or reads wrongly, gets a *read
expression*: the SELECT reads `CAST(col AS TEXT)`, `rtrim(col)`, ... instead of the bare column.
The expression sits in the column's SQLAlchemy type (`column_expression`), so it applies to the
select list only: dlt's incremental filter, slice bounds and key ranges still compare the raw
column. Both extraction backends run the same SELECT, so both land the same values.

PostgreSQL's CHAR(n) padding is the exception: it is trimmed from the Arrow values after reading
(`ReadAs.trim_in_arrow`, both backends), not by the SELECT. On the server, `rtrim(bpchar)` casts
every value to text and trims it: ~8 s of PostgreSQL CPU for TPC-H lineitem's four CHAR columns at
SF 1, against ~0.5 s for Arrow's `utf8_rtrim` on the same values.

The README's type table documents what each source type becomes; `read_plan` is its code.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Callable, Optional

import sqlalchemy as sa
from sqlalchemy.sql import sqltypes

log = logging.getLogger(__name__)

Expression = Callable[[Any], Any]
"""Builds the SQL a column is read with from the column expression."""

MAX_CONNECTORX_DIGITS = 28
"""connectorx decodes numerics with rust_decimal: 28 significant digits at most."""
TIMESTAMP_MAX = dt.datetime(9999, 12, 31, 23, 59, 59, 999999)
"""What PostgreSQL's `infinity` becomes in a timestamp column (`-infinity`: `TIMESTAMP_MIN`)."""
TIMESTAMP_MIN = dt.datetime(1, 1, 1)
DATE_MAX = dt.date(9999, 12, 31)
DATE_MIN = dt.date(1, 1, 1)
GEOMETRY_TYPES = frozenset({
    "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
    "geometrycollection", "geomcollection",
})
# Array element types connectorx reads into Arrow lists (PostgreSQL, one-dimensional).
_LIST_ELEMENTS = (sa.Boolean, sa.SmallInteger, sa.Integer, sa.BigInteger, sa.Float, sa.Text, sa.String)


@dataclass(frozen=True)
class ColumnRead:
    """How one column is read, when not as it is."""

    type: sa.types.TypeEngine
    """The type the column is read as (its class decides dlt's data type)."""
    note: Optional[str] = None
    """A lossy or surprising mapping, logged as a warning naming the column."""


class ReadAs(sa.types.TypeDecorator):
    """A column read through an expression in the SELECT list, landing as `target`.

    dlt maps the column by `target` (see `dlt_type`); comparisons (incremental filter, slice
    bounds) use the raw column with `target`'s bind and literal rendering.
    """

    impl = sa.types.TypeEngine
    cache_ok = True

    def __init__(
        self, target: sa.types.TypeEngine, expression: Expression, bounds: Optional[tuple[Any, Any]] = None,
        trim_in_arrow: bool = False,
    ):
        super().__init__()
        self.impl = target
        self.target = target
        self.expression = expression
        self.clamp_bounds = bounds
        """The values `±infinity` are clamped to (the loader counts them), or None."""
        self.trim_in_arrow = trim_in_arrow
        """The loaders remove the values' trailing spaces in Arrow (`arrow_types.rtrim_spaces`)."""

    @property
    def python_type(self) -> type:
        return self.target.python_type  # slicing and the initial cursor go by the landed type

    def load_dialect_impl(self, dialect: Any) -> Any:
        return dialect.type_descriptor(self.target)

    def column_expression(self, colexpr: Any) -> Any:
        return self.expression(colexpr)


def read_as(
    target: sa.types.TypeEngine, expression: Expression, bounds: Optional[tuple[Any, Any]] = None,
    trim_in_arrow: bool = False,
) -> sa.types.TypeEngine:
    """`target` (a type instance) read through `expression`; `bounds`, `trim_in_arrow`: see `ReadAs`."""
    return ReadAs(target, expression, bounds, trim_in_arrow)


def trimmed_in_arrow(table: sa.Table) -> list[str]:
    """Names of the columns whose trailing spaces the loaders remove in Arrow."""
    return [c.name for c in table.columns if isinstance(c.type, ReadAs) and c.type.trim_in_arrow]


def dlt_type(sql_type: sa.types.TypeEngine) -> sa.types.TypeEngine:
    """dlt's `type_adapter_callback`: a read column is mapped by the type it lands as."""
    return sql_type.target if isinstance(sql_type, ReadAs) else sql_type


def _as_text(column: Any) -> Any:
    return sa.cast(column, sa.Text())


def _rtrim(column: Any) -> Any:
    return sa.func.rtrim(column)


def _bare(column: Any) -> Any:
    return column


def _clamp(low: Any, high: Any) -> Expression:
    """PostgreSQL `±infinity` as the lowest/highest value Parquet readers can hold."""

    def expression(column: Any) -> Any:
        return sa.case(
            (column == sa.literal_column("'infinity'"), sa.literal(high, type_=column.type)),
            (column == sa.literal_column("'-infinity'"), sa.literal(low, type_=column.type)),
            else_=column,
        )

    return expression


def _not_nan(column: Any) -> Any:
    """A PostgreSQL numeric without its NaN (Arrow decimals have no NaN)."""
    return sa.func.nullif(column, sa.literal_column("'NaN'::numeric"))


def _iso_interval(column: Any) -> Any:
    """A PostgreSQL interval as ISO 8601 text, e.g. `P1Y2M3DT4H5M6.5S` (each part keeps its sign)."""

    def part(field: str) -> Any:
        return sa.cast(sa.cast(sa.extract(field, column), sa.BigInteger()), sa.Text())

    seconds = sa.cast(sa.func.trim_scale(sa.cast(sa.extract("second", column), sa.Numeric())), sa.Text())
    text = sa.func.concat(
        "P", part("year"), "Y", part("month"), "M", part("day"), "DT", part("hour"), "H",
        part("minute"), "M", seconds, "S",
    )
    return sa.case((column.is_(None), sa.null()), else_=text)


def _mysql_char(column: Any) -> Any:
    return sa.cast(column, sa.Text())  # CAST(col AS CHAR) in MySQL


def _mysql_bits(length: int) -> Expression:
    """MySQL BIT(n) as its n-character bit string (`0101`), like PostgreSQL's bit."""
    return lambda column: sa.func.lpad(sa.func.bin(column), length, "0")


def _mysql_pad(length: int) -> Expression:
    """MySQL trims CHAR(n) on read; `keep_char_padding` puts the spaces back."""
    return lambda column: sa.func.rpad(column, length, " ")


def _wkb(column: Any) -> Any:
    return sa.func.ST_AsBinary(column)


def read_plan(
    table: sa.Table, dialect: str, keep_char_padding: bool = False, type_names: Optional[dict[str, str]] = None
) -> dict[str, ColumnRead]:
    """How each column of `table` that needs it is read.

    Args:
        table: The reflected table.
        dialect: SQLAlchemy dialect name.
        keep_char_padding: Keep the trailing spaces of CHAR(n) columns (default: trimmed).
        type_names: Database type name per column, for columns SQLAlchemy does not know.

    Returns:
        Column name -> how to read it; columns read as they are are absent.
    """
    plan: dict[str, ColumnRead] = {}
    for column in table.columns:
        if dialect == "postgresql":
            read = _postgres(column, keep_char_padding)
        elif dialect in ("mysql", "mariadb"):
            read = _mysql(column, keep_char_padding, (type_names or {}).get(column.name, ""))
        else:
            read = _char_only(column, keep_char_padding)
        if read is not None:
            plan[column.name] = read
    return plan


def apply_read_plan(table: sa.Table, plan: dict[str, ColumnRead]) -> None:
    """Give each planned column its reading type (once; the table is reflected once per run)."""
    for name, read in plan.items():
        table.c[name].type = read.type
        if read.note:
            log.warning("table %s, column %s: %s", table.name, name, read.note)


def is_list_array(sql_type: sa.types.TypeEngine) -> bool:
    """A one-dimensional array whose elements connectorx reads into an Arrow list."""
    if not isinstance(sql_type, sa.ARRAY) or (sql_type.dimensions or 1) != 1:
        return False
    item = sql_type.item_type
    if isinstance(item, (sa.Enum, sa.CHAR)) or (isinstance(item, sa.Numeric) and not isinstance(item, sa.Float)):
        return False
    return isinstance(item, _LIST_ELEMENTS)


def _is_char(sql_type: sa.types.TypeEngine) -> bool:
    """Fixed-length character types (CHAR, NCHAR, bpchar)."""
    return isinstance(sql_type, sa.CHAR) or getattr(sql_type, "__visit_name__", "") in ("CHAR", "NCHAR", "BPCHAR")


def _char_only(column: sa.Column, keep_char_padding: bool) -> Optional[ColumnRead]:
    if _is_char(column.type) and not keep_char_padding:
        return ColumnRead(read_as(column.type, _rtrim))
    return None


def _postgres(column: sa.Column, keep_char_padding: bool) -> Optional[ColumnRead]:
    from sqlalchemy.dialects import postgresql as pg

    t = column.type
    if isinstance(t, pg.DOMAIN):  # read as its base type
        base = t.data_type
        inner = _postgres(sa.Column(column.name, base), keep_char_padding)
        if inner is None:
            return ColumnRead(read_as(base, lambda c: sa.cast(c, base)))
        read = inner.type
        assert isinstance(read, ReadAs)
        return ColumnRead(read_as(read.target, lambda c: read.expression(sa.cast(c, base)), read.clamp_bounds,
                                  read.trim_in_arrow), inner.note)
    if _is_char(t):
        return None if keep_char_padding else ColumnRead(read_as(t, _bare, trim_in_arrow=True))
    if isinstance(t, sa.Enum) or isinstance(t, (pg.JSON, pg.JSONB, sa.JSON)):
        return ColumnRead(read_as(sa.Text(), _as_text))
    if isinstance(t, sa.ARRAY):
        if is_list_array(t):
            return None  # an Arrow list of the element type
        return ColumnRead(read_as(sa.Text(), lambda c: sa.cast(sa.func.to_json(c), sa.Text())),
                          note="array of a type without an Arrow list mapping: lands as JSON text")
    if isinstance(t, sa.Numeric) and not isinstance(t, sa.Float):
        if t.precision is None:
            return ColumnRead(read_as(sa.Text(), _as_text),
                              note="numeric without precision lands as text (exact; NaN and Infinity as "
                                   "'NaN'/'Infinity'); declare numeric(p,s) for a decimal column")
        if t.precision <= MAX_CONNECTORX_DIGITS:
            return ColumnRead(read_as(t, _not_nan))
        # Wider than connectorx decodes: read as text, cast to decimal128/256(p,s) in Arrow.
        return ColumnRead(read_as(t, lambda c: sa.cast(_not_nan(c), sa.Text())))
    if isinstance(t, sa.DateTime):
        low, high = (TIMESTAMP_MIN.replace(tzinfo=dt.timezone.utc), TIMESTAMP_MAX.replace(tzinfo=dt.timezone.utc)) \
            if t.timezone else (TIMESTAMP_MIN, TIMESTAMP_MAX)
        return ColumnRead(read_as(t, _clamp(low, high), (low, high)))
    if isinstance(t, sa.Date):
        return ColumnRead(read_as(t, _clamp(DATE_MIN, DATE_MAX), (DATE_MIN, DATE_MAX)))
    if isinstance(t, sa.Time) and t.timezone:
        return ColumnRead(read_as(sa.Text(), _as_text))  # timetz: '12:34:56+05:30'
    if isinstance(t, pg.INTERVAL):
        return ColumnRead(read_as(sa.Text(), _iso_interval))
    if isinstance(t, pg.MONEY):
        return ColumnRead(read_as(sa.Numeric(19, 2), lambda c: sa.cast(c, sa.Numeric())))
    if isinstance(t, pg.INET):
        return ColumnRead(read_as(sa.Text(), sa.func.abbrev))  # '192.168.0.1', not '.../32'
    if isinstance(t, (sa.Boolean, sa.Integer, sa.Float, sa.Time, sa.Uuid, sqltypes._Binary)):
        return None
    if isinstance(t, sa.String) and type(t) in (sa.String, sa.Text, sa.VARCHAR, sa.TEXT, pg.VARCHAR, pg.TEXT):
        return None
    # Everything else (bit, varbit, inet, cidr, macaddr, xml, tsvector, ranges, geometric and
    # extension types...) lands as PostgreSQL's own text form.
    return ColumnRead(read_as(sa.Text(), _as_text))


def _mysql(column: sa.Column, keep_char_padding: bool, type_name: str) -> Optional[ColumnRead]:
    from sqlalchemy.dialects import mysql

    t = column.type
    if _is_char(t):
        return ColumnRead(read_as(t, _mysql_pad(t.length))) if keep_char_padding and t.length else None
    if isinstance(t, (sa.Enum, mysql.SET, sa.JSON)):
        return ColumnRead(read_as(sa.Text(), _mysql_char))
    if isinstance(t, mysql.BIT):
        return ColumnRead(read_as(sa.Text(), _mysql_bits(t.length or 1)))
    if isinstance(t, mysql.YEAR):
        return ColumnRead(read_as(sa.SmallInteger(), lambda c: c))
    if isinstance(t, sa.Time):
        # MySQL TIME also holds elapsed times (-838:59:59 .. 838:59:59) no Arrow time holds.
        return ColumnRead(read_as(sa.Text(), _mysql_char))
    if isinstance(t, sa.BigInteger) and getattr(t, "unsigned", False):
        return ColumnRead(read_as(sa.Numeric(20, 0), lambda c: c))  # up to 18446744073709551615
    if isinstance(t, sa.Numeric) and not isinstance(t, sa.Float) and t.asdecimal:
        if t.precision is not None and t.precision > MAX_CONNECTORX_DIGITS:
            return ColumnRead(read_as(t, _mysql_char))  # cast to decimal128/256(p,s) in Arrow
        return None
    if isinstance(t, sqltypes.NullType):
        if type_name.lower() in GEOMETRY_TYPES:
            return ColumnRead(read_as(sa.LargeBinary(), _wkb))  # OGC WKB, without the SRID
        return ColumnRead(read_as(sa.Text(), _mysql_char))
    return None
