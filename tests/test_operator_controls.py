"""Run history and breaker controls on the local stores: `python -m ingest history`,
`breakers list`, `breakers reset` as a user runs them (a subprocess), and the HTTP reset called
with a real `func.HttpRequest`. Metrics come from the real publisher, breaker states from the real
SQLite store and circuit breaker."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from shared.breakers import OPEN, BreakerSettings, BreakerState, CircuitBreaker, LocalBreakerStore
from shared.breakers.admin import BreakerNameError, check_name
from shared.metrics import build_metrics
from shared.publish import LocalPublisher
from shared.results import FAILED, SKIPPED_CIRCUIT_OPEN, SUCCESS, JobResult
from tests.conftest import ROOT

SECRET = "Hunter2-Pa55word"
DROPPED = ("AzureWebJobsStorage", "INGESTION_STORAGE")


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k.split("__")[0] not in DROPPED}
    return subprocess.run([sys.executable, "-m", "ingest", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**base, "PYTHONPATH": str(ROOT), "COLUMNS": "200", **env})


@pytest.fixture
def local_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"INGESTION_STATE_DIR": str(tmp_path / "state"), "INGESTION_METRICS_DIR": str(tmp_path / "metrics"),
           "INGESTION_AUDIT_DIR": str(tmp_path / "audit")}
    for key in DROPPED:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def result(i: int, status: str, rows: int, start: dt.datetime, seconds: float) -> JobResult:
    job = JobResult(f"shop.t{i}", "sqlite", "shop", f"t{i}", "FULL", status, rows_processed=rows,
                    duration_seconds=seconds, error=None if status == SUCCESS else "boom")
    job.extra.update(started_at=start.isoformat(), finished_at=(start + dt.timedelta(seconds=seconds)).isoformat())
    return job


def publish_run(publisher: Any, run_id: str, when: dt.datetime, statuses: list[str]) -> None:
    """One run's metrics through the service's own publisher: jobs start 1 s apart, 2 s each."""
    results = [result(i, s, 10 * (i + 1) if s == SUCCESS else 0, when + dt.timedelta(seconds=i), 2.0)
               for i, s in enumerate(statuses)]
    metrics = build_metrics(results, pipeline_name="p", run_id=run_id, execution_time=when)
    publisher.publish(metrics, results, when)


def test_history_lists_runs_newest_first_with_counts(local_env: dict[str, str]) -> None:
    publisher = LocalPublisher(Path(local_env["INGESTION_METRICS_DIR"]), Path(local_env["INGESTION_AUDIT_DIR"]),
                               Path(local_env["INGESTION_STATE_DIR"]) / "failures.jsonl")
    day = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.timezone.utc)
    publish_run(publisher, "run-old", day, [SUCCESS, SUCCESS])
    publish_run(publisher, "run-mid", day + dt.timedelta(days=1), [SUCCESS, FAILED, SKIPPED_CIRCUIT_OPEN])
    publish_run(publisher, "run-new", day + dt.timedelta(days=2), [SUCCESS] * 4)
    (Path(local_env["INGESTION_METRICS_DIR"]) / "metrics_20260301_000000_broken.json").write_text("{not json")

    proc = cli("history", env=local_env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[2] for line in lines[:3]] == ["run-new", "run-mid", "run-old"]
    new, mid, old = lines[:3]
    assert new.startswith("2026-03-03 02:00:00Z") and "ok    4" in new and "rows           100" in new
    assert "ok    1  failed    1  skipped    1" in mid and "rows            10" in mid
    assert "5.0 s" in new  # wall clock: 4 jobs starting 1 s apart, 2 s each (summed job time would be 8 s)
    assert lines[3].startswith("metrics_20260301_000000_broken.json: unreadable (JSONDecodeError")
    health_new = float(new.rsplit("health", 1)[1])
    health_mid = float(mid.rsplit("health", 1)[1])
    assert health_new == 100.0 and health_mid < 100.0

    two = cli("history", "--last", "2", env=local_env)
    assert [line.split()[2] for line in two.stdout.strip().splitlines()] == ["run-new", "run-mid"]
    assert cli("history", "--last", "0", env=local_env).returncode == 2


def test_history_with_no_runs_says_where_it_looked(local_env: dict[str, str]) -> None:
    proc = cli("history", env=local_env)
    assert proc.returncode == 0 and proc.stdout.strip() == f"no runs in {local_env['INGESTION_METRICS_DIR']}"


def open_breaker(store: LocalBreakerStore, source: str, error: str) -> None:
    breaker = CircuitBreaker(store, BreakerSettings(failure_threshold=2))
    for _ in range(2):
        breaker.record_failure(source, error)


def test_breakers_list_and_reset_on_the_local_store(local_env: dict[str, str]) -> None:
    store = LocalBreakerStore(Path(local_env["INGESTION_STATE_DIR"]) / "breakers.sqlite")
    open_breaker(store, "erp", "connection refused by db.example:5432")
    # Written straight to the store (the breaker itself redacts): the listing must redact too.
    store.update("crm", lambda s: BreakerState("crm", state=OPEN, consecutive_failures=5, total_failures=9,
                                               opened_at="2026-03-01T00:00:00+00:00",
                                               last_error=f"login failed for password {SECRET} " + "x" * 400,
                                               updated_at="2026-03-01T00:00:00+00:00"))
    listed = cli("breakers", "list", env={**local_env, "SOURCES__CRM__PASSWORD": SECRET})
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.strip().splitlines()
    assert rows[0].split() == ["SOURCE", "STATE", "FAILURES", "OPENED_AT", "LAST", "ERROR"]
    assert [r.split()[:2] for r in rows[1:]] == [["crm", "OPEN"], ["erp", "OPEN"]]
    assert "5 (9)" in rows[1] and "2 (2)" in rows[2] and "connection refused by db.example:5432" in rows[2]
    assert SECRET not in listed.stdout and "***" in rows[1] and len(rows[1]) < 260

    reset = cli("breakers", "reset", "erp", env=local_env)
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout.startswith("erp: CLOSED (total failures 2")
    state = store.get("erp")
    assert (state.state, state.consecutive_failures, state.opened_at, state.total_failures) == ("CLOSED", 0, None, 2)
    assert store.get("crm").state == OPEN  # only the named one

    unknown = cli("breakers", "reset", "nope", env=local_env)
    assert unknown.returncode == 2 and "no breaker named 'nope'" in unknown.stderr
    assert [s.source_name for s in store.list()] == ["crm", "erp"]  # nothing written for it
    bad = cli("breakers", "reset", "Robert'); DROP TABLE--", env=local_env)
    assert bad.returncode == 2 and "invalid breaker name" in bad.stderr and len(bad.stderr) < 400


def test_a_lake_breaker_can_be_reset_from_the_cli(local_env: dict[str, str]) -> None:
    store = LocalBreakerStore(Path(local_env["INGESTION_STATE_DIR"]) / "breakers.sqlite")
    open_breaker(store, "lake:/data/lake", "No space left on device")
    assert cli("breakers", "reset", "lake:/data/lake", env=local_env).returncode == 0
    assert store.get("lake:/data/lake").state == "CLOSED"


@pytest.mark.parametrize("name, ok", [("erp", True), ("erp_2", True), ("lake:az://lake", True), ("Erp", True),
                                      ("erp__x", False), ("2erp", False), ("", False), ("a" * 64, False),
                                      ("lake:", False), ("erp/../x", False), ("lake:a\nb", False)])
def test_breaker_names(name: str, ok: bool) -> None:
    if ok:
        assert check_name(name) == name
    else:
        with pytest.raises(BreakerNameError):
            check_name(name)


def post_reset(source: str) -> func.HttpResponse:
    from starters.breakers import reset_breaker_http

    req = func.HttpRequest(method="POST", url=f"http://localhost:7071/api/breakers/{source}/reset", body=b"",
                           route_params={"source": source})
    return reset_breaker_http(req)


def test_http_reset_on_the_local_store(local_env: dict[str, str]) -> None:
    assert post_reset("erp").status_code == 404  # no store yet: nothing is created
    assert not (Path(local_env["INGESTION_STATE_DIR"]) / "breakers.sqlite").exists()
    store = LocalBreakerStore(Path(local_env["INGESTION_STATE_DIR"]) / "breakers.sqlite")
    open_breaker(store, "erp", "timeout " + "y" * 600)

    response = post_reset("erp")
    body = json.loads(response.get_body())
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert body["source"] == "erp" and body["state"]["state"] == "CLOSED" and body["state"]["opened_at"] is None
    assert body["state"]["total_failures"] == 2 and len(body["state"]["last_error"]) <= 500
    assert len(response.get_body()) < 1500
    assert store.get("erp").state == "CLOSED"

    missing = post_reset("nope")
    assert missing.status_code == 404 and json.loads(missing.get_body()) == {"error": "not found", "source": "nope"}
    for bad in ("lake:x", "a" * 5000, "x y", "%2e%2e"):
        answer = post_reset(bad)
        assert answer.status_code == 400 and len(answer.get_body()) < 400, bad
        assert json.loads(answer.get_body())["error"] == "invalid source name"
