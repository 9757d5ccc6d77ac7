"""The run report from the metrics blobs on Azurite: `python -m ingest report` (a subprocess) and
`GET /api/ingestions/{instance_id}/report` with a real `func.HttpRequest`; metrics written by the
service's own publisher. An unreachable account answers 503 (CLI: exit 2, one line)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from shared.results import FAILED, SUCCESS
from tests.azure.test_operator_controls import azure_publisher, cli
from tests.conftest import free_port
from tests.report.test_report_sources import chart_points, http_get
from tests.test_operator_controls import publish_run


@pytest.fixture
def published(azure_env: Any) -> Any:
    publisher = azure_publisher(azure_env)
    day = dt.datetime(2026, 4, 1, 2, 0, tzinfo=dt.timezone.utc)
    publish_run(publisher, "ingestion-night-00aa", day, [SUCCESS, FAILED])
    publish_run(publisher, "ingestion-night-00aa", day + dt.timedelta(days=1), [SUCCESS, SUCCESS, SUCCESS])
    publish_run(publisher, "other-run", day + dt.timedelta(days=2), [SUCCESS])
    return azure_env


def test_cli_reports_the_newest_run_of_the_storage_account(published: Any, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    proc = cli("report", "--last", "2", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert ">other-run<" in html and chart_points(html) == 2


def test_http_route_reads_the_run_from_storage(published: Any) -> None:
    answer = http_get("ingestion-night-00aa")
    assert answer.status_code == 200, answer.get_body()[:300]
    html = answer.get_body().decode("utf-8")
    assert ">ingestion-night-00aa<" in html and chart_points(html) == 2  # the newest run of that id, and the one before
    assert html.count("<tr data-i=") == 3
    assert http_get("ingestion-night-00ab").status_code == 404


def test_unreachable_storage_is_503_and_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("AzureWebJobsStorage", f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                       f"AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    monkeypatch.delenv("INGESTION_STORAGE", raising=False)
    answer = http_get("ingestion-night-00aa")
    assert answer.status_code == 503 and b"storage unavailable" in answer.get_body()
    assert b"a2V5" not in answer.get_body()
    proc = cli("report", "-o", str(tmp_path / "r.html"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and f"127.0.0.1:{port}" in proc.stderr
