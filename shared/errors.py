"""What kind of failure a job met, and whose fault it was: the basis for retries and breakers.

Every failed job is put in one class (`classify`):

- `source`: the source could not be reached, timed out or refused the credentials (and any
  error not recognised below, as before). Retried; counted on the source's circuit breaker.
- `lake`: the destination failed: the lake's storage (dlt's load step, adlfs/fsspec/Azure
  errors, a full or read-only lake) or the host's local work folder (a full disk while dlt
  extracts or normalizes). Retried; the message names the lake (or work folder) and its host;
  counted on the lake's breaker (`shared.error_routing`), never on the source's.
- `permanent`: the job itself is wrong and would fail the same way again: a missing table or
  column, an unsupported column type or value, an invalid `last_watermark`, a data-quality
  (`min_rows`) failure. Not retried, not counted on any breaker; the message names the
  workbook cell to fix (`SourceConfig!G5 (watermark_column): ...`) where one applies.

A fourth class, `storage`, is used by `shared.error_routing` when the service's own storage
(run store, breaker table, metrics) fails around a job; `classify` never returns it.

Where an error happened matters as much as its type: dlt wraps every step's error in
`PipelineStepFailed` with `step` = extract / normalize / load, and only `load` writes to the
lake. Errors raised before the source object exists (secrets, Key Vault) stay `source`.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Optional
from urllib.parse import urlsplit

from shared.redaction import clip, first_line, redact

if TYPE_CHECKING:
    from shared.workbook.models import Job
    from shared.sources import Source

SOURCE, LAKE, PERMANENT, STORAGE = "source", "lake", "permanent", "storage"
ERROR_CLASSES: tuple[str, ...] = (SOURCE, LAKE, PERMANENT, STORAGE)
RETRYABLE_CLASSES = frozenset({SOURCE, LAKE})
SHEET = "SourceConfig"
"""The jobs sheet, for cell references of jobs that carry only a row number."""

_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
_DISK_TEXTS = ("No space left on device", "Disk quota exceeded", "Read-only file system")
_LAKE_MODULES = ("azure.", "adlfs", "fsspec", "aiohttp", "shared.lake")
"""Packages only the lake (and service storage) client uses: an error of theirs inside a job is the
lake's. `shared.lake` raises StoreError/CommitError (storage), LockTimeout/LockLost (the table lock)."""
# DB-API error codes of "this table / column / schema does not exist" (PostgreSQL SQLSTATE, MySQL errno).
_UNDEFINED_PG = {"42P01": "table", "42703": "column", "3F000": "schema"}
_UNDEFINED_MYSQL = {1146: "table", 1054: "column"}
_PERMANENT_HTTP = frozenset({400, 404, 405, 410, 422})


class JobConfigError(Exception):
    """A job's workbook value does not fit the source (a column that does not exist, a
    `last_watermark` of the wrong type): permanent, and `column` names the cell to fix."""

    def __init__(self, column: Optional[str], message: str) -> None:
        super().__init__(message)
        self.column = column


@dataclass(frozen=True)
class Failure:
    """A classified job failure: its class and the one-line message (redacted, bounded)."""

    error_class: str
    message: str

    @property
    def retryable(self) -> bool:
        """Whether another attempt may succeed (source and lake failures)."""
        return self.error_class in RETRYABLE_CLASSES

    def extra(self) -> dict[str, Any]:
        """What goes into `JobResult.extra`."""
        return {"error_class": self.error_class, "retryable": self.retryable}


def classify(
    exc: BaseException,
    job: "Job",
    source: Optional["Source"] = None,
    *,
    lake_root: Optional[str] = None,
    environ: Mapping[str, str] = os.environ,
) -> Failure:
    """Put a job's exception in its class and describe it in one line.

    Args:
        exc: What `run_job` caught.
        job: The job that failed (its workbook row and cells name the culprit of permanent errors).
        source: The job's source, once it was created (None: secrets or setup failed).
        lake_root: The lake's root URL (`shared.lake.bucket_url()` when omitted).
        environ: Settings (lake credentials, work folder).
    """
    from shared.lake.layout import bucket_url

    chain = list(exception_chain(exc))
    step = next((getattr(e, "step", None) for e in chain if type(e).__name__ == "PipelineStepFailed"), None)
    root = bucket_url(lake_root or environ.get("DESTINATION__FILESYSTEM__BUCKET_URL"))
    permanent = _permanent(chain, job, source)
    if permanent:
        return Failure(PERMANENT, _bounded(permanent))
    disk = next((e for e in chain if _is_disk_error(e)), None)
    if disk is not None:
        where = lake_label(root, environ) if step == "load" or _under(disk, root) else work_label(environ)
        return Failure(LAKE, _bounded(f"{where}: {one_line(disk)}"))
    if source is not None and (step == "load" or any(_is_lake_error(e, root) for e in chain)):
        cause = next((e for e in reversed(chain) if _is_lake_error(e, root)), chain[-1])
        return Failure(LAKE, _bounded(f"{lake_label(root, environ)}: {one_line(cause)}"))
    from shared.runner import describe_error

    return Failure(SOURCE, describe_error(exc, source))


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every exception behind it (dlt's `exception`, SQLAlchemy's `orig`, causes, contexts)."""
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        inner = getattr(current, "exception", None) or getattr(current, "orig", None)
        if not isinstance(inner, BaseException):
            inner = current.__cause__ or current.__context__
        current = inner


def one_line(exc: BaseException) -> str:
    """`Type: first line of the message`."""
    line = first_line(exc)
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def cell(job: "Job", column: Optional[str]) -> str:
    """The workbook cell of a job's column (`SourceConfig!G5 (watermark_column)`), or its row."""
    if column and column in job.cells:
        return f"{job.cells[column]} ({column})"
    if job.row is None:
        return f"job {job.job_id}" + (f" ({column})" if column else "")
    return f"{SHEET}!{job.row}:{job.row}" + (f" ({column})" if column else "")


def lake_label(root: str, environ: Mapping[str, str] = os.environ) -> str:
    """`lake <root> on <host>`: the Azure endpoint of an az:// lake, this machine for a folder."""
    return f"lake {root} on {lake_host(root, environ)}"


def work_label(environ: Mapping[str, str] = os.environ) -> str:
    """The local folder dlt extracts and normalizes into, and this machine."""
    from shared.settings import settings

    return f"work folder {settings(environ).work_dir} on host {socket.gethostname()}"


def lake_host(root: str, environ: Mapping[str, str] = os.environ) -> str:
    """The endpoint (`host:port`) an Azure lake is reached at; this machine's name for a folder."""
    import json

    from shared.storage import BLOB_SCHEMES, lake_credentials, parse_connection_string, storage_account

    parts = urlsplit(root)
    if parts.scheme not in BLOB_SCHEMES:
        return f"host {socket.gethostname()}"
    try:
        derived = lake_credentials(root, storage_account(environ), environ)
        kwargs = json.loads(environ.get("DESTINATION__FILESYSTEM__KWARGS") or "{}")
    except ValueError:
        derived, kwargs = {}, {}
    conn = (derived.get("kwargs") or {}).get("connection_string") or kwargs.get("connection_string")
    if conn:
        endpoint = parse_connection_string(conn)
        return urlsplit(endpoint.get("BlobEndpoint", "")).netloc or f"{endpoint.get('AccountName')}.blob.core.windows.net"
    prefix = "DESTINATION__FILESYSTEM__CREDENTIALS__"
    if environ.get(prefix + "AZURE_ACCOUNT_HOST"):
        return environ[prefix + "AZURE_ACCOUNT_HOST"]
    name = ((derived.get("credentials") or {}).get("azure_storage_account_name")
            or environ.get(prefix + "AZURE_STORAGE_ACCOUNT_NAME") or parts.netloc.partition("@")[2].split(".")[0])
    return parts.netloc.partition("@")[2] or f"{name or '?'}.blob.core.windows.net"


# --- the rules -----------------------------------------------------------------------------


def _permanent(chain: list[BaseException], job: "Job", source: Optional["Source"]) -> Optional[str]:
    """The message of a permanent failure, or None when the chain holds none."""
    where = source.describe() if source is not None else f"source '{job.source_name}'"
    table = f"{job.schema_name}.{job.table_name}" if job.schema_name else job.table_name
    for exc in chain:
        name = type(exc).__name__
        if isinstance(exc, JobConfigError):
            return f"{cell(job, exc.column)}: {exc} ({where})"
        if name == "SchemaChangeError":  # a column changed type (shared.lake.drift): fixing it takes a person
            return f"{cell(job, None)}: {exc}"
        if name == "DataQualityError":
            return f"{cell(job, 'min_rows')}: {exc}"
        if name == "NoSuchTableError":
            return f"{cell(job, 'table_name')}: table '{table}' not found in {where}"
        undefined = _undefined_object(exc)
        if undefined:
            column = {"table": "table_name", "schema": "schema_name"}.get(undefined)
            return f"{cell(job, column)}: {undefined} not found in {where}: {one_line(exc)}"
        if isinstance(exc, KeyError) and job.watermark_column and _key_is(exc, job.watermark_column):
            return f"{cell(job, 'watermark_column')}: column '{job.watermark_column}' not found in table '{table}' of {where}"
        if name in ("IncrementalCursorPathMissing", "IncrementalCursorPathHasValueNone"):
            return f"{cell(job, 'watermark_column')}: {one_line(exc)}"
        if name == "IncrementalCursorInvalidCoercion":
            return f"{cell(job, 'last_watermark')}: {one_line(exc)}"
        if name in ("IncrementalPrimaryKeyMissing", "UnboundColumnException"):
            return f"{cell(job, 'primary_key' if job.primary_key else None)}: table '{table}' of {where}: {one_line(exc)}"
        if name in ("UnsupportedArrowTypeException", "ArrowInvalid", "ArrowNotImplementedError", "ArrowTypeError") \
                or _is_conversion_error(exc):
            return f"{cell(job, None)}: table '{table}' of {where} has data the lake cannot store: {one_line(exc)}"
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if job.is_api and name == "HTTPError" and status in _PERMANENT_HTTP:
            return f"{cell(job, 'api_endpoint')}: {where} answered HTTP {status}: {one_line(exc)}"
    return None


def _undefined_object(exc: BaseException) -> Optional[str]:
    """'table' / 'column' / 'schema' when a DB-API error says the object does not exist."""
    code = getattr(exc, "pgcode", None)
    if code in _UNDEFINED_PG:
        return _UNDEFINED_PG[code]
    args = getattr(exc, "args", ())
    if type(exc).__module__.startswith(("pymysql", "MySQLdb")) and args and args[0] in _UNDEFINED_MYSQL:
        return _UNDEFINED_MYSQL[args[0]]
    return None


def _key_is(exc: KeyError, column: str) -> bool:
    return bool(exc.args) and isinstance(exc.args[0], str) and exc.args[0].lower() == column.lower()


def _is_conversion_error(exc: BaseException) -> bool:
    """connectorx could not convert a value it read (e.g. a two-dimensional value in an array
    column): the same rows fail the same way on every attempt."""
    return type(exc).__name__ == "ConnectorxError" and "FromSql" in str(exc)


def _is_disk_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        return True
    return isinstance(exc, OSError) and any(text in str(exc) for text in _DISK_TEXTS)


def _under(exc: BaseException, root: str) -> bool:
    """Whether an OSError names a file inside a local lake."""
    filename = getattr(exc, "filename", None)
    if not filename or "://" in root:
        return False
    return os.path.abspath(str(filename)).startswith(os.path.abspath(root).rstrip(os.sep) + os.sep)


def _is_lake_error(exc: BaseException, root: str) -> bool:
    module = type(exc).__module__ or ""
    if module.startswith(_LAKE_MODULES) and not module.startswith("azure.keyvault"):
        return True
    return isinstance(exc, OSError) and _under(exc, root)


def _bounded(text: str) -> str:
    return clip(redact(text))
