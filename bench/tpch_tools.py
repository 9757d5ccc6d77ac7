"""The tools the TPC-H bench compares, each as one command whose whole process is measured.

    python -m bench.tpch_tools reference|dlt <engine> <database> <out folder> <table>...

runs one of the two Python peers in this process (the bench times the process from start to
exit, imports included, like our CLI and ingestr). `commands()` builds the command line of
every tool, ours and ingestr included.

- ours: `python -m ingest run <workbook> --lake <out> --metrics-out <file>` in a fresh working
  folder (its logs, audit and state land there);
- reference: connectorx `read_sql(..., return_type="arrow", partition_on=<first key column>,
  partition_num=<cores>)` + `pyarrow.parquet.write_table`, per table; no dlt;
- dlt: `sql_table(backend="pyarrow", reflection_level="full_with_precision")` per table through
  one plain `dlt.pipeline` to the filesystem destination (Parquet);
- ingestr: `ingestr ingest ... --dest-uri parquet://<out>/<table>.parquet` per table (its parquet
  destination is one file), from `.venv-bench`.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from bench.tpch_data import Database, databases
from bench.tpch_schema import TABLES

ROOT = Path(__file__).resolve().parents[1]
BENCH_VENV = ROOT / ".venv-bench"
DLT_CHUNK_SIZE = 100_000
"""Rows per dlt chunk (dlt's default is 50,000)."""

TOOLS = ("ours", "reference", "dlt", "ingestr")
LABELS = {
    "ours": "ours: python -m ingest run",
    "reference": "bare connectorx + pq.write_table",
    "dlt": "plain dlt, pyarrow backend",
    "ingestr": "ingestr 1.1.22, parquet://",
}


def ingestr_binary() -> Path:
    """The ingestr executable of `.venv-bench` (built by `bench/setup`)."""
    return BENCH_VENV / "bin" / "ingestr"


def commands(tool: str, db: Database, tables: list[str], out: Path, workdir: Path) -> list[str]:
    """The command line that runs `tool` on `tables` of `db` into `out` (a shell line for ingestr)."""
    if tool == "ours":
        return [sys.executable, "-m", "ingest", "run", str(workdir / "workbook.xlsx"), "--lake", str(out),
                "--metrics-out", str(workdir / "metrics.json")]
    if tool in ("reference", "dlt"):
        return [sys.executable, "-m", "bench.tpch_tools", tool, db.engine, db.name, str(out), *tables]
    if tool == "ingestr":
        lines = []
        for table in tables:
            source_table = f"public.{table}" if db.engine == "postgresql" else f"{db.name}.{table}"
            lines.append(shlex.join([
                str(ingestr_binary()), "ingest", "--source-uri", db.url(), "--source-table", source_table,
                "--dest-uri", f"parquet://{out / table}.parquet", "--dest-table", table, "--yes", "--progress", "log",
                "--no-load-timestamp"]))
        return ["/bin/sh", "-c", " && ".join(lines)]
    raise ValueError(f"unknown tool {tool!r}")


def write_workbook_for(db: Database, tables: list[str], workdir: Path) -> None:
    """Our workbook: one FULL job per table, nothing else set (keys and slicing as the defaults pick)."""
    from shared.workbook import write_workbook

    write_workbook(workdir / "workbook.xlsx", [
        {"source_type": db.source_type, "source_name": db.source_name, "table_name": t, "load_type": "FULL",
         "enabled": "Y"} for t in tables])


def reference(db: Database, tables: list[str], out: Path) -> None:
    """Bare connectorx into one Arrow table per table, then `pq.write_table`; no dlt."""
    import connectorx as cx
    import pyarrow.parquet as pq

    for table in tables:
        data = cx.read_sql(db.url(), f"SELECT * FROM {table}", return_type="arrow",
                           partition_on=TABLES[table].primary_key[0], partition_num=os.cpu_count() or 2)
        (out / table).mkdir(parents=True, exist_ok=True)
        pq.write_table(data, str(out / table / f"{table}.parquet"))


def dlt_pyarrow(db: Database, tables: list[str], out: Path) -> None:
    """dlt's `sql_table` with the pyarrow backend through one plain pipeline to local Parquet."""
    import dlt
    from dlt.destinations import filesystem
    from dlt.sources.sql_database import sql_table

    import sqlalchemy as sa

    engine = sa.create_engine(db.sa_url())  # an engine: dlt's own URL parsing wants a password
    resources = [sql_table(credentials=engine, table=t, backend="pyarrow", reflection_level="full_with_precision",
                           chunk_size=DLT_CHUNK_SIZE) for t in tables]
    pipeline = dlt.pipeline(pipeline_name=f"tpch_{db.engine}", destination=filesystem(bucket_url=str(out)),
                            dataset_name="tpch", pipelines_dir=str(out.parent / "dlt_pipelines"))
    pipeline.extract(resources, write_disposition="replace", loader_file_format="parquet")
    pipeline.normalize()
    pipeline.load()
    engine.dispose()


def main() -> None:
    """Run one Python peer: `reference|dlt <engine> <database> <out> <table>...`."""
    tool, engine, name, out, *tables = sys.argv[1:]
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    run = {"reference": reference, "dlt": dlt_pyarrow}[tool]
    run(databases(name)[engine], tables, Path(out))


if __name__ == "__main__":
    main()
