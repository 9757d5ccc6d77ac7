"""The benchmark's source tables: ten columns, N rows, on PostgreSQL and MariaDB.

Values include unicode, newlines and NULLs, like the acceptance tests' typed table. A table is
named after its size (`bench_throughput_1000000`) and created only when missing or incomplete.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
import pyarrow as pa
import sqlalchemy as sa

PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("BENCH_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


@dataclass(frozen=True)
class Engine:
    """One benchmarked database: where it is, how to build its table, what lands in the lake."""

    name: str
    """`postgresql` or `mariadb`."""
    url: str
    """SQLAlchemy URL of the database holding the table."""
    source_type: str
    """The workbook's `source_type` for it."""
    checksum_kinds: dict[str, str]
    """Column -> kind for `tests.checksums.source_checksums`."""
    arrow_types: dict[str, pa.DataType]
    """Column -> the Arrow type that keeps the source column's type."""

    def sa_engine(self) -> sa.Engine:
        """A SQLAlchemy engine on the database."""
        return sa.create_engine(self.url)

    def connectorx_url(self) -> str:
        """The same database as a connectorx URL."""
        url = sa.make_url(self.url)
        return url.set(drivername=url.get_backend_name(), query={}).render_as_string(hide_password=False)


_COMMON_TYPES = {
    "id": pa.int32(), "big": pa.int64(), "amount": pa.decimal128(12, 2), "n": pa.int32(),
    "t1": pa.string(), "t2": pa.string(), "tsn": pa.timestamp("us"), "d": pa.date32(),
}

POSTGRESQL = Engine(
    name="postgresql",
    url=PG_URL,
    source_type="postgresql",
    checksum_kinds={
        "id": "number", "big": "number", "amount": "decimal", "n": "number", "t1": "text", "t2": "text",
        "ts": "timestamptz", "tsn": "timestamp", "flag": "bool", "d": "date",
    },
    arrow_types={**_COMMON_TYPES, "ts": pa.timestamp("us", tz="UTC"), "flag": pa.bool_()},
)

MARIADB = Engine(
    name="mariadb",
    url=MARIADB_URL,
    source_type="mysql",
    checksum_kinds={
        "id": "number", "big": "number", "amount": "decimal", "n": "number", "t1": "text", "t2": "text",
        "ts": "timestamp", "tsn": "timestamp", "flag": "number", "d": "date",
    },
    # MariaDB has no zone-aware timestamp; BOOLEAN is TINYINT(1), an 8-bit integer.
    arrow_types={**_COMMON_TYPES, "ts": pa.timestamp("us"), "flag": pa.int8()},
)

ENGINES = {e.name: e for e in (POSTGRESQL, MARIADB)}

_PG_DDL = (
    "CREATE TABLE {name} (id int PRIMARY KEY, big bigint, amount numeric(12,2), n int, t1 text, "
    "t2 varchar(40), ts timestamptz NOT NULL, tsn timestamp, flag boolean, d date)"
)
_PG_FILL = (
    "INSERT INTO {name} SELECT g, g::bigint * 3000000000, "
    "CASE WHEN g % 11 = 0 THEN NULL ELSE round((g % 100000) * 1.37 - 5000, 2) END, g % 1000, "
    "'héllo ☕ ' || g || E'\\nsecond line', CASE WHEN g % 7 = 0 THEN NULL ELSE 'v' || (g % 13) END, "
    "timestamptz '2024-03-01 12:00:00+02' + g * interval '1 second', "
    "CASE WHEN g % 5 = 0 THEN NULL ELSE timestamp '2024-01-01' + g * interval '1 minute' END, "
    "CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 = 0 END, date '2020-01-01' + (g % 2000) "
    "FROM generate_series({start}, {stop}) g"
)
_MARIA_DDL = (
    "CREATE TABLE {name} (id INT PRIMARY KEY, big BIGINT, amount DECIMAL(12,2), n INT, "
    "t1 TEXT CHARACTER SET utf8mb4, t2 VARCHAR(40) CHARACTER SET utf8mb4, ts DATETIME(6) NOT NULL, "
    "tsn DATETIME(6), flag BOOLEAN, d DATE)"
)
_MARIA_FILL = (
    "INSERT INTO {name} SELECT g, g * 3000000000, "
    "IF(g % 11 = 0, NULL, ROUND((g % 100000) * 1.37 - 5000, 2)), g % 1000, "
    "CONCAT('héllo ☕ ', g, '\\nsecond line'), IF(g % 7 = 0, NULL, CONCAT('v', g % 13)), "
    "TIMESTAMP('2024-03-01 10:00:00') + INTERVAL g SECOND, "
    "IF(g % 5 = 0, NULL, TIMESTAMP('2024-01-01') + INTERVAL g MINUTE), "
    "IF(g % 3 = 0, NULL, g % 2 = 0), DATE('2020-01-01') + INTERVAL (g % 2000) DAY "
    "FROM (SELECT seq AS g FROM seq_{start}_to_{stop}) s"
)
_FILL_STEP = 1_000_000
"""Rows per INSERT: keeps each statement's undo log and memory modest."""


def table_name(rows: int) -> str:
    """The benchmark table holding `rows` rows."""
    return f"bench_throughput_{rows}"


def ensure_table(engine: Engine, rows: int) -> str:
    """Create and fill the table unless it already holds exactly `rows` rows; return its name."""
    name = table_name(rows)
    db = engine.sa_engine()
    try:
        with db.connect() as conn:
            if sa.inspect(conn).has_table(name):
                if conn.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar() == rows:
                    return name
        ddl, fill = (_PG_DDL, _PG_FILL) if engine.name == "postgresql" else (_MARIA_DDL, _MARIA_FILL)
        with db.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
            conn.execute(sa.text(ddl.format(name=name)))
        for start in range(1, rows + 1, _FILL_STEP):
            stop = min(start + _FILL_STEP - 1, rows)
            with db.begin() as conn:
                conn.execute(sa.text(fill.format(name=name, start=start, stop=stop)))
        with db.begin() as conn:
            conn.execute(sa.text(f"ANALYZE {name}" if engine.name == "postgresql" else f"ANALYZE TABLE {name}"))
        return name
    finally:
        db.dispose()

