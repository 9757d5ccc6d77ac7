"""The eight TPC-H tables as the specification declares them (TPC-H 3.0.1, clause 1.4).

One declaration drives everything the bench does with a table: the PostgreSQL and MariaDB
DDL, the Arrow type each column must land as, and the casts that put DuckDB's own tables
(which use BIGINT keys and VARCHAR for every text column) on the same types before checksums.
Keys are INTEGER except the order keys, which are BIGINT (they pass 2^31 from SF 300 on).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

_D = "DECIMAL(15,2)"


@dataclass(frozen=True)
class Column:
    """One column: its name and its SQL type as the specification writes it."""

    name: str
    sql_type: str
    """`INTEGER`, `BIGINT`, `DECIMAL(15,2)`, `DATE`, `CHAR(n)` or `VARCHAR(n)`."""

    @property
    def is_char(self) -> bool:
        """A fixed-length CHAR(n): PostgreSQL pads it, our source trims it (keep_char_padding blank)."""
        return self.sql_type.startswith("CHAR(")

    @property
    def arrow_type(self) -> pa.DataType:
        """The Arrow type that keeps the column's type exactly."""
        if self.sql_type == "INTEGER":
            return pa.int32()
        if self.sql_type == "BIGINT":
            return pa.int64()
        if self.sql_type == "DATE":
            return pa.date32()
        match = re.fullmatch(r"DECIMAL\((\d+),(\d+)\)", self.sql_type)
        if match:
            return pa.decimal128(int(match[1]), int(match[2]))
        return pa.string()

    @property
    def duckdb_type(self) -> str:
        """The DuckDB type both sides are compared in (CHAR/VARCHAR(n) are DuckDB VARCHAR)."""
        return "VARCHAR" if "CHAR(" in self.sql_type else self.sql_type


@dataclass(frozen=True)
class Table:
    """One TPC-H table: columns in the specification's order and the primary key."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]

    def ddl(self, dialect: str) -> str:
        """CREATE TABLE for `postgresql` or `mariadb`, without the primary key (added after the load)."""
        cols = ", ".join(f"{c.name} {c.sql_type}" for c in self.columns)
        suffix = " CHARACTER SET utf8mb4" if dialect == "mariadb" else ""
        return f"CREATE TABLE {self.name} ({cols}){suffix}"

    @property
    def column_names(self) -> list[str]:
        """Column names in order."""
        return [c.name for c in self.columns]


def _table(name: str, key: str, spec: str) -> Table:
    columns = tuple(Column(*part.strip().split(" ", 1)) for part in spec.split(";"))
    return Table(name, columns, tuple(k.strip() for k in key.split(",")))


TABLES: dict[str, Table] = {t.name: t for t in (
    _table("region", "r_regionkey", "r_regionkey INTEGER; r_name CHAR(25); r_comment VARCHAR(152)"),
    _table("nation", "n_nationkey",
           "n_nationkey INTEGER; n_name CHAR(25); n_regionkey INTEGER; n_comment VARCHAR(152)"),
    _table("supplier", "s_suppkey",
           f"s_suppkey INTEGER; s_name CHAR(25); s_address VARCHAR(40); s_nationkey INTEGER; s_phone CHAR(15); "
           f"s_acctbal {_D}; s_comment VARCHAR(101)"),
    _table("customer", "c_custkey",
           f"c_custkey INTEGER; c_name VARCHAR(25); c_address VARCHAR(40); c_nationkey INTEGER; c_phone CHAR(15); "
           f"c_acctbal {_D}; c_mktsegment CHAR(10); c_comment VARCHAR(117)"),
    _table("part", "p_partkey",
           f"p_partkey INTEGER; p_name VARCHAR(55); p_mfgr CHAR(25); p_brand CHAR(10); p_type VARCHAR(25); "
           f"p_size INTEGER; p_container CHAR(10); p_retailprice {_D}; p_comment VARCHAR(23)"),
    _table("partsupp", "ps_partkey, ps_suppkey",
           f"ps_partkey INTEGER; ps_suppkey INTEGER; ps_availqty INTEGER; ps_supplycost {_D}; "
           "ps_comment VARCHAR(199)"),
    _table("orders", "o_orderkey",
           f"o_orderkey BIGINT; o_custkey INTEGER; o_orderstatus CHAR(1); o_totalprice {_D}; o_orderdate DATE; "
           "o_orderpriority CHAR(15); o_clerk CHAR(15); o_shippriority INTEGER; o_comment VARCHAR(79)"),
    _table("lineitem", "l_orderkey, l_linenumber",
           f"l_orderkey BIGINT; l_partkey INTEGER; l_suppkey INTEGER; l_linenumber INTEGER; l_quantity {_D}; "
           f"l_extendedprice {_D}; l_discount {_D}; l_tax {_D}; l_returnflag CHAR(1); l_linestatus CHAR(1); "
           "l_shipdate DATE; l_commitdate DATE; l_receiptdate DATE; l_shipinstruct CHAR(25); "
           "l_shipmode CHAR(10); l_comment VARCHAR(44)"),
)}
"""Every table, smallest first."""
