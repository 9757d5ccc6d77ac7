"""What the report shows, from metrics documents: attempts on one time axis, older documents
without attempt records, schema drift, per-source groups, the trend, and escaping in the HTML."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from typing import Any

from shared.history import RunSummary
from shared.metrics import build_metrics
from shared.report import render_report
from shared.report.model import build_view, drift_text
from shared.results import JobResult, record_attempt

T0 = dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.timezone.utc)


def job(name: str, status: str = "success", *, source: str = "shop", start: float = 0.0, seconds: float = 1.0,
        **extra: Any) -> JobResult:
    result = JobResult(job_id=f"{source}.{name}", source_type="sqlite", source_name=source, table_name=name,
                       load_type="FULL", status=status, rows_processed=100, duration_seconds=seconds)
    result.extra.update(started_at=(T0 + dt.timedelta(seconds=start)).isoformat(),
                        finished_at=(T0 + dt.timedelta(seconds=start + seconds)).isoformat(), **extra)
    return result


def retried(name: str, waits: float = 2.0) -> JobResult:
    """A job whose first attempt failed at 0-1 s and whose second ran at 1+waits .. 2+waits s."""
    result = job(name, "failed")
    result.error = "connection reset"
    record_attempt(result, 1)
    earlier = result.extra["attempts"]
    second = job(name, start=1 + waits)
    second.retry_count = 1
    record_attempt(second, 2, earlier)
    return second


def metrics_of(*results: JobResult, when: dt.datetime = T0, run_id: str = "run-1") -> dict[str, Any]:
    return build_metrics(list(results), pipeline_name="nightly", run_id=run_id, execution_time=when)


def test_attempts_and_waits_share_one_time_axis() -> None:
    first = job("orders", start=0.5, seconds=2)
    record_attempt(first, 1)
    view = build_view(metrics_of(first, retried("customers")))
    orders, customers = view.jobs
    assert [(a.number, a.start, a.end, a.status) for a in customers.timeline] == [(1, 0.0, 1.0, "failed"), (2, 3.0, 4.0, "success")]
    assert customers.timeline[0].error == "connection reset"
    assert customers.attempts == 2 and orders.attempts == 1
    assert orders.timeline[0].start == 0.5
    assert view.span == 4.0 and view.origin == T0
    assert view.max_parallel == 2  # orders (0.5-2.5) overlaps the first attempt (0-1)


def test_a_document_without_attempt_records_draws_the_last_attempt_only() -> None:
    old = job("orders", start=3)
    old.retry_count = 2
    view = build_view(metrics_of(old, job("customers")))
    orders = view.jobs[0]
    assert [(a.number, a.start) for a in orders.timeline] == [(3, 3.0)]
    assert orders.attempts == 3 and orders.earlier_unrecorded
    html = render_report(metrics_of(old, job("customers")))
    assert "earlier attempts not recorded" in html


def test_jobs_without_times_and_skipped_jobs() -> None:
    skipped = JobResult(job_id="crm.accounts", source_type="postgresql", source_name="crm", table_name="accounts",
                        load_type="FULL", status="skipped_circuit_open", error="circuit open: 5 failures")
    view = build_view(metrics_of(skipped, job("orders")))
    assert view.jobs[0].timeline == () and view.jobs[0].attempts == 0
    assert [(s.source_name, s.jobs, s.skipped) for s in view.sources] == [("crm", 1, 1), ("shop", 1, 0)]
    assert "(no times recorded)" in render_report(metrics_of(skipped, job("orders")))


def test_no_job_has_times() -> None:
    bare = JobResult(job_id="a.b", source_type="sqlite", source_name="a", table_name="b", load_type="FULL", status="failed",
                     error="x")
    view = build_view(metrics_of(bare))
    assert view.origin is None and view.span == 0.0 and view.max_parallel == 0
    assert "<html" in render_report(metrics_of(bare))


def test_schema_drift_as_one_line() -> None:
    text, count = drift_text({"orders": {"added": ["note"], "removed": ["old"], "changed": {"qty": {"from": "int32", "to": "string"}}}})
    assert text == "orders: added note; removed old; changed qty int32->string" and count == 3
    assert drift_text(None) == ("", 0) and drift_text({}) == ("", 0)


def summary(when: dt.datetime, run_id: str, health: float, rows: int = 10) -> RunSummary:
    return RunSummary(name=f"metrics_{when:%Y%m%d_%H%M%S}_{run_id}.json", execution_time=when.isoformat().replace("+00:00", "Z"),
                      run_id=run_id, ok=1, total=1, rows=rows, duration_seconds=5.0, health=health)


def test_trend_is_oldest_first_up_to_this_run() -> None:
    day = dt.timedelta(days=1)
    runs = [summary(T0 - 2 * day, "a", 80.0), summary(T0 + day, "later", 10.0), summary(T0 - day, "b", 90.0),
            RunSummary(name="metrics_broken.json", problem="ValueError: x")]
    view = build_view(metrics_of(job("orders"), run_id="now"), runs)
    assert [r.run_id for r in view.trend] == ["a", "b", "now"]
    assert view.trend[-1].health == 100.0
    assert build_view(metrics_of(job("orders"), run_id="now"), []).trend == ()  # one run: no trend
    html = render_report(metrics_of(job("orders"), run_id="now"), runs)
    assert html.count("<div class=\"chart\">") == 3


def test_every_value_is_escaped_and_only_the_report_script_may_run() -> None:
    hostile = "<script>alert(1)</script>"
    bad = job(hostile, "failed", source="a\"b'<c>", schema_drift={hostile: {"added": [hostile]}})
    bad.error = f"no such table {hostile}"
    record_attempt(bad, 1)
    html = render_report(metrics_of(bad, run_id=hostile))
    assert hostile not in html
    assert html.count("<script>") == 1 and html.count("</script>") == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a&quot;b&#x27;&lt;c&gt;" in html
    script = re.search(r"<script>(.*)</script>", html, re.S).group(1)  # type: ignore[union-attr]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    assert f"script-src &#x27;sha256-{digest}&#x27;" in csp and "default-src &#x27;none&#x27;" in csp
    assert "http://" not in html and "https://" not in html  # nothing to fetch


def test_an_attempt_refused_by_an_open_circuit_is_drawn_but_not_counted() -> None:
    failed = job("orders", "failed")
    failed.error = "timeout"
    record_attempt(failed, 1)
    failed.error = "timeout (not retried: circuit open)"
    failed.retry_count = 1
    record_attempt(failed, 2, failed.extra["attempts"], ran=False)
    view = build_view(metrics_of(failed))
    assert [a.status for a in view.jobs[0].timeline] == ["failed", "skipped_circuit_open"]
    assert view.jobs[0].attempts == 1


def test_a_malformed_document_still_renders() -> None:
    html = render_report({"run_id": "r", "summary": {"total_rows": "many", "health_score": "x"},
                          "jobs": [{"job_id": "a.b", "rows_processed": "n/a", "retry_count": None,
                                    "extra": {"attempts": [{"attempt": "one", "started_at": "2026-01-05T02:00:00Z"}, "junk"]}},
                                   "not a job"]})
    assert html.count("<tr data-i=") == 1 and "data-attempt=\"1\"" in html
