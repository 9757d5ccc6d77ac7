"""Structured job logging: every record carries run id, source and table.

`job_context(...)` sets the fields for the code running inside it (a context variable, so
parallel jobs in threads never mix them up); a record factory copies them onto each log
record as attributes, which the OpenTelemetry log exporters (Application Insights, OTLP) keep
as custom dimensions: `run_id`, `source_name`, `table_name`, `job_id` on every record ("-"
outside a job), and inside a job also the names its spans use (`shared.telemetry`):
`ingestion.run_id`, `load_type`, `attempt`. Importing `function_app` installs the factory. Locally, `configure_file_logging` writes the seed's layout under `logs/`:
`main.log`, one `<source>.log` per source and `errors.log`.
"""

from __future__ import annotations

import contextvars
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from shared.log_records import add_record_hook

FIELDS = ("run_id", "source_name", "table_name", "job_id")
JOB_FIELDS = ("load_type", "attempt")
"""Set on a record only inside a job that knows them (the text format does not name them)."""
RUN_ID_DIMENSION = "ingestion.run_id"
"""The run id under the name the spans use, so logs and spans of a run are queried alike."""
FORMAT = "%(asctime)s %(levelname)s [run=%(run_id)s source=%(source_name)s table=%(table_name)s] %(name)s: %(message)s"

_context: contextvars.ContextVar[dict[str, object]] = contextvars.ContextVar("ingestion_log_context", default={})


@contextmanager
def job_context(**fields: object) -> Iterator[None]:
    """Attach `run_id`, `source_name`, `table_name`, `job_id` (and `load_type`, `attempt`) to
    every record logged inside; a None value keeps the outer one."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def job_fields() -> dict[str, object]:
    """The job fields set for the code running now (empty outside a job)."""
    return dict(_context.get())


def install_job_context() -> None:
    """Copy the job context onto every log record created from now on (idempotent)."""
    add_record_hook("job_context", _add_context)


def _add_context(record: logging.LogRecord) -> None:
    context = _context.get()
    for name in FIELDS:
        if not hasattr(record, name):
            setattr(record, name, context.get(name, "-"))
    for name in JOB_FIELDS:
        if name in context and not hasattr(record, name):
            setattr(record, name, context[name])
    if "run_id" in context and not hasattr(record, RUN_ID_DIMENSION):
        setattr(record, RUN_ID_DIMENSION, context["run_id"])


class _PerSourceHandler(logging.Handler):
    """Routes records that belong to a source into `<dir>/<source>.log`."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        self._handlers: dict[str, logging.FileHandler] = {}

    def emit(self, record: logging.LogRecord) -> None:
        source = getattr(record, "source_name", "-")
        if source in ("-", None):
            return
        handler = self._handlers.get(source)
        if handler is None:
            handler = logging.FileHandler(self.directory / f"{source}.log", encoding="utf-8")
            handler.setFormatter(self.formatter)
            self._handlers[source] = handler
        handler.emit(record)

    def close(self) -> None:
        for handler in self._handlers.values():
            handler.close()
        super().close()


def configure_file_logging(directory: Path, level: int = logging.INFO) -> list[logging.Handler]:
    """Add main, per-source and errors-only log files under `directory` to the root logger."""
    install_job_context()
    directory.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter(FORMAT)
    main = logging.FileHandler(directory / "main.log", encoding="utf-8")
    errors = logging.FileHandler(directory / "errors.log", encoding="utf-8")
    errors.setLevel(logging.ERROR)
    per_source = _PerSourceHandler(directory)
    handlers: list[logging.Handler] = [main, errors, per_source]
    root = logging.getLogger()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)
    return handlers
