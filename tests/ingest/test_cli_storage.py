"""The CLI with an unreachable storage account: a one-line error naming the endpoint, exit 2, in
seconds (a real subprocess; the endpoint is a closed loopback port)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import AZURITE_KEY, ROOT, free_port


@pytest.mark.parametrize("command", ["run", "validate"])
def test_an_unreachable_workbook_blob_fails_fast_with_one_line(command: str, tmp_path: Path) -> None:
    port = free_port()  # nobody listens there: connections are refused
    env = {**os.environ, "PYTHONPATH": str(ROOT), "INGESTION_LOGS_DIR": str(tmp_path / "logs"),
           "AzureWebJobsStorage": f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
                                  f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"}
    env.pop("INGESTION_STORAGE", None)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "ingest", command, "az://config/x.xlsx"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert elapsed < 10, f"took {elapsed:.1f} s"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{port}" in lines[0] and lines[0].startswith("cannot read the workbook: storage ")
    assert "Traceback" not in result.stderr + result.stdout and AZURITE_KEY not in result.stderr
