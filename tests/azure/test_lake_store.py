"""The lake's read-back on both stores: a data file's columns (ranged reads of a blob), the
schema-drift signature, lake paths from reported paths, and which days hold data (Azurite)."""

from __future__ import annotations

import io
from pathlib import Path
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.lake import TableLake, check_lake, drift


@pytest.fixture(params=["local", "azure", "azure_prefix"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> TableLake:
    """A lake table on a folder, an Azure container, and a folder inside an Azure container."""
    if request.param == "local":
        root = str(tmp_path / "lake")
    else:
        env = request.getfixturevalue("azure_env")
        root = f"az://{env.lake}" + ("/some/prefix" if request.param == "azure_prefix" else "")
    check_lake(root)  # creates the container
    return TableLake("erp", "orders", root)


def pq_bytes(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=1000)
    return out.getvalue()


def parquet(rows: int) -> bytes:
    """A data file as dlt writes it: the source's columns and dlt's own."""
    return pq_bytes(pa.table({"id": pa.array(range(rows), pa.int64()), "name": pa.array(["x"] * rows),
                              "_dlt_id": pa.array(["d"] * rows)}))


def test_signature_of_a_file_is_read_back_through_the_store(lake: TableLake) -> None:
    path = "erp/orders/2026/01/31/1.0.parquet"
    lake.store.write(path, parquet(50_000))  # the footer is a small part of the file
    assert drift.file_signature(lake, path) == {"id": "int64", "name": "string"}
    assert drift.file_signature(lake, path, keep={"id"}) == {"id": "int64"}
    assert lake.store.rel(lake.store.full(path)) == path


def test_record_and_compare_keeps_the_signature_in_the_lake(lake: TableLake) -> None:
    path = "erp/orders/2026/01/31/1.0.parquet"
    lake.store.write(path, parquet(3))
    assert drift.record_and_compare(lake, "orders", path) is None  # first load: nothing to compare
    assert lake.store.read("erp/_ingestion/schemas/orders.json") is not None
    lake.store.write(path, pq_bytes(pa.table({"id": pa.array(["a"]), "extra": pa.array([1])})))
    assert drift.record_and_compare(lake, "orders", path) == {
        "added": ["extra"], "removed": ["name"], "changed": {"id": {"from": "int64", "to": "string"}}}
    assert drift.stored_signature(lake, "orders") == {"id": "string", "extra": "int64"}


def test_has_data_lists_the_day_folders(lake: TableLake) -> None:
    assert not lake.has_data("orders")
    lake.store.write("erp/orders/2026/01/31/1.0.parquet", parquet(1))
    assert lake.has_data("orders") and lake.has_data("orders", except_day="2026/02/01")
    assert not lake.has_data("orders", except_day="2026/01/31")
    assert not lake.has_data("customers")
