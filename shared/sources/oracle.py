"""Oracle through python-oracledb in thin mode (no Instant Client needed)."""

from __future__ import annotations

from typing import Any, Optional

import sqlalchemy as sa

from shared.sources.base import CONNECT_TIMEOUT_SECONDS, SqlSource


class OracleSource(SqlSource):
    """An Oracle table; `schema_name` is required by the workbook for this type."""

    source_type = "oracle"
    drivername = "oracle+oracledb"
    default_port = 1521

    # A service name goes into the URL's query; a SID is the URL's database part.
    def url_database(self) -> Optional[str]:
        return None if self.secrets.get("service_name") else self.secrets.get("sid") or self.secrets.get("database")

    def url_query(self) -> dict[str, str]:
        service = self.secrets.get("service_name")
        return {"service_name": service} if service else {}

    def connect_args(self) -> dict[str, Any]:
        return {"tcp_connect_timeout": float(CONNECT_TIMEOUT_SECONDS)}

    def estimate_rows_query(self) -> Optional[sa.TextClause]:
        # num_rows comes from DBMS_STATS; owner and table names are stored upper-case.
        return sa.text(
            "SELECT num_rows FROM all_tables WHERE owner = UPPER(:schema) AND table_name = UPPER(:table)"
        )
