"""Landed Parquet against DuckDB's own TPC-H tables: row counts, whole-row checksums, types, queries.

A table's checksum is `count(*)` and the sum (as HUGEINT) of DuckDB's `hash()` of every whole
row, with every column cast to its specification type on both sides: the sum does not depend
on row order or file layout, and any changed value, lost or duplicated row changes it.
DuckDB's generator writes CHAR(n) columns without padding; PostgreSQL pads them on storage and
our source trims them again (`keep_char_padding` blank), so the landed value must equal
DuckDB's as it is. Only for the peers (which may keep PostgreSQL's padding) are CHAR(n) values
right-trimmed before hashing. For our run the Arrow type of every column must also be exactly
the specification's (int32, int64, decimal128(15, 2), date32, string).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from bench.tpch_data import duckdb_connect
from bench.tpch_schema import TABLES, Table

QUERIES = range(1, 23)


@dataclass
class TableCheck:
    """One landed table against DuckDB's."""

    table: str
    expected_rows: int
    landed_rows: int
    checksum_equal: bool
    type_differences: dict[str, str] = field(default_factory=dict)
    types_checked: bool = False
    problem: str = ""

    @property
    def ok(self) -> bool:
        """Rows, checksum and (when checked) types all as DuckDB's."""
        return (not self.problem and self.landed_rows == self.expected_rows and self.checksum_equal
                and not self.type_differences)

    def describe(self) -> str:
        """One line for the report."""
        if self.problem:
            return self.problem
        parts = [f"{self.landed_rows:,}/{self.expected_rows:,} rows",
                 "checksum equal" if self.checksum_equal else "CHECKSUM DIFFERS"]
        if self.type_differences:
            parts.append("types differ: " + ", ".join(f"{k} {v}" for k, v in self.type_differences.items()))
        elif self.types_checked:
            parts.append("types as the spec")
        return ", ".join(parts)


def landed_files(out: Path, table: str) -> list[Path]:
    """The Parquet files of `table` below `out`: in a folder named after it, or named after it."""
    return sorted(p for p in out.rglob("*.parquet")
                  if table in p.relative_to(out).parts[:-1] or p.stem == table)


def _row_hash(table: Table, trim_char: bool) -> str:
    exprs = []
    for col in table.columns:
        expr = f"CAST({col.name} AS {col.duckdb_type})"
        exprs.append(f"rtrim({expr})" if trim_char and col.is_char else expr)
    return f"count(*), sum(hash({', '.join(exprs)})::HUGEINT)"


def _parquet_list(files: list[Path]) -> str:
    return "[" + ", ".join(f"'{f}'" for f in files) + "]"


def expected_checksums(native: Any) -> dict[str, tuple[int, int]]:
    """(rows, checksum) of each of DuckDB's own tables, in the specification's types."""
    return {name: native.execute(f"SELECT {_row_hash(t, trim_char=False)} FROM {name}").fetchone()
            for name, t in TABLES.items()}


def check_table(expected: tuple[int, int], table: str, files: list[Path], *, exact_types: bool) -> TableCheck:
    """Compare one landed table with DuckDB's.

    Args:
        expected: `expected_checksums()[table]`.
        table: TPC-H table name.
        files: Its landed Parquet files.
        exact_types: Require the specification's Arrow types and untrimmed CHAR values (our run);
            False for the peers, whose values are compared after casting and trimming.
    """
    spec = TABLES[table]
    if not files:
        return TableCheck(table, expected[0], 0, False, problem="no Parquet files landed")
    differences: dict[str, str] = {}
    if exact_types:
        schema = pq.read_schema(files[0])
        for col in spec.columns:
            if col.name not in schema.names:
                differences[col.name] = "missing"
            elif schema.field(col.name).type != col.arrow_type:
                differences[col.name] = f"{schema.field(col.name).type} (want {col.arrow_type})"
    conn = duckdb_connect()
    try:
        rows, digest = conn.execute(
            f"SELECT {_row_hash(spec, trim_char=not exact_types)} FROM read_parquet({_parquet_list(files)}, "
            "union_by_name=true)").fetchone()
    finally:
        conn.close()
    return TableCheck(table, expected[0], rows, digest == expected[1], differences, types_checked=exact_types)


def _equal_values(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def _equal_rows(a: list[tuple], b: list[tuple]) -> bool:
    return len(a) == len(b) and all(len(x) == len(y) and all(map(_equal_values, x, y)) for x, y in zip(a, b))


@dataclass(frozen=True)
class QueryResult:
    """One TPC-H query's answer on the landed Parquet against DuckDB's native tables."""

    query: int
    equal: bool
    detail: str


def compare_queries(native: Any, lake_tables: dict[str, list[Path]]) -> list[QueryResult]:
    """Run the 22 queries (`PRAGMA tpch(n)`) on views over the landed Parquet and on `native`.

    Floating-point answers (averages) may differ in the last bits with the summation order of
    DuckDB's threads, so they are compared with a relative tolerance of 1e-9; every other
    value (decimals, integers, text, dates) exactly. Rows are compared in the query's order,
    then, when that fails, as sorted multisets ("equal up to the order of ties").
    """
    lake = duckdb_connect()
    results = []
    try:
        for table, files in lake_tables.items():
            cols = ", ".join(TABLES[table].column_names)
            lake.execute(f"CREATE VIEW {table} AS SELECT {cols} FROM read_parquet({_parquet_list(files)}, "
                         "union_by_name=true)")
        for n in QUERIES:
            want = native.execute(f"PRAGMA tpch({n})").fetchall()
            try:
                got = lake.execute(f"PRAGMA tpch({n})").fetchall()
            except Exception as exc:  # a missing table or an incompatible type: report, go on
                results.append(QueryResult(n, False, f"failed on the lake: {str(exc).splitlines()[0]}"))
                continue
            if _equal_rows(got, want):
                results.append(QueryResult(n, True, f"{len(want)} rows"))
            elif _equal_rows(sorted(got, key=repr), sorted(want, key=repr)):
                results.append(QueryResult(n, True, f"{len(want)} rows, equal up to the order of ties"))
            else:
                first = next((i for i, (x, y) in enumerate(zip(got, want)) if not _equal_rows([x], [y])),
                             min(len(got), len(want)))
                results.append(QueryResult(n, False, f"{len(got)} rows vs {len(want)}; first difference at row "
                                                     f"{first}: {got[first:first + 1]} vs {want[first:first + 1]}"))
    finally:
        lake.close()
    return results
