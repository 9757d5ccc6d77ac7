"""App settings: one declared model that every module reads (environment / Function app settings).

Why pydantic-settings and not a dlt `@configspec`: our settings have flat names of their own
(`INGESTION_*`, `CONFIG_CONTAINER`, `RETRY_*`, `CIRCUIT_BREAKER_*`, `HEALTH_*`) and come from the
environment only. A configspec resolves every field through dlt's provider chain, which also reads
`.dlt/config.toml` and `secrets.toml`, the registered vaults and section fall-backs, so an app
setting could silently come from a file that dlt reads for its own configuration. pydantic-settings
maps each field to its exact variable name (the alias), coerces the type and names the setting
that failed. dlt keeps its own settings (`SOURCES__*`, `DESTINATION__*`, `RUNTIME__*`).

All settings are validated together: an unusable value fails the first read of the settings
(`SettingsError`, naming every bad setting, its value and what is allowed), wherever it is read.

`settings()` validates the environment once and caches the result per process, keyed by the values
of the declared variables and the working directory: a changed variable (`monkeypatch.setenv` in a
test) is a new key and is validated once more, with no reset needed. `reset_settings()` empties the
cache. The model is given the environment explicitly (`os.environ`, or a test's mapping), so its only
source is the init values: a mapping never mixes with the process environment.
"""

from __future__ import annotations

import math
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from pydantic import Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.breakers.settings import BreakerSettings
from shared.metrics import DEFAULT_THROUGHPUT_FLOOR
from shared.naming import NAMINGS, SOURCE
from shared.retry import DEFAULT_POLICIES, RetryPolicy
from shared.start_request import DEFAULT_CONFIG

DEFAULT_PIPELINE_NAME = "metadata_driven_ingestion"
DEFAULT_BATCH_SIZE = 50
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
_BREAKER, _DB, _API = BreakerSettings(), DEFAULT_POLICIES["database"], DEFAULT_POLICIES["api"]
LOCAL_DIRS = {"state_dir": ".ingestion", "metrics_dir": "metrics", "audit_dir": "audit", "logs_dir": "logs"}
"""Local folders and their defaults, under the working directory (or temp inside Functions)."""


def _platform(alias: str) -> Any:
    """A variable the platform sets (not an app setting): read, never documented."""
    return Field(None, alias=alias, json_schema_extra={"documented": False})


class SettingsError(ValueError):
    """One or more settings are unusable; the message names each one, its value and what is allowed."""


class AppSettings(BaseSettings):
    """Everything configurable about the service, from app settings (environment variables)."""

    # The attribute docstrings below document each setting for readers of this file; nothing reads
    # them as field descriptions, and `use_attribute_docstrings` (pydantic parses this file's source
    # to find them) cost 25-60 ms of every process start.
    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True, populate_by_name=False)

    # Storage names and the Functions bindings.
    container: str = Field("ingestion", alias="INGESTION_CONTAINER")
    """Blob container for run snapshots (`runs/`), metrics and audit (`metadata/`)."""
    config_container: str = Field("config", alias="CONFIG_CONTAINER")
    """Container of the workbooks; the blob trigger watches it."""
    config: str = Field(DEFAULT_CONFIG, alias="INGESTION_CONFIG")
    """The workbook of the timer and of start requests without `config`."""
    queue: Optional[str] = Field(None, alias="INGESTION_QUEUE")
    """Queue the queue starter listens on (read by the Functions host: `%INGESTION_QUEUE%`)."""
    breaker_table: str = Field("ingestionbreakers", alias="INGESTION_BREAKER_TABLE")
    """Table Storage table of the circuit breakers."""
    failures_queue: str = Field("ingestion-failures", alias="INGESTION_FAILURES_QUEUE")
    """Queue that receives one message per failed or skipped job."""
    task_hub: Optional[str] = Field(None, alias="INGESTION_TASK_HUB")
    """Durable task hub name (read by the Functions host from `host.json`)."""
    schedule: Optional[str] = Field(None, alias="INGESTION_SCHEDULE")
    """Timer schedule, NCRONTAB (read by the Functions host: `%INGESTION_SCHEDULE%`)."""

    # The run.
    batch_size: int = Field(DEFAULT_BATCH_SIZE, alias="INGESTION_BATCH_SIZE")
    """Jobs per sub-orchestration when a plan is larger than this."""
    split_rows: int = Field(20_000_000, alias="INGESTION_SPLIT_ROWS")
    """A FULL SQL table estimated above this many rows runs as several slice activities."""
    check_sources: bool = Field(True, alias="INGESTION_CHECK_SOURCES")
    """`load_plan` checks tables, columns and watermarks against the sources before the run."""
    pipeline_name: str = Field(DEFAULT_PIPELINE_NAME, alias="INGESTION_PIPELINE_NAME")
    """Name in the metrics."""
    naming: str = Field(SOURCE, alias="INGESTION_NAMING")
    """Column names in the lake: `source` keeps them, `snake_case` converts them."""
    cpu_slots: Optional[int] = Field(None, alias="INGESTION_CPU_SLOTS")
    """Jobs and their parallel read slices running at once in one process (default: the usable
    cores divided by `FUNCTIONS_WORKER_PROCESS_COUNT`; see `shared.cpu_slots`)."""

    # Local folders (resolved by `_local_folders`: None only before validation).
    state_dir: Path = Field(None, alias="INGESTION_STATE_DIR", validate_default=False)  # type: ignore[assignment]
    """Breaker database and per-run plan/result snapshots."""
    metrics_dir: Path = Field(None, alias="INGESTION_METRICS_DIR", validate_default=False)  # type: ignore[assignment]
    """Where metrics JSON files go."""
    audit_dir: Path = Field(None, alias="INGESTION_AUDIT_DIR", validate_default=False)  # type: ignore[assignment]
    """Where audit CSVs go, one per UTC day."""
    logs_dir: Path = Field(None, alias="INGESTION_LOGS_DIR", validate_default=False)  # type: ignore[assignment]
    """CLI log files: main, one per source, errors only."""
    work_dir: Path = Field(None, alias="INGESTION_WORK_DIR", validate_default=False)  # type: ignore[assignment]
    """Parent of the per-job dlt working folders (default: the system temp folder)."""

    # The lake protocol.
    lock_wait_seconds: float = Field(900.0, alias="INGESTION_LOCK_WAIT_SECONDS")
    """How long a job waits for another run's lock on its lake table."""
    lock_lease_seconds: int = Field(60, alias="INGESTION_LOCK_LEASE_SECONDS")
    """Blob lease of a table lock on an Azure lake (renewed every third of it)."""
    staging_ttl_hours: float = Field(12.0, alias="INGESTION_STAGING_TTL_HOURS")
    """Staged slices of a split table older than this are deleted."""

    # Secrets.
    key_vault_url: Optional[str] = Field(None, alias="AZURE_KEY_VAULT_URL")
    """Turns on Key Vault secrets."""
    dlt_project_dir: Path = Field(None, alias="DLT_PROJECT_DIR", validate_default=False)  # type: ignore[assignment]
    """Where `.dlt/secrets.toml` is looked up (default: the working directory)."""

    # Retries (see shared/retry.py), circuit breakers and the health score.
    retry_database_max_attempts: int = Field(_DB.max_number_of_attempts, alias="RETRY_DATABASE_MAX_ATTEMPTS")
    """Attempts of a database job, the first included."""
    retry_database_first_interval_ms: int = Field(
        _DB.first_retry_interval_in_milliseconds, alias="RETRY_DATABASE_FIRST_INTERVAL_MS")
    """Wait before a database job's second attempt."""
    retry_api_max_attempts: int = Field(_API.max_number_of_attempts, alias="RETRY_API_MAX_ATTEMPTS")
    """Attempts of an API job, the first included."""
    retry_api_first_interval_ms: int = Field(_API.first_retry_interval_in_milliseconds, alias="RETRY_API_FIRST_INTERVAL_MS")
    """Wait before an API job's second attempt."""
    retry_backoff_coefficient: float = Field(_DB.backoff_coefficient, alias="RETRY_BACKOFF_COEFFICIENT")
    """Each further wait is this many times the previous one."""
    retry_max_interval_ms: int = Field(_DB.max_retry_interval_in_milliseconds, alias="RETRY_MAX_INTERVAL_MS")
    """Upper bound of one wait."""
    retry_jitter: float = Field(_DB.jitter, alias="RETRY_JITTER")
    """Each wait varies by up to this fraction, up or down."""
    breaker_failure_threshold: int = Field(_BREAKER.failure_threshold, alias="CIRCUIT_BREAKER_FAILURE_THRESHOLD")
    """Consecutive failures that open a closed circuit."""
    breaker_timeout_seconds: float = Field(_BREAKER.open_timeout_seconds, alias="CIRCUIT_BREAKER_TIMEOUT_SECONDS")
    """How long an open circuit refuses work before it lets a trial run through."""
    breaker_half_open_successes: int = Field(_BREAKER.half_open_successes, alias="CIRCUIT_BREAKER_HALF_OPEN_SUCCESSES")
    """Consecutive successful trials that close a half-open circuit."""
    throughput_floor: float = Field(DEFAULT_THROUGHPUT_FLOOR, alias="HEALTH_THROUGHPUT_FLOOR")
    """Rows per second at or above which a job counts as fast in the health score."""

    # Set by the platform, not by us.
    functions_worker_runtime: Optional[str] = _platform("FUNCTIONS_WORKER_RUNTIME")
    website_site_name: Optional[str] = _platform("WEBSITE_SITE_NAME")
    functions_worker_process_count: Optional[str] = _platform("FUNCTIONS_WORKER_PROCESS_COUNT")
    databricks_runtime_version: Optional[str] = _platform("DATABRICKS_RUNTIME_VERSION")

    _retry: dict[str, RetryPolicy] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the values `settings()` passes in: it reads the environment itself (see module doc)."""
        return (init_settings,)

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "AppSettings":
        """The settings of `environ` (the process environment by default); same as `settings()`."""
        return settings(environ)

    @property
    def retry(self) -> Mapping[str, RetryPolicy]:
        """Retry policy per kind of source (`database`, `api`)."""
        return self._retry

    @property
    def breaker(self) -> BreakerSettings:
        """Circuit breaker thresholds."""
        return BreakerSettings(self.breaker_failure_threshold, self.breaker_timeout_seconds,
                               self.breaker_half_open_successes)

    # Validation: each message names the setting, quotes the value and says what is allowed.

    @model_validator(mode="before")
    @classmethod
    def _local_folders(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Relative defaults are under the working directory, or under temp inside Functions (its
        file system is read-only outside temp)."""
        values = dict(values)
        in_functions = values.get("FUNCTIONS_WORKER_RUNTIME") or values.get("WEBSITE_SITE_NAME")
        base = Path(tempfile.gettempdir()) / "ingestion" if in_functions else Path.cwd()
        for name, default in LOCAL_DIRS.items():
            values.setdefault(cls.model_fields[name].alias, base / default)
        values.setdefault("INGESTION_WORK_DIR", tempfile.gettempdir())
        values.setdefault("DLT_PROJECT_DIR", os.getcwd())
        return values

    @field_validator("batch_size", "split_rows", mode="before")
    @classmethod
    def _count(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and not (value.isdigit() and int(value) >= 1):
            raise ValueError(f"{_alias(info)}: {value!r} is not a whole number >= 1")
        return value

    @field_validator("check_sources", mode="before")
    @classmethod
    def _switch(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        value = value.strip().lower()
        if value not in _TRUE + _FALSE:
            raise ValueError(f"{_alias(info)}: {value!r} is not true or false")
        return value in _TRUE

    @field_validator("naming", mode="before")
    @classmethod
    def _naming(cls, value: Any, info: ValidationInfo) -> Any:
        value = str(value).strip().lower()
        if value not in NAMINGS:
            raise ValueError(f"{_alias(info)}={value[:40]!r} is not one of {', '.join(NAMINGS)}")
        return value

    @field_validator("cpu_slots", mode="before")
    @classmethod
    def _slots(cls, value: Any, info: ValidationInfo) -> Any:
        return _number(value, info, int, lambda n: n >= 1, "a whole number >= 1")

    @field_validator("breaker_failure_threshold", "breaker_half_open_successes", "lock_lease_seconds", mode="before")
    @classmethod
    def _whole(cls, value: Any, info: ValidationInfo) -> Any:
        return _number(value, info, int, lambda n: n >= 1, "a whole number >= 1")

    @field_validator("breaker_timeout_seconds", "lock_wait_seconds", "staging_ttl_hours", "throughput_floor",
                     mode="before")
    @classmethod
    def _amount(cls, value: Any, info: ValidationInfo) -> Any:
        unit = {"staging_ttl_hours": "a number of hours", "throughput_floor": "a number of rows per second"}
        return _number(value, info, float, lambda n: math.isfinite(n) and n >= 0,
                       f"{unit.get(info.field_name or '', 'a number of seconds')} >= 0")

    @field_validator("retry_database_max_attempts", "retry_database_first_interval_ms", "retry_api_max_attempts",
                     "retry_api_first_interval_ms", "retry_max_interval_ms", "retry_backoff_coefficient",
                     "retry_jitter", mode="before")
    @classmethod
    def _retry_number(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        cast = float if info.field_name in ("retry_backoff_coefficient", "retry_jitter") else int
        try:
            return cast(value)
        except ValueError:
            raise ValueError(f"{_alias(info)}: {value!r} is not a valid {cast.__name__}") from None

    @model_validator(mode="after")
    def _policies(self) -> "AppSettings":
        for kind in DEFAULT_POLICIES:
            try:
                self._retry[kind] = RetryPolicy(
                    max_number_of_attempts=getattr(self, f"retry_{kind}_max_attempts"),
                    first_retry_interval_in_milliseconds=getattr(self, f"retry_{kind}_first_interval_ms"),
                    backoff_coefficient=self.retry_backoff_coefficient,
                    max_retry_interval_in_milliseconds=self.retry_max_interval_ms,
                    jitter=self.retry_jitter,
                )
            except ValueError as exc:
                raise ValueError(f"retry settings for {kind}: {exc}") from None
        return self


def _number(value: Any, info: ValidationInfo, parse: Callable[[str], Any], valid: Callable[[Any], bool],
            allowed: str) -> Any:
    """A numeric setting from its text: blank means the default; anything else must parse and be valid."""
    if not isinstance(value, str):
        return value
    raw = value.strip()
    if not raw:
        return AppSettings.model_fields[info.field_name or ""].default
    try:
        number = parse(raw)
    except ValueError:
        number = None
    if number is None or not valid(number):
        raise ValueError(f"{_alias(info)}: {raw!r} is not {allowed}")
    return number


def _alias(info: ValidationInfo) -> str:
    return str(AppSettings.model_fields[info.field_name or ""].alias)


SETTING_NAMES: tuple[str, ...] = tuple(str(f.alias) for f in AppSettings.model_fields.values())
"""Every variable the model reads."""


def documented_settings() -> dict[str, Any]:
    """The app settings an operator sets (platform variables left out), with their fields."""
    return {
        str(f.alias): f for f in AppSettings.model_fields.values()
        if (f.json_schema_extra or {}).get("documented", True)  # type: ignore[union-attr]
    }


def settings(environ: Optional[Mapping[str, str]] = None) -> AppSettings:
    """The validated settings of `environ` (default: the process environment), parsed once per value.

    Raises:
        SettingsError: Every unusable setting, each with its name, value and what is allowed.
    """
    env = os.environ if environ is None else environ
    return _parse(os.getcwd(), tuple(env.get(name) for name in SETTING_NAMES))


def reset_settings() -> None:
    """Forget the parsed settings (tests; a process re-reads its environment on the next call)."""
    _parse.cache_clear()


@lru_cache(maxsize=64)
def _parse(cwd: str, values: tuple[Optional[str], ...]) -> AppSettings:
    # An empty variable is unset, as a blank app setting in the portal means "not set".
    given = {name: value for name, value in zip(SETTING_NAMES, values) if value not in (None, "")}
    try:
        return AppSettings(**given)
    except ValidationError as exc:
        raise SettingsError("; ".join(_message(e) for e in exc.errors())) from None


def _message(error: Any) -> str:
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ValueError):
        return str(cause)
    name = error["loc"][0] if error.get("loc") else "settings"
    return f"{name}: {str(error.get('input'))[:40]!r} {error['msg']}"
