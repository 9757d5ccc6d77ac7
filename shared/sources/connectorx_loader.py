"""The fast SQL path: connectorx streams Arrow record batches into dlt.

`ConnectorxLoader` plugs into dlt's `sql_table` as its `table_loader_class`, so dlt still builds
the query (the incremental cursor filter is pushed into the SQL), applies `incremental` to the
batches and keeps its state in the lake. What differs from dlt's own connectorx loader:

- `return_type="arrow_stream"`, handed to dlt in the job's chunk size, so memory does not grow
  with the table (connectorx queues finished batches without a limit: memory stays flat as
  long as writing Parquet to the local working folder keeps up with reading, which it does
  here: the writer waits for the readers, not the other way round);
- each batch is cast to the reflected column types (`arrow_types.conform`), so both backends
  land the same Parquet schema;
- a large table is read as up to K slices in parallel (as many as the process has CPU slots free,
  `shared.cpu_slots`): on PostgreSQL 14+ page ranges of the physical row address (`ctid`, TID
  range scans) where the source asks for them (`SqlSource.reads_by_pages`), else key ranges of
  an integer, date or timestamp column; on PostgreSQL all slices share one exported snapshot,
  so they form one consistent read (MySQL: each slice its own snapshot, see `MySqlSource`);
- a connectorx error never carries the connection URL (connectorx takes the password in it)
  and never escapes as a Rust panic, which Python raises as a `BaseException`.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Optional, Sequence

import pyarrow as pa
import sqlalchemy as sa
from dlt.sources.sql_database import BaseTableLoader, TableLoader
from sqlalchemy.sql import sqltypes

from shared.cpu_slots import extra_slots, note_read
from shared.redaction import first_line, redact
from shared.sources.arrow_types import conform, rtrim_spaces, target_schema
from shared.sources.slicing import split_key_range
from shared.sources.sql_types import ReadAs, is_list_array, trimmed_in_arrow

log = logging.getLogger(__name__)

STREAM_OPTIONS_KEY = "stream"
"""Key of the `StreamOptions` in the `backend_kwargs` that dlt hands to the loader."""
READS_PER_CHUNK = 4
"""connectorx reads batches of a quarter chunk; dlt gets whole chunks (one Parquet row group
each). Smaller reads shrink connectorx's buffers and let writing start sooner; whole chunks
keep row groups, and the cost of encoding each one, as they were."""
_MAX_DECIMAL_DIGITS = 28
TID_RANGE_SCAN_VERSION = 140000
"""First PostgreSQL `server_version_num` that scans a ctid range instead of the whole table."""
_PAGED_KINDS = ("r", "m")
"""pg_class.relkind of relations whose ctid ranges cover all their rows (tables, mat. views)."""


class ConnectorxError(RuntimeError):
    """connectorx failed; the message has no connection URL and no secret."""


class UnsupportedByConnectorx(ConnectorxError):
    """connectorx cannot read a column type of the query (it panicked before the first row)."""


@dataclass(frozen=True)
class StreamOptions:
    """How the fast path reads one table."""

    url: str = field(repr=False)
    """connectorx connection URL, password included: never logged, never in a message."""
    secret_forms: tuple[str, ...] = field(default=(), repr=False)
    """The password as it may appear in an error (raw and URL-encoded), to mask."""
    protocol: Optional[str] = None
    """connectorx transfer protocol (None: its default for the database)."""
    partition_column: Optional[str] = None
    """Integer, date or timestamp column to split the read on; None reads one stream."""
    tid_ranges: bool = False
    """Slice a PostgreSQL table by ctid page ranges (14+); where it cannot be, by `partition_column`
    when there is one, else read one stream."""
    slices: int = 1
    """Wanted number of parallel slices."""
    shared_snapshot: bool = False
    """Export one PostgreSQL snapshot and read every slice in it (one consistent read)."""


def reads_type(sql_type: sa.types.TypeEngine) -> bool:
    """Whether connectorx reads this column type into the Arrow type dlt expects.

    Decided before reading, so that a table with any other column (JSON, arrays, intervals,
    enums, unbounded or wider-than-28-digit numerics, BIGINT UNSIGNED ...) goes to the pyarrow
    backend as a whole instead of failing half-way.
    """
    if isinstance(sql_type, ReadAs):
        return True  # read through an expression that connectorx reads (sql_types)
    if isinstance(sql_type, sa.ARRAY):
        return is_list_array(sql_type)
    if isinstance(sql_type, sa.Float):
        return True
    if isinstance(sql_type, sa.Numeric):
        if not sql_type.asdecimal:
            return True
        # connectorx decodes numerics with rust_decimal: 28 significant digits at most.
        return sql_type.precision is not None and sql_type.precision <= _MAX_DECIMAL_DIGITS
    if isinstance(sql_type, sa.Integer):
        return not (isinstance(sql_type, sa.BigInteger) and getattr(sql_type, "unsigned", False))
    if isinstance(sql_type, sa.String):
        return not isinstance(sql_type, sa.Enum) and type(sql_type).__name__ != "SET"
    return isinstance(sql_type, (sa.Boolean, sa.Date, sa.DateTime, sa.Time, sa.Uuid, sqltypes._Binary))


class NullCursorMixin:
    """NULL watermarks: with `on_cursor_value_missing="include"` dlt adds `OR cursor IS NULL`
    to every run's filter, so NULL rows would land again on every run. They are loaded on a run
    without a cursor only (the first, when no `last_watermark` is given); afterwards the filter
    is dlt's plain `cursor >= last` and the runner counts the NULL rows instead."""

    def _make_query(self) -> Any:
        if getattr(self, "last_value", None) is None or getattr(self, "on_cursor_value_missing", None) != "include":
            return super()._make_query()  # type: ignore[misc]
        self.on_cursor_value_missing = "raise"  # the SQL filter only; dlt's incremental keeps "include"
        try:
            return super()._make_query()  # type: ignore[misc]
        finally:
            self.on_cursor_value_missing = "include"


class NullCursorTableLoader(NullCursorMixin, TableLoader):
    """dlt's own loader (pyarrow backend) with `NullCursorMixin`; trims the columns that
    `sql_types` trims in Arrow, as the connectorx path does."""

    def load_rows(self, backend_kwargs: Optional[dict[str, Any]] = None) -> Iterator[Any]:
        trim = trimmed_in_arrow(self.table)
        for item in super().load_rows(backend_kwargs):
            yield rtrim_spaces(item, trim) if trim and isinstance(item, (pa.Table, pa.RecordBatch)) else item


class ConnectorxLoader(NullCursorMixin, BaseTableLoader):
    """Streams the table with connectorx, cast to the reflected types; see the module docstring."""

    def load_rows(self, backend_kwargs: Optional[dict[str, Any]] = None) -> Iterator[Any]:
        options: StreamOptions = (backend_kwargs or {})[STREAM_OPTIONS_KEY]
        query = self.make_query()
        fields = target_schema(self.columns)
        with ExitStack() as stack:
            wanted = options.slices
            if wanted > 1:  # slices beyond the first take free CPU slots only (shared.cpu_slots)
                options = replace(options, slices=1 + stack.enter_context(extra_slots(wanted - 1)))
            queries, pre_queries = self._plan(query, options, stack)
            note_read(wanted, len(queries))
            read_size = max(1, self.chunk_size // READS_PER_CHUNK)
            try:
                reader = _open_stream(options, queries, read_size, pre_queries)
            except UnsupportedByConnectorx as exc:
                log.warning("table %s: %s; reading it with the pyarrow backend", self.table.name, exc)
                yield from self._pyarrow_loader().load_rows({})
                return
            bounds = {c.name: c.type.clamp_bounds for c in self.table.columns
                      if isinstance(c.type, ReadAs) and c.type.clamp_bounds}
            clamped: dict[str, int] = {}
            trim = frozenset(trimmed_in_arrow(self.table))
            yield from _chunks(_batches(reader, options), fields, self.chunk_size, bounds, clamped, trim)
            for name, count in clamped.items():
                low, high = bounds[name]
                log.warning("table %s, column %s: %d ±infinity value(s) landed as %s / %s (values equal to "
                            "these bounds are counted too)", self.table.name, name, count, low, high)

    def _plan(self, query: Any, options: StreamOptions, stack: ExitStack) -> tuple[list[str], Optional[list[str]]]:
        """The SQL of every slice, and the statements each slice's connection runs first."""
        column = self._partition_column(options)
        by_pages = options.tid_ranges and options.slices > 1
        if column is None and not by_pages:
            return [self.compile_query(query)], None
        conn = stack.enter_context(self.engine.connect())
        pre_queries = None
        if options.shared_snapshot:
            # The exporting transaction stays open until every slice has read: its snapshot
            # lives as long as it does.
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            try:
                snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
            except sa.exc.DBAPIError as exc:  # e.g. a server that cannot export snapshots
                log.warning("table %s: no shared snapshot (%s); reading one stream", self.table.name,
                            redact(first_line(exc.orig)))
                return [self.compile_query(query)], None
            pre_queries = ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", f"SET TRANSACTION SNAPSHOT '{snapshot}'"]
        if by_pages:
            pages = self._page_slices(conn, query, options.slices)
            if pages is not None or column is None:
                return pages or [self.compile_query(query)], pre_queries
        lo, hi = conn.execute(query.with_only_columns(sa.func.min(column), sa.func.max(column)).order_by(None)).one()
        if lo is None:
            return [self.compile_query(query)], pre_queries
        ranges = split_key_range(lo, hi, options.slices)
        queries = []
        for i, key_range in enumerate(ranges):
            upper = column <= key_range.end if key_range.closed else column < key_range.end
            condition = sa.and_(column >= key_range.start, upper)
            if i == 0 and column.nullable:
                condition = sa.or_(condition, column.is_(None))  # NULL keys belong to no range
            queries.append(self.compile_query(query.where(condition)))
        log.info("table %s: reading %d slice(s) of %s in parallel", self.table.name, len(queries), column.name)
        return queries, pre_queries

    def _page_slices(self, conn: sa.Connection, query: Any, slices: int) -> Optional[list[str]]:
        """One query per ctid page range of a PostgreSQL table; None where the server has
        no TID range scans (before 14: each slice would scan the whole table) or the relation
        keeps no rows in its own pages (views, partitioned and foreign tables).

        The first slice has no lower bound and the last none above, so every row version the
        snapshot sees, wherever it lies, is in exactly one slice; the page count only places
        the bounds between them."""
        version, kind, pages = conn.execute(sa.text(
            "SELECT current_setting('server_version_num')::int, c.relkind, "
            "pg_relation_size(c.oid) / current_setting('block_size')::int "
            "FROM pg_class c WHERE c.oid = CAST(:name AS regclass)"
        ), {"name": self.engine.dialect.identifier_preparer.format_table(self.table)}).one()
        if version < TID_RANGE_SCAN_VERSION or kind not in _PAGED_KINDS or pages < 2:
            if version < TID_RANGE_SCAN_VERSION:
                log.info("table %s: PostgreSQL %d has no TID range scans; no ctid page slices", self.table.name, version)
            return None
        bounds = [r.start for r in split_key_range(0, pages, slices)][1:]
        queries = []
        for i in range(len(bounds) + 1):
            parts = [f"ctid >= '({bounds[i - 1]},0)'::tid"] if i > 0 else []
            parts += [f"ctid < '({bounds[i]},0)'::tid"] if i < len(bounds) else []
            queries.append(self.compile_query(query.where(sa.text(" AND ".join(parts)))))
        log.info("table %s: reading %d slice(s) of ctid pages in parallel", self.table.name, len(queries))
        return queries

    def _partition_column(self, options: StreamOptions) -> Optional[sa.Column]:
        """The column to slice on, when more than one slice is wanted."""
        if options.slices < 2 or not options.partition_column:
            return None
        return self.table.c[options.partition_column]

    def _pyarrow_loader(self) -> TableLoader:
        return NullCursorTableLoader(
            self.engine, "pyarrow", self.table, self.columns, chunk_size=self.chunk_size,
            incremental=self.incremental, query_adapter_callback=self.query_adapter_callback, limit=self.limit,
        )


def _open_stream(
    options: StreamOptions, queries: Sequence[str], batch_size: int, pre_queries: Optional[list[str]]
) -> pa.RecordBatchReader:
    import connectorx as cx

    try:
        return cx.read_sql(
            options.url, list(queries), return_type="arrow_stream", batch_size=batch_size,
            protocol=options.protocol, pre_execution_query=pre_queries,
        )
    except BaseException as exc:  # a Rust panic arrives as BaseException
        raise _clean_error(exc, options, unsupported_ok=True) from None


def _batches(reader: pa.RecordBatchReader, options: StreamOptions) -> Iterator[pa.RecordBatch]:
    """The reader's batches; failures become `ConnectorxError` (the `yield` stays outside the
    `try`, so the generator's own close is not mistaken for a failure)."""
    batches = iter(reader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except BaseException as exc:
            raise _clean_error(exc, options) from None
        yield batch


def _chunks(
    batches: Iterator[pa.RecordBatch], fields: dict[str, pa.Field], rows: int,
    bounds: Optional[dict[str, tuple[Any, Any]]] = None, clamped: Optional[dict[str, int]] = None,
    trim: frozenset[str] = frozenset(),
) -> Iterator[pa.Table]:
    """The batches cast to `fields` (the `trim` columns without trailing spaces) and gathered into
    tables of about `rows` rows (no copy); values at `bounds` (clamped ±infinity) are counted per
    column into `clamped`."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if not batch.num_rows:  # every slice ends with a batch, empty when the slice was
            continue
        batch = conform(batch, fields, trim)
        if bounds and clamped is not None:
            _count_bounds(batch, bounds, clamped)
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(pending)
            pending, count = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def _count_bounds(batch: pa.RecordBatch, bounds: dict[str, tuple[Any, Any]], clamped: dict[str, int]) -> None:
    """Add the values of each bounded column equal to one of its bounds to `clamped`."""
    import pyarrow.compute as pc

    for name, (low, high) in bounds.items():
        if name not in batch.schema.names:
            continue
        array = batch.column(name)
        at_bound = pc.or_(pc.equal(array, pa.scalar(low, array.type)), pc.equal(array, pa.scalar(high, array.type)))
        hits = pc.sum(at_bound).as_py() or 0
        if hits:
            clamped[name] = clamped.get(name, 0) + hits


def _clean_error(exc: BaseException, options: StreamOptions, unsupported_ok: bool = False) -> BaseException:
    """`exc` as a one-line `ConnectorxError` without URL or secret; interrupts pass unchanged."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
        return exc
    text = first_line(exc, type(exc).__name__)
    text = text.replace(options.url, "<connection url>")
    for secret in options.secret_forms:
        text = text.replace(secret, "***")
    text = redact(text)
    is_panic = not isinstance(exc, Exception)
    if unsupported_ok and is_panic and ("not implemented" in text or "not supported" in text):
        return UnsupportedByConnectorx(f"connectorx cannot read it ({text})")
    return ConnectorxError(f"connectorx: {text}")
