"""The local run store ignores the temporary file of a result write a killed process left behind."""

from __future__ import annotations

from pathlib import Path

from shared.results import SUCCESS, JobResult
from shared.run_store import LocalRunStore, safe_key


def test_a_half_written_result_is_not_read(tmp_path: Path) -> None:
    store = LocalRunStore(tmp_path)
    result = JobResult(job_id="erp.t", source_type="postgresql", source_name="erp", table_name="t",
                       load_type="FULL", status=SUCCESS)
    store.save_result("run-1", 0, result)
    folder = next(tmp_path.rglob("results"))
    (folder / ".tmp-abc.json").write_text('{"job_id": "erp.t", "status"')  # killed mid-write
    assert list(store.load_results("run-1")) == [0]
    assert safe_key("run-1") in str(folder)
