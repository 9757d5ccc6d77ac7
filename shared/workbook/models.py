"""The plan: what one workbook row means once it has been validated.

A `Job` is the unit of work everywhere downstream (activity input, runner, metrics), so it
is a small, JSON-serialisable value: `Job.to_dict()` is what travels through the Durable
Functions history and `Job.from_dict()` rebuilds it on the other side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, Optional

SourceType = Literal["postgresql", "mysql", "oracle", "mssql", "azure_sql", "sqlite", "api"]
LoadType = Literal["FULL", "INCREMENTAL"]

SQL_SOURCE_TYPES: tuple[str, ...] = ("postgresql", "mysql", "oracle", "mssql", "azure_sql", "sqlite")
"""Source types read through SQLAlchemy and dlt's `sql_table`."""

API_SOURCE_TYPES: tuple[str, ...] = ("api",)
"""Source types read through dlt's `rest_api_source`."""


@dataclass(frozen=True)
class Job:
    """One validated, normalised row of the `SourceConfig` sheet."""

    source_type: str
    """Lower-case source type, one of `SQL_SOURCE_TYPES` or `API_SOURCE_TYPES`."""
    source_name: str
    """Lower-case key into the secrets (`SOURCES__<SOURCE_NAME>__...`); also the lake dataset folder."""
    table_name: str
    """Source table (SQL) or resource name (API); also the lake table folder."""
    load_type: str
    """`FULL` (one snapshot per day) or `INCREMENTAL` (append rows past the cursor)."""
    enabled: bool = True
    schema_name: Optional[str] = None
    """Database schema; required for oracle, optional elsewhere."""
    watermark_column: Optional[str] = None
    """Cursor column for INCREMENTAL jobs."""
    last_watermark: Optional[Any] = None
    """Initial cursor value (ISO string for dates and times, or a number); dlt state wins after the first run."""
    chunk_size: Optional[int] = None
    """Rows per extraction batch; None means chosen from the table's estimated size."""
    api_endpoint: Optional[str] = None
    """Path (or absolute URL) of the REST endpoint, for api jobs."""
    primary_key: tuple[str, ...] = ()
    """Primary key column(s), used for incremental de-duplication at the cursor boundary."""
    api_data_selector: Optional[str] = None
    """JSONPath to the records in an API response; None lets dlt detect it."""
    api_paginator: Optional[str] = None
    """dlt paginator type (`header_link`, `json_link`, `offset`, `page_number`, `cursor`, `single_page`, `auto`)."""
    api_params: dict[str, Any] = field(default_factory=dict)
    """Extra query parameters for the API request."""
    api_incremental_param: Optional[str] = None
    """Query parameter that receives the cursor start value for INCREMENTAL api jobs."""
    partition_column: Optional[str] = None
    """Column to split a large table's extraction into parallel ranges; None reads it in one stream."""
    min_rows: Optional[int] = None
    """Data-quality floor: a run reading fewer rows is flagged; None means no check."""
    keep_char_padding: bool = False
    """Keep the trailing spaces of CHAR(n) columns (SQL sources); False trims them."""
    row: Optional[int] = None
    """Excel row number the job came from, for messages."""
    cells: dict[str, str] = field(default_factory=dict, compare=False)
    """Workbook cell of the columns a run-time error can blame (`{"watermark_column": "SourceConfig!G5"}`),
    so a permanent job error names the cell to fix (`shared.errors`)."""

    @property
    def job_id(self) -> str:
        """Stable identity of the job: `source.table` or `source.schema.table`."""
        parts = [self.source_name, self.schema_name, self.table_name]
        return ".".join(p for p in parts if p)

    @property
    def is_api(self) -> bool:
        """True for REST API jobs."""
        return self.source_type in API_SOURCE_TYPES

    @property
    def is_incremental(self) -> bool:
        """True for INCREMENTAL jobs."""
        return self.load_type == "INCREMENTAL"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, as it travels through the orchestration history."""
        data = asdict(self)
        data["primary_key"] = list(self.primary_key)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Job":
        """Rebuild a job from `to_dict()` output; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["primary_key"] = tuple(values.get("primary_key") or ())
        values["api_params"] = dict(values.get("api_params") or {})
        values["cells"] = dict(values.get("cells") or {})
        return cls(**values)

    def matches(self, selector: str) -> bool:
        """Whether `--only`-style selector `source` or `source.table` picks this job."""
        selector = selector.strip().lower()
        if "." not in selector:
            return self.source_name == selector
        source, _, table = selector.partition(".")
        return self.source_name == source and table in (
            self.table_name.lower(),
            f"{(self.schema_name or '').lower()}.{self.table_name.lower()}",
        )


@dataclass
class Plan:
    """The validated workbook: every job plus the warnings met while reading it."""

    jobs: list[Job]
    warnings: list[str] = field(default_factory=list)
    source: str = ""
    """Where the workbook came from (path or blob URL), for messages."""
    sheet: str = "SourceConfig"
    """Title of the jobs sheet, to name cells in later checks (`SourceConfig!C7`)."""
    columns: dict[str, str] = field(default_factory=dict)
    """Column letter of each column in the sheet (`{"table_name": "C"}`), to name cells."""

    def cell(self, job: Job, column: str) -> str:
        """`SourceConfig!C7 (table_name)`: where a job's value sits; the whole row when unknown."""
        letter = self.columns.get(column)
        where = f"{letter}{job.row}" if letter and job.row else f"{job.row}:{job.row}" if job.row else "?"
        return f"{self.sheet}!{where} ({column})"

    def enabled_jobs(self, only: Optional[list[str]] = None) -> list[Job]:
        """Enabled jobs, optionally narrowed by `source` / `source.table` selectors."""
        jobs = [j for j in self.jobs if j.enabled]
        if only:
            jobs = [j for j in jobs if any(j.matches(s) for s in only)]
        return jobs


class PlanError(Exception):
    """The workbook cannot become a plan; `problems` lists every reason, one line each."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        super().__init__(
            f"{len(self.problems)} problem(s){where}:\n" + "\n".join(f"  - {p}" for p in self.problems)
        )
