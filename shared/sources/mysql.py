"""MySQL and MariaDB through PyMySQL."""

from __future__ import annotations

from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.sql import sqltypes

from shared.sources.base import CONNECT_TIMEOUT_SECONDS, SqlSource


class MySqlSource(SqlSource):
    """A MySQL or MariaDB table.

    Big tables are read in parallel slices of the primary key's leading column by default. No
    snapshot can be shared between connections: each slice reads its own consistent snapshot,
    taken when its query starts. The slices start together (or as connectorx's threads free up
    when several sliced reads run in one process), so every row lands exactly once unless its key
    column itself is updated in between, and a transaction committed in that moment may be seen
    by some slices only: the guarantee the split activities of a very large table already give.
    """

    source_type = "mysql"
    drivername = "mysql+pymysql"
    default_port = 3306
    connectorx_scheme = "mysql"
    shares_engine = True
    slices_by_default = True

    def url_query(self) -> dict[str, str]:
        return {"charset": "utf8mb4"}

    def connect_args(self) -> dict[str, Any]:
        return {"connect_timeout": CONNECT_TIMEOUT_SECONDS}

    def schema_name(self) -> Optional[str]:
        # In MySQL a schema is a database; the connection's database is the default.
        return self.job.schema_name

    def unknown_type_names(self, table: sa.Table) -> dict[str, str]:
        # SQLAlchemy does not know geometry types (they land as WKB): ask the catalog for them.
        if not any(isinstance(c.type, sqltypes.NullType) for c in table.columns):
            return {}
        with self.catalog() as conn:
            rows = conn.execute(sa.text(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = :table AND table_schema = COALESCE(:schema, DATABASE())"
            ), {"table": table.name, "schema": self.schema_name()})
            return {name: kind for name, kind in rows}

    def estimate_rows_query(self) -> Optional[sa.TextClause]:
        # table_rows is InnoDB's statistics estimate, no scan.
        return sa.text(
            "SELECT table_rows FROM information_schema.tables "
            "WHERE table_name = :table AND table_schema = COALESCE(:schema, DATABASE())"
        )
