"""REST API jobs against a real json-server on loopback: pagination, incremental, auth secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.workbook.models import Job
from shared.runner import run_job
from shared.sources.api import ApiSource
from shared.secrets import EnvProvider, resolve_source_secrets
from tests.checksums import read_parquet

TOKEN = "tok-3x@mple/secret"


def items(n: int, start: int = 1, stamp: str = "2024-06-01T00:00:00Z") -> list[dict[str, Any]]:
    return [
        {"id": i, "name": f"item ☕ {i}\nsecond line", "price": round(i * 0.75, 2),
         "updated_at": stamp if i > 10 else f"2024-05-{i:02d}T00:00:00Z", "owner": None if i % 5 == 0 else f"u{i % 7}"}
        for i in range(start, start + n)
    ]


@pytest.fixture
def api_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    def _set(base_url: str) -> None:
        monkeypatch.setenv("SOURCES__PUBAPI__BASE_URL", base_url)
        monkeypatch.setenv("SOURCES__PUBAPI__TOKEN", TOKEN)

    return _set


def test_paginated_endpoint_lands_every_page(rest_server: Any, api_env: Any, lake: Path) -> None:
    server = rest_server({"items": items(230)})
    api_env(server.base_url)
    job = Job("api", "pubapi", "items", "FULL", api_endpoint="items", api_paginator="header_link",
              api_params={"_page": 1, "_limit": 50}, primary_key=("id",))
    result = run_job(job, bucket_url=str(lake))
    assert result.status == "success", result.error
    assert result.rows_processed == 230
    table = read_parquet(result.files)
    assert sorted(table["id"].to_pylist()) == list(range(1, 231))
    assert table.num_rows == 230 and "item ☕ 7\nsecond line" in table["name"].to_pylist()
    assert all(str(lake / "pubapi" / "items") in f for f in result.files)


def test_incremental_endpoint_sends_cursor_and_loads_only_new(rest_server: Any, api_env: Any, lake: Path) -> None:
    server = rest_server({"items": items(60)})
    api_env(server.base_url)
    job = Job("api", "pubapi", "items", "INCREMENTAL", api_endpoint="/items", api_paginator="header_link",
              api_params={"_page": 1, "_limit": 25}, watermark_column="updated_at",
              last_watermark="2024-05-05T00:00:00Z", api_incremental_param="updated_at_gte", primary_key=("id",))
    first = run_job(job, bucket_url=str(lake))
    assert (first.status, first.rows_processed) == ("success", 56), first.error  # ids 5..60
    server.write({"items": items(60) + items(4, start=61, stamp="2024-07-01T00:00:00Z")})
    second = run_job(job, bucket_url=str(lake))
    assert (second.status, second.rows_processed) == ("success", 4), second.error
    assert sorted(read_parquet(second.files)["id"].to_pylist()) == [61, 62, 63, 64]


def test_auth_from_secrets() -> None:
    job = Job("api", "pubapi", "items", "FULL", api_endpoint="items")
    bearer = ApiSource(job, resolve_source_secrets("pubapi", "api", [EnvProvider({"SOURCES__PUBAPI__BASE_URL": "http://h/api?sig=abc", "SOURCES__PUBAPI__TOKEN": TOKEN})]))
    assert bearer.auth() == {"type": "bearer", "token": TOKEN}
    assert bearer.location() == "http://h"  # no query string: it may carry credentials
    key = ApiSource(job, resolve_source_secrets("pubapi", "api", [EnvProvider({"SOURCES__PUBAPI__BASE_URL": "http://h", "SOURCES__PUBAPI__API_KEY": "k123", "SOURCES__PUBAPI__API_KEY_NAME": "apikey", "SOURCES__PUBAPI__API_KEY_LOCATION": "query"})]))
    assert key.auth() == {"type": "api_key", "name": "apikey", "api_key": "k123", "location": "query"}


def test_unreachable_api_fails_with_one_line(api_env: Any, lake: Path) -> None:
    from tests.conftest import free_port

    api_env(f"http://127.0.0.1:{free_port()}")
    result = run_job(Job("api", "pubapi", "items", "FULL", api_endpoint="items"), bucket_url=str(lake))
    assert result.status == "failed"
    assert result.error.startswith("api source 'pubapi' at http://127.0.0.1:") and "\n" not in result.error
    assert TOKEN not in result.error


def test_a_failing_api_is_asked_once_per_job_attempt(api_env: Any, lake: Path) -> None:
    """dlt's REST client retries 5x on a 5xx by default; inside our job attempt it must not:
    the orchestrator's retry policy is the only retry loop (a real HTTP server on loopback)."""
    import http.server
    import threading

    hits: list[str] = []

    class Failing(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            hits.append(self.path)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        api_env(f"http://127.0.0.1:{server.server_address[1]}")
        result = run_job(Job("api", "pubapi", "items", "FULL", api_endpoint="items"), bucket_url=str(lake))
    finally:
        server.shutdown()
        server.server_close()
    assert result.status == "failed"
    assert "503" in result.error and TOKEN not in result.error
    assert hits == ["/items"]
