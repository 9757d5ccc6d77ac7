"""PostgreSQL through psycopg2."""

from __future__ import annotations

from typing import Any, Optional

import sqlalchemy as sa

from shared.sources.base import CONNECT_TIMEOUT_SECONDS, SqlSource


class PostgresSource(SqlSource):
    """A PostgreSQL table."""

    source_type = "postgresql"
    drivername = "postgresql+psycopg2"
    default_port = 5432
    connectorx_scheme = "postgresql"
    # Measured here: ~7% less CPU than connectorx's default COPY BINARY, same Arrow types.
    connectorx_protocol = "cursor"
    shared_snapshot = True  # pg_export_snapshot(): parallel slices read one snapshot
    slices_by_default = True
    shares_engine = True  # rows are read by connectorx: the engine serves catalog queries only
    tid_slices = True  # ctid page ranges (TID range scans, PostgreSQL 14+; one stream before)

    def connect_args(self) -> dict[str, Any]:
        return {"connect_timeout": CONNECT_TIMEOUT_SECONDS, "application_name": "dlt-ingestion"}

    def estimate_rows_query(self) -> Optional[sa.TextClause]:
        # reltuples is kept by ANALYZE/autovacuum; -1 means never analysed.
        return sa.text(
            "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = :table AND n.nspname = COALESCE(:schema, current_schema())"
        )
