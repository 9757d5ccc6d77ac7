"""Runner behaviour that does not depend on the source type: failure hygiene and naming."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.workbook.models import Job
from shared.runner import pipeline_name, root_cause, run_job


def nested_items(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "tags": [{"tag": f"t{i}"}, {"tag": "x"}]} for i in range(1, n + 1)]


def test_failed_load_leaves_no_files_of_the_attempt(rest_server: Any, monkeypatch: Any, lake: Path) -> None:
    """A nested endpoint loads two tables; the child table's staging folder is blocked by a file,
    so the load fails after the parent's file was staged. Nothing of the attempt may stay: not in
    the lake, not in staging."""
    from shared.lake import TableLake

    server = rest_server({"items": nested_items(20)})
    monkeypatch.setenv("SOURCES__PUBAPI__BASE_URL", server.base_url)
    job = Job("api", "pubapi", "items", "FULL", api_endpoint="items", api_paginator="single_page")
    ok = run_job(job, bucket_url=str(lake))
    assert ok.status == "success", ok.error
    assert any("items__tags" in f for f in ok.files) and any("/items/" in f for f in ok.files)
    before = sorted(lake.rglob("*.parquet"))

    import datetime as dt

    # The child table's year folder (`<table>/<YYYY>/...`) is a file: its copy fails, the parent's went through.
    blocked = lake / "_staging" / "pubapi" / "items" / "ablocked_1" / "items__tags" / f"{dt.datetime.now(dt.timezone.utc):%Y}"
    recover = TableLake.recover

    def recover_then_block(self: TableLake) -> int:
        rolled = recover(self)  # (recovery removes stale staging, so block after it)
        blocked.parent.mkdir(parents=True)
        blocked.write_text("not a folder")
        (blocked.parents[1] / "init").write_bytes((lake / "pubapi" / "init").read_bytes())  # dlt's dataset marker
        return rolled

    monkeypatch.setattr(TableLake, "attempt_name", staticmethod(lambda *a: "ablocked_1"))
    monkeypatch.setattr(TableLake, "recover", recover_then_block)
    failed = run_job(job, bucket_url=str(lake))
    assert failed.status == "failed" and failed.files == [] and failed.rows_processed == 0
    assert "Not a directory" in (failed.error or "") or "File exists" in (failed.error or "")
    assert sorted(lake.rglob("*.parquet")) == before  # nothing new, nothing lost
    assert not (lake / "_staging" / "pubapi" / "items" / "ablocked_1").exists()


def test_pipeline_names_are_stable_and_safe() -> None:
    assert pipeline_name(Job("oracle", "finance", "GL_ENTRIES", "FULL", schema_name="FIN")) == "ingest__finance__fin__gl_entries"
    assert pipeline_name(Job("api", "pub", "items", "FULL")) == "ingest__pub__items"


def test_root_cause_unwraps_chains() -> None:
    try:
        try:
            raise ConnectionRefusedError("refused")
        except ConnectionRefusedError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert isinstance(root_cause(outer), ConnectionRefusedError)


def _sqlite(tmp_path: Path, monkeypatch: Any, ddl: str, rows: list[tuple]) -> Path:
    import sqlite3

    db = tmp_path / "src.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute(ddl)
        if rows:
            conn.executemany(f"INSERT INTO t VALUES ({', '.join('?' * len(rows[0]))})", rows)
    monkeypatch.setenv("SOURCES__LOCAL__PATH", str(db))
    return db


def test_schema_drift_is_reported_against_the_previous_successful_run(tmp_path: Path, monkeypatch: Any, lake: Path) -> None:
    import sqlite3

    db = _sqlite(tmp_path, monkeypatch, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)", [(1, "a", 2)])
    job = Job("sqlite", "local", "t", "FULL")
    first = run_job(job, bucket_url=str(lake))
    assert first.status == "success" and "schema_drift" not in first.extra
    assert "schema_drift" not in run_job(job, bucket_url=str(lake)).extra  # unchanged
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE t ADD COLUMN note TEXT")
        conn.execute("ALTER TABLE t DROP COLUMN qty")
        conn.execute("INSERT INTO t VALUES (2, 'b', 'hello')")
    drifted = run_job(job, bucket_url=str(lake))
    assert drifted.status == "success"
    assert drifted.extra["schema_drift"] == {"t": {"added": ["note"], "removed": ["qty"], "changed": {}}}


def test_min_rows_failure_loads_nothing_and_is_not_retryable(tmp_path: Path, monkeypatch: Any, lake: Path) -> None:
    _sqlite(tmp_path, monkeypatch, "CREATE TABLE t (id INTEGER PRIMARY KEY, ts TEXT)", [(1, "2024-01-01 00:00:00"), (2, "2024-01-02 00:00:00")])
    job = Job("sqlite", "local", "t", "INCREMENTAL", watermark_column="ts", min_rows=3)
    result = run_job(job, bucket_url=str(lake))
    assert result.status == "failed" and result.extra["retryable"] is False
    assert "data quality: 2 row(s) extracted, fewer than min_rows 3" in result.error
    assert not any(lake.rglob("*.parquet"))
    ok = run_job(Job("sqlite", "local", "t", "INCREMENTAL", watermark_column="ts", min_rows=2), bucket_url=str(lake))
    assert (ok.status, ok.rows_processed) == ("success", 2)  # the cursor did not move on the failed run


def test_job_log_records_carry_run_source_and_table(tmp_path: Path, monkeypatch: Any, lake: Path, caplog: Any) -> None:
    import logging

    from shared.logs import install_job_context

    install_job_context()
    _sqlite(tmp_path, monkeypatch, "CREATE TABLE t (id INTEGER PRIMARY KEY)", [(1,)])
    with caplog.at_level(logging.INFO, logger="shared.runner"):
        run_job(Job("sqlite", "local", "t", "FULL"), bucket_url=str(lake), run_id="run-42")
    records = [r for r in caplog.records if r.name == "shared.runner"]
    assert records and all((r.run_id, r.source_name, r.table_name) == ("run-42", "local", "t") for r in records)


def test_a_job_writes_no_dlt_runtime_trace(tmp_path: Path, monkeypatch: Any, lake: Path) -> None:
    """dlt's runtime trace is pickled into the work folder after every step (and removed with
    it): a job turns it off and takes the row counts from the normalize step itself."""
    import importlib

    dlt_pipeline = importlib.import_module("dlt.pipeline.pipeline")  # (`dlt.pipeline` is also a function)
    saved: list[str] = []
    save_trace = dlt_pipeline.save_trace
    monkeypatch.setattr(dlt_pipeline, "save_trace", lambda *a, **k: (saved.append("trace"), save_trace(*a, **k)))
    _sqlite(tmp_path, monkeypatch, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)", [(1, "a"), (2, "b"), (3, "c")])
    result = run_job(Job("sqlite", "local", "t", "FULL", min_rows=3), bucket_url=str(lake))
    assert (result.status, result.rows_processed) == ("success", 3), result.error
    assert saved == []
    # The row count that `min_rows` checks still comes from normalize: one row short fails.
    failed = run_job(Job("sqlite", "local", "t", "FULL", min_rows=4), bucket_url=str(lake))
    assert failed.status == "failed" and "3 row(s) extracted" in (failed.error or "")
