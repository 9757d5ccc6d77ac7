"""The settings model: validation messages, defaults, and parse-once caching (`shared/settings.py`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from shared.settings import AppSettings, SettingsError, reset_settings, settings


def test_defaults_and_local_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    parsed = settings({})
    assert (parsed.batch_size, parsed.split_rows, parsed.check_sources, parsed.naming) == (50, 20_000_000, True, "source")
    assert (parsed.state_dir, parsed.logs_dir, parsed.dlt_project_dir) == (tmp_path / ".ingestion", tmp_path / "logs", tmp_path)
    assert parsed.work_dir == Path(tempfile.gettempdir())
    assert parsed.retry["api"].max_number_of_attempts == 5 and parsed.breaker.failure_threshold == 5
    in_azure = settings({"FUNCTIONS_WORKER_RUNTIME": "python", "INGESTION_AUDIT_DIR": "/data/audit"})
    assert in_azure.metrics_dir == Path(tempfile.gettempdir()) / "ingestion" / "metrics"
    assert in_azure.audit_dir == Path("/data/audit")


def test_values_are_typed_and_blank_ones_are_unset() -> None:
    parsed = settings({"INGESTION_BATCH_SIZE": "7", "INGESTION_CHECK_SOURCES": " Off ", "INGESTION_NAMING": "SNAKE_CASE",
                       "INGESTION_LOCK_WAIT_SECONDS": "2.5", "RETRY_JITTER": "0", "INGESTION_SPLIT_ROWS": "",
                       "CIRCUIT_BREAKER_TIMEOUT_SECONDS": " "})
    assert (parsed.batch_size, parsed.check_sources, parsed.naming, parsed.lock_wait_seconds) == (7, False, "snake_case", 2.5)
    assert (parsed.split_rows, parsed.breaker.open_timeout_seconds, parsed.retry["database"].jitter) == (20_000_000, 30.0, 0)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("INGESTION_BATCH_SIZE", "0", "INGESTION_BATCH_SIZE: '0' is not a whole number >= 1"),
        ("INGESTION_SPLIT_ROWS", "1e6", "INGESTION_SPLIT_ROWS: '1e6' is not a whole number >= 1"),
        ("INGESTION_CHECK_SOURCES", "maybe", "INGESTION_CHECK_SOURCES: 'maybe' is not true or false"),
        ("INGESTION_NAMING", "camel", "INGESTION_NAMING='camel' is not one of source, snake_case"),
        ("INGESTION_LOCK_WAIT_SECONDS", "soon", "INGESTION_LOCK_WAIT_SECONDS: 'soon' is not a number of seconds >= 0"),
        ("INGESTION_LOCK_LEASE_SECONDS", "15.5", "INGESTION_LOCK_LEASE_SECONDS: '15.5' is not a whole number >= 1"),
        ("INGESTION_STAGING_TTL_HOURS", "-1", "INGESTION_STAGING_TTL_HOURS: '-1' is not a number of hours >= 0"),
        ("HEALTH_THROUGHPUT_FLOOR", "inf", "HEALTH_THROUGHPUT_FLOOR: 'inf' is not a number of rows per second >= 0"),
        ("RETRY_MAX_INTERVAL_MS", "1m", "RETRY_MAX_INTERVAL_MS: '1m' is not a valid int"),
        ("RETRY_JITTER", "1", "retry settings for database: jitter must be in [0, 1), got 1.0"),
    ],
)
def test_a_bad_value_names_the_setting_the_value_and_what_is_allowed(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings({name: value})
    assert str(caught.value) == message


def test_every_bad_setting_is_named_at_once() -> None:
    with pytest.raises(ValueError) as caught:
        settings({"INGESTION_BATCH_SIZE": "x", "CIRCUIT_BREAKER_FAILURE_THRESHOLD": "0"})
    assert str(caught.value) == ("INGESTION_BATCH_SIZE: 'x' is not a whole number >= 1; "
                                 "CIRCUIT_BREAKER_FAILURE_THRESHOLD: '0' is not a whole number >= 1")


def test_parsed_once_per_environment_and_env_changes_take_effect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGESTION_BATCH_SIZE", "9")
    first = settings()
    assert first is settings() is AppSettings.from_env() and first.batch_size == 9
    monkeypatch.setenv("INGESTION_BATCH_SIZE", "10")
    assert settings().batch_size == 10
    reset_settings()
    assert settings().batch_size == 10 and settings() is not first


def test_a_given_mapping_never_mixes_with_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGESTION_BATCH_SIZE", "9")
    assert settings({}).batch_size == 50
    assert AppSettings().batch_size == 50  # the model's only source is what settings() passes in
