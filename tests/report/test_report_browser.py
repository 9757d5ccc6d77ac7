"""The run report in a real browser (headless Chromium over CDP), asserted on its DOM.

- The report of a real 6-job run through `python -m ingest run` (SQLite and PostgreSQL sources):
  one job fails (a missing table), one is retried once (its PostgreSQL source sits behind a proxy
  that drops the first connection), two runs so the trend has points. It shows 6 rows, the
  failure's error text, 2 attempts and a retry wait for the retried job, no console error and no
  request but the page itself. Its screenshot is kept as a test artifact (and becomes the README's
  docs/report.png when REPORT_UPDATE_DOCS=1).
- A 500-job report renders in under 3 s, pages its table and timeline, and filters by source.
- Hostile names and errors (`<script>`, attribute breakers) render as text and run nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from shared.metrics import build_metrics
from shared.report import render_report
from shared.results import JobResult, record_attempt
from shared.workbook import write_workbook
from tests.conftest import ROOT
from tests.ingest.test_cli import cli
from tests.report.browser import Browser
from tests.report.conftest import ARTIFACTS, PageServer
from tests.tcp_proxy import FlakyProxy

PG_ROWS = 20_000
LOAD_LIMIT_SECONDS = 3.0


@pytest.fixture
def flaky_pg(pg_engine: sa.Engine) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy((pg_engine.url.host or "127.0.0.1", pg_engine.url.port or 5432), drop=1)
    yield proxy
    proxy.close()


@pytest.fixture
def pg_table(pg_engine: sa.Engine, unique_name: Any) -> Iterator[str]:
    name = unique_name("report_orders")
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {name} (id int PRIMARY KEY, amount numeric(12,2), note text)"))
        conn.execute(sa.text(f"INSERT INTO {name} SELECT g, g * 1.5, 'order ' || g FROM generate_series(1, {PG_ROWS}) g"))
    yield name
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


def shop_database(path: Path) -> Path:
    """A SQLite shop of four tables of different sizes."""
    with sqlite3.connect(path) as conn:
        for table, rows in (("customers", 2_000), ("products", 500), ("orders", 30_000), ("order_items", 60_000)):
            conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT, amount REAL)")
            conn.executemany(f"INSERT INTO {table} VALUES (?, ?, ?)", ((i, f"{table} {i}", i * 0.5) for i in range(1, rows + 1)))
    return path


def open_report(browser: Browser, server: PageServer, html: str, name: str = "report.html") -> float:
    """Serve `html`, open it, return the seconds from navigation to the page's ready mark."""
    (server.folder / name).write_text(html, encoding="utf-8")
    started = time.monotonic()
    browser.open(f"{server.url}/{name}")
    return time.monotonic() - started


def keep_screenshot(browser: Browser, name: str) -> Path:
    path = browser.screenshot(ARTIFACTS / name)
    assert path.stat().st_size > 10_000
    return path


def assert_self_contained(browser: Browser, server: PageServer, name: str) -> None:
    """Nothing but the page itself was requested, and nothing was logged as an error."""
    assert browser.console_errors() == []
    assert browser.requests() == [f"{server.url}/{name}"]
    assert server.requested == [f"/{name}"]


def visible_text(browser: Browser, selector: str) -> list[str]:
    return browser.evaluate(
        f"Array.from(document.querySelectorAll({json.dumps(selector)})).filter(e => e.checkVisibility())"
        ".map(e => e.textContent)")


# --- the report of a real run ---------------------------------------------------------------------


@pytest.mark.slow
def test_report_of_a_real_run_with_a_failure_and_a_retry(
    tmp_path: Path, browser: Browser, page_server: PageServer, flaky_pg: FlakyProxy, pg_table: str, pg_engine: sa.Engine,
) -> None:
    shop = shop_database(tmp_path / "shop.sqlite")
    workbook = tmp_path / "jobs.xlsx"
    write_workbook(workbook, [
        *({"source_type": "sqlite", "source_name": "shop", "table_name": t, "load_type": "FULL", "enabled": "Y"}
          for t in ("customers", "products", "orders", "order_items", "returns")),  # returns: no such table
        {"source_type": "postgresql", "source_name": "erp", "table_name": pg_table, "load_type": "FULL", "enabled": "Y"},
    ])
    env = {
        "SOURCES__SHOP__PATH": str(shop),
        "SOURCES__ERP__HOST": "127.0.0.1", "SOURCES__ERP__PORT": str(flaky_pg.port),
        "SOURCES__ERP__DATABASE": pg_engine.url.database or "test", "SOURCES__ERP__USERNAME": pg_engine.url.username or "postgres",
        "RETRY_DATABASE_FIRST_INTERVAL_MS": "500",
        "INGESTION_CHECK_SOURCES": "false",  # the pre-run check would take the proxy's dropped connection
        "INGESTION_STATE_DIR": str(tmp_path / "state"), "INGESTION_METRICS_DIR": str(tmp_path / "metrics"),
        "INGESTION_AUDIT_DIR": str(tmp_path / "audit"), "INGESTION_LOGS_DIR": str(tmp_path / "logs"),
    }
    for run in (1, 2):  # two runs: the report charts the trend over both
        flaky_pg.arm(1)
        result = cli("run", str(workbook), "--lake", str(tmp_path / "lake"), "--max-parallel", "3", cwd=tmp_path, env=env)
        assert result.returncode == 1, result.stdout + result.stderr
        if run == 1:
            with pg_engine.begin() as conn:  # the second run moves more rows
                conn.execute(sa.text(f"INSERT INTO {pg_table} SELECT g, g, 'late' FROM generate_series({PG_ROWS + 1}, {PG_ROWS * 2}) g"))

    metrics_files = sorted((tmp_path / "metrics").glob("metrics_*.json"))
    assert len(metrics_files) == 2
    metrics = json.loads(metrics_files[-1].read_text())
    jobs = {j["table_name"]: j for j in metrics["jobs"]}
    failed, retried = jobs["returns"], jobs[pg_table]
    assert failed["status"] == "failed" and failed["retry_count"] == 0 and failed["error"]
    assert retried["status"] == "success" and retried["retry_count"] == 1
    attempts = retried["extra"]["attempts"]
    assert [(a["attempt"], a["status"]) for a in attempts] == [(1, "failed"), (2, "success")]
    assert attempts[0]["finished_at"] <= attempts[1]["started_at"]  # the durable timer's wait lies between

    site = tmp_path / "site"
    made = cli("report", "--last", "5", "-o", str(site / "report.html"), cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stdout + made.stderr
    assert metrics["run_id"] in made.stdout
    browser.open(f"{page_server.url}/report.html")

    assert browser.evaluate("document.querySelectorAll('#jobs-table tbody tr').length") == 6
    assert visible_text(browser, "#jobs-table tbody tr") and len(visible_text(browser, "#jobs-table tbody tr")) == 6
    assert browser.evaluate("document.getElementById('run-id').textContent") == metrics["run_id"]
    assert browser.evaluate("document.querySelector('#total-jobs .value').textContent") == "6"
    assert browser.evaluate("document.querySelector('#health .value').textContent") == f"{metrics['summary']['health_score']:.1f}"
    # The failure's error text, visible in its row.
    row = f"#jobs-table tbody tr[data-i='{metrics['jobs'].index(failed)}']"
    assert browser.evaluate(f"document.querySelector(\"{row} td.error\").textContent") == failed["error"]
    assert browser.evaluate(f"document.querySelector(\"{row} td.error\").checkVisibility()") is True
    assert browser.evaluate(f"document.querySelector(\"{row}\").dataset.status") == "failed"
    # The retried job: 2 attempts in the table, two attempt bars and a retry wait on its lane.
    index = metrics["jobs"].index(retried)
    assert browser.evaluate(f"document.querySelector(\"#jobs-table tbody tr[data-i='{index}'] td.attempts\").textContent") == "2"
    lane = f"#lanes .lane[data-i='{index}']"
    assert browser.evaluate(f"Array.from(document.querySelectorAll(\"{lane} rect.attempt\")).map(r => r.dataset.attempt + ' ' + r.classList[1])") == [
        "1 failed", "2 success"]
    assert browser.evaluate(f"document.querySelectorAll(\"{lane} rect.wait\").length") == 1
    assert browser.evaluate("document.querySelectorAll('#lanes .lane').length") == 6
    # Every other job made one attempt.
    assert sorted(browser.evaluate("Array.from(document.querySelectorAll('#jobs-table td.attempts')).map(c => c.textContent)")) == [
        "1", "1", "1", "1", "1", "2"]
    # The trend: both runs, this one last.
    assert browser.evaluate("document.querySelectorAll('#trend .chart').length") == 3
    assert browser.evaluate("document.querySelectorAll('#trend .chart:first-child circle').length") == 2
    assert_self_contained(browser, page_server, "report.html")

    shot = keep_screenshot(browser, "real_run.png")
    if os.environ.get("REPORT_UPDATE_DOCS") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "report.png")

    # Sorting by a column orders the rows by it, both ways.
    browser.evaluate("document.querySelectorAll('#jobs-table th')[3].querySelector('button').click()")
    rows = browser.evaluate("Array.from(document.querySelectorAll('#jobs-table td.rows')).map(c => Number(c.dataset.v))")
    assert rows == sorted(rows) and len(rows) == 6
    browser.evaluate("document.querySelectorAll('#jobs-table th')[3].querySelector('button').click()")
    rows = browser.evaluate("Array.from(document.querySelectorAll('#jobs-table td.rows')).map(c => Number(c.dataset.v))")
    assert rows == sorted(rows, reverse=True)
    assert browser.evaluate("document.querySelectorAll('#jobs-table th')[3].getAttribute('aria-sort')") == "descending"
    assert browser.console_errors() == []


# --- 500 jobs -------------------------------------------------------------------------------------


def many_jobs_metrics(count: int, sources: int = 20) -> dict[str, Any]:
    """A run of `count` jobs over `sources` sources, every tenth retried, every 50th failed, with
    attempt times spread over an hour as 16 workers would run them."""
    origin = dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.timezone.utc)
    results = []
    for i in range(count):
        start = origin + dt.timedelta(seconds=(i // 16) * 110 + (i % 16) * 3)
        job = JobResult(job_id=f"src{i % sources}.table_{i:04d}", source_type="postgresql", source_name=f"src{i % sources}",
                        table_name=f"table_{i:04d}", load_type="FULL", status="success", rows_processed=1000 * (i + 1),
                        duration_seconds=60.0 + i % 40)
        job.rows_per_second = round(job.rows_processed / job.duration_seconds, 1)
        attempts = 2 if i % 10 == 0 else 1
        earlier = None
        for number in range(1, attempts + 1):
            job.extra["started_at"] = start.isoformat()
            job.extra["finished_at"] = (start + dt.timedelta(seconds=job.duration_seconds)).isoformat()
            job.status, job.error = ("failed", f"attempt {number}: connection reset") if number < attempts else ("success", None)
            record_attempt(job, number, earlier)
            earlier = job.extra["attempts"]
            start += dt.timedelta(seconds=job.duration_seconds + 4)
        job.retry_count = attempts - 1
        if i % 50 == 7:
            job.status, job.error, job.rows_processed, job.rows_per_second = "failed", "SourceConfig!C9: table not found", 0, 0.0
        results.append(job)
    return build_metrics(results, pipeline_name="nightly", run_id="ingestion-nightly-500", execution_time=origin)


def test_a_500_job_report_renders_fast_pages_and_filters(browser: Browser, page_server: PageServer) -> None:
    html = render_report(many_jobs_metrics(500))
    seconds = open_report(browser, page_server, html)
    assert seconds < LOAD_LIMIT_SECONDS, f"500-job report took {seconds:.2f} s to load"
    in_page = browser.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
    assert in_page < LOAD_LIMIT_SECONDS * 1000
    assert_self_contained(browser, page_server, "report.html")

    assert browser.evaluate("document.querySelectorAll('#jobs-table tbody tr').length") == 500
    assert len(visible_text(browser, "#jobs-table tbody tr")) == 50
    assert len(visible_text(browser, "#lanes .lane")) == 50
    assert browser.evaluate("document.querySelector('#jobs-pager .info').textContent") == "1\u201350 of 500 (page 1 of 10)"
    # Failures come first.
    assert browser.evaluate("Array.from(document.querySelectorAll('#jobs-table tbody tr')).slice(0, 10).map(r => r.dataset.status)") == [
        "failed"] * 10
    assert browser.evaluate("document.querySelectorAll('#sources-table tbody tr').length") == 20
    # Next page, then a source filter (applies to the timeline too).
    browser.evaluate("document.querySelector('#jobs-pager .next').click()")
    assert browser.evaluate("document.querySelector('#jobs-pager .info').textContent") == "51\u2013100 of 500 (page 2 of 10)"
    browser.evaluate("(() => { const s = document.getElementById('filter-source'); s.value = 'src3';"
                     " s.dispatchEvent(new Event('change')); })()")
    assert browser.evaluate("document.querySelector('#jobs-pager .info').textContent") == "1\u201325 of 25 (page 1 of 1)"
    assert set(browser.evaluate("Array.from(document.querySelectorAll('#jobs-table tbody tr')).filter(r => !r.hidden)"
                                ".map(r => r.dataset.source)")) == {"src3"}
    assert len(visible_text(browser, "#lanes .lane")) == 25
    # A retried job of the 500: two attempts and a wait on its lane.
    assert browser.evaluate("document.querySelectorAll(\"#lanes .lane[data-i='10'] rect.attempt\").length") == 2
    assert browser.evaluate("document.querySelectorAll(\"#lanes .lane[data-i='10'] rect.wait\").length") == 1
    assert browser.console_errors() == []
    keep_screenshot(browser, "500_jobs.png")


# --- escaping -------------------------------------------------------------------------------------

HOSTILE = "<script>window.__pwned = 1</script>"
ATTRIBUTE = "x\" onmouseover=\"window.__pwned=2\" data-x=\"<img src=x onerror=window.__pwned=3>"


def test_hostile_names_and_errors_render_as_text(browser: Browser, page_server: PageServer) -> None:
    job = JobResult(job_id=f"{ATTRIBUTE}.{HOSTILE}", source_type="sqlite", source_name=ATTRIBUTE, table_name=HOSTILE,
                    load_type="FULL", status="failed", error=f"no such table: {HOSTILE} {ATTRIBUTE}",
                    extra={"started_at": "2026-01-05T02:00:00+00:00", "finished_at": "2026-01-05T02:00:01+00:00",
                           "schema_drift": {HOSTILE: {"added": [ATTRIBUTE], "removed": [], "changed": {}}}})
    record_attempt(job, 1)
    ok = JobResult(job_id="shop.orders", source_type="sqlite", source_name="shop", table_name="orders", load_type="FULL",
                   status="success", rows_processed=10, duration_seconds=1.0,
                   extra={"started_at": "2026-01-05T02:00:00+00:00", "finished_at": "2026-01-05T02:00:01+00:00"})
    metrics = build_metrics([job, ok], pipeline_name=HOSTILE, run_id=HOSTILE,
                            execution_time=dt.datetime(2026, 1, 5, 2, 0))
    open_report(browser, page_server, render_report(metrics))

    assert browser.evaluate("window.__pwned === undefined") is True
    assert browser.evaluate("document.scripts.length") == 1  # the report's own
    assert browser.evaluate("document.querySelectorAll('img, [onmouseover], [onerror]').length") == 0
    assert browser.evaluate("document.getElementById('run-id').textContent") == HOSTILE
    assert browser.evaluate("document.querySelector('h1').textContent") == f"Run report: {HOSTILE}"
    assert browser.evaluate("document.querySelector(\"#jobs-table tbody tr[data-i='0'] td.job\").dataset.v") == job.job_id
    assert browser.evaluate("document.querySelector(\"#jobs-table tbody tr[data-i='0'] td.error\").textContent") == job.error
    assert browser.evaluate("document.querySelector(\"#jobs-table tbody tr[data-i='0']\").dataset.source") == ATTRIBUTE
    assert HOSTILE in browser.evaluate("document.querySelector(\"#jobs-table tbody tr[data-i='0'] td.drift\").textContent")
    assert browser.evaluate("Array.from(document.querySelectorAll('#filter-source option')).map(o => o.value)") == [
        "", "shop", ATTRIBUTE]
    # The source link filters by the hostile name as a plain value.
    browser.evaluate("Array.from(document.querySelectorAll('button.source-link')).find(b => b.textContent !== 'shop').click()")
    assert browser.evaluate("document.querySelector('#jobs-pager .info').textContent") == "1\u20131 of 1 (page 1 of 1)"
    assert browser.evaluate("Array.from(document.querySelectorAll('#jobs-table tbody tr')).filter(r => !r.hidden)"
                            ".map(r => r.dataset.source)") == [ATTRIBUTE]
    assert_self_contained(browser, page_server, "report.html")
