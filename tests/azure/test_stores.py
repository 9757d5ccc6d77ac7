"""Blob-backed stores on Azurite: the run store and the append-blob audit writer."""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading
from typing import Any

from shared.audit import AUDIT_COLUMNS, AppendBlobAuditWriter
from shared.workbook.models import Job
from shared.results import JobResult
from shared.run_store import BlobRunStore
from shared.steps import _ensure_container


def container(env: Any, name: str) -> Any:
    return _ensure_container(env.account.blob_service(), name)


def test_run_store_round_trips_plans_and_results(azure_env: Any) -> None:
    store = BlobRunStore(container(azure_env, azure_env.container))
    jobs = [Job("sqlite", "shop", f"t{i}", "FULL", api_params={"k": i}) for i in range(3)]
    ref = store.save_plan("run/1:x", jobs)
    assert store.load_jobs(ref) == jobs
    assert store.load_result("run/1:x", 1) is None
    result = JobResult("shop.t1", "sqlite", "shop", "t1", "FULL", "success", rows_processed=5, extra={"a": 1})
    store.save_result("run/1:x", 1, result)
    assert store.load_result("run/1:x", 1) == result
    assert store.load_results("run/1:x") == {1: result}
    assert all(n.startswith("runs/run_1_x/") for n in azure_env.blob_names(azure_env.container))


def test_concurrent_audit_writers_lose_no_rows_and_write_one_header(azure_env: Any) -> None:
    client = container(azure_env, azure_env.container)
    day = dt.datetime(2026, 11, 26, 10, tzinfo=dt.timezone.utc)

    def writer(w: int) -> None:
        audit = AppendBlobAuditWriter(client)
        for batch in range(5):
            rows = [{"run_id": f"w{w}", "job_id": f"j{batch}-{r}", "error": "multi\nline, \"quoted\""} for r in range(5)]
            audit.write(rows, day)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    text = azure_env.read_blob(azure_env.container, "metadata/audit/audit_20261126.csv").decode()
    assert text.startswith(",".join(AUDIT_COLUMNS))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 8 * 5 * 5
    assert {r["error"] for r in rows} == {"multi\nline, \"quoted\""}
    assert sum(1 for line in text.splitlines() if line.startswith("run_id,")) == 1
