"""Run history and breaker controls against Azurite: metrics blobs written by the service's own
publisher, breaker entities in Table Storage, the CLI as a subprocess and the HTTP reset with a
real `func.HttpRequest`. The ETag tests interleave a second writer between the reset's read and
its write by wrapping the table client's `get_entity` (a seam for timing; every request still
goes to Azurite)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from typing import Any

import azure.functions as func
import pytest
from azure.data.tables import TableClient

from shared.breakers import BreakerSettings, CircuitBreaker, TableBreakerStore, TableStoreConflictError
from shared.breakers.admin import reset
from shared.breakers.table_store import CLIENT_OPTIONS
from shared.publish import AzurePublisher
from shared.results import FAILED, SUCCESS
from shared.steps import _ensure_container
from tests.conftest import ROOT
from tests.test_operator_controls import publish_run


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ingest", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"})


def table_names(env: Any) -> set[str]:
    return {t.name for t in env.account.table_service().list_tables()}


def azure_publisher(azure_env: Any) -> AzurePublisher:
    """The publisher a run of `azure_env` writes its metrics with (container and queue made)."""
    container = _ensure_container(azure_env.account.blob_service(), azure_env.container)
    queue = azure_env.account.queue_service().get_queue_client(azure_env.failures_queue)
    queue.create_queue()
    return AzurePublisher(container, queue)


def test_history_reads_the_metrics_blobs(azure_env: Any) -> None:
    publisher = azure_publisher(azure_env)
    container = publisher.container
    day = dt.datetime(2026, 4, 1, 2, 0, tzinfo=dt.timezone.utc)
    publish_run(publisher, "night-1", day, [SUCCESS, FAILED])
    publish_run(publisher, "night-2", day + dt.timedelta(days=1), [SUCCESS, SUCCESS, SUCCESS])
    container.upload_blob("metadata/audit/metrics_not_a_run.json", b"{}")  # another folder: ignored

    proc = cli("history")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[2] for line in lines] == ["night-2", "night-1"]
    assert "ok    3  failed    0" in lines[0] and "ok    1  failed    1" in lines[1]
    assert lines[0].startswith("2026-04-02 02:00:00Z")
    assert [line.split()[2] for line in cli("history", "--last", "1").stdout.strip().splitlines()] == ["night-2"]


def test_history_before_any_run_names_the_container(azure_env: Any) -> None:
    proc = cli("history")
    assert proc.returncode == 0 and proc.stdout.startswith("no runs in http://127.0.0.1:") \
        and f"/{azure_env.container}/metadata/" in proc.stdout


def open_in_table(env: Any, source: str, error: str = "connection refused") -> TableBreakerStore:
    store = TableBreakerStore.from_connection_string(env.account.connection_string, env.breaker_table)
    breaker = CircuitBreaker(store, BreakerSettings(failure_threshold=2))
    for _ in range(2):
        breaker.record_failure(source, error)
    return store


def test_breakers_list_and_reset_on_table_storage(azure_env: Any) -> None:
    empty = cli("breakers", "list")
    assert empty.returncode == 0 and empty.stdout.startswith("no breakers in TableBreakerStore(")
    assert azure_env.breaker_table not in table_names(azure_env)  # listing created nothing
    assert cli("breakers", "reset", "erp").returncode == 2

    store = open_in_table(azure_env, "erp", "connection refused by erp-db:5432")
    open_in_table(azure_env, "crm")
    listed = cli("breakers", "list")
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.strip().splitlines()
    assert [r.split()[:3] for r in rows[1:]] == [["crm", "OPEN", "2"], ["erp", "OPEN", "2"]]
    assert "connection refused by erp-db:5432" in rows[2]

    done = cli("breakers", "reset", "erp")
    assert done.returncode == 0, done.stderr
    state = store.get("erp")
    assert (state.state, state.consecutive_failures, state.opened_at, state.total_failures) == ("CLOSED", 0, None, 2)
    assert store.get("crm").state == "OPEN"
    unknown = cli("breakers", "reset", "nope")
    assert unknown.returncode == 2 and "no breaker named 'nope' in TableBreakerStore(" in unknown.stderr
    assert "AccountKey" not in unknown.stderr and azure_env.account.account_key not in unknown.stderr


def test_http_reset_on_table_storage(azure_env: Any) -> None:
    from starters.breakers import reset_breaker_http

    def post(source: str) -> func.HttpResponse:
        return reset_breaker_http(func.HttpRequest(method="POST", url=f"http://localhost:7071/api/breakers/{source}/reset",
                                                   body=b"", route_params={"source": source}))

    assert post("crm").status_code == 404  # no table yet
    assert azure_env.breaker_table not in table_names(azure_env)
    store = open_in_table(azure_env, "crm")
    answer = post("crm")
    body = json.loads(answer.get_body())
    assert answer.status_code == 200 and body["state"]["state"] == "CLOSED" and body["state"]["total_failures"] == 2
    assert store.get("crm").state == "CLOSED"
    assert post("other").status_code == 404
    assert post("bad-name").status_code == 400


class RacingClient:
    """A real TableClient whose `get_entity` lets another writer change the entity right after
    the read (`races` times), so the reader's ETag is stale when it writes."""

    def __init__(self, client: TableClient, rival: CircuitBreaker, source: str, races: int) -> None:
        self._client, self._rival, self._source, self.races = client, rival, source, races

    def get_entity(self, *args: Any, **kwargs: Any) -> Any:
        entity = self._client.get_entity(*args, **kwargs)
        if self.races > 0:
            self.races -= 1
            self._rival.record_failure(self._source, "late failure from a running job")
        return entity

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def racing_store(env: Any, source: str, races: int, max_attempts: int) -> tuple[TableBreakerStore, RacingClient]:
    rival = CircuitBreaker(TableBreakerStore.from_connection_string(env.account.connection_string, env.breaker_table),
                           BreakerSettings(failure_threshold=2))
    client = RacingClient(TableClient.from_connection_string(env.account.connection_string, env.breaker_table,
                                                             **CLIENT_OPTIONS), rival, source, races)
    return TableBreakerStore(client, create_table=False, max_attempts=max_attempts, backoff_seconds=0), client  # type: ignore[arg-type]


def test_reset_retries_after_a_concurrent_change_and_keeps_it(azure_env: Any) -> None:
    open_in_table(azure_env, "erp")
    store, client = racing_store(azure_env, "erp", races=1, max_attempts=5)
    state = reset(store, "erp")
    assert client.races == 0  # the rival did write between the reset's read and its write
    assert state is not None and state.state == "CLOSED" and state.consecutive_failures == 0
    # The rival's failure was not overwritten: the reset re-read it and applied itself on top.
    assert state.total_failures == 3 and state.last_error == "late failure from a running job"
    assert store.get("erp") == state


def test_reset_that_keeps_losing_fails_clearly_and_writes_nothing(azure_env: Any) -> None:
    open_in_table(azure_env, "erp")
    store, _ = racing_store(azure_env, "erp", races=10, max_attempts=3)
    with pytest.raises(TableStoreConflictError, match=r"gave up updating breaker 'erp' in table .* 3 times in a row"):
        reset(store, "erp")
    state = store.get("erp")
    assert state.state == "OPEN" and state.total_failures == 2 + 3  # the rival's writes, none of the reset's
