"""Column checksums computed in the source database and over landed Parquet, for equality checks.

Each column reduces to (non-null count, a value digest). The digest is a sum for numbers,
dates and timestamps (as epoch microseconds, which also proves time zones were kept), and an
md5 of the id-ordered values for text.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

SEP = "\x1f"
NULL = "\x01"


def read_parquet(files: Iterable[Path | str]) -> pa.Table:
    """All rows of the given Parquet files as one table (dlt's own columns dropped)."""
    tables = [pq.read_table(str(f)) for f in files]
    table = pa.concat_tables(tables, promote_options="default") if tables else pa.table({})
    return table.drop_columns([c for c in table.column_names if c.startswith("_dlt")])


def parquet_checksums(table: pa.Table, key: str) -> dict[str, tuple[int, Any]]:
    """Checksums of every column of an Arrow table, ordered by `key`."""
    table = table.sort_by(key)
    sums: dict[str, tuple[int, Any]] = {}
    for name in table.column_names:
        col = table[name]
        count = len(col) - col.null_count
        t = col.type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            digest = hashlib.md5(SEP.join(NULL if v is None else v for v in col.to_pylist()).encode()).hexdigest()
        elif pa.types.is_boolean(t):
            digest = int(pc.sum(pc.cast(col, pa.int64())).as_py() or 0)
        elif pa.types.is_timestamp(t):
            # Python ints: epoch microseconds of a million rows overflow int64 sums.
            micros = pc.cast(pc.cast(col, pa.timestamp("us", t.tz)), pa.int64()).to_pylist()
            digest = sum(v for v in micros if v is not None)
        elif pa.types.is_date(t):
            digest = int(pc.sum(pc.cast(pc.cast(col, pa.date32()), pa.int32()).cast(pa.int64())).as_py() or 0)
        elif pa.types.is_decimal(t):
            digest = sum((v for v in col.to_pylist() if v is not None), Decimal(0))
        elif pa.types.is_integer(t):
            digest = sum(v for v in col.to_pylist() if v is not None)  # Python ints never overflow
        else:
            digest = pc.sum(col).as_py() or 0
        sums[name] = (count, digest)
    return sums


def source_checksums(engine: sa.Engine, table: str, key: str, columns: dict[str, str]) -> dict[str, tuple[int, Any]]:
    """The same checksums computed by PostgreSQL or MariaDB over the source table.

    Args:
        engine: The source database.
        table: Table name.
        key: Ordering column for text digests.
        columns: Column name -> kind: `number`, `decimal`, `text`, `bool`, `timestamp` (naive, UTC
            wall time), `timestamptz`, `date`.
    """
    pg = engine.dialect.name == "postgresql"
    out: dict[str, tuple[int, Any]] = {}
    with engine.connect() as conn:
        for name, kind in columns.items():
            if kind == "text":
                if pg:
                    expr = f"md5(string_agg(coalesce({name}, chr(1)), chr(31) ORDER BY {key}))"
                    count, digest = conn.execute(sa.text(f"SELECT count({name}), {expr} FROM {table}")).one()
                else:
                    values = conn.execute(sa.text(f"SELECT {name} FROM {table} ORDER BY {key}")).scalars().all()
                    count = sum(v is not None for v in values)
                    digest = hashlib.md5(SEP.join(NULL if v is None else v for v in values).encode()).hexdigest()
            elif kind in ("timestamp", "timestamptz"):
                if pg:
                    expr = f"sum((extract(epoch from {name}) * 1000000)::numeric)"
                else:
                    expr = f"sum(timestampdiff(MICROSECOND, '1970-01-01 00:00:00', {name}))"
                count, digest = conn.execute(sa.text(f"SELECT count({name}), {expr} FROM {table}")).one()
                digest = int(digest or 0)
            elif kind == "date":
                expr = f"sum({name} - date '1970-01-01')" if pg else f"sum(datediff({name}, '1970-01-01'))"
                count, digest = conn.execute(sa.text(f"SELECT count({name}), {expr} FROM {table}")).one()
                digest = int(digest or 0)
            elif kind == "bool":
                expr = f"sum(case when {name} then 1 else 0 end)"
                count, digest = conn.execute(sa.text(f"SELECT count({name}), {expr} FROM {table}")).one()
                digest = int(digest or 0)
            elif kind == "decimal":
                count, digest = conn.execute(sa.text(f"SELECT count({name}), sum({name}) FROM {table}")).one()
                digest = Decimal(digest or 0)
            else:
                count, digest = conn.execute(sa.text(f"SELECT count({name}), sum({name}) FROM {table}")).one()
                digest = int(digest or 0) if not isinstance(digest, float) else digest
            out[name] = (int(count), digest)
    return out
