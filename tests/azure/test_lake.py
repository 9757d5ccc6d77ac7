"""The lake on `az://` (Azurite): date layout, Parquet readable by pyarrow, incremental state
restored from the lake, and the destination pre-flight."""

from __future__ import annotations

import io
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from shared.workbook.models import Job
from shared.lake import PreflightError, check_lake
from shared.results import SplitPlan
from shared.runner import run_job
from tests.conftest import free_port


def test_full_job_lands_date_partitioned_parquet_in_azure(azure_env: Any, shop_db: Path) -> None:
    check_lake()  # creates the lake container
    result = run_job(Job("sqlite", "shop", "customers", "FULL"))
    assert result.status == "success", result.error
    names = [n for n in azure_env.blob_names(azure_env.lake) if n.endswith(".parquet")]
    assert len(names) == 1 and re.fullmatch(r"shop/customers/\d{4}/\d{2}/\d{2}/\d+\.\d+\.\w+\.parquet", names[0])
    table = pq.read_table(io.BytesIO(azure_env.read_blob(azure_env.lake, names[0])))
    assert sorted(table["name"].to_pylist()) == sorted(f"naïve {i}" for i in range(1, 11))
    again = run_job(Job("sqlite", "shop", "customers", "FULL"))
    assert again.status == "success"
    assert len([n for n in azure_env.blob_names(azure_env.lake) if n.endswith(".parquet")]) == 1  # same-day replace


def test_incremental_cursor_comes_back_from_the_lake_on_a_fresh_work_dir(
    azure_env: Any, shop_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_lake()
    job = Job("sqlite", "shop", "orders", "INCREMENTAL", watermark_column="updated_at", primary_key=("id",))
    assert run_job(job).rows_processed == 40
    with sqlite3.connect(shop_db) as conn:
        conn.executemany("INSERT INTO orders VALUES (?, 1, '2024-02-01 00:00:00')", [(i,) for i in range(41, 46)])
    monkeypatch.setenv("INGESTION_WORK_DIR", str(tmp_path / "a-new-machine"))
    second = run_job(job)
    assert (second.status, second.rows_processed) == ("success", 5), second.error
    assert run_job(job).rows_processed == 0
    assert any(n.startswith("shop/_dlt_pipeline_state/") for n in azure_env.blob_names(azure_env.lake))


def test_preflight_fails_fast_naming_a_wrong_host(azure_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    wrong = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={azure_env.account.account_key};"
             f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    monkeypatch.setenv("AzureWebJobsStorage", wrong)
    started = time.monotonic()
    with pytest.raises(PreflightError) as info:
        check_lake()
    assert time.monotonic() - started < 10
    assert f"127.0.0.1:{port}" in str(info.value) and azure_env.account.account_key not in str(info.value)


def test_preflight_reports_an_unwritable_local_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PreflightError, match="is not writable"):
        check_lake(str(blocker / "lake"))


def test_a_split_table_publishes_its_slices_in_azure(
    azure_env: Any, pg_engine: Any, pg_secrets: Any, unique_name: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa

    from shared.runner import publish_staged
    from tests.sources.test_postgresql import create_typed_table

    name = unique_name("azsplit")
    create_typed_table(pg_engine, name, 9_000)
    pg_secrets("erp")
    try:
        check_lake()
        job = Job("postgresql", "erp", name, "FULL", partition_column="id")
        assert run_job(job).status == "success"  # an earlier snapshot of the same day
        split = run_job(job, split_rows=4_000)
        assert isinstance(split, SplitPlan)
        ranges = split.ranges
        assert len(ranges) == 3
        staged = []
        for number, key_range in enumerate(ranges):
            part = run_job(job, key_range=key_range, slice_no=number)
            assert part.status == "success"
            staged.append(part.extra["staged"])
        published, _ = publish_staged(job, staged)
        names = [n for n in azure_env.blob_names(azure_env.lake, f"erp/{name}/") if n.endswith(".parquet")]
        assert len(published) == 3 and sorted(names) == sorted(p.split("/", 1)[1] for p in published)
        rows = sum(pq.read_table(io.BytesIO(azure_env.read_blob(azure_env.lake, n))).num_rows for n in names)
        assert rows == 9_000
        assert not [n for n in azure_env.blob_names(azure_env.lake, f"_staging/erp/{name}/") if n.endswith(".parquet")]
    finally:
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
