"""SQL Server and Azure SQL Database through pyodbc (Microsoft ODBC Driver 18)."""

from __future__ import annotations

from typing import Any, Optional

import sqlalchemy as sa

from shared.sources.base import CONNECT_TIMEOUT_SECONDS, SqlSource

DEFAULT_ODBC_DRIVER = "ODBC Driver 18 for SQL Server"


class MsSqlSource(SqlSource):
    """A SQL Server table."""

    source_type = "mssql"
    drivername = "mssql+pyodbc"
    default_port = 1433
    encrypt = "no"
    """Driver 18 encrypts by default; on-premises servers often have no trusted certificate."""

    def url_query(self) -> dict[str, str]:
        return {
            "driver": self.secrets.get("driver") or DEFAULT_ODBC_DRIVER,
            "Encrypt": self.encrypt,
            "TrustServerCertificate": "no" if self.encrypt == "yes" else "yes",
        }

    def connect_args(self) -> dict[str, Any]:
        return {"timeout": CONNECT_TIMEOUT_SECONDS}

    def estimate_rows_query(self) -> Optional[sa.TextClause]:
        # sys.partitions row counts are maintained by the engine, no scan.
        return sa.text(
            "SELECT SUM(p.rows) FROM sys.partitions p JOIN sys.tables t ON t.object_id = p.object_id "
            "JOIN sys.schemas s ON s.schema_id = t.schema_id "
            "WHERE t.name = :table AND s.name = COALESCE(:schema, SCHEMA_NAME()) AND p.index_id IN (0, 1)"
        )


class AzureSqlSource(MsSqlSource):
    """An Azure SQL Database table: always encrypted, certificate verified."""

    source_type = "azure_sql"
    encrypt = "yes"
