"""The TPC-H bench: its checks catch a wrong table, its targets fail `--check`, and at SF 0.01 our
CLI lands all 8 tables of PostgreSQL and MariaDB exactly as DuckDB generated them, with all
22 query answers equal (the correctness run CI does; no peers, no timings asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from bench.tpch_data import duckdb_connect, generate
from bench.tpch_schema import TABLES
from bench.runs import Runs
from bench.tpch_targets import TARGETS, Results, judge
from bench.tpch_verify import check_table, expected_checksums

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """DuckDB's own TPC-H tables at SF 0.01 (generated in a temporary folder)."""
    conn = duckdb_connect(str(generate(0.01, tmp_path_factory.mktemp("tpch"))), read_only=True)
    yield conn
    conn.close()


def _landed(native: Any, tmp_path: Path, table: str) -> pa.Table:
    """`table` as our source lands it: the spec's Arrow types."""
    spec = TABLES[table]
    data = native.execute(f"SELECT {', '.join(spec.column_names)} FROM {table}").to_arrow_table()
    return data.cast(pa.schema([(c.name, c.arrow_type) for c in spec.columns]))


def _write(data: pa.Table, path: Path) -> list[Path]:
    pq.write_table(data, str(path))
    return [path]


def test_a_faithful_table_verifies(native: Any, tmp_path: Path) -> None:
    expected = expected_checksums(native)
    files = _write(_landed(native, tmp_path, "orders"), tmp_path / "orders.parquet")
    check = check_table(expected["orders"], "orders", files, exact_types=True)
    assert check.ok, check.describe()
    assert check.describe() == "15,000/15,000 rows, checksum equal, types as the spec"


def test_one_changed_value_or_a_lost_row_fails(native: Any, tmp_path: Path) -> None:
    expected = expected_checksums(native)
    data = _landed(native, tmp_path, "orders")
    prices = data["o_totalprice"].to_pylist()
    prices[7] += 1
    changed = data.set_column(3, "o_totalprice", pa.array(prices, data.schema.field("o_totalprice").type))
    check = check_table(expected["orders"], "orders", _write(changed, tmp_path / "a.parquet"), exact_types=True)
    assert not check.ok and not check.checksum_equal
    lost = data.slice(1)
    check = check_table(expected["orders"], "orders", _write(lost, tmp_path / "b.parquet"), exact_types=True)
    assert not check.ok and check.landed_rows == 14_999


def test_types_are_exact_for_ours_and_padding_is_trimmed_for_peers_only(native: Any, tmp_path: Path) -> None:
    expected = expected_checksums(native)
    data = _landed(native, tmp_path, "region")
    widened = data.set_column(0, "r_regionkey", pc.cast(data["r_regionkey"], pa.int64()))
    check = check_table(expected["region"], "region", _write(widened, tmp_path / "w.parquet"), exact_types=True)
    assert check.checksum_equal and check.type_differences == {"r_regionkey": "int64 (want int32)"}
    padded = data.set_column(1, "r_name", pa.array([v.ljust(25) for v in data["r_name"].to_pylist()]))
    files = _write(padded, tmp_path / "p.parquet")
    assert not check_table(expected["region"], "region", files, exact_types=True).ok
    assert check_table(expected["region"], "region", files, exact_types=False).ok


def test_a_missed_target_counts_and_an_unmeasured_one_does_not() -> None:
    results = Results(compared=["lineitem"], tables_ok={"postgresql": 8}, queries_equal={"postgresql": 22})
    results.runs["postgresql"] = {"ours": Runs(100, [2.0], [100.0]), "reference": Runs(100, [1.0], [300.0])}
    lines, missed = judge(results, 1)
    assert missed == 1  # ours at 0.50x the reference; ingestr, MariaDB and the fixed cost not measured
    assert any("MISSED" in line and "ours / bare reference" in line and "0.50" in line for line in lines)
    assert any("500 small PostgreSQL jobs" in line and "measured by `python -m bench.small_jobs" in line
               for line in lines)
    assert any("12-job TPC-H workbook" in line and "measured by `python -m bench.tpch --concurrency" in line
               for line in lines)
    assert len(lines) == len(TARGETS) + 1
    results.runs["postgresql"]["ours"] = Runs(100, [1.0], [100.0])
    assert judge(results, 1)[1] == 0
    results.concurrency = 1.3  # the 12-job workbook took 1.3x its jobs' solo times / cores
    lines, missed = judge(results, 1)
    assert missed == 1 and any("MISSED" in line and "12-job TPC-H workbook" in line and "1.30" in line
                               for line in lines)


@pytest.mark.slow
def test_sf001_lands_every_table_and_all_22_answers_equal(pg_engine: Any, mariadb_engine: Any, tmp_path: Path,
                                                          unique_name: Any) -> None:
    env = {**os.environ, "BENCH_TPCH_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "bench.tpch", "--sf", "0.01", "--correctness-only",
                           "--database", unique_name("tpch_ci"), "--drop"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - started
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert out.count("tables verified: 8/8") == 2, out
    assert out.count("TPC-H queries: 22/22 answers equal") == 2, out
    assert "differs" not in out and "DIFF" not in out, out
    assert elapsed < 90, f"took {elapsed:.0f} s\n{out}"
