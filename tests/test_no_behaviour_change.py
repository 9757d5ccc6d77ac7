"""No behaviour change (issue 11): the CLI's output, the lake layout, the metrics JSON and the app's
bindings compared with golden files recorded from the code before the reorganisation.

Two runs through the command line as a user types it (subprocesses): the demo, and a PostgreSQL
workbook of our own (a FULL table, an INCREMENTAL table run twice so its watermark advances, and a
job whose table does not exist). Plus every function the app indexes, with its bindings.

Volatile parts (the temp folder, dates, times, load ids, file ids, the random part of a run id,
durations, rates, process ids, the database name) are replaced by named placeholders by the
patterns below; everything else (keys, structure, counts, statuses, error texts, paths, the
width of the CLI's columns, schema hashes) is compared as it is.

Environment:
    INGESTION_UPDATE_GOLDEN=1: write the golden files instead of comparing.
    INGESTION_GOLDEN_CODE: the checkout whose CLI and app run (default: this one).
    INGESTION_GOLDEN_CLI: the CLI module there (default `ingest`; `shared.cli` before the move).

The golden files were recorded from d76dcb0 (the layout before the move) with
`INGESTION_GOLDEN_CODE=<checkout of d76dcb0> INGESTION_GOLDEN_CLI=shared.cli
INGESTION_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_no_behaviour_change.py`.
"""

from __future__ import annotations

import csv
import difflib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from shared.workbook import write_workbook
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # 10-15 s on an idle machine: three CLI runs and an app import in subprocesses

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("INGESTION_UPDATE_GOLDEN") == "1"
CODE = Path(os.environ.get("INGESTION_GOLDEN_CODE") or ROOT).resolve()
CLI = os.environ.get("INGESTION_GOLDEN_CLI") or "ingest"

_DROPPED_ENV = ("SOURCES__", "DESTINATION__", "INGESTION_", "AZURE", "AzureWebJobs", "CONFIG_CONTAINER", "RETRY_",
                "BREAKER_", "HEALTH_", "FUNCTIONS_", "WEBSITE_", "APPLICATIONINSIGHTS", "OTEL_", "PYTHONPATH")

# (pattern, replacement), applied in this order to every text compared. A date or a Unix time is
# replaced only when it lies within two days of now: it is the run's clock, not data.
_NEAR = 2 * 86400
VOLATILE: list[tuple[str, str]] = [
    (r"(?P<y>\d{4})-(?P<m>\d\d)-(?P<d>\d\d)[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?", "<TIME>"),
    (r"(ingestion-[A-Za-z0-9_.-]*?-[0-9a-f]{16})-[0-9a-f]{8}\b", r"\1-<RUN>"),  # random tail of a CLI run id
    (r"-(?P<y>\d{4})(?P<m>\d\d)(?P<d>\d\d)T\d{6}\b", "-<YYYYMMDD>T<HHMMSS>"),  # run-store folder
    (r"\bmetrics_(?P<y>\d{4})(?P<m>\d\d)(?P<d>\d\d)_\d{6}_", "metrics_<YYYYMMDD>_<HHMMSS>_"),
    (r"\baudit_(?P<y>\d{4})(?P<m>\d\d)(?P<d>\d\d)\.csv", "audit_<YYYYMMDD>.csv"),
    (r"\b(?P<y>\d{4})/(?P<m>\d\d)/(?P<d>\d\d)\b", "<YYYY>/<MM>/<DD>"),  # the lake's day folders
    (r"(?<![\d.])(?P<unix>1\d{9}\.\d{1,7})(?!\d)", "<LOAD_ID>"),  # dlt load ids
    (r"<LOAD_ID>\.[0-9a-f]{10}\.parquet\b", "<LOAD_ID>.<FILE_ID>.parquet"),
    (r"\|\[(\w+)\]\|\d+\|\d+\|", r"|[\1]|<PID>|<THREAD>|"),  # dlt's own log format
    (r"\bgolden_[0-9a-f]{8}\b", "<DB>"),  # this test's PostgreSQL database
]


def _replace_if_now(replacement: str) -> Callable[[re.Match[str]], str]:
    """Replace a match only when its date (y, m, d groups) or Unix time (unix) is near now."""

    def replace(match: re.Match[str]) -> str:
        groups = match.groupdict()
        if groups.get("unix"):
            when = float(groups["unix"])
        elif groups.get("y"):
            try:
                when = datetime(int(groups["y"]), int(groups["m"]), int(groups["d"]), tzinfo=timezone.utc).timestamp()
            except ValueError:
                return match[0]
        else:
            return match.expand(replacement)
        return match.expand(replacement) if abs(when - time.time()) < _NEAR else match[0]

    return replace


# CLI job lines: `{duration:>8.2f} s {rows_per_second:>12,.0f} rows/s`. Only those exact widths are
# replaced, so a changed format still shows.
_JOB_TIMING = re.compile(r" (?P<d> *\d[\d,]*\.\d\d) s (?P<r> *\d[\d,]*) rows/s")

# Metrics and manifest values that differ on every run (strings are handled by VOLATILE).
VOLATILE_NUMBERS = {"duration_seconds", "rows_per_second", "total_duration_seconds", "avg_throughput", "committed_at"}


def normalise(text: str, tmp: Path) -> str:
    """The text with the temp folder and every VOLATILE part replaced by its placeholder."""
    text = text.replace(str(tmp.resolve()), "<TMP>").replace(str(tmp), "<TMP>")
    for pattern, replacement in VOLATILE:
        text = re.sub(pattern, _replace_if_now(replacement), text)
    return text


def _timing(match: re.Match[str]) -> str:
    if len(match["d"]) == 8 and len(match["r"]) == 12:
        return " <DURATION> s <ROWS_PER_S> rows/s"
    return match[0]


def normalise_json(value: Any, tmp: Path, key: str = "") -> Any:
    """A JSON value with volatile numbers as `<key:type>` and strings through `normalise`."""
    if isinstance(value, dict):
        return {k: normalise_json(v, tmp, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise_json(v, tmp, key) for v in value]
    if key in VOLATILE_NUMBERS and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"<{key}:number>"
    if isinstance(value, str):
        return normalise(value, tmp)
    return value


def metrics_text(path: Path, tmp: Path) -> str:
    """The metrics JSON, normalised and indented (or a line saying it is missing)."""
    if not path.is_file():
        return f"no metrics file {path.name}\n"
    return json.dumps(normalise_json(json.loads(path.read_text("utf-8")), tmp), indent=2, ensure_ascii=False) + "\n"


def cli_text(result: subprocess.CompletedProcess[str], tmp: Path) -> str:
    """Exit code, stdout and stderr as one normalised text.

    A stderr line repeated word for word is kept once: dlt's warn-once cache (an `lru_cache`) is
    not thread-safe, so two jobs starting together may both log its layout warning.
    """
    stdout = _JOB_TIMING.sub(_timing, normalise(result.stdout, tmp))
    stderr = "".join(dict.fromkeys(normalise(result.stderr, tmp).splitlines(keepends=True)))
    return f"exit code: {result.returncode}\n--- stdout\n{stdout}--- stderr\n{stderr}"


def layout(folder: Path, tmp: Path) -> str:
    """Every file under `folder` (sorted, normalised relative paths); for a Parquet file its rows
    and columns, for the lake's own JSON (`_ingestion/`) and the failure events their normalised
    content."""
    lines = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        line = normalise(path.relative_to(folder).as_posix(), tmp)
        if path.suffix == ".parquet":
            meta = pq.read_metadata(path)
            columns = ", ".join(f"{f.name}: {f.type}" for f in meta.schema.to_arrow_schema())
            line += f"  rows={meta.num_rows}  [{columns}]"
        elif "_ingestion" in path.parts and path.suffix == ".json":
            line += "  " + json.dumps(normalise_json(json.loads(path.read_text("utf-8")), tmp), sort_keys=True)
        elif path.name == "failure_events.jsonl":  # the local stand-in for the failures queue
            events = [json.dumps(normalise_json(json.loads(e), tmp), sort_keys=True) for e in path.read_text("utf-8").splitlines()]
            line += "".join(f"\n    {event}" for event in events)
        lines.append(line)
    return "\n".join(sorted(lines)) + "\n"


def audit(folder: Path, tmp: Path) -> str:
    """The audit CSVs under `folder`: header and rows, volatile numbers as `<column:number>`."""
    lines = []
    for path in sorted(folder.glob("*.csv")):
        rows = list(csv.reader(path.read_text("utf-8").splitlines()))
        header = rows[0] if rows else []
        lines.append(normalise(path.name, tmp))
        lines.append(",".join(header))
        for row in rows[1:]:
            cells = [f"<{name}:number>" if name in VOLATILE_NUMBERS and cell else normalise(cell, tmp)
                     for name, cell in zip(header + [""] * len(row), row)]
            lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def run_cli(*args: str, cwd: Path, tmp: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m <CLI> args...` from the checkout under test, with no inherited service settings
    (dlt's scratch folders go to `tmp`/work, outside the folders compared)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_ENV)}
    full_env = {**base, "PYTHONPATH": str(CODE), "RUNTIME__DLTHUB_TELEMETRY": "false", "COLUMNS": "200",
                "NO_COLOR": "1", "TERM": "dumb", "PYTHONIOENCODING": "utf-8", "INGESTION_WORK_DIR": str(tmp / "work"),
                **(env or {})}
    return subprocess.run([sys.executable, "-m", CLI, *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, encoding="utf-8", timeout=300)


class Golden:
    """Compares texts with the files under `tests/golden/<scenario>/`, or writes them (UPDATE)."""

    def __init__(self, scenario: str) -> None:
        self.folder = GOLDEN / scenario
        self.diffs: list[str] = []

    def check(self, name: str, actual: str) -> None:
        path = self.folder / name
        if UPDATE:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, encoding="utf-8")
            return
        expected = path.read_text(encoding="utf-8") if path.exists() else ""
        if actual != expected:
            rel = path.relative_to(ROOT).as_posix()
            self.diffs.append("".join(difflib.unified_diff(
                expected.splitlines(keepends=True), actual.splitlines(keepends=True),
                fromfile=f"{rel} (golden)", tofile=f"{rel} (this run)")))

    def assert_same(self) -> None:
        if self.diffs:
            pytest.fail("behaviour changed (issue 11 allows none); if the change is intended, rerun with "
                        "INGESTION_UPDATE_GOLDEN=1 and commit the new golden files:\n" + "\n".join(self.diffs),
                        pytrace=False)


def test_demo_is_unchanged(tmp_path: Path) -> None:
    golden = Golden("demo")
    demo = tmp_path / "demo"
    result = run_cli("demo", "--dir", str(demo), cwd=tmp_path, tmp=tmp_path)
    golden.check("cli.txt", cli_text(result, tmp_path))
    golden.check("layout.txt", layout(demo, tmp_path))
    golden.check("metrics.json", metrics_text(demo / "metrics.json", tmp_path))
    golden.check("audit.txt", audit(demo / "audit", tmp_path))
    golden.assert_same()


# --- PostgreSQL ---------------------------------------------------------------------------------

PG_SOURCE = "golden_pg"


@pytest.fixture
def pg_database(pg_engine: sa.Engine) -> Iterator[sa.Engine]:
    """A fresh database `golden_<8 hex>` (fixed table names; the name itself is normalised)."""
    name = f"golden_{uuid.uuid4().hex[:8]}"
    admin = pg_engine.execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    engine = sa.create_engine(pg_engine.url.set(database=name))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def _create_tables(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, balance numeric(10, 2), "
            "created_at timestamp NOT NULL)"))
        conn.execute(sa.text(
            "INSERT INTO customers SELECT g, 'customer ' || g, CASE WHEN g % 7 = 0 THEN NULL ELSE g * 1.25 END, "
            "timestamp '2024-01-01' + g * interval '1 hour' FROM generate_series(1, 30) g"))
        conn.execute(sa.text(
            "CREATE TABLE events (id integer PRIMARY KEY, kind text NOT NULL, amount bigint, "
            "updated_at timestamp NOT NULL)"))
        conn.execute(sa.text(
            "INSERT INTO events SELECT g, (ARRAY['new', 'paid', 'shipped'])[g % 3 + 1], g * 100, "
            "timestamp '2024-01-01' + g * interval '1 minute' FROM generate_series(1, 40) g"))


def _change_events(engine: sa.Engine) -> None:
    """Five new rows and two updated ones, all past the first run's watermark."""
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO events SELECT g, 'late', g, timestamp '2024-02-01' + g * interval '1 minute' "
            "FROM generate_series(41, 45) g"))
        conn.execute(sa.text("UPDATE events SET kind = 'refunded', updated_at = timestamp '2024-03-01' WHERE id IN (20, 21)"))


def test_postgresql_run_is_unchanged(tmp_path: Path, pg_database: sa.Engine) -> None:
    golden = Golden("postgresql")
    _create_tables(pg_database)
    folder = tmp_path / "run"  # the CLI's working directory: state, logs, metrics, audit, lake
    workbook = folder / "jobs.xlsx"
    write_workbook(workbook, [
        {"source_type": "postgresql", "source_name": PG_SOURCE, "table_name": "customers", "load_type": "FULL",
         "enabled": "Y", "primary_key": "id"},
        {"source_type": "postgresql", "source_name": PG_SOURCE, "table_name": "events", "load_type": "INCREMENTAL",
         "enabled": "Y", "primary_key": "id", "watermark_column": "updated_at", "last_watermark": "2024-01-01T00:10:00"},
        {"source_type": "postgresql", "source_name": PG_SOURCE, "table_name": "not_there", "load_type": "FULL",
         "enabled": "Y"},
    ])
    url = pg_database.url
    prefix = f"SOURCES__{PG_SOURCE.upper()}__"
    env = {prefix + "HOST": str(url.host), prefix + "PORT": str(url.port or 5432), prefix + "DATABASE": str(url.database),
           prefix + "USERNAME": str(url.username), "RETRY_DATABASE_FIRST_INTERVAL_MS": "100"}
    lake = folder / "lake"
    for number in (1, 2):
        if number == 2:
            _change_events(pg_database)
        metrics = folder / f"metrics{number}.json"
        result = run_cli("run", workbook.name, "--lake", str(lake), "--metrics-out", metrics.name, cwd=folder, tmp=tmp_path,
                         env=env)
        golden.check(f"run{number}_cli.txt", cli_text(result, tmp_path))
        golden.check(f"run{number}_metrics.json", metrics_text(metrics, tmp_path))
        golden.check(f"run{number}_layout.txt", layout(folder, tmp_path))
        golden.check(f"run{number}_audit.txt", audit(folder / "audit", tmp_path))
    golden.assert_same()


# --- the app's bindings ---------------------------------------------------------------------------

_BINDINGS_SCRIPT = """
import json
from function_app import app
functions = []
for f in app.get_functions():
    spec = json.loads(f.get_function_json())
    spec["bindings"] = sorted(spec["bindings"], key=lambda b: json.dumps(b, sort_keys=True))
    functions.append({"name": f.get_function_name(), "is_http": f.is_http_function(),
                      "settings": f._settings and {k: s.get_dict_repr() for k, s in f._settings.items()}, **spec})
print(json.dumps(sorted(functions, key=lambda f: f["name"]), indent=2, sort_keys=True, default=str))
"""


def test_app_bindings_are_unchanged() -> None:
    golden = Golden("app")
    base = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_ENV)}
    result = subprocess.run([sys.executable, "-c", _BINDINGS_SCRIPT], cwd=CODE, env={**base, "PYTHONPATH": str(CODE)},
                            capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert result.returncode == 0, result.stderr
    golden.check("bindings.json", result.stdout)
    golden.assert_same()
