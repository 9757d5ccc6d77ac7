"""The interface every source type implements, and what SQL sources share."""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from decimal import Decimal
from typing import Any, ClassVar, Optional

import dlt
import sqlalchemy as sa
from dlt.extract.resource import DltResource

from shared.config.models import Job
from shared.secrets import SourceSecrets

CONNECT_TIMEOUT_SECONDS = 15
"""How long a database connection attempt may take before the job fails."""

# Seed thresholds: (rows below, chunk size).
_CHUNK_THRESHOLDS: tuple[tuple[int, int], ...] = (
    (100_000, 50_000),
    (1_000_000, 100_000),
    (10_000_000, 250_000),
    (50_000_000, 500_000),
)
_LARGEST_CHUNK = 1_000_000


def chunk_size_for(estimated_rows: Optional[int]) -> int:
    """Rows per batch for a table of about `estimated_rows` rows (unknown: the smallest)."""
    if estimated_rows is None:
        return _CHUNK_THRESHOLDS[0][1]
    for below, size in _CHUNK_THRESHOLDS:
        if estimated_rows < below:
            return size
    return _LARGEST_CHUNK


class Source(ABC):
    """One workbook job bound to its resolved credentials."""

    source_type: ClassVar[str]

    def __init__(self, job: Job, secrets: SourceSecrets) -> None:
        self.job = job
        self.secrets = secrets

    @abstractmethod
    def location(self) -> str:
        """Where the source lives (host:port or file), never with credentials; for messages."""

    def describe(self) -> str:
        """`postgresql source 'erp' at db.example.com:5432`, for error messages."""
        return f"{self.source_type} source '{self.job.source_name}' at {self.location()}"

    @abstractmethod
    def estimate_rows(self) -> Optional[int]:
        """Cheap row-count estimate (catalog statistics, not COUNT(*)); None when unknown."""

    @abstractmethod
    def resource(self) -> DltResource:
        """The dlt resource that yields the job's rows, named after the job's table."""

    def chunk_size(self) -> int:
        """The workbook's chunk size, or one chosen from the estimated table size."""
        if self.job.chunk_size:
            return self.job.chunk_size
        return chunk_size_for(self.estimate_rows())


class SqlSource(Source):
    """A database read with dlt's `sql_table` and the pyarrow backend."""

    drivername: ClassVar[str]
    default_port: ClassVar[Optional[int]] = None

    def __init__(self, job: Job, secrets: SourceSecrets) -> None:
        super().__init__(job, secrets)
        self._engine: Optional[sa.Engine] = None

    # -- connection -------------------------------------------------------------------------
    def port(self) -> Optional[int]:
        """Configured port or the driver's default."""
        raw = self.secrets.get("port")
        return int(raw) if raw else self.default_port

    def url(self) -> sa.URL:
        """SQLAlchemy URL; `URL.create` takes raw values, so special characters need no escaping."""
        return sa.URL.create(
            self.drivername,
            username=self.secrets.get("username"),
            password=self.secrets.get("password"),
            host=self.secrets.get("host"),
            port=self.port(),
            database=self.secrets.get("database"),
            query=self.url_query(),
        )

    def url_query(self) -> dict[str, str]:
        """Extra URL query arguments (driver options)."""
        return {}

    def connect_args(self) -> dict[str, Any]:
        """DBAPI connect() arguments, notably the connect timeout."""
        return {}

    def location(self) -> str:
        port = self.port()
        host = self.secrets.get("host") or "?"
        return f"{host}:{port}" if port else host

    def engine(self) -> sa.Engine:
        """A lazily created engine for this job (one per job run)."""
        if self._engine is None:
            self._engine = sa.create_engine(self.url(), connect_args=self.connect_args(), pool_pre_ping=False)
        return self._engine

    def dispose(self) -> None:
        """Close pooled connections."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- size -------------------------------------------------------------------------------
    def estimate_rows_query(self) -> Optional[sa.TextClause]:
        """Catalog query returning one number: the estimated rows (None: unsupported)."""
        return None

    def estimate_rows(self) -> Optional[int]:
        query = self.estimate_rows_query()
        if query is None:
            return None
        with self.engine().connect() as conn:
            value = conn.execute(query, {"schema": self.schema_name(), "table": self.job.table_name}).scalar()
        if value is None or float(value) < 0:  # PostgreSQL says -1 for never-analysed tables
            return None
        return int(value)

    def schema_name(self) -> Optional[str]:
        """Schema to read from (None: the connection's default)."""
        return self.job.schema_name

    # -- extraction -------------------------------------------------------------------------
    def watermark_type(self) -> Optional[sa.types.TypeEngine]:
        """Reflected type of the watermark column, to give the initial cursor the same type."""
        inspector = sa.inspect(self.engine())
        for column in inspector.get_columns(self.job.table_name, schema=self.schema_name()):
            if column["name"].lower() == (self.job.watermark_column or "").lower():
                return column["type"]
        raise ValueError(
            f"watermark column '{self.job.watermark_column}' not found in table '{self.job.table_name}'"
        )

    def incremental(self) -> Optional[dlt.sources.incremental]:  # type: ignore[name-defined]
        """dlt incremental on the watermark column; the workbook value only seeds the first run."""
        if not self.job.is_incremental:
            return None
        initial = self.job.last_watermark
        if initial is not None:
            initial = coerce_watermark(initial, self.watermark_type())
        return dlt.sources.incremental(self.job.watermark_column, initial_value=initial)

    def resource(self) -> DltResource:
        from dlt.sources.sql_database import sql_table

        resource = sql_table(
            credentials=self.engine(),
            table=self.job.table_name,
            schema=self.schema_name(),
            backend="pyarrow",
            reflection_level="full_with_precision",
            chunk_size=self.chunk_size(),
            incremental=self.incremental(),
            primary_key=list(self.job.primary_key) or None,
        )
        return resource


def coerce_watermark(value: Any, column_type: Optional[sa.types.TypeEngine]) -> Any:
    """Turn the workbook's initial cursor into the Python type of the watermark column.

    Timestamps with a time zone get UTC when the workbook gave none; timestamps without one
    stay naive, so dlt can compare the cursor with the column's values.
    """
    if column_type is None or value is None:
        return value
    try:
        python_type = column_type.python_type
    except NotImplementedError:
        return value
    if python_type is dt.datetime:
        parsed = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
        with_tz = bool(getattr(column_type, "timezone", False))
        if with_tz and parsed.tzinfo is None:
            return parsed.replace(tzinfo=dt.timezone.utc)
        if not with_tz and parsed.tzinfo is not None:
            return parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return parsed
    if python_type is dt.date:
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])
    if python_type is int:
        return int(value)
    if python_type is Decimal:
        return Decimal(str(value))
    if python_type is float:
        return float(value)
    return str(value)
