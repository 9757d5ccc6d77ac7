"""Checking a plan against its sources before anything runs: tables, columns, watermarks.

`check_sources(plan, jobs)` connects to each SQL source once (sources in parallel, each bounded
in time), reflects the jobs' tables in one pass per schema and reports, per workbook cell:

- a table or schema that does not exist (`table_name`, `schema_name`);
- an INCREMENTAL job's `watermark_column` missing (an exact, case-sensitive name: dlt looks the
  cursor up by that name in the rows, as the source spells it);
- `last_watermark` that does not fit the watermark column's type (a date for an integer column);
- `primary_key` and `partition_column` names the table does not have.

Those are *definite* problems (`problems`). A source that cannot be reached, refuses the login
or does not answer in time is reported once in `unreachable`: `validate --check-sources` shows
both and exits 2; the `load_plan` activity fails the run on `problems` only and lets an
unreachable source's jobs fail and retry as they would without the check.

API sources are not contacted (`notes` says so): a request may cost money or count against a
rate limit, and an endpoint's records can only be checked by reading them.

Identifiers are never put into SQL text: SQLAlchemy's inspector quotes them per dialect, so
`"Order Details"` in schema `"Sales EU"` is found as it is.
"""

from __future__ import annotations

import datetime as dt
import difflib
import logging
import math
import queue
import threading
import time
import warnings
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Optional

import sqlalchemy as sa
from openpyxl.utils import column_index_from_string

from shared.workbook.models import Job, Plan
from shared.workbook.schema import parse_watermark, quote_value
from shared.redaction import redact
from shared.secrets import SourceSecrets, resolve_source_secrets

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5
"""How long connecting to one source may take during the check."""
SOURCE_TIMEOUT_SECONDS = 30.0
"""How long checking one source may take in all (connect and reflection)."""
MAX_PARALLEL_SOURCES = 8
"""Sources checked at once."""

_TIMEOUT_ARGS = ("connect_timeout", "timeout", "tcp_connect_timeout")
"""DBAPI connect() arguments that bound the connection attempt (psycopg2/PyMySQL, pyodbc, oracledb)."""
_REASON_MAX = 200

Resolver = Callable[[str, str], SourceSecrets]


@dataclass
class SourceCheckResult:
    """What checking the sources found."""

    problems: list[str] = field(default_factory=list)
    """Definite problems, one line each, named by workbook cell, in sheet order."""
    by_row: dict[int, list[str]] = field(default_factory=dict)
    """The same problems by the workbook row of the job they belong to."""
    unreachable: list[str] = field(default_factory=list)
    """One line per source that could not be checked (connection, login, timeout)."""
    notes: list[str] = field(default_factory=list)
    """Sources not checked on purpose, and near misses that work (a key column's case)."""
    sources: int = 0
    jobs: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Nothing wrong and every source checked."""
        return not self.problems and not self.unreachable


@dataclass
class _Found:
    """One source's findings; problems carry a sort key (row, column number)."""

    problems: list[tuple[tuple[int, int], str]] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_sources(
    plan: Plan,
    jobs: Optional[Iterable[Job]] = None,
    *,
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    source_timeout: float = SOURCE_TIMEOUT_SECONDS,
    max_parallel: int = MAX_PARALLEL_SOURCES,
    resolve: Resolver = resolve_source_secrets,
) -> SourceCheckResult:
    """Check that the jobs' tables and columns exist and their watermarks fit, source by source.

    Args:
        plan: The validated plan (for the sheet's column letters).
        jobs: The jobs to check; default: the plan's enabled jobs.
        connect_timeout: Seconds one connection attempt may take.
        source_timeout: Seconds one source may take in all; a source still busy then is
            reported as not answering (its thread is left to finish on its own).
        max_parallel: Sources checked at once.
        resolve: `resolve(source_name, source_type)` -> secrets (the usual provider chain).

    Returns:
        Problems, unreachable sources and notes.
    """
    started = time.monotonic()
    selected = list(plan.enabled_jobs() if jobs is None else jobs)
    by_source: dict[str, list[Job]] = {}
    for job in selected:
        by_source.setdefault(job.source_name, []).append(job)
    if any(not j.is_api for j in selected):
        _load_drivers({j.source_type for j in selected if not j.is_api})

    def check_one(name: str) -> _Found:
        return _check_source(plan, by_source[name], resolve, connect_timeout, source_timeout)

    found = _run_bounded(list(by_source), check_one, source_timeout, max_parallel)
    result = SourceCheckResult(sources=len(by_source), jobs=len(selected))
    problems: list[tuple[tuple[int, int], str]] = []
    for name in by_source:
        one = found.get(name)
        if one is None:
            first = by_source[name][0]
            one = _Found(unreachable=[
                f"{plan.cell(first, 'source_name')}: {first.source_type} source '{name}' did not answer within "
                f"{source_timeout:g} s; not checked: {_rows(by_source[name])}"
            ])
        problems.extend(one.problems)
        result.unreachable.extend(one.unreachable)
        result.notes.extend(one.notes)
    result.problems = [message for _, message in sorted(problems, key=lambda p: p[0])]
    for (row, _), message in sorted(problems, key=lambda p: p[0]):
        result.by_row.setdefault(row, []).append(message)
    result.seconds = time.monotonic() - started
    return result


def _load_drivers(source_types: set[str]) -> None:
    """Import the SQL drivers once, before any source's clock starts.

    A cold import (a fresh install compiling its bytecode, six threads sharing one GIL) can take
    seconds; that is not the source's time, and a source must not be called silent for it.
    """
    from shared.sources import SOURCE_CLASSES  # loads dlt once here, not under the import lock in every thread

    for source_type in sorted(source_types):
        drivername = getattr(SOURCE_CLASSES.get(source_type), "drivername", None)
        if not drivername:
            continue
        try:
            sa.dialects.registry.load(drivername.replace("+", ".")).import_dbapi()
        except Exception:  # a missing driver is reported per source, with its message, by the check itself
            log.debug("driver %s not loaded", drivername, exc_info=True)


def _run_bounded(
    names: list[str], work: Callable[[str], _Found], timeout: float, max_parallel: int
) -> dict[str, _Found]:
    """`work(name)` for every name, at most `max_parallel` at once, each given `timeout` seconds.

    Daemon threads rather than a `ThreadPoolExecutor`: a driver call that ignores its timeouts
    (a server that accepts the TCP connection and then says nothing) must not keep the CLI or
    the activity from finishing, and executor threads are joined at interpreter exit.
    """
    done: "queue.Queue[tuple[str, _Found]]" = queue.Queue()
    results: dict[str, _Found] = {}
    pending = list(names)
    running: dict[str, float] = {}

    def target(name: str) -> None:
        try:
            found = work(name)
        except Exception as exc:  # a bug here must not hide the other sources' findings
            log.exception("checking source %s failed", name)
            found = _Found(unreachable=[f"source '{name}': the check failed ({type(exc).__name__}); see the logs"])
        done.put((name, found))

    while pending or running:
        while pending and len(running) < max_parallel:
            name = pending.pop(0)
            running[name] = time.monotonic()
            threading.Thread(target=target, args=(name,), name=f"check-source-{name}", daemon=True).start()
        wait = max(0.0, min(start + timeout for start in running.values()) - time.monotonic())
        try:
            name, found = done.get(timeout=wait)
            if name in running:
                del running[name]
                results[name] = found
        except queue.Empty:
            now = time.monotonic()
            for name in [n for n, start in running.items() if now - start >= timeout]:
                del running[name]  # abandoned: reported as not answering; its slot goes to the next source
    return results


def _check_source(
    plan: Plan, jobs: list[Job], resolve: Resolver, connect_timeout: float, source_timeout: float
) -> _Found:
    from shared.sources import make_source
    from shared.sources.base import SqlSource

    first = jobs[0]
    found = _Found()
    where = plan.cell(first, "source_name")
    if first.is_api:
        found.notes.append(f"api source '{first.source_name}' not checked (API endpoints are checked when they run)")
        return found
    try:
        secrets = resolve(first.source_name, first.source_type)
        source = make_source(first, secrets)
    except Exception as exc:
        found.unreachable.append(f"{where}: could not read the secrets of '{first.source_name}': {_reason(exc)}")
        return found
    assert isinstance(source, SqlSource)
    try:
        engine = _engine(source, connect_timeout, source_timeout)
    except Exception as exc:
        found.unreachable.append(f"{where}: cannot connect to {source.describe()}: {_reason(exc)}; not checked: {_rows(jobs)}")
        return found
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sa.exc.SAWarning)  # types SQLAlchemy does not know
            try:
                connection = engine.connect()
            except Exception as exc:
                found.unreachable.append(
                    f"{where}: cannot connect to {source.describe()}: {_reason(exc)}; not checked: {_rows(jobs)}"
                )
                return found
            with connection:
                _Reflection(plan, source, connection, found).check(jobs)
    except Exception as exc:  # e.g. permission denied on the catalog, the connection dropped
        found.unreachable.append(f"{where}: checking {source.describe()} failed: {_reason(exc)}")
    finally:
        engine.dispose()
    return found


def _engine(source: Any, connect_timeout: float, source_timeout: float) -> sa.Engine:
    """An engine for one check: the job's URL and driver options with short timeouts, no pool."""
    if source.source_type == "sqlite" and not source.db_path().is_file():
        # SQLite would create an empty file; say the file is missing instead.
        raise FileNotFoundError(f"SQLite database file not found: {source.db_path()}")
    args = dict(source.connect_args())
    for key in _TIMEOUT_ARGS:
        if key in args:
            # libpq takes whole seconds; every driver accepts an int here.
            args[key] = type(args[key])(max(1, math.ceil(min(float(args[key]), connect_timeout))))
    statement_ms = int(source_timeout * 1000)
    if source.source_type == "postgresql":
        args["options"] = f"-c statement_timeout={statement_ms}"  # catalog queries on a locked catalog
    elif source.source_type == "mysql":
        args["read_timeout"] = max(1, math.ceil(source_timeout))
    return sa.create_engine(source.url(), connect_args=args, poolclass=sa.pool.NullPool)


class _Reflection:
    """The jobs of one source checked against one inspector: one reflection pass per schema."""

    def __init__(self, plan: Plan, source: Any, connection: sa.Connection, found: _Found) -> None:
        self.plan = plan
        self.source = source
        self.connection = connection
        self.inspector = sa.inspect(connection)
        self.found = found
        self._names: dict[Optional[str], list[str]] = {}

    def report(self, job: Job, column: str, message: str) -> None:
        letter = self.plan.columns.get(column)
        order = (job.row or 0, column_index_from_string(letter) if letter else 0)
        self.found.problems.append((order, f"{self.plan.cell(job, column)}: {message}"))

    def check(self, jobs: list[Job]) -> None:
        by_schema: dict[Optional[str], list[Job]] = {}
        for job in jobs:
            by_schema.setdefault(job.schema_name, []).append(job)
        for schema, schema_jobs in by_schema.items():
            try:
                columns = self.reflect(schema, sorted({j.table_name for j in schema_jobs}))
            except Exception as exc:  # MySQL: unknown database; elsewhere e.g. no permission
                self.recover()
                if schema is not None and self.schema_missing(schema):
                    for job in schema_jobs:
                        self.report_missing_schema(job, schema)
                else:
                    first = schema_jobs[0]
                    self.found.unreachable.append(
                        f"{self.plan.cell(first, 'schema_name' if schema else 'source_name')}: could not read the "
                        f"tables of {self.describe()}: {_reason(exc)}; not checked: {_rows(schema_jobs)}"
                    )
                continue
            for job in schema_jobs:
                try:
                    table_columns = columns.get(job.table_name)
                    if table_columns is None:
                        table_columns = self.reflect_one(schema, job)
                    if table_columns is not None:
                        self.check_columns(job, table_columns)
                except Exception as exc:  # one unreadable table must not hide the others' findings
                    self.recover()
                    self.found.unreachable.append(
                        f"{self.plan.cell(job, 'table_name')}: could not check table {quote_value(job.table_name)} "
                        f"of {self.describe()}: {_reason(exc)}"
                    )

    def recover(self) -> None:
        """After a failed catalog query: PostgreSQL refuses further queries until a rollback."""
        try:
            self.connection.rollback()
        except Exception:
            log.debug("rollback after a failed catalog query failed", exc_info=True)

    def schema_missing(self, schema: str) -> bool:
        try:
            return not self.inspector.has_schema(schema)
        except Exception:
            self.recover()
            return False

    def report_missing_schema(self, job: Job, schema: str) -> None:
        try:
            hint = _did_you_mean(schema, self.inspector.get_schema_names())
        except Exception:
            self.recover()
            hint = ""
        self.report(job, "schema_name", f"schema {quote_value(schema)} not found in {self.describe()}{hint}")

    def reflect(self, schema: Optional[str], tables: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Columns of the tables (and views) found by exact name, in one catalog pass."""
        from sqlalchemy.engine.reflection import ObjectKind

        multi = self.inspector.get_multi_columns(schema=schema, filter_names=tables, kind=ObjectKind.ANY)
        return {name: columns for (_, name), columns in multi.items()}

    def reflect_one(self, schema: Optional[str], job: Job) -> Optional[list[dict[str, Any]]]:
        """A table the exact-name pass missed: ask the dialect itself, which applies the database's
        own case rules (MySQL with lower_case_table_names, SQL Server's collation); report if absent."""
        try:
            return self.inspector.get_columns(job.table_name, schema=schema)
        except sa.exc.NoSuchTableError:
            pass
        if schema is not None and self.schema_missing(schema):
            self.report_missing_schema(job, schema)
            return None
        where = f"schema {quote_value(schema)}" if schema else "the default schema"
        hint = _did_you_mean(job.table_name, self.table_names(schema))
        self.report(job, "table_name", f"table {quote_value(job.table_name)} not found in {where} of {self.describe()}{hint}")
        return None

    def describe(self) -> str:
        return f"{self.source.source_type} source '{self.source.job.source_name}'"

    def table_names(self, schema: Optional[str]) -> list[str]:
        if schema not in self._names:
            self._names[schema] = self.inspector.get_table_names(schema) + self.inspector.get_view_names(schema)
        return self._names[schema]

    def check_columns(self, job: Job, columns: list[dict[str, Any]]) -> None:
        by_name = {c["name"]: c for c in columns}
        by_lower = {c["name"].lower(): c for c in columns}
        table = quote_value(job.table_name)
        if job.is_incremental and job.watermark_column:
            column = by_name.get(job.watermark_column)
            if column is None:
                self.report(job, "watermark_column", self.missing(job.watermark_column, table, by_lower, exact=True))
            elif job.last_watermark is not None:
                problem = watermark_mismatch(job.last_watermark, column["name"], column["type"])
                if problem:
                    self.report(job, "last_watermark", problem)
        missing = [k for k in job.primary_key if k.lower() not in by_lower]
        if missing:
            listed = ", ".join(quote_value(k) for k in missing)
            self.report(job, "primary_key", f"column{'s' if len(missing) > 1 else ''} {listed} not found in table "
                        f"{table}{_did_you_mean(missing[0], list(by_name))}")
        near = [k for k in job.primary_key if k not in by_name and k.lower() in by_lower]
        if near:
            self.found.notes.append(
                f"{self.plan.cell(job, 'primary_key')}: "
                + ", ".join(f"{quote_value(k)} is spelled {quote_value(by_lower[k.lower()]['name'])}" for k in near)
                + f" in table {table}; write it as the source does"
            )
        if job.partition_column and job.partition_column.lower() not in by_lower:
            self.report(job, "partition_column", self.missing(job.partition_column, table, by_lower, exact=False))

    @staticmethod
    def missing(name: str, table: str, by_lower: dict[str, dict[str, Any]], *, exact: bool) -> str:
        same = by_lower.get(name.lower())
        if exact and same is not None:
            return (f"column {quote_value(name)} not found in table {table}: it is spelled {quote_value(same['name'])} "
                    "there (names are case-sensitive)")
        return f"column {quote_value(name)} not found in table {table}{_did_you_mean(name, [c['name'] for c in by_lower.values()])}"


def watermark_mismatch(value: Any, column: str, column_type: Any) -> Optional[str]:
    """Why `last_watermark` cannot seed a cursor on a column of this SQL type (None: it can)."""
    from shared.sources.base import coerce_watermark

    try:
        python_type = column_type.python_type
    except NotImplementedError:
        return None  # a type SQLAlchemy cannot map: compared as the database sees fit
    try:
        parsed = parse_watermark(value)
    except ValueError as exc:
        return str(exc)
    expected = {
        int: "a whole number", Decimal: "a number", float: "a number",
        dt.date: "a date such as 2024-01-31", dt.datetime: "a date and time such as 2024-01-31T08:00:00",
    }.get(python_type)
    if expected is None:
        return None  # text and other types take any value
    fits = {
        int: isinstance(parsed, int),
        Decimal: isinstance(parsed, (int, Decimal)),
        float: isinstance(parsed, (int, Decimal)),
        dt.date: isinstance(parsed, dt.date),
        dt.datetime: isinstance(parsed, dt.date),
    }[python_type]
    if fits:
        try:
            coerce_watermark(value, column_type)
        except (ValueError, TypeError, ArithmeticError, InvalidOperation):
            fits = False
    if fits:
        return None
    return f"{quote_value(value)} does not fit watermark column {quote_value(column)} ({column_type}); expected {expected}"


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    pool = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(name.lower(), list(pool), n=1, cutoff=0.75)
    return f" (did you mean {quote_value(pool[match[0]])}?)" if match else ""


def _rows(jobs: list[Job]) -> str:
    rows = [str(j.row) for j in jobs if j.row]
    listed = ", ".join(rows[:10]) + (", ..." if len(rows) > 10 else "")
    noun = "1 job" if len(jobs) == 1 else f"{len(jobs)} jobs"
    return f"{noun} (row{'s' if len(rows) > 1 else ''} {listed})" if rows else noun


def _reason(exc: BaseException) -> str:
    """A driver error in one bounded line, secrets masked."""
    original = getattr(exc, "orig", None) or exc
    text = " ".join(str(original).split()) or type(original).__name__
    text = redact(text)
    return text if len(text) <= _REASON_MAX else text[: _REASON_MAX - 3] + "..."
