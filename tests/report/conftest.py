"""Fixtures of the report tests: a headless Chromium, a loopback HTTP server that logs what the
page asks for, and the folder where screenshots are kept as test artifacts."""

from __future__ import annotations

import os
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import ROOT, service_missing
from tests.report.browser import Browser, find_chromium

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR") or ROOT / "test-artifacts") / "report"
"""Screenshots of the reports the tests rendered (git-ignored; CI can keep the folder)."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium over CDP; skipped locally without it, a failure under CI."""
    binary = find_chromium()
    if binary is None:
        service_missing("chromium not installed (apt-get install chromium; .ci/run installs it)")
    chromium = Browser(binary)
    yield chromium
    chromium.close()


class _Handler(SimpleHTTPRequestHandler):
    requested: list[str]

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.requested.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class PageServer:
    """Serves one folder on loopback and records every path requested."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.requested: list[str] = []
        handler = type("Handler", (_Handler,), {"requested": self.requested})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def page_server(tmp_path: Path) -> Iterator[PageServer]:
    """An HTTP server on `tmp_path / "site"`."""
    folder = tmp_path / "site"
    folder.mkdir()
    server = PageServer(folder)
    yield server
    server.close()
