"""`python -m shared.blob_event`: the BlobCreated event a developer posts by hand under
`func start` (Azurite has no Event Grid). A real loopback HTTP server stands in for the
Functions host's webhook and records what arrives; the blob lives on Azurite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import ROOT


class Webhook:
    """A loopback HTTP server that records requests and answers with `status`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 202
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                hook.requests.append({"method": "POST", "path": self.path, "headers": dict(self.headers.items()),
                                      "body": self.rfile.read(length)})
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def post_event(blob: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "shared.blob_event", blob, *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_posts_a_blob_created_event_for_the_uploaded_workbook(azure_env: Any, webhook: Webhook, tmp_path: Path) -> None:
    container = azure_env.config_container
    azure_env.upload(container, "nightly jobs.xlsx", b"PK workbook bytes")
    props = azure_env.account.blob_service().get_blob_client(container, "nightly jobs.xlsx").get_blob_properties()

    result = post_event(f"{container}/nightly jobs.xlsx", "--host", webhook.url)
    assert result.returncode == 0, result.stderr
    (request,) = webhook.requests
    url = urlsplit(request["path"])
    assert request["method"] == "POST" and url.path == "/runtime/webhooks/blobs"
    assert parse_qs(url.query) == {"functionName": ["Host.Functions.start_ingestion_blob"]}
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["aeg-event-type"] == "Notification" and headers["content-type"] == "application/json"

    (event,) = json.loads(request["body"])  # Event Grid schema: an array of events
    assert event["eventType"] == "Microsoft.Storage.BlobCreated"
    assert event["subject"] == f"/blobServices/default/containers/{container}/blobs/nightly jobs.xlsx"
    assert {"id", "topic", "eventTime", "dataVersion", "metadataVersion"} <= set(event)
    data = event["data"]
    # What the blob extension reads: the blob's URL (account, container, name), its ETag and type.
    assert data["url"] == f"http://127.0.0.1:{azure_env.account.blob_host.split(':')[1]}/devstoreaccount1/{container}/nightly%20jobs.xlsx"
    assert data["eTag"] == props.etag.strip('"') and data["blobType"] == "BlockBlob"
    assert data["contentLength"] == len(b"PK workbook bytes")
    assert "posted BlobCreated" in result.stdout


def test_the_extension_key_travels_in_the_query_but_is_never_printed(azure_env: Any, webhook: Webhook) -> None:
    azure_env.upload(azure_env.config_container, "a.xlsx", b"x")
    result = post_event(f"{azure_env.config_container}/a.xlsx", "--host", webhook.url, "--code", "s3cret-key")
    assert result.returncode == 0, result.stderr
    assert parse_qs(urlsplit(webhook.requests[0]["path"]).query)["code"] == ["s3cret-key"]
    assert "s3cret-key" not in result.stdout + result.stderr


def test_a_missing_blob_posts_nothing(azure_env: Any, webhook: Webhook) -> None:
    result = post_event(f"{azure_env.config_container}/nope.xlsx", "--host", webhook.url)
    assert result.returncode == 2 and webhook.requests == []
    assert result.stderr.strip() == f"error: blob {azure_env.config_container}/nope.xlsx not found on {azure_env.account.blob_host}"


def test_a_refusing_or_absent_webhook_is_one_line_exit_1(azure_env: Any, webhook: Webhook) -> None:
    from tests.conftest import free_port

    azure_env.upload(azure_env.config_container, "a.xlsx", b"x")
    webhook.status = 400
    refused = post_event(f"{azure_env.config_container}/a.xlsx", "--host", webhook.url)
    assert refused.returncode == 1 and refused.stderr.strip().endswith("answered HTTP 400")
    absent = post_event(f"{azure_env.config_container}/a.xlsx", "--host", f"http://127.0.0.1:{free_port()}")
    assert absent.returncode == 1 and len(absent.stderr.strip().splitlines()) == 1 and "cannot reach" in absent.stderr
