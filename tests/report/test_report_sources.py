"""Where a report's metrics come from, on the local store: `python -m ingest report` as a user runs
it (a subprocess) and `GET /api/ingestions/{instance_id}/report` called with a real
`func.HttpRequest`. Metrics are published by the service's own publisher."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import azure.functions as func
import pytest

from shared.publish import LocalPublisher
from shared.report.store import LocalMetrics, by_run_id, from_file, latest
from shared.results import FAILED, SUCCESS
from tests.test_operator_controls import cli, local_env, publish_run  # noqa: F401  (local_env: fixture)

DAY = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def published(local_env: dict[str, str]) -> Path:  # noqa: F811
    """Four runs of the local store: two of one starter's instance id, and an unreadable document."""
    metrics_dir = Path(local_env["INGESTION_METRICS_DIR"])
    publisher = LocalPublisher(metrics_dir, Path(local_env["INGESTION_AUDIT_DIR"]),
                               Path(local_env["INGESTION_STATE_DIR"]) / "failures.jsonl")
    publish_run(publisher, "ingestion-jobs-0123456789abcdef", DAY, [SUCCESS, SUCCESS])
    publish_run(publisher, "run-mid", DAY + dt.timedelta(days=1), [SUCCESS, FAILED])
    publish_run(publisher, "ingestion-jobs-0123456789abcdef", DAY + dt.timedelta(days=2), [SUCCESS] * 3)
    publish_run(publisher, "run-new", DAY + dt.timedelta(days=3), [SUCCESS] * 4)
    (metrics_dir / "metrics_20260305_000000_broken.json").write_text("{not json")
    return metrics_dir


def chart_points(html: str) -> int:
    """Points of the first trend chart (0 without a trend)."""
    match = re.search(r'<div class="chart">(.*?)</div>', html, re.S)
    return match.group(1).count("<circle") if match else 0


def test_cli_reports_the_newest_readable_run_with_the_trend_of_the_last_runs(
        published: Path, local_env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "out" / "report.html"
    proc = cli("report", "--last", "3", "-o", str(out), env=local_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"report of run run-new: {out}"
    html = out.read_text()
    assert "run-new" in html and chart_points(html) == 3  # the broken newest document is skipped

    default = cli("report", "-o", str(out), env=local_env)
    assert default.returncode == 0 and chart_points(out.read_text()) == 4


def test_cli_reports_a_file_with_the_runs_before_it_in_its_folder(
        published: Path, local_env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    mid = next(published.glob("metrics_*_run-mid.json"))
    out = tmp_path / "mid.html"
    assert cli("report", str(mid), "-o", str(out), env=local_env).returncode == 0
    html = out.read_text()
    assert "run-mid" in html and chart_points(html) == 2

    copy = tmp_path / "elsewhere" / "m.json"  # a --metrics-out copy: no runs beside it
    copy.parent.mkdir()
    copy.write_text(mid.read_text())
    assert cli("report", str(copy), "-o", str(out), env=local_env).returncode == 0
    assert chart_points(out.read_text()) == 0


def test_cli_exits_2_with_one_line_when_there_is_nothing_to_report(local_env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    empty = cli("report", "-o", str(tmp_path / "r.html"), env=local_env)
    assert empty.returncode == 2 and empty.stderr.strip() == f"no runs in {local_env['INGESTION_METRICS_DIR']}"
    missing = cli("report", str(tmp_path / "nope.json"), "-o", str(tmp_path / "r.html"), env=local_env)
    assert missing.returncode == 2 and "nope.json" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    (tmp_path / "other.json").write_text('{"a": 1}')
    other = cli("report", str(tmp_path / "other.json"), "-o", str(tmp_path / "r.html"), env=local_env)
    assert other.returncode == 2 and "not a metrics document" in other.stderr
    assert not (tmp_path / "r.html").exists()


def test_store_finds_a_run_by_its_instance_id(published: Path) -> None:
    store = LocalMetrics(published)
    found = by_run_id(store, "ingestion-jobs-0123456789abcdef")
    assert found is not None and found.name.startswith("metrics_20260303_")  # the newest run of that id
    assert [s.run_id for s in found.trend] == ["ingestion-jobs-0123456789abcdef", "run-mid", "ingestion-jobs-0123456789abcdef"]
    assert by_run_id(store, "run-mid", runs=1).trend[-1].run_id == "run-mid"  # type: ignore[union-attr]
    assert by_run_id(store, "unknown") is None
    assert by_run_id(store, "ingestion-jobs") is None  # a prefix of an id is not the id
    assert by_run_id(store, "x" * 300) is None
    assert latest(LocalMetrics(published / "missing")) is None
    with pytest.raises(ValueError):
        from_file(published / "metrics_20260305_000000_broken.json")


def http_get(instance_id: str) -> func.HttpResponse:
    from starters.report import get_ingestion_report

    req = func.HttpRequest(method="GET", url=f"http://localhost:7071/api/ingestions/{instance_id}/report", body=b"",
                           route_params={"instance_id": instance_id})
    return get_ingestion_report(req)


def test_http_route_serves_the_report_of_a_run_and_404_for_an_unknown_one(published: Path) -> None:
    answer = http_get("run-mid")
    assert answer.status_code == 200 and answer.mimetype == "text/html" and answer.charset == "utf-8"
    html = answer.get_body().decode("utf-8")
    assert html.startswith("<!DOCTYPE html>") and ">run-mid<" in html and chart_points(html) == 2
    assert answer.headers["X-Content-Type-Options"] == "nosniff"

    missing = http_get("ingestion-nope-<script>")
    assert missing.status_code == 404 and missing.mimetype == "application/json"
    assert b"not found" in missing.get_body()
