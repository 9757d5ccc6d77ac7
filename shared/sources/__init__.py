"""Source types behind one interface: `make_source(job, secrets)` returns a `Source`.

Each type is a small module; adding one means a class and a line in `SOURCE_CLASSES`.
"""

from __future__ import annotations

from shared.workbook.models import Job
from shared.secrets import SourceSecrets
from shared.sources.api import ApiSource
from shared.sources.base import Source, SqlSource, chunk_size_for
from shared.sources.mssql import AzureSqlSource, MsSqlSource
from shared.sources.mysql import MySqlSource
from shared.sources.oracle import OracleSource
from shared.sources.postgresql import PostgresSource
from shared.sources.sqlite import SqliteSource

SOURCE_CLASSES: dict[str, type[Source]] = {
    cls.source_type: cls
    for cls in (PostgresSource, MySqlSource, OracleSource, MsSqlSource, AzureSqlSource, SqliteSource, ApiSource)
}


def make_source(job: Job, secrets: SourceSecrets) -> Source:
    """The source object for a job's `source_type`."""
    try:
        cls = SOURCE_CLASSES[job.source_type]
    except KeyError:
        raise ValueError(
            f"unknown source_type '{job.source_type}'; allowed: {', '.join(sorted(SOURCE_CLASSES))}"
        ) from None
    return cls(job, secrets)


__all__ = ["SOURCE_CLASSES", "Source", "SqlSource", "chunk_size_for", "make_source"]
