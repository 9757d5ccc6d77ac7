"""Arrow types of a reflected SQL table: the same target schema for every extraction backend.

dlt's reflection maps every integer column to a 64-bit `bigint`; the lake must keep the source's
widths instead (int4 -> int32, smallint -> int16). `integer_width_hints` gives dlt the widths as
column hints, which both dlt's pyarrow backend and our connectorx path turn into Arrow types
with dlt's own `get_py_arrow_datatype`, so the two backends write identical Parquet schemas.
"""

from __future__ import annotations

from typing import Collection, Optional, TypeVar, Union

import pyarrow as pa
import sqlalchemy as sa
from dlt.common.configuration.container import Container
from dlt.common.destination.capabilities import DestinationCapabilitiesContext
from dlt.common.libs.pyarrow import dlt_column_to_arrow_field
from dlt.common.schema.typing import TTableSchemaColumns

ARROW_TIMEZONE = "UTC"
"""Zone of time-zone-aware timestamp columns in the lake (dlt's pyarrow backend uses the same)."""

# Widths of integer types that are not the plain 32-bit INTEGER, by type name.
_NAMED_WIDTHS = {"TINYINT": 8, "SMALLINT": 16, "MEDIUMINT": 32, "BIGINT": 64}


def integer_bits(sql_type: sa.types.TypeEngine, dialect: str) -> Optional[int]:
    """Bits of the signed Arrow integer that holds every value of an integer column.

    Args:
        sql_type: The reflected column type.
        dialect: SQLAlchemy dialect name (`postgresql`, `mysql`, `mssql`, `sqlite`, ...).

    Returns:
        8, 16, 32 or 64; None for types that are not plain integers (Oracle's NUMBER is a
        decimal to dlt and stays one).
    """
    if not isinstance(sql_type, sa.Integer) or isinstance(sql_type, sa.Numeric):
        return None
    if dialect == "sqlite":
        return 64  # SQLite stores every INTEGER in up to 8 bytes, whatever the declared name
    if isinstance(sql_type, sa.BigInteger):
        bits = 64
    elif isinstance(sql_type, sa.SmallInteger):
        bits = _NAMED_WIDTHS.get(type(sql_type).__name__.upper(), 16)
    else:
        bits = _NAMED_WIDTHS.get(type(sql_type).__name__.upper(), 32)
    unsigned = getattr(sql_type, "unsigned", False) or (dialect == "mssql" and bits == 8)
    if unsigned:  # MySQL UNSIGNED and SQL Server's 0..255 TINYINT need the next signed width
        bits = min(bits * 2, 64)
    return bits


def integer_width_hints(table: sa.Table, dialect: str) -> TTableSchemaColumns:
    """dlt column hints giving each integer column of `table` its source width."""
    hints: TTableSchemaColumns = {}
    from shared.sources.sql_types import dlt_type

    for column in table.columns:
        bits = integer_bits(dlt_type(column.type), dialect)
        if bits is not None:
            hints[column.name] = {"name": column.name, "data_type": "bigint", "precision": bits}
    return hints


def target_schema(columns: TTableSchemaColumns) -> dict[str, pa.Field]:
    """Arrow field per column with a known data type, as dlt's pyarrow backend would build it.

    Columns without a data type (dlt could not map the SQL type) and arrays (dlt's `json`,
    read as Arrow lists) are absent: their values keep the type the reader produced.
    """
    caps = Container().get(DestinationCapabilitiesContext) or DestinationCapabilitiesContext.generic_capabilities()
    return {
        name: dlt_column_to_arrow_field(column, caps, ARROW_TIMEZONE)
        for name, column in columns.items()
        if column.get("data_type") and column.get("data_type") != "json"
    }


def conform(batch: pa.RecordBatch, fields: dict[str, pa.Field], trim: Collection[str] = ()) -> pa.RecordBatch:
    """Cast a batch to the target fields (safe casts: a value that does not fit raises).

    connectorx reports numeric(12,2) as decimal(38,10), timestamptz as `+00:00` and some integer
    widths differently from the source; this puts every column back to the reflected type.
    The string columns named in `trim` lose their trailing spaces (`rtrim_spaces`).
    """
    arrays = []
    out_fields = []
    for name, array in zip(batch.schema.names, batch.columns):
        if name in trim:
            array = _rtrim(array)
        target = fields.get(name)
        if target is None:
            out_fields.append(batch.schema.field(name))
            arrays.append(array)
            continue
        if array.type != target.type:
            array = array.cast(target.type)
        arrays.append(array)
        out_fields.append(target)
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(out_fields))


Data = TypeVar("Data", pa.RecordBatch, pa.Table)


def rtrim_spaces(data: Data, names: Collection[str]) -> Data:
    """`data` with the trailing spaces of its string columns in `names` removed (CHAR(n) padding).

    Only spaces go, as SQL's `rtrim(col)` removes them; other columns and types are kept as they are.
    """
    present = [n for n in names if n in data.schema.names]
    for name in present:
        i = data.schema.get_field_index(name)
        data = data.set_column(i, data.schema.field(i), _rtrim(data.column(i)))
    return data


def _rtrim(array: Union[pa.Array, pa.ChunkedArray]) -> Union[pa.Array, pa.ChunkedArray]:
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return array
    import pyarrow.compute as pc

    return pc.utf8_rtrim(array, characters=" ")
