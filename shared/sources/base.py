"""The interface every source type implements, and what SQL sources share."""

from __future__ import annotations

import datetime as dt
import logging
import math
import warnings
from abc import ABC, abstractmethod
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, ClassVar, Iterator, Optional
from urllib.parse import quote, quote_plus

import dlt
import sqlalchemy as sa
from dlt.extract.resource import DltResource

from shared.workbook.models import Job
from shared.errors import JobConfigError
from shared.secrets import SourceSecrets
from shared.sources.arrow_types import integer_width_hints
from shared.sources.connectorx_loader import (
    STREAM_OPTIONS_KEY,
    ConnectorxLoader,
    NullCursorTableLoader,
    StreamOptions,
    reads_type,
)
from shared.sources.engines import shared_engine
from shared.sources.reflection import reflect_table
from shared.sources.slicing import SLICEABLE_TYPES, slice_count, split_key_range
from shared.sources.sql_types import apply_read_plan, dlt_type, read_plan

log = logging.getLogger(__name__)

MAX_ACTIVITY_SLICES = 64
"""Most activities one table is split into."""
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
    """A database table read with dlt's `sql_table`: connectorx streaming where the database and
    the column types allow it, dlt's pyarrow backend elsewhere."""

    drivername: ClassVar[str]
    default_port: ClassVar[Optional[int]] = None
    connectorx_scheme: ClassVar[Optional[str]] = None
    """URL scheme connectorx knows this database by; None: always the pyarrow backend."""
    connectorx_protocol: ClassVar[Optional[str]] = None
    """connectorx transfer protocol; None: connectorx's default for the database."""
    shared_snapshot: ClassVar[bool] = False
    """Whether parallel slices can share one snapshot (see `partition_column`)."""
    slices_by_default: ClassVar[bool] = False
    """Whether a big table is read in parallel slices without a workbook `partition_column`."""
    tid_slices: ClassVar[bool] = False
    """Whether a big table without a sliceable key is sliced by physical row address (ctid)."""
    shares_engine: ClassVar[bool] = False
    """Whether the jobs of a database share one engine without a pool (`shared.sources.engines`)
    and each job keeps one connection for its catalog queries. For databases whose rows are read
    by connectorx on its own connections: a read through the engine (dlt's pyarrow backend) would
    open a second connection per job."""

    def __init__(self, job: Job, secrets: SourceSecrets) -> None:
        super().__init__(job, secrets)
        self._engine: Optional[sa.Engine] = None
        self._connection: Optional[sa.Connection] = None
        self._table: Optional[sa.Table] = None
        self._estimate: Optional[int] = None
        self._estimated = False
        self._cursor_known = False
        self._cursor_start: Any = None
        """The cursor this run started from (None: no cursor yet), once the query was built."""
        self.key_range: Optional[dict[str, Any]] = None
        """Read only this slice of the table (see `split_ranges`); None reads all of it."""

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
            database=self.url_database(),
            query=self.url_query(),
        )

    def url_database(self) -> Optional[str]:
        """The URL's database part."""
        return self.secrets.get("database")

    def url_query(self) -> dict[str, str]:
        """Extra URL query arguments (driver options)."""
        return {}

    def connect_args(self) -> dict[str, Any]:
        """DBAPI connect() arguments, notably the connect timeout."""
        return {}

    def connectorx_url(self) -> str:
        """The URL connectorx connects with: scheme, credentials, host, port and database only
        (connectorx rejects driver options it does not know). Contains the password."""
        return self.url().set(drivername=self.connectorx_scheme, query={}).render_as_string(hide_password=False)

    def password_forms(self) -> tuple[str, ...]:
        """The password raw and in every encoding a URL may carry it, for masking."""
        password = self.secrets.get("password")
        if not password:
            return ()
        # SQLAlchemy's own escaping differs from urllib's for spaces and '+'.
        prefix = "x://u:"
        rendered = sa.URL.create("x", username="u", password=password).render_as_string(hide_password=False)
        sqlalchemy_form = rendered[len(prefix):-1]
        return tuple({password, quote(password, safe=""), quote_plus(password), sqlalchemy_form})

    def location(self) -> str:
        port = self.port()
        host = self.secrets.get("host") or "?"
        return f"{host}:{port}" if port else host

    def engine(self) -> sa.Engine:
        """The database's engine: shared by the process's jobs (`shares_engine`), else one per job run."""
        if self._engine is None:
            if self.shares_engine:
                self._engine = shared_engine(self.url(), self.connect_args())
            else:
                self._engine = sa.create_engine(self.url(), connect_args=self.connect_args(), pool_pre_ping=False)
        return self._engine

    @contextmanager
    def catalog(self) -> Iterator[sa.Connection]:
        """A connection for catalog queries (reflection, estimate, key bounds); its transaction
        ends with the block. With a shared engine it is the job's one connection, kept until
        `dispose`; else one from the job's own pool."""
        if not self.shares_engine:
            with self.engine().connect() as conn:
                yield conn
            return
        if self._connection is None:
            self._connection = self.engine().connect()
        conn = self._connection
        try:
            yield conn
        finally:
            # A block abandoned by a kill ends when its generator is collected, which can be after
            # `dispose` closed the connection: then there is no transaction left to end.
            if not conn.closed:
                conn.rollback()

    def dispose(self) -> None:
        """Close the job's connection (and its own engine's pooled ones)."""
        connection, self._connection = self._connection, None
        engine, self._engine = self._engine, None
        if connection is not None:
            connection.close()
        if engine is not None and not self.shares_engine:
            engine.dispose()

    # -- size -------------------------------------------------------------------------------
    def estimate_rows_query(self) -> Optional[sa.TextClause]:
        """Catalog query returning one number: the estimated rows (None: unsupported)."""
        return None

    def estimate_rows(self) -> Optional[int]:
        if not self._estimated:  # asked for chunk size and slicing: one catalog query per run
            self._estimate = self._query_estimate()
            self._estimated = True
        return self._estimate

    def _query_estimate(self) -> Optional[int]:
        query = self.estimate_rows_query()
        if query is None:
            return None
        with self.catalog() as conn:
            value = conn.execute(query, {"schema": self.schema_name(), "table": self.job.table_name}).scalar()
        if value is None or float(value) < 0:  # PostgreSQL says -1 for never-analysed tables
            return None
        return int(value)

    def schema_name(self) -> Optional[str]:
        """Schema to read from (None: the connection's default)."""
        return self.job.schema_name

    # -- extraction -------------------------------------------------------------------------
    def table(self) -> sa.Table:
        """The reflected source table (reflected once per run; `sql_table` reuses it)."""
        if self._table is None:
            metadata = sa.MetaData(schema=self.schema_name())
            with warnings.catch_warnings():
                # Types SQLAlchemy does not know (xml, geometry...) are mapped on purpose below.
                warnings.filterwarnings("ignore", "Did not recognize type", sa.exc.SAWarning)
                with self.catalog() as conn:
                    table = reflect_table(self.job.table_name, metadata, conn)
            # Each column is read so that its type lands or is mapped on purpose (sql_types).
            dialect = self.engine().dialect.name
            plan = read_plan(table, dialect, self.job.keep_char_padding, self.unknown_type_names(table))
            apply_read_plan(table, plan)
            self._table = table
        return self._table

    def unknown_type_names(self, table: sa.Table) -> dict[str, str]:
        """Database type names of the columns SQLAlchemy reflected as NullType (none by default)."""
        return {}

    def _column(self, name: Optional[str]) -> Optional[sa.Column]:
        """A column of the table by case-insensitive name."""
        for column in self.table().columns:
            if column.name.lower() == (name or "").lower():
                return column
        return None

    def watermark_type(self) -> Optional[sa.types.TypeEngine]:
        """Reflected type of the watermark column, to give the initial cursor the same type."""
        column = self._column(self.job.watermark_column)
        if column is None:
            raise JobConfigError(
                "watermark_column", f"column '{self.job.watermark_column}' not found in table '{self.job.table_name}'"
            )
        return column.type

    def incremental(self) -> Optional[dlt.sources.incremental]:  # type: ignore[name-defined]
        """dlt incremental on the watermark column; the workbook value only seeds the first run."""
        if not self.job.is_incremental:
            return None
        initial = self.job.last_watermark
        column_type = self.watermark_type()  # also when there is no initial value: a missing column is the workbook's error
        if initial is not None:
            try:
                initial = coerce_watermark(initial, column_type)
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise JobConfigError(
                    "last_watermark", f"{initial!r} is not a valid value of column '{self.job.watermark_column}' "
                    f"({column_type}) of table '{self.job.table_name}': {exc}"
                ) from None
        # NULL cursors land on a run without a cursor and are counted afterwards (NullCursorMixin).
        return dlt.sources.incremental(self.job.watermark_column, initial_value=initial, on_cursor_value_missing="include")

    def null_watermark_rows(self) -> Optional[int]:
        """Rows whose watermark is NULL (INCREMENTAL SQL jobs; None otherwise), with a warning
        saying whether this run loaded them (no cursor yet) or left them out (never silently)."""
        if not self.job.is_incremental or not self._cursor_known:
            return None
        column = self._column(self.job.watermark_column)
        if column is None:
            return None
        with self.catalog() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(self.table()).where(column.is_(None))).scalar_one()
        if count:
            if self._cursor_start is None:
                log.warning("table %s: %d row(s) with a NULL %s loaded (first run, no cursor yet)",
                            self.job.table_name, count, column.name)
            else:
                log.warning("table %s: %d row(s) with a NULL %s not loaded: a NULL cannot pass the cursor "
                            "filter (loaded on the first run only)", self.job.table_name, count, column.name)
        return int(count)

    def _adapt_query(self, query: Any, table: sa.Table, incremental: Any = None, engine: Any = None) -> Any:
        """dlt query adapter: notes the run's starting cursor, restricts a slice to its keys."""
        self._cursor_known = True
        self._cursor_start = getattr(incremental, "last_value", None)
        return self._restrict_to_range(query, table) if self.key_range else query

    def resource(self) -> DltResource:
        from dlt.sources.sql_database import sql_table

        table = self.table()
        missing = [name for name in self.job.primary_key if self._column(name) is None]
        if missing:
            raise JobConfigError("primary_key", f"column(s) {', '.join(missing)} not found in table '{self.job.table_name}'")
        stream = self.stream_options()
        resource = sql_table(
            credentials=self.engine(),
            table=self.job.table_name,
            schema=self.schema_name(),
            metadata=table.metadata,
            backend="connectorx" if stream else "pyarrow",
            table_loader_class=ConnectorxLoader if stream else NullCursorTableLoader,
            backend_kwargs={STREAM_OPTIONS_KEY: stream} if stream else None,
            reflection_level="full_with_precision",
            type_adapter_callback=dlt_type,
            chunk_size=self.chunk_size(),
            incremental=self.incremental(),
            primary_key=list(self.job.primary_key) or None,
            query_adapter_callback=self._adapt_query,
        )
        # dlt reflects every integer as int64; keep the source's widths on both backends.
        resource.apply_hints(columns=integer_width_hints(table, self.engine().dialect.name))
        return resource

    def split_ranges(self, max_rows: int) -> Optional[list[dict[str, Any]]]:
        """Key ranges that cut a very large FULL table into activity-sized slices.

        Args:
            max_rows: Rows one activity should read at most (by the catalog estimate).

        Returns:
            JSON-safe ranges `{"column", "start", "end", "closed", "nulls"}` (NULL keys go to the
            first slice), or None when the job should run as one activity.
        """
        estimate = self.estimate_rows()
        if self.job.is_incremental or not estimate or estimate <= max_rows:
            return None
        name = self.partition_column() or self._single_column_key()
        if name is None:
            return None
        column = self.table().c[name]
        with self.catalog() as conn:
            lo, hi = conn.execute(sa.select(sa.func.min(column), sa.func.max(column))).one()
        if lo is None:
            return None
        ranges = split_key_range(lo, hi, min(MAX_ACTIVITY_SLICES, math.ceil(estimate / max_rows)))
        return [
            {"column": name, "start": _json_key(r.start), "end": _json_key(r.end), "closed": r.closed, "nulls": i == 0}
            for i, r in enumerate(ranges)
        ]

    def _single_column_key(self) -> Optional[str]:
        key = list(self.job.primary_key) or [c.name for c in self.table().primary_key.columns]
        column = self._column(key[0]) if len(key) == 1 else None
        return column.name if column is not None and _is_sliceable(column.type) else None

    def _restrict_to_range(self, query: Any, table: sa.Table) -> Any:
        """dlt query adapter: only the rows of `key_range`."""
        assert self.key_range is not None
        column = table.c[self.key_range["column"]]
        start = coerce_watermark(self.key_range["start"], column.type)
        end = coerce_watermark(self.key_range["end"], column.type)
        condition = sa.and_(column >= start, column <= end if self.key_range["closed"] else column < end)
        if self.key_range["nulls"]:
            condition = sa.or_(condition, column.is_(None))
        return query.where(condition)

    def stream_options(self) -> Optional[StreamOptions]:
        """How connectorx reads this table; None when the pyarrow backend must (database or a
        column type connectorx does not read faithfully)."""
        if self.connectorx_scheme is None:
            return None
        unsupported = [f"{c.name} ({c.type})" for c in self.table().columns if not reads_type(c.type)]
        if unsupported:
            log.info("table %s: pyarrow backend for column(s) %s", self.job.table_name, ", ".join(unsupported))
            return None
        column = self.partition_column()
        by_pages = self.reads_by_pages(column)
        slices = slice_count(self.estimate_rows(), self.chunk_size()) if column or by_pages else 1
        return StreamOptions(
            url=self.connectorx_url(),
            secret_forms=self.password_forms(),
            protocol=self.connectorx_protocol,
            partition_column=column,
            tid_ranges=by_pages and slices > 1,
            slices=slices,
            shared_snapshot=self.shared_snapshot and slices > 1,
        )

    def reads_by_pages(self, column: Optional[str]) -> bool:
        """Whether parallel slices are ctid page ranges (PostgreSQL 14+) rather than key ranges.

        Pages for a table without a usable key column, and for every whole-table read without a
        workbook `partition_column`: a key range covering a large part of a table is a sequential
        scan with a filter to PostgreSQL's planner, so each key slice would read the whole heap,
        while a TID range scan reads only its own pages. An INCREMENTAL read with a cursor keeps
        its key column (its filter may use an index that a page range would not), and so do
        a split table's activities (`key_range`). The loader falls back to `column`, or to one
        stream, where the server or the relation has no TID range scans.
        """
        if not self.tid_slices or self.job.partition_column or self.key_range is not None:
            return False
        return column is None or not self.job.is_incremental

    def partition_column(self) -> Optional[str]:
        """Column to split a large table on: the workbook's `partition_column`; else, where big
        tables are sliced by default, a one-column workbook key, the leading column of the
        table's primary key (on MySQL/MariaDB its clustered index makes each slice a range scan), or (only where slices
        share a snapshot) the watermark column."""
        if self.job.partition_column:
            column = self._column(self.job.partition_column)
            if column is None:
                raise JobConfigError(
                    "partition_column", f"column '{self.job.partition_column}' not found in table '{self.job.table_name}'"
                )
            if not _is_sliceable(column.type):
                log.warning("table %s: partition column %s is not an integer, date or timestamp; reading one stream",
                            self.job.table_name, column.name)
                return None
            return column.name
        if not self.slices_by_default:
            return None
        key = list(self.job.primary_key)
        table_key = [c.name for c in self.table().primary_key.columns]
        candidates = ([key[0]] if len(key) == 1 and self.shared_snapshot else []) + table_key[:1]
        if self.shared_snapshot:
            # A watermark changes when its row does: without one snapshot an updated row could
            # move between slices (read twice or not at all).
            candidates.append(self.job.watermark_column)
        for name in candidates:
            column = self._column(name)
            if column is not None and _is_sliceable(column.type):
                return column.name
        return None


def _json_key(value: Any) -> Any:
    """A slice bound as it travels through the orchestration history."""
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else int(value)


def _is_sliceable(sql_type: sa.types.TypeEngine) -> bool:
    """Whether a column's values can be cut into key ranges (integers, dates, timestamps)."""
    try:
        return sql_type.python_type in SLICEABLE_TYPES
    except NotImplementedError:
        return False


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
