"""The lake protocol on blob storage (Azurite: flat namespace): lease lock, manifest, roll-forward
of a crashed commit, and a pre-flight that leaves nothing behind."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from shared.workbook.models import Job
from shared.lake import LockTimeout, TableLake
from shared.lake import check_lake
from shared.runner import run_job


def parquet_names(env: Any, prefix: str) -> list[str]:
    return [n for n in env.blob_names(env.lake, prefix) if n.endswith(".parquet")]


def test_lease_lock_excludes_a_second_writer_and_expires_when_the_holder_dies(
    azure_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_lake()
    monkeypatch.setenv("INGESTION_LOCK_WAIT_SECONDS", "2")
    monkeypatch.setenv("INGESTION_LOCK_LEASE_SECONDS", "15")
    table = TableLake("shop", "orders")
    with table.locked("run-a"):
        started = time.monotonic()
        with pytest.raises(LockTimeout, match="table orders is locked by run-a"):
            with TableLake("shop", "orders").locked("run-b"):
                pass
        assert time.monotonic() - started < 10
    with TableLake("shop", "orders").locked("run-b"):  # released: free again
        pass
    # A holder that dies keeps its lease only until it expires.
    crashed = TableLake("shop", "orders")
    lock_cm = crashed.locked("run-crashed")
    lock_cm.__enter__()
    crashed._lock._stop.set()  # the process is gone: no more renewals, no release
    monkeypatch.setenv("INGESTION_LOCK_WAIT_SECONDS", "40")
    started = time.monotonic()
    with TableLake("shop", "orders").locked("run-c"):
        assert 5 < time.monotonic() - started < 30


@pytest.mark.parametrize("load_type", ["FULL", "INCREMENTAL"])
def test_a_commit_that_crashed_after_its_journal_is_rolled_forward_by_the_next_job(
    azure_env: Any, shop_db: Path, monkeypatch: pytest.MonkeyPatch, load_type: str
) -> None:
    check_lake()
    job = Job("sqlite", "shop", "orders", load_type, watermark_column="updated_at" if load_type == "INCREMENTAL" else None)
    assert run_job(job).rows_processed == 40
    old = parquet_names(azure_env, "shop/orders/")
    with sqlite3.connect(shop_db) as conn:
        conn.executemany("INSERT INTO orders VALUES (?, 1, '2024-02-01 00:00:00')", [(i,) for i in range(41, 46)])

    def crash(self: TableLake, journal: dict) -> list:
        raise KeyboardInterrupt  # the process dies right after writing the journal

    real_apply = TableLake.apply
    monkeypatch.setattr(TableLake, "apply", crash)
    with pytest.raises(KeyboardInterrupt):
        run_job(job)
    monkeypatch.setattr(TableLake, "apply", real_apply)
    assert parquet_names(azure_env, "shop/orders/") == old  # nothing of the crashed commit is visible
    assert [n for n in azure_env.blob_names(azure_env.lake, "shop/_ingestion/commits/orders/")]

    again = run_job(job)  # rolls the journal forward first, then loads
    assert again.status == "success", again.error
    assert again.rows_processed == (45 if load_type == "FULL" else 0)  # INCREMENTAL: the 5 rows came with the journal
    names = parquet_names(azure_env, "shop/orders/")
    manifest = json.loads(azure_env.read_blob(azure_env.lake, next(
        n for n in azure_env.blob_names(azure_env.lake, "shop/_ingestion/manifests/orders/"))))
    assert sorted(n.rsplit("/", 1)[1] for n in names) == manifest["files"]
    import io

    import pyarrow.parquet as pq

    ids = sorted(i for n in names for i in pq.read_table(io.BytesIO(azure_env.read_blob(azure_env.lake, n)))["id"].to_pylist())
    assert ids == list(range(1, 46))
    assert not azure_env.blob_names(azure_env.lake, "shop/_ingestion/commits/")
    assert not azure_env.blob_names(azure_env.lake, "_staging/")


def test_preflight_leaves_no_probe_when_its_write_fails(azure_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.storage.blob import ContainerClient

    from shared.lake import PreflightError

    check_lake()
    real = ContainerClient.upload_blob

    def upload_then_fail(self: Any, name: str, data: Any, **kw: Any) -> Any:
        real(self, name, data, **kw)
        raise TimeoutError("the response was lost")

    monkeypatch.setattr(ContainerClient, "upload_blob", upload_then_fail)
    with pytest.raises(PreflightError):
        check_lake()
    assert not [n for n in azure_env.blob_names(azure_env.lake) if "preflight" in n]


def test_preflight_leaves_no_probe_in_a_full_local_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.lake import PreflightError

    real = Path.write_bytes

    def half_then_enospc(self: Path, data: bytes) -> int:
        real(self, b"")  # a full disk: the file is created, the bytes do not fit
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_then_enospc)
    with pytest.raises(PreflightError, match="No space left"):
        check_lake(str(tmp_path / "lake"))
    assert list((tmp_path / "lake").iterdir()) == []
