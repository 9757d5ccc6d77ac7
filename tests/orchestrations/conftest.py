"""The real Functions app on the local durable runtime, with small SQLite sources (no services)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Callable

import pytest

from shared.workbook import write_workbook


@pytest.fixture
def service_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """State, metrics, audit and lake folders of this test; fast retries."""
    for setting, sub in (("INGESTION_STATE_DIR", "state"), ("INGESTION_METRICS_DIR", "metrics"),
                         ("INGESTION_AUDIT_DIR", "audit"), ("INGESTION_LOGS_DIR", "logs")):
        monkeypatch.setenv(setting, str(tmp_path / sub))
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", str(tmp_path / "lake"))
    monkeypatch.setenv("RETRY_DATABASE_FIRST_INTERVAL_MS", "50")
    monkeypatch.setenv("RETRY_API_FIRST_INTERVAL_MS", "50")
    return tmp_path


@pytest.fixture
def sqlite_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Create `<name>.sqlite` with tables t0..tN (a few rows each) and point its secrets at it."""

    def make(name: str, tables: int, rows: int = 3) -> Path:
        path = tmp_path / f"{name}.sqlite"
        with sqlite3.connect(path) as conn:
            for t in range(tables):
                conn.execute(f"CREATE TABLE t{t} (id INTEGER PRIMARY KEY, v TEXT)")
                conn.executemany(f"INSERT INTO t{t} VALUES (?, ?)", [(i, f"v{i}") for i in range(rows)])
        monkeypatch.setenv(f"SOURCES__{name.upper()}__PATH", str(path))
        return path

    return make


@pytest.fixture
def workbook(tmp_path: Path) -> Callable[[list[dict[str, Any]]], Path]:
    """Write a workbook of job rows (defaults: FULL, enabled)."""

    def make(rows: list[dict[str, Any]], name: str = "jobs.xlsx") -> Path:
        path = tmp_path / name
        write_workbook(path, [{"load_type": "FULL", "enabled": "Y", **row} for row in rows])
        return path

    return make
