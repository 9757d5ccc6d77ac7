"""Runner behaviour that does not depend on the source type: failure hygiene and naming."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.config.models import Job
from shared.runner import pipeline_name, root_cause, run_job


def nested_items(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "tags": [{"tag": f"t{i}"}, {"tag": "x"}]} for i in range(1, n + 1)]


def test_failed_load_leaves_no_files_of_the_attempt(rest_server: Any, monkeypatch: Any, lake: Path) -> None:
    """A nested endpoint loads two tables; the child table's folder is blocked by a file, so the
    load fails after the parent's file was copied. The parent's file must be removed again."""
    server = rest_server({"items": nested_items(20)})
    monkeypatch.setenv("SOURCES__PUBAPI__BASE_URL", server.base_url)
    job = Job("api", "pubapi", "items", "FULL", api_endpoint="items", api_paginator="single_page")
    ok = run_job(job, bucket_url=str(lake))
    assert ok.status == "success", ok.error
    assert any("items__tags" in f for f in ok.files) and any("/items/" in f for f in ok.files)
    before = sorted(lake.rglob("*.parquet"))

    blocked = lake / "pubapi" / "items__tags"
    for path in sorted(blocked.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    blocked.rmdir()
    blocked.write_text("not a folder")
    failed = run_job(job, bucket_url=str(lake))
    assert failed.status == "failed" and failed.files == [] and failed.rows_processed == 0
    after = sorted(lake.rglob("*.parquet"))
    assert after == [p for p in before if "items__tags" not in str(p)]  # nothing new, nothing lost


def test_pipeline_names_are_stable_and_safe() -> None:
    assert pipeline_name(Job("oracle", "finance", "GL_ENTRIES", "FULL", schema_name="FIN")) == "ingest__finance__fin__gl_entries"
    assert pipeline_name(Job("api", "pub", "items", "FULL")) == "ingest__pub__items"


def test_root_cause_unwraps_chains() -> None:
    try:
        try:
            raise ConnectionRefusedError("refused")
        except ConnectionRefusedError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert isinstance(root_cause(outer), ConnectionRefusedError)
