"""The orchestration keeps its contract on a real run: every activity input and output, the
batch sub-orchestrations' input and output, the orchestrator's output and every custom status
validate strictly against the TypedDicts of shared/contract.py; a refused run's error reads back
as the refusal the CLI prints. The real app on the local durable runtime, SQLite sources."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Union

import pytest

from orchestrations import BATCH_ORCHESTRATOR, ORCHESTRATOR
from shared.contract import (BatchInput, BatchOutput, BreakerCheck, CustomStatus, DryRunOutput, Exported, ExportInput,
                             FinishSplitInput, JobAnswer, JobAttempt, JobOutcome, LoadPlanInput, Plan, RunOutput, RunRef,
                             SliceAttempt, SliceOutcome, StartRequest, read_refusal)
from tests.test_contract import assert_conforms

ACTIVITIES: dict[str, tuple[Any, Any]] = {
    "load_plan": (LoadPlanInput, Plan),
    "check_breakers": (RunRef, BreakerCheck),
    "run_ingestion_job": (JobAttempt, JobAnswer),
    "run_ingestion_slice": (SliceAttempt, SliceOutcome),
    "finish_split_job": (FinishSplitInput, JobOutcome),
    "export_metrics": (ExportInput, Exported),
}
TASK_SCHEDULED, TASK_COMPLETED, SUB_CREATED, SUB_COMPLETED = 4, 5, 7, 8


def exchanged(history: list[dict[str, Any]]) -> list[tuple[str, Any, Any]]:
    """(name, input, output) of every activity and sub-orchestration in a history."""
    scheduled = {e["EventId"]: e for e in history if e["EventType"] in (TASK_SCHEDULED, SUB_CREATED)}
    return [(scheduled[e["TaskScheduledId"]]["Name"], json.loads(scheduled[e["TaskScheduledId"]]["Input"]),
             json.loads(e["Result"]))
            for e in history if e["EventType"] in (TASK_COMPLETED, SUB_COMPLETED)]


def test_a_run_with_batches_a_split_and_a_failed_job_keeps_the_contract(
    service_env: Path, sqlite_source: Any, workbook: Any, runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = sqlite_source("shop", 4)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO big VALUES (?, ?)", [(i, f"v{i}") for i in range(1, 61)])
    monkeypatch.setenv("INGESTION_BATCH_SIZE", "2")  # 5 runnable jobs: 3 batch sub-orchestrations
    monkeypatch.setenv("INGESTION_SPLIT_ROWS", "25")  # big: 3 slices
    rows = [{"source_type": "sqlite", "source_name": "shop", "table_name": f"t{k}"} for k in range(4)]
    rows += [{"source_type": "sqlite", "source_name": "shop", "table_name": "big", "partition_column": "id"},
             {"source_type": "sqlite", "source_name": "shop", "table_name": "missing"}]
    request = StartRequest(config=str(workbook(rows)), only=[], dry_run=False)
    statuses: list[Any] = []
    rt = runtime(max_parallel=2, on_status=lambda instance_id, status: statuses.append(status))
    result = rt.run(ORCHESTRATOR, request, instance_id="contract", timeout=300)
    assert result.succeeded, result.error
    assert_conforms(result.input, StartRequest)
    assert_conforms(result.output, RunOutput)
    assert result.output["summary"]["successful"] == 5 and result.output["summary"]["failed"] == 1

    instances = [rt.get_status(i.instance_id) for i in rt.list_instances(show_history=False)]
    batches = [i for i in instances if i.name == BATCH_ORCHESTRATOR]
    assert len(batches) == 3
    seen: set[str] = set()
    for instance in instances:
        for name, given, answered in exchanged(instance.history):
            kinds = (BatchInput, BatchOutput) if name == BATCH_ORCHESTRATOR else ACTIVITIES[name]
            assert_conforms(given, kinds[0])
            assert_conforms(answered, kinds[1])
            seen.add(name if not (name == "run_ingestion_job" and answered["status"] == "split") else "split")
    assert seen == {*ACTIVITIES, BATCH_ORCHESTRATOR, "split"}
    assert len(statuses) > 5
    for status in statuses:
        assert_conforms(status, CustomStatus)
    assert any("batches" in s for s in statuses) and any("batch" in s for s in statuses)


def test_a_dry_run_keeps_the_contract(service_env: Path, sqlite_source: Any, workbook: Any, runtime: Any) -> None:
    sqlite_source("shop", 2)
    path = workbook([{"source_type": "sqlite", "source_name": "shop", "table_name": f"t{k}"} for k in range(2)])
    statuses: list[Any] = []
    rt = runtime(on_status=lambda instance_id, status: statuses.append(status))
    result = rt.run(ORCHESTRATOR, StartRequest(config=str(path), only=[], dry_run=True), timeout=120)
    assert result.succeeded, result.error
    assert_conforms(result.output, Union[DryRunOutput])
    assert result.output["jobs"] == ["shop.t0", "shop.t1"]
    for status in statuses:
        assert_conforms(status, CustomStatus)


def test_refused_runs_read_back_as_the_refusal_the_cli_prints(
    service_env: Path, sqlite_source: Any, workbook: Any, runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqlite_source("shop", 1)
    good = workbook([{"source_type": "sqlite", "source_name": "shop", "table_name": "t0"}])
    bad = workbook([{"source_type": "postgres", "source_name": "shop", "table_name": "t0"},
                    {"source_type": "sqlite", "source_name": "shop", "table_name": "t9", "load_type": "DAILY"}], "bad.xlsx")
    rt = runtime()

    def refusal(config: Path, only: list[str]) -> Any:
        result = rt.run(ORCHESTRATOR, StartRequest(config=str(config), only=only, dry_run=False), timeout=120)
        assert not result.succeeded
        return read_refusal(result.error)

    workbook_refusal = refusal(bad, [])
    assert workbook_refusal.kind == "workbook" and len(workbook_refusal.lines) == 2
    assert workbook_refusal.lines[0].startswith("SourceConfig!A2 (source_type): 'postgres' is not one of")
    assert workbook_refusal.lines[1].startswith("SourceConfig!D3 (load_type): 'DAILY' is not one of")
    assert refusal(good, ["nope"]).kind == "no_match"
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", str(good))  # a file: no folder can be made there
    lake = refusal(good, [])
    assert lake.kind == "lake" and str(good) in lake.lines[0]


def test_a_history_with_the_earlier_payloads_replays_to_the_same_output(
    service_env: Path, sqlite_source: Any, workbook: Any, runtime: Any, app: Any
) -> None:
    """An orchestration started before the contract (plan jobs with `src`, a breaker check with
    `open`) replays after it: the orchestrator reads neither, and no input is compared on replay."""
    from ingest.durable import index_app
    from ingest.durable.runtime import UPPER_SCHEMA_VERSION, UPPER_SCHEMA_VERSION_NEW

    sqlite_source("shop", 2)
    path = workbook([{"source_type": "sqlite", "source_name": "shop", "table_name": f"t{k}"} for k in range(2)])
    rt = runtime()
    result = rt.run(ORCHESTRATOR, StartRequest(config=str(path), only=[], dry_run=False), instance_id="old", timeout=120)
    assert result.succeeded, result.error
    scheduled = {e["EventId"]: e["Name"] for e in result.history if e["EventType"] == TASK_SCHEDULED}
    old = []
    for event in result.history:
        if event["EventType"] == TASK_COMPLETED and scheduled[event["TaskScheduledId"]] in ("load_plan", "check_breakers"):
            answer = json.loads(event["Result"])
            if "jobs" in answer:
                answer["jobs"] = [{**j, "src": "shop"} for j in answer["jobs"]]
            else:
                answer["open"] = {}
            event = {**event, "Result": json.dumps(answer)}
        if event["EventType"] != 1:  # ExecutionCompleted: the replay decides the ending itself
            old.append({**event, "IsPlayed": True})
    assert sum('"src"' in e.get("Result", "") or '"open"' in e.get("Result", "") for e in old) == 2
    context = {"instanceId": "old", "isReplaying": True, "parentInstanceId": None, "input": json.dumps(result.input),
               "upperSchemaVersion": UPPER_SCHEMA_VERSION, "upperSchemaVersionNew": UPPER_SCHEMA_VERSION_NEW,
               "history": old}
    state = json.loads(index_app(app).orchestrator(ORCHESTRATOR).handle(json.dumps(context)))
    assert state["isDone"] is True and state["output"] == result.output
