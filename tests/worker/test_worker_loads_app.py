"""The app as the real Azure Functions Python worker loads and calls it (Python 3.13).

`app.get_functions()` (tests/test_function_app.py) skips what the host runs at start: the
worker's per-function binding validation, which rejects the whole app when one function fails
(seen in Azure: `dict[str, Any]` on an activity parameter). Here `probe.py` runs in the worker
venv (`.venv-worker`, Python 3.13 + `requirements.txt` + `azure-functions-runtime`, built by
`scripts/setup --with-worker`) and drives the worker library's own loader, validation, metadata,
load and invocation handlers. Stand-ins, since the Functions host cannot run here: the host's
protobuf classes (`host_protos.py`) and the Durable extension's management HTTP API, answered by
a small loopback server below (`start_new` / `get_status`, nothing of our code). The durable
client binding JSON is the one the extension sends (`ingest.durable.client.client_binding`).
The worker loads a copy of what the deployed package holds (`.funcignore` applied, see
`funcignore.py`): no local host (`ingest/`), bench, tests or scripts to lean on.

Without the worker venv or Python 3.13 these tests skip locally and fail under CI=true.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import ROOT, service_missing
from tests.worker.funcignore import copy_shipped

WORKER_PYTHON = ROOT / ".venv-worker" / "bin" / "python"
PROBE = Path(__file__).with_name("probe.py")
STARTERS = ("start_ingestion_http", "get_ingestion_status", "start_ingestion_timer", "start_ingestion_blob",
            "start_ingestion_queue")
ADMIN = ("reset_breaker_http", "get_ingestion_report")
"""Plain HTTP functions (no durable client)."""
ORCHESTRATORS = ("ingestion_orchestrator", "ingestion_batch")
ACTIVITIES = ("load_plan", "check_breakers", "run_ingestion_job", "run_ingestion_slice", "finish_split_job",
              "export_metrics")
PROBE_TIMEOUT = 300


@pytest.fixture(scope="session")
def worker_python() -> Path:
    """The worker venv's interpreter, checked to hold the worker library."""
    if not WORKER_PYTHON.exists():
        service_missing("worker venv .venv-worker missing (needs Python 3.13; run scripts/setup --with-worker)")
    if not (ROOT / ".venv-worker" / ".requirements.sha").exists():  # written after a complete install
        service_missing("worker venv .venv-worker is incomplete (run scripts/setup --with-worker)")
    check = subprocess.run([str(WORKER_PYTHON), "-c", "import azure_functions_runtime, sys; print(sys.version_info[:2])"],
                           capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        service_missing(f"worker venv is incomplete (run scripts/setup --with-worker): {check.stderr.strip()[-300:]}")
    return WORKER_PYTHON


def probe_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment for the probe, with the worker venv's interpreter first."""
    # Local stores only: no storage account or Functions-host markers leak in from the test run.
    dropped = ("PYTHONPATH", "VIRTUAL_ENV", "AzureWebJobsStorage", "INGESTION_STORAGE", "FUNCTIONS_WORKER_RUNTIME",
               "FUNCTIONS_WORKER_DIRECTORY", "WEBSITE_SITE_NAME")
    env = {k: v for k, v in os.environ.items() if k.split("__")[0] not in dropped}
    env.update({"PYTHONDONTWRITEBYTECODE": "1", "RUNTIME__DLTHUB_TELEMETRY": "false"})
    env.update(extra or {})
    return env


def validate(python: Path, app_dir: Path) -> dict[str, Any]:
    """Run the worker's indexing and per-function validation on `app_dir`; the probe's report."""
    proc = subprocess.run([str(python), str(PROBE), "validate", str(app_dir)], capture_output=True, text=True,
                          timeout=PROBE_TIMEOUT, env=probe_env(), cwd=str(app_dir))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "index_error" not in report, report["index_error"]
    return report


def copy_app(dest: Path) -> Path:
    """A copy of the deployed package (the repository less what `.funcignore` leaves out)."""
    copy_shipped(ROOT, dest)
    return dest


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The deployed package, shared by the tests that only read it."""
    return copy_app(tmp_path_factory.mktemp("wwwroot") / "app")


@pytest.fixture(scope="module")
def report(worker_python: Path, app_dir: Path) -> dict[str, Any]:
    return validate(worker_python, app_dir)


@pytest.fixture(scope="module")
def bindings(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Function name -> the raw bindings the worker hands the host."""
    return {name: entry["bindings"] for name, entry in report["functions"].items()}


def one(bindings: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [b for b in bindings if b["type"] == kind]
    assert len(found) == 1, (kind, bindings)
    return found[0]


# --- loading ------------------------------------------------------------------------------------


def test_worker_accepts_every_function(report: dict[str, Any]) -> None:
    rejected = {name: entry["error"] for name, entry in report["functions"].items() if entry["error"]}
    assert not rejected, "the worker rejects (and so the host loads no function):\n" + "\n".join(
        f"  {name}: {error}" for name, error in rejected.items())


def test_worker_library_versions(report: dict[str, Any]) -> None:
    versions = report["versions"]
    assert versions["azure-functions-runtime"].startswith("1.3.")
    assert int(versions["azure-functions"].split(".")[0]) >= 2  # 1.x does not install on 3.13


def test_function_names(bindings: dict[str, Any]) -> None:
    assert set(bindings) == {*STARTERS, *ADMIN, *ORCHESTRATORS, *ACTIVITIES}


def test_http_starters(bindings: dict[str, Any]) -> None:
    start = one(bindings["start_ingestion_http"], "httpTrigger")
    assert (start["route"], start["methods"], start["authLevel"]) == ("ingestions", ["POST"], "FUNCTION")
    status = one(bindings["get_ingestion_status"], "httpTrigger")
    assert (status["route"], status["methods"], status["authLevel"]) == ("ingestions/{instance_id}", ["GET"], "FUNCTION")
    for name in ("start_ingestion_http", "get_ingestion_status"):
        assert one(bindings[name], "http")["direction"] == "OUT"
    reset = one(bindings["reset_breaker_http"], "httpTrigger")
    assert (reset["route"], reset["methods"], reset["authLevel"]) == ("breakers/{source}/reset", ["POST"], "FUNCTION")
    assert sorted(b["type"] for b in bindings["reset_breaker_http"]) == ["http", "httpTrigger"]
    report = one(bindings["get_ingestion_report"], "httpTrigger")
    assert (report["route"], report["methods"], report["authLevel"]) == ("ingestions/{instance_id}/report", ["GET"], "FUNCTION")
    assert sorted(b["type"] for b in bindings["get_ingestion_report"]) == ["http", "httpTrigger"]


def test_timer_and_queue_starters(bindings: dict[str, Any]) -> None:
    timer = one(bindings["start_ingestion_timer"], "timerTrigger")
    assert timer["schedule"] == "%INGESTION_SCHEDULE%" and timer.get("runOnStartup") in (False, None)
    queue = one(bindings["start_ingestion_queue"], "queueTrigger")
    assert (queue["queueName"], queue["connection"]) == ("%INGESTION_QUEUE%", "AzureWebJobsStorage")


def test_blob_starter_uses_the_event_grid_source(bindings: dict[str, Any]) -> None:
    """Flex Consumption supports only Event Grid blob triggers (README, Azure Functions)."""
    blob = one(bindings["start_ingestion_blob"], "blobTrigger")
    assert (blob["path"], blob["connection"]) == ("%CONFIG_CONTAINER%/{name}.xlsx", "AzureWebJobsStorage")
    assert blob.get("source") == "EventGrid"


def test_durable_bindings(bindings: dict[str, Any]) -> None:
    for name in STARTERS:
        client = one(bindings[name], "durableClient")
        assert (client["name"], client["direction"]) == ("client", "IN")
    for name in ORCHESTRATORS:
        assert [b["type"] for b in bindings[name]] == ["orchestrationTrigger"]
        assert bindings[name][0]["name"] == "context"
    for name in ACTIVITIES:
        assert [(b["type"], b["name"]) for b in bindings[name]] == [("activityTrigger", "payload")]


def test_builtin_generic_annotations_are_rejected_and_all_named(worker_python: Path, tmp_path: Path) -> None:
    """The check can fail: activities annotated with builtin generics are each reported."""
    app = copy_app(tmp_path / "app")
    source = app / "activities" / "__init__.py"
    text = source.read_text()
    for name, annotation in (("load_plan", "dict[str, Any]"), ("export_metrics", "list[Any]")):
        text, count = re.subn(rf"(def {name}\(payload): [^)]*\)", rf"\1: {annotation})", text)
        assert count == 1, f"cannot find {name}'s parameter in activities/__init__.py"
    source.write_text(text)
    functions = validate(worker_python, app)["functions"]
    rejected = {name: entry["error"] for name, entry in functions.items() if entry["error"]}
    assert set(rejected) == {"load_plan", "export_metrics"}
    assert "binding payload has invalid non-type annotation dict[str, typing.Any]" in rejected["load_plan"]
    assert "list[typing.Any]" in rejected["export_metrics"]


# --- invocation -----------------------------------------------------------------------------


class DurableApi:
    """The Durable extension's management API on loopback: start_new and get_status only.

    Records each start; `get_status` answers 404 for unknown instances and Running for started
    ones, as the extension does.
    """

    def __init__(self) -> None:
        self.started: dict[str, Any] = {}
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                match = re.fullmatch(r"/durabletask/instances/([^/?]+)(\?.*)?", self.path)
                if not match:
                    return self._answer(400, {"Message": f"unexpected GET {self.path}"})
                instance_id = match.group(1)
                if instance_id not in api.started:
                    return self._answer(404)
                self._answer(202, {"name": "ingestion_orchestrator", "instanceId": instance_id,
                                   "runtimeStatus": "Running", "input": api.started[instance_id],
                                   "customStatus": None, "output": None,
                                   "createdTime": "2026-01-01T00:00:00Z", "lastUpdatedTime": "2026-01-01T00:00:00Z"})

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                match = re.fullmatch(r"/durabletask/orchestrators/([^/?]+)/([^/?]+)(\?.*)?", self.path)
                if not match:
                    return self._answer(400, {"ExceptionMessage": f"unexpected POST {self.path}"})
                name, instance_id = match.group(1), match.group(2)
                # The SDK posts the input already serialized, as a JSON string (`_get_json_input`).
                api.started[instance_id] = json.loads(json.loads(body)) if body else None
                self._answer(202, {"id": instance_id, "name": name})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.rpc_base_url = f"http://127.0.0.1:{self.server.server_address[1]}/durabletask/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class WorkerSession:
    """`probe.py serve`: one worker process, driven one JSON line at a time."""

    def __init__(self, python: Path, app_dir: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([str(python), str(PROBE), "serve", str(app_dir)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=probe_env(env), cwd=str(app_dir))
        self.stderr: list[str] = []
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    def call(self, op: str, **request: Any) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"op": op, **request}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "worker probe died: " + "".join(self.stderr)[-3000:]
        answer = json.loads(line)
        assert answer["status"] != "ProbeError", answer["message"]
        return answer

    def init(self) -> list[str]:
        """Worker init (indexing, as at host start), metadata and load; the loaded function names."""
        answer = self.call("init")
        assert answer["status"] == "Success", f"the worker did not load the app: {answer['message']}"
        return answer["functions"]

    def activity(self, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Invoke an activity as the host does (input as JSON TypedData); its decoded result."""
        answer = self.call("invoke", function=name, input_data={"payload": {"json": json.dumps(payload)}})
        assert answer["status"] == "Success", f"{name}: {answer['message']}"
        assert set(answer["return_value"]) == {"json"}, answer["return_value"]
        return json.loads(answer["return_value"]["json"])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def durable_api() -> Iterator[DurableApi]:
    api = DurableApi()
    yield api
    api.close()


@pytest.fixture
def worker_env(tmp_path: Path) -> dict[str, str]:
    """Local stores and lake for the invoked functions, and a SQLite source `shop` with one table."""
    import sqlite3

    db = tmp_path / "shop.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"item {i}") for i in range(5)])
    env = {"SOURCES__SHOP__PATH": str(db), "DESTINATION__FILESYSTEM__BUCKET_URL": str(tmp_path / "lake"),
           "INGESTION_WORK_DIR": str(tmp_path / "work"), "DLT_PROJECT_DIR": str(tmp_path / "project")}
    for setting, sub in (("INGESTION_STATE_DIR", "state"), ("INGESTION_METRICS_DIR", "metrics"),
                         ("INGESTION_AUDIT_DIR", "audit"), ("INGESTION_LOGS_DIR", "logs")):
        env[setting] = str(tmp_path / sub)
    return env


@pytest.fixture
def workbook(tmp_path: Path) -> Path:
    from shared.workbook import write_workbook

    return write_workbook(tmp_path / "jobs.xlsx", [{"source_type": "sqlite", "source_name": "shop",
                                                    "table_name": "items", "load_type": "FULL", "enabled": "Y"}])


def test_activities_run_through_the_worker_converters(worker_python: Path, worker_env: dict[str, str], app_dir: Path,
                                                      workbook: Path, tmp_path: Path) -> None:
    """A whole run, activity by activity, each input decoded and each result encoded by the
    worker's activity-trigger converter (a result it cannot encode fails the invocation)."""
    session = WorkerSession(worker_python, app_dir, worker_env)
    try:
        assert session.init() == sorted({*STARTERS, *ADMIN, *ORCHESTRATORS, *ACTIVITIES})
        key = "ingestion-worker-test-20260101T000000"
        plan = session.activity("load_plan", {"request": {"config": str(workbook), "only": None, "dry_run": False},
                                              "run_key": key})
        assert plan["jobs"] == [{"i": 0, "id": "shop.items", "type": "sqlite"}], plan
        breakers = session.activity("check_breakers", {"run_key": key, "plan_ref": plan["plan_ref"]})
        assert breakers["skipped"] == []
        outcome = session.activity("run_ingestion_job", {"run_key": key, "plan_ref": plan["plan_ref"],
                                                         "run_id": "worker-test", "index": 0, "attempt": 1})
        assert (outcome["status"], outcome["rows"]) == ("success", 5), outcome
        exported = session.activity("export_metrics", {"run_key": key, "plan_ref": plan["plan_ref"],
                                                       "run_id": "worker-test",
                                                       "execution_time": "2026-01-01T00:00:00+00:00", "crashed": []})
        assert (exported["summary"]["successful"], exported["summary"]["total_rows"]) == (1, 5), exported
        assert list((tmp_path / "lake" / "shop" / "items").rglob("*.parquet"))

        failed = session.call("invoke", function="load_plan", input_data={"payload": {"json": json.dumps(
            {"request": {"config": str(tmp_path / "missing.xlsx")}, "run_key": key})}})
        assert failed["status"] == "Failure" and "RuntimeError" in failed["message"]
    finally:
        session.close()


def test_orchestrator_episode_through_the_worker(worker_python: Path, worker_env: dict[str, str],
                                                app_dir: Path) -> None:
    """The first episode of the orchestrator as the extension delivers it (context JSON): the
    worker's orchestration-trigger converter returns the SDK's state with the load_plan call."""
    request = {"config": "config/jobs.xlsx", "only": None, "dry_run": True}
    now = "2026-01-01T00:00:00.000000Z"
    context = {
        "history": [
            {"EventType": 12, "EventId": -1, "IsPlayed": False, "Timestamp": now},
            {"EventType": 0, "EventId": -1, "IsPlayed": False, "Timestamp": now,
             "Name": "ingestion_orchestrator", "Input": json.dumps(request), "Version": ""},
        ],
        "input": json.dumps(request), "instanceId": "ingestion-worker-test", "isReplaying": False,
        "parentInstanceId": None, "upperSchemaVersion": 2, "upperSchemaVersionNew": 2,
    }
    session = WorkerSession(worker_python, app_dir, worker_env)
    try:
        session.init()
        answer = session.call("invoke", function="ingestion_orchestrator",
                              input_data={"context": {"string": json.dumps(context)}})
        assert answer["status"] == "Success", answer["message"]
        state = json.loads(answer["return_value"]["json"])
        assert state["isDone"] is False
        (action,), = state["actions"]
        assert action["functionName"] == "load_plan" and json.loads(action["input"])["request"] == request
    finally:
        session.close()


def test_http_starter_through_the_worker(worker_python: Path, worker_env: dict[str, str], app_dir: Path,
                                         workbook: Path, durable_api: DurableApi) -> None:
    """POST /api/ingestions as the host delivers it (RpcHttp + durable client JSON): 202 with the
    status URLs after start_new, then 409 while that run is going, 400 for a bad body."""
    from ingest.durable.client import client_binding

    client = json.dumps({**client_binding(), "rpcBaseUrl": durable_api.rpc_base_url})

    def post(body: bytes) -> dict[str, Any]:
        answer = session.call("invoke", function="start_ingestion_http", input_data={
            "req": {"http": {"method": "POST", "url": "http://localhost:7071/api/ingestions",
                             "headers": {"content-type": "application/json", "content-length": str(len(body))},
                             "body": {"bytes": base64.b64encode(body).decode()}}},
            "client": {"string": client},
        })
        assert answer["status"] == "Success", answer["message"]
        http = answer["return_value"]["http"]
        return {"status": int(http["status_code"]), "headers": {k.lower(): v for k, v in http["headers"].items()},
                "body": json.loads(base64.b64decode(http["body"]["bytes"]) or b"null")}

    session = WorkerSession(worker_python, app_dir, worker_env)
    try:
        session.init()
        body = json.dumps({"config": str(workbook), "dry_run": True}).encode()
        first = post(body)
        assert first["status"] == 202, first
        (instance_id, started), = durable_api.started.items()
        assert first["body"]["id"] == instance_id and instance_id.startswith("ingestion-")
        assert first["headers"]["location"] == first["body"]["statusQueryGetUri"]
        assert started["dry_run"] is True and started["config"].endswith("jobs.xlsx")
        again = post(body)
        assert again["status"] == 409 and again["body"]["instance_id"] == instance_id, again
        bad = post(b'{"dry_run": "yes"}')
        assert bad["status"] == 400 and "dry_run" in json.dumps(bad["body"]), bad
        assert len(durable_api.started) == 1
    finally:
        session.close()


def test_a_result_the_worker_cannot_encode_fails_the_invocation(worker_python: Path, worker_env: dict[str, str],
                                                                tmp_path: Path) -> None:
    """The invocation check can fail: an activity returning a non-JSON value fails in the worker."""
    app = copy_app(tmp_path / "app")
    source = app / "activities" / "__init__.py"
    text, count = re.subn(r"(def check_breakers\(payload[^\n]*\n)", r"\1    return {'skipped': {1}}\n", source.read_text())
    assert count == 1
    source.write_text(text)
    session = WorkerSession(worker_python, app, worker_env)
    try:
        session.init()
        answer = session.call("invoke", function="check_breakers", input_data={"payload": {"json": "{}"}})
        assert answer["status"] == "Failure" and "json serializable" in answer["message"], answer
    finally:
        session.close()


def test_breaker_reset_through_the_worker(worker_python: Path, worker_env: dict[str, str], app_dir: Path) -> None:
    """POST /api/breakers/{source}/reset as the host delivers it (RpcHttp with route params): 200 with
    the closed state for a stored OPEN breaker, 404 for an unknown source, 400 for a malformed name."""
    from shared.breakers import OPEN, BreakerState, LocalBreakerStore

    store = LocalBreakerStore(Path(worker_env["INGESTION_STATE_DIR"]) / "breakers.sqlite")
    store.update("shop", lambda s: BreakerState("shop", state=OPEN, consecutive_failures=5, total_failures=7,
                                                opened_at="2026-01-01T00:00:00+00:00", last_error="refused",
                                                updated_at="2026-01-01T00:00:00+00:00"))

    def post(source: str) -> dict[str, Any]:
        answer = session.call("invoke", function="reset_breaker_http", input_data={
            "req": {"http": {"method": "POST", "url": f"http://localhost:7071/api/breakers/{source}/reset",
                             "headers": {}, "params": {"source": source}, "body": {"bytes": ""}}},
        })
        assert answer["status"] == "Success", answer["message"]
        http = answer["return_value"]["http"]
        return {"status": int(http["status_code"]), "body": json.loads(base64.b64decode(http["body"]["bytes"]))}

    session = WorkerSession(worker_python, app_dir, worker_env)
    try:
        session.init()
        done = post("shop")
        assert done["status"] == 200, done
        assert (done["body"]["state"]["state"], done["body"]["state"]["consecutive_failures"]) == ("CLOSED", 0)
        assert done["body"]["state"]["total_failures"] == 7
        assert store.get("shop").state == "CLOSED"
        assert post("nope")["status"] == 404
        assert post("bad name")["status"] == 400
    finally:
        session.close()


def test_run_report_through_the_worker(worker_python: Path, worker_env: dict[str, str], app_dir: Path) -> None:
    """GET /api/ingestions/{instance_id}/report as the host delivers it: 200 with the HTML page (its
    content type and headers survive the worker's HTTP converter), 404 for an unknown run."""
    import datetime as dt

    from shared.metrics import build_metrics, write_metrics
    from shared.results import JobResult

    when = dt.datetime(2026, 1, 1, 2, 0, tzinfo=dt.timezone.utc)
    job = JobResult("shop.items", "sqlite", "shop", "items", "FULL", "success", rows_processed=5, duration_seconds=1.0)
    metrics_dir = Path(worker_env["INGESTION_METRICS_DIR"])
    metrics_dir.mkdir(parents=True)
    write_metrics(build_metrics([job], pipeline_name="p", run_id="ingestion-jobs-0a1b", execution_time=when), metrics_dir)

    def get(instance_id: str) -> dict[str, Any]:
        answer = session.call("invoke", function="get_ingestion_report", input_data={
            "req": {"http": {"method": "GET", "url": f"http://localhost:7071/api/ingestions/{instance_id}/report",
                             "headers": {}, "params": {"instance_id": instance_id}, "body": {"bytes": ""}}},
        })
        assert answer["status"] == "Success", answer["message"]
        http = answer["return_value"]["http"]
        return {"status": int(http["status_code"]), "headers": {k.lower(): v for k, v in http["headers"].items()},
                "body": base64.b64decode(http["body"]["bytes"]).decode("utf-8")}

    session = WorkerSession(worker_python, app_dir, worker_env)
    try:
        session.init()
        page = get("ingestion-jobs-0a1b")
        assert page["status"] == 200, page
        assert page["headers"]["content-type"].startswith("text/html") and page["headers"]["x-content-type-options"] == "nosniff"
        assert page["body"].startswith("<!DOCTYPE html>") and ">ingestion-jobs-0a1b<" in page["body"]
        assert get("ingestion-jobs-0a1c")["status"] == 404
    finally:
        session.close()
