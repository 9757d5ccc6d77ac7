"""Source types behind one interface: `make_source(job, secrets)` returns a `Source`.

Each type is a small module here. Adding a type touches (tests/sources/test_source_registry.py
fails while one of steps 1-5 is missing):

1. `config/config_schema.json`: the `source_type` enum, and an `allOf` rule when the type needs
   columns of its own (as `oracle` needs `schema_name` and `api` needs `api_endpoint`).
2. `shared/workbook/models.py`: `SourceType`, and `SQL_SOURCE_TYPES` or `API_SOURCE_TYPES`.
3. `shared/sources/<type>.py`: the class (a `SqlSource` sets `source_type`, `drivername`,
   `default_port`, `connectorx_scheme` (None: always dlt's pyarrow backend) and overrides
   `connect_args` with a connect timeout, `url_query`, `estimate_rows_query`...), plus its line
   in `SOURCE_CLASSES` below.
4. `shared/secrets/__init__.py`: its row in `REQUIRED_FIELDS`, and any new field in `DB_FIELDS`/`API_FIELDS`.
5. `shared/workbook/template.py`: an `EXAMPLE_ROWS` row; then regenerate the sample workbook with
   `python -m shared.workbook.template`. README: the `source_type` row of the workbook table and
   the secrets example.
6. Where the database differs from the others: `sql_types.py` (column types Arrow cannot take),
   `arrow_types.py` (dialect rules), `shared/source_check.py` (`_engine`: statement/read
   timeouts of the check), `shared/errors.py` (`_undefined_object`: the driver's "no such
   table/column" codes).
7. `requirements.txt`: the driver; a test on the real database in `tests/sources/` (doubles only
   for Oracle and SQL Server, which cannot run here).

May import: dlt, SQLAlchemy, connectorx, pyarrow and, of the library, `shared.workbook` (the job),
`shared.secrets`, `shared.errors` and `shared.redaction`; never the lake, the runner or the steps.
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
