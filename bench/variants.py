"""The three measured ways from a table to local Parquet; each run happens in its own process.

    python -m bench.variants <variant> <engine> <table> <rows> <warm-up table> <warm-up rows> <out folder>

prints one JSON line: `{"seconds", "peak_rss_mb", "files"}`. The process imports its modules and
runs the variant once on a small warm-up table first (a Functions worker is warm after its
first activity; dlt imports many modules lazily on the first run), then times one run on the
table. Peak RSS is the process's high-water mark, warm-up included (`VmHWM` of
/proc/self/status: unlike `ru_maxrss`, it is not inherited from the parent across fork+exec,
so the parent's own memory never shows up in a variant's figure).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

import sqlalchemy as sa

from bench.tables import ENGINES, Engine

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

REFERENCE_PARTITIONS = 2


def reference(engine: Engine, table: str, rows: int, out: Path) -> None:
    """(a) The bare reference: connectorx into one Arrow table, then `pq.write_table`; no dlt."""
    import connectorx as cx
    import pyarrow.parquet as pq

    data = cx.read_sql(engine.connectorx_url(), f"SELECT * FROM {table}", return_type="arrow",
                       partition_on="id", partition_num=REFERENCE_PARTITIONS)
    pq.write_table(data, str(out / f"{table}.parquet"))


def dlt_pyarrow(engine: Engine, table: str, rows: int, out: Path) -> None:
    """(b) The old framework's way: dlt `sql_table` with the pyarrow backend, a plain pipeline
    to the filesystem destination (same layout and chunk size as our job path)."""
    import dlt
    from dlt.destinations import filesystem
    from dlt.sources.sql_database import sql_table

    from shared.lake.layout import LAYOUT
    from shared.sources import chunk_size_for

    db = engine.sa_engine()
    resource = sql_table(credentials=db, table=table, backend="pyarrow", reflection_level="full_with_precision",
                         chunk_size=chunk_size_for(rows))
    pipeline = dlt.pipeline(pipeline_name=f"bench_{table}", destination=filesystem(bucket_url=str(out), layout=LAYOUT),
                            dataset_name="bench", pipelines_dir=str(out.parent / "dlt"))
    pipeline.extract(resource, write_disposition="append", loader_file_format="parquet")
    pipeline.normalize()
    pipeline.load()
    db.dispose()


def job_path(engine: Engine, table: str, rows: int, out: Path) -> None:
    """(c) Our real job path: `shared.runner.run_job` for a FULL job, as the activity runs it.

    The job names `id` as its `partition_column`, as a workbook row for a large table would
    (PostgreSQL would pick its one-column primary key by itself).
    """
    from shared.workbook.models import Job
    from shared.runner import run_job

    job = Job(engine.source_type, "bench", table, "FULL", primary_key=("id",), partition_column="id")
    result = run_job(job, bucket_url=str(out))
    if result.status != "success":
        raise SystemExit(f"job failed: {result.error}")


VARIANTS: dict[str, Callable[[Engine, str, int, Path], None]] = {
    "reference": reference,
    "dlt_pyarrow": dlt_pyarrow,
    "job": job_path,
}


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # reported in kB
    raise RuntimeError("VmHWM not found in /proc/self/status (Linux only)")


def _job_secrets(engine: Engine) -> None:
    """Point the job's source name `bench` at the engine through dlt-style env vars."""
    url = sa.make_url(engine.url)
    values = {"HOST": url.host, "PORT": url.port, "DATABASE": url.database, "USERNAME": url.username,
              "PASSWORD": url.password}
    for key, value in values.items():
        if value is not None:
            os.environ[f"SOURCES__BENCH__{key}"] = str(value)


def main() -> None:
    """Warm up, time one run, print the JSON line."""
    variant, engine_name, table, rows, warmup_table, warmup_rows, out_arg = sys.argv[1:8]
    engine = ENGINES[engine_name]
    out = Path(out_arg)
    os.environ["INGESTION_WORK_DIR"] = str(out / "work")
    _job_secrets(engine)
    run = VARIANTS[variant]

    warm = out / "warmup"
    warm.mkdir(parents=True)
    run(engine, warmup_table, int(warmup_rows), warm)
    shutil.rmtree(warm)

    data = out / "data"
    data.mkdir()
    started = time.perf_counter()
    run(engine, table, int(rows), data)
    seconds = time.perf_counter() - started
    files = sorted(str(p) for p in data.rglob("*.parquet"))
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mib(), "files": files}))


if __name__ == "__main__":
    main()
