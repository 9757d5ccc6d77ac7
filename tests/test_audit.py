"""Audit rows and the daily CSV files, including many concurrent writers."""

from __future__ import annotations

import csv
import fcntl
import multiprocessing
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from shared.audit import AUDIT_COLUMNS, AuditWriter, LocalAuditWriter, audit_rows
from shared.results import FAILED, SUCCESS, JobResult

WHEN = datetime(2025, 1, 15, 8, 5, 9, tzinfo=timezone.utc)
# Longer than PIPE_BUF (4096 bytes), so unlocked appends could interleave; with commas,
# quotes and newlines, so quoting is exercised too.
NASTY_ERROR = 'ORA-12541: TNS:no listener\n  at "connect", host=db1\n' + "x" * 5000


def result(status: str = SUCCESS, **kwargs) -> JobResult:
    values = dict(
        job_id="crm.orders",
        source_type="postgresql",
        source_name="crm",
        table_name="orders",
        load_type="INCREMENTAL",
        status=status,
        rows_processed=1200,
        duration_seconds=2.5,
        rows_per_second=480.0,
        files=["crm/orders/a.parquet", "crm/orders/b.parquet"],
        schema_version="v7",
        retry_count=1,
        load_id="1736928309.12",
    )
    values.update(kwargs)
    return JobResult(**values)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [dict(zip(header, r, strict=True)) for r in reader]
    return header, rows


def numbered_row(writer_id: int, seq: int) -> dict:
    """An audit row that says who wrote it, with an error that is hard to keep whole."""
    row = audit_rows(
        [result(FAILED, job_id=f"w{writer_id}.{seq}", error=f"{writer_id}/{seq}: {NASTY_ERROR}")],
        run_id=f"run{writer_id}",
        execution_time=WHEN,
    )[0]
    return row


def write_many(directory: str, writer_id: int, count: int, barrier) -> None:
    """Child body of the concurrency tests (module level so spawned processes can import it)."""
    writer = LocalAuditWriter(directory)
    barrier.wait(timeout=60)
    for seq in range(count):
        writer.write([numbered_row(writer_id, seq)], WHEN)


def assert_complete(path: Path, writers: int, per_writer: int) -> None:
    header, rows = read_csv(path)
    assert header == list(AUDIT_COLUMNS)
    assert len(rows) == writers * per_writer
    assert {r["job_id"] for r in rows} == {f"w{w}.{s}" for w in range(writers) for s in range(per_writer)}
    for r in rows:
        writer_id, seq = r["job_id"][1:].split(".")
        assert r["error"] == f"{writer_id}/{seq}: {NASTY_ERROR}"
        assert r["run_id"] == f"run{writer_id}"


# -- rows ---------------------------------------------------------------------------------


def test_audit_rows_have_exactly_the_audit_columns() -> None:
    rows = audit_rows([result(), result(FAILED, error="boom").to_dict()], run_id="r1", execution_time=WHEN)

    assert [list(r) for r in rows] == [list(AUDIT_COLUMNS)] * 2
    assert rows[0] == {
        "run_id": "r1",
        "execution_time": "2025-01-15T08:05:09Z",
        "job_id": "crm.orders",
        "source_type": "postgresql",
        "source_name": "crm",
        "table_name": "orders",
        "load_type": "INCREMENTAL",
        "status": SUCCESS,
        "rows_processed": 1200,
        "duration_seconds": 2.5,
        "rows_per_second": 480.0,
        "retry_count": 1,
        "error": None,
        "schema_version": "v7",
        "files_count": 2,
        "load_id": "1736928309.12",
    }
    assert (rows[1]["status"], rows[1]["error"]) == (FAILED, "boom")


def test_audit_rows_reject_unknown_status() -> None:
    with pytest.raises(ValueError, match="crm.orders"):
        audit_rows([result("finished")], run_id="r", execution_time=WHEN)


# -- files --------------------------------------------------------------------------------


def test_local_writer_is_an_audit_writer(tmp_path: Path) -> None:
    writer: AuditWriter = LocalAuditWriter(tmp_path)
    assert isinstance(writer.write([], WHEN), Path)


def test_header_is_written_once_and_rows_append(tmp_path: Path) -> None:
    writer = LocalAuditWriter(tmp_path / "audit")
    first = writer.write(audit_rows([result()], run_id="r1", execution_time=WHEN), WHEN)
    second = writer.write(audit_rows([result(), result()], run_id="r2", execution_time=WHEN), WHEN)

    assert first == second == tmp_path / "audit" / "audit_20250115.csv"
    header, rows = read_csv(first)
    assert header == list(AUDIT_COLUMNS)
    assert [r["run_id"] for r in rows] == ["r1", "r2", "r2"]
    assert rows[0]["error"] == "" and rows[0]["files_count"] == "2"


def test_one_file_per_utc_day_of_the_execution_time(tmp_path: Path) -> None:
    writer = LocalAuditWriter(tmp_path)
    late_evening_new_york = datetime(2025, 1, 15, 20, 0, tzinfo=timezone(timedelta(hours=-5)))
    path = writer.write(audit_rows([result()], run_id="r", execution_time=WHEN), late_evening_new_york)
    assert path.name == "audit_20250116.csv"


def test_multi_line_errors_stay_one_field(tmp_path: Path) -> None:
    path = LocalAuditWriter(tmp_path).write([numbered_row(0, 0)], WHEN)
    assert_complete(path, writers=1, per_writer=1)


def test_unknown_column_is_rejected_before_anything_is_written(tmp_path: Path) -> None:
    writer = LocalAuditWriter(tmp_path)
    with pytest.raises(ValueError, match="secret"):
        writer.write([numbered_row(0, 0), {"job_id": "x", "secret": "y"}], WHEN)
    assert not (tmp_path / "audit_20250115.csv").exists()


# -- concurrency --------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_write_waits_for_the_file_lock(tmp_path: Path) -> None:
    # On a local disk, single appends rarely interleave even without a lock, so the
    # stress tests below could pass by luck: check directly that writers take the lock.
    path = tmp_path / "audit_20250115.csv"
    writer = LocalAuditWriter(tmp_path)
    with open(path, "a", encoding="utf-8") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        thread = threading.Thread(target=writer.write, args=([numbered_row(0, 0)], WHEN))
        thread.start()
        time.sleep(0.3)
        assert path.stat().st_size == 0, "the writer wrote while another held the lock"
        fcntl.flock(holder.fileno(), fcntl.LOCK_UN)
    thread.join(timeout=10)
    assert_complete(path, writers=1, per_writer=1)


@pytest.mark.timeout(120)
def test_concurrent_threads_lose_and_interleave_nothing(tmp_path: Path) -> None:
    writers, per_writer = 8, 50
    barrier = threading.Barrier(writers)
    threads = [
        threading.Thread(target=write_many, args=(str(tmp_path), w, per_writer, barrier))
        for w in range(writers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert_complete(tmp_path / "audit_20250115.csv", writers, per_writer)


@pytest.mark.timeout(180)
def test_concurrent_processes_lose_and_interleave_nothing(tmp_path: Path) -> None:
    writers, per_writer = 8, 50
    # spawn: each child is an independent interpreter, like separate Functions workers
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(writers)
    children = [
        ctx.Process(target=write_many, args=(str(tmp_path), w, per_writer, barrier))
        for w in range(writers)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=150)

    assert [c.exitcode for c in children] == [0] * writers
    assert_complete(tmp_path / "audit_20250115.csv", writers, per_writer)
