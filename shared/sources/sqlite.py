"""SQLite files: the embedded demo's source."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import sqlalchemy as sa

from shared.sources.base import SqlSource


class SqliteSource(SqlSource):
    """A table in a SQLite file given by the `path` secret."""

    source_type = "sqlite"
    drivername = "sqlite"

    def db_path(self) -> Path:
        """The database file."""
        return Path(self.secrets.get("path") or "")

    def url(self) -> sa.URL:
        return sa.URL.create(self.drivername, database=str(self.db_path()))

    def location(self) -> str:
        return str(self.db_path())

    def engine(self) -> sa.Engine:
        # SQLite would silently create an empty file for a wrong path.
        if not self.db_path().is_file():
            raise FileNotFoundError(f"SQLite database file not found: {self.db_path()}")
        return super().engine()

    def estimate_rows_query(self) -> Optional[sa.TextClause]:
        return None

    def estimate_rows(self) -> Optional[int]:
        # max(rowid) is an index lookup, not a scan; tables WITHOUT ROWID have no estimate.
        try:
            with self.engine().connect() as conn:
                value = conn.execute(sa.text(f'SELECT max(rowid) FROM "{self.job.table_name}"')).scalar()
        except sa.exc.OperationalError:
            return None
        return int(value) if value is not None else 0
